"""``translate.load``: a trained model as one callable, for pipeline scripts.

    import translate
    pipe = translate.load("sr-x4")                 # a bundled name, a run folder or a .onnx file
    big = pipe(Image.open("photo.jpg"))            # PIL in → PIL out
    big = pipe(np.asarray(...))                    # (H, W, C) uint8/uint16 in → the same kind out
    big = pipe(torch.rand(2, 3, 64, 64))           # (N)CHW float in [0, 1] → the same kind out
    filled = translate.load("inpaint")(image, mask)  # inpainting: nonzero mask pixels are holes
    report = pipe.folder("photos/", "out/")        # what `translate infer` does

A result equals what ``translate infer`` writes for the same image saved as a file (the same
decode → batch → network → quantisation code: ``translate.infer.folder``), so a script and the
CLI agree to the last level. Images in memory are taken as they are (no EXIF orientation).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from translate.data.masks import holes_of
from translate.errors import TranslateError
from translate.infer import build_pipeline, run_folder
from translate.infer.folder import (
    InferReport,
    apply_pipeline,
    cannot_process,
    finish_pixels,
    image_item,
)
from translate.io.images import BT601, DEFAULT_MAX_PIXELS
from translate.models import resolve


class Pipe:
    """What :func:`load` returns: ``pipe(image[, mask], direction=...)`` and ``pipe.folder``.

    Attributes:
        task: the model's task (``cyclegan``, ``sr``, ``inpaint``, …).
        path: the model folder or ``.onnx`` file it was loaded from.
    """

    def __init__(self, path: Path, options: dict[str, Any]):
        self.path = path
        direction = options.pop("direction", None)
        self._options = options  # build_pipeline's keywords, less direction and masks
        self._pipelines: dict[str | None, Any] = {}
        self._pipelines[None] = self._pipeline(direction)
        self.task: str = self._pipelines[None].task

    def _pipeline(self, direction: str | None) -> Any:
        if direction not in self._pipelines:
            self._pipelines[direction], _ = build_pipeline(
                self.path, direction=direction, masks=None, require_masks=False, **self._options)
        return self._pipelines[direction]

    def __call__(self, image: Any, mask: Any = None, *, direction: str | None = None) -> Any:
        """The model applied to ``image``, returned as the same kind of object.

        Args:
            image: a PIL image; an (H, W) or (H, W, C) ``uint8``/``uint16`` array (C = 1, 3 or
                4; alpha is kept); or a float tensor (C, H, W) / (N, C, H, W) in [0, 1] (C = 1
                or 3), on any device.
            mask: inpainting only (required there): the holes, as the same kinds — nonzero
                (``True``, > 0) is a hole, or zero with ``load(..., hole="black")``.
            direction: translation models: ``a2b`` or ``b2a`` (default: the one given to
                :func:`load`, else ``a2b``).

        A 16-bit grey PIL image ('I;16', or 'I' holding 16-bit values) is processed as a
        16-bit file is and comes back as 'I;16'. An empty batch (N = 0) gives an empty batch
        of the output's shape. Float values a little outside [0, 1] (up to
        :data:`RANGE_SLACK`, a resampled image's overshoot) are clamped, as a file would hold
        them.

        Raises:
            TranslateError: one line naming the problem: a 0-pixel side, NaN or ±inf values,
                values far outside [0, 1] (with the fix for [-1, 1] and 0-255 tensors), an
                image smaller than the network takes (naming the smallest it takes), a wrong
                dtype, shape or mask.
        """
        pipeline = self._pipeline(direction) if direction else self._pipelines[None]
        needs_mask = self.task == "inpaint"
        if needs_mask and mask is None:
            raise TranslateError("an inpainting model needs a mask: pipe(image, mask)")
        if mask is not None and not needs_mask:
            raise TranslateError(f"a mask is for inpainting models; this is a {self.task} model")
        if isinstance(image, torch.Tensor):
            return self._tensor(pipeline, image, mask)
        try:
            from PIL import Image
        except ImportError:  # pragma: no cover - Pillow is a dependency
            Image = None
        if Image is not None and isinstance(image, Image.Image):
            array = _pil_pixels(image)
            if mask is not None and isinstance(mask, Image.Image):
                mask = np.asarray(mask.convert("L"))
            out = self._array(pipeline, array, mask)
            if out.dtype == np.uint16:  # 16-bit grey comes back as it went in: mode 'I;16'
                return Image.fromarray(np.ascontiguousarray(out[..., 0] if out.ndim == 3
                                                            else out))
            return Image.fromarray(out[..., 0] if out.shape[-1] == 1 else out)
        if isinstance(image, np.ndarray):
            return self._array(pipeline, image, mask)
        raise TranslateError(f"expected a PIL image, a NumPy array or a torch tensor, got "
                             f"{type(image).__name__}")

    def _array(self, pipeline: Any, array: np.ndarray, mask: Any) -> np.ndarray:
        """(H, W[, C]) uint8/uint16 → the same layout and dtype, through the folder runner's
        own decode and write steps (``translate infer``'s values)."""
        if array.dtype not in (np.uint8, np.uint16):
            raise TranslateError(f"expected uint8 or uint16 pixels, got {array.dtype} (float "
                                 "images go in as torch tensors in [0, 1])")
        squeeze = array.ndim == 2
        if squeeze:
            array = array[..., None]
        if array.ndim != 3 or array.shape[-1] not in (1, 2, 3, 4):
            raise TranslateError(f"expected an (H, W) or (H, W, C) array with C in 1-4, got "
                                 f"shape {array.shape}")
        alpha = None
        if array.shape[-1] in (2, 4):
            array, alpha = array[..., :-1], np.ascontiguousarray(array[..., -1])
        h, w = array.shape[:2]
        _check_size(h, w)
        if h * w > DEFAULT_MAX_PIXELS:
            raise TranslateError(f"the image has {h * w:,} pixels, more than "
                                 f"{DEFAULT_MAX_PIXELS:,}")
        item = image_item(array, alpha, 16 if array.dtype == np.uint16 else 8)
        if mask is not None:
            hole = _hole_array(mask, (h, w), self._options.get("hole", "white"))
            item |= {"mask": torch.from_numpy(hole)[None].float(), "hole": hole.astype(bool),
                     "original": array}
        with _model_errors(pipeline, h, w):
            result = apply_pipeline(pipeline, [item], item["pixels"][None])[0]
        out, alpha = finish_pixels(item, result)
        if alpha is not None:
            out = np.concatenate([out, alpha[..., None].astype(out.dtype)], axis=-1)
        return out[..., 0] if squeeze and out.shape[-1] == 1 else out

    def _tensor(self, pipeline: Any, x: torch.Tensor, mask: Any) -> torch.Tensor:
        """(C, H, W) or (N, C, H, W) float in [0, 1] → the same shape kind, dtype and device
        (C = 1 comes back with 3 channels from a pipeline that does not keep grey: pix2pix)."""
        if not x.is_floating_point() or x.ndim not in (3, 4) or x.shape[-3] not in (1, 3):
            raise TranslateError(f"expected a float tensor (C, H, W) or (N, C, H, W) with C = 1 "
                                 f"or 3, got {x.dtype} of shape {tuple(x.shape)}")
        batch = x if x.ndim == 4 else x[None]
        h, w = batch.shape[-2:]
        _check_size(h, w)
        gray = batch.shape[1] == 1
        if batch.shape[0] == 0:  # an empty batch: an empty result of the right shape
            return self._empty_result(pipeline, x, gray)
        rgb = _checked_values(batch.float().cpu())
        rgb = rgb.expand(-1, 3, -1, -1) if gray else rgb
        if mask is not None:
            m = torch.as_tensor(mask).cpu()
            while m.ndim < 4:
                m = m[None]
            holes = torch.from_numpy(holes_of(m.numpy(), self._options.get("hole", "white")))
            if holes.shape[-2:] != rgb.shape[-2:]:
                raise TranslateError(f"the mask is {tuple(holes.shape[-2:])}, the image "
                                     f"{tuple(rgb.shape[-2:])}")
            holes = holes.float().expand(rgb.shape[0], 1, -1, -1)
            with _model_errors(pipeline, h, w):
                y = pipeline(rgb, holes)
            y = torch.where(holes.bool(), y.cpu(), rgb)  # known pixels are the input's own
        else:
            with _model_errors(pipeline, h, w):
                y = pipeline(rgb)
        y = y.float().cpu()
        if gray and getattr(pipeline, "keeps_gray", True):  # BT.601 luma, as infer writes it
            weights = torch.from_numpy(BT601).view(1, 3, 1, 1)
            y = (y * weights).sum(dim=1, keepdim=True)
        y = y.to(device=x.device, dtype=x.dtype)
        return y if x.ndim == 4 else y[0]

    def _empty_result(self, pipeline: Any, x: torch.Tensor, gray: bool) -> torch.Tensor:
        """What a batch of no images gives: no images, of the size and channels one would."""
        h, w = x.shape[-2:]
        if hasattr(pipeline, "output_size"):  # SR (with its outscale)
            h, w = pipeline.output_size(h, w)
        else:
            scale = int(getattr(pipeline, "scale", 1))
            h, w = h * scale, w * scale
        c = 1 if gray and getattr(pipeline, "keeps_gray", True) else 3
        return x.new_empty((0, c, h, w))

    def folder(self, input_path: str | Path, output_dir: str | Path, *,
               masks: str | Path | None = None, direction: str | None = None,
               **options: Any) -> InferReport:
        """What ``translate infer MODEL INPUT OUTPUT`` does (the same files, skipping and
        failure list); ``options`` are ``run_folder``'s (``batch_size``, ``ext``, ``overwrite``,
        ``num_workers``, ``fail_fast``, ``show_progress``, …)."""
        pipeline, mask_folder = build_pipeline(self.path, direction=direction, masks=masks,
                                               **self._options)
        options.setdefault("show_progress", False)
        model_dir = self.path if self.path.is_dir() else None
        return run_folder(pipeline, input_path, output_dir, masks=mask_folder,
                          reads={"model folder": model_dir}, **options)


# Float inputs may stray this far past [0, 1] (a resampled image overshoots a little) and are
# clamped, as writing them to a file would; farther out is another scale, refused by name.
RANGE_SLACK = 0.1


def _check_size(h: int, w: int) -> None:
    if h < 1 or w < 1:
        raise TranslateError(f"the image is {w}×{h} pixels; an image needs at least one pixel "
                             "each way")


def _checked_values(x: torch.Tensor) -> torch.Tensor:
    """``x`` clamped to [0, 1], or a TranslateError naming NaN, ±inf or a range that is not
    [0, 1] (what a [-1, 1] or 0-255 tensor needs to become one)."""
    if torch.isnan(x).any():
        raise TranslateError("the tensor holds NaN values; expected floats in [0, 1]")
    if torch.isinf(x).any():
        raise TranslateError("the tensor holds infinite values; expected floats in [0, 1]")
    lo, hi = float(x.min()), float(x.max())
    if lo < -RANGE_SLACK or hi > 1 + RANGE_SLACK:
        hint = ("(from [-1, 1]: (x + 1) / 2)" if lo >= -1 - RANGE_SLACK and hi <= 1 + RANGE_SLACK
                else "(from 0-255: x / 255)" if lo >= -RANGE_SLACK and hi <= 255 + RANGE_SLACK
                else "")
        raise TranslateError(f"the tensor's values span [{lo:.4g}, {hi:.4g}]; expected floats "
                             f"in [0, 1] {hint}".rstrip())
    return x.clamp(0, 1)


@contextlib.contextmanager
def _model_errors(pipeline: Any, h: int, w: int) -> Iterator[None]:
    """A network's failure on an h × w image as one TranslateError line (the folder runner's
    wording: the smallest size the network takes, or torch's first line)."""
    try:
        yield
    except (RuntimeError, ValueError) as e:
        raise TranslateError(cannot_process(pipeline, h, w, e)) from None


def _pil_pixels(image: Any) -> np.ndarray:
    """A PIL image's pixels as ``_array`` takes them: 16-bit grey ('I;16', 'I;16B', and 'I'
    holding 16-bit values, as Pillow opens 16-bit PNGs) as (H, W) uint16, as ``translate
    infer`` reads 16-bit files; L, RGB and RGBA as they are; other modes as RGB(A)."""
    mode = image.mode
    if mode == "I" or mode.startswith("I;16"):
        values = np.asarray(image)
        if values.size and (values.min() < 0 or values.max() > 65535):
            raise TranslateError(f"a PIL image of mode {mode!r} with values beyond 16 bits "
                                 f"({values.min()} to {values.max()}); expected 0-65535")
        return values.astype(np.uint16)
    if mode in ("L", "RGB", "RGBA"):
        return np.asarray(image)
    if mode in ("F", "I;32", "I;32B"):
        raise TranslateError(f"PIL images of mode {mode!r} are not taken; give 8- or 16-bit "
                             "images, or a float tensor in [0, 1]")
    return np.asarray(image.convert("RGBA" if "A" in mode or "transparency" in image.info
                                    else "RGB"))


def _hole_array(mask: Any, size: tuple[int, int], hole: str) -> np.ndarray:
    """(H, W) uint8, 1 = hole, from a mask array (or anything NumPy takes)."""
    array = np.asarray(mask)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim == 3 and array.shape[-1] == 3:
        array = array[..., 0]
    if array.shape != size:
        raise TranslateError(f"the mask is {array.shape[1] if array.ndim > 1 else '?'}×"
                             f"{array.shape[0]}, the image is {size[1]}×{size[0]}")
    return holes_of(array, hole)


def load(model: str | Path, *, device: str = "auto", precision: str = "auto",
         direction: str | None = None, **options: Any) -> Pipe:
    """A trained model, ready to call on images in memory.

    Args:
        model: a bundled model's name (``translate models``), a run or model folder, or an
            exported ``.onnx`` file. An existing path wins over a name.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        precision: ``auto``, ``fp32``, ``bf16`` or ``fp16``.
        direction: translation models: the default direction of calls (``a2b``/``b2a``).
        options: further ``translate infer`` options by their Python names: ``outscale``,
            ``tile``, ``tile_overlap``, ``max_memory`` (super-resolution), ``hole`` (inpainting:
            ``white`` or ``black``), ``compile``, ``fast_conv``.

    Raises:
        TranslateError: an unknown name, a missing or invalid model, or an option for another
            kind of model (one line naming it).
    """
    allowed = {"outscale", "tile", "tile_overlap", "max_memory", "hole", "compile", "fast_conv"}
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise TranslateError(f"load() got unknown option(s) {', '.join(unknown)}; it takes "
                             f"{', '.join(sorted(allowed))}")
    path = resolve(model)
    return Pipe(path, {"device": device, "precision": precision, "direction": direction,
                       **options})
