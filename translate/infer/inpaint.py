"""Inpainting inference: pair images with mask files, fill the holes, keep known pixels exactly.

``translate infer INPAINT_RUN INPUT OUTPUT --masks MASK_DIR [--hole white|black]`` runs the
generic streaming runner (``translate.infer.folder.run_folder``) with two additions from this
module:

* :class:`MaskFolder` pairs every input ``sub/name.ext`` with ``MASK_DIR/sub/name_mask*.png``
  (LaMa's convention) or, failing that, with ``MASK_DIR/sub/name.<any image extension>``. An
  image without a mask, an image with several candidate masks, a mask without an image, a mask
  of another size or with an unclear encoding is a failure (``failures.jsonl``, non-zero exit);
  nothing is skipped silently. When MASK_DIR is INPUT itself (LaMa's own layout, masks beside
  images), files whose name holds ``_mask`` are the masks and the others the images.
* :class:`InpaintPipeline` pads image and mask to the model's size multiple (reflect), runs the
  generator and crops back (``translate.infer.wrap.PadCrop``). The runner then copies every
  known pixel from the decoded input file, so known pixels are bit-exact at any bit depth, not
  the result of a float round trip.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import torch

from translate.data.masks import HOLE_CONVENTIONS, load_mask
from translate.errors import TranslateError
from translate.infer.wrap import PadCrop, model_precision, size_multiple, value_range
from translate.io.images import DEFAULT_MAX_PIXELS, ImageReadError, LoadedImage, scan_images
from translate.io.paths import path_record
from translate.modelfile import Model
from translate.signals import check as check_stop

LAMA_MARK = "_mask"


class InpaintPipeline:
    """An inpainting generator at each image's own resolution.

    ``pipeline(x, mask)`` takes images (B, 3, H, W) in [0, 1] and masks (B, 1, H, W) with
    1 = hole, and returns the completed images (B, 3, H, W) in [0, 1].
    """

    def __init__(self, model: Model, device: str | torch.device = "cpu",
                 precision: str = "auto", compile: bool = False):
        if model.task != "inpaint" or "G" not in model.networks:
            raise TranslateError(f"{model.path} holds a '{model.task}' model, not an inpainting "
                                 "model")
        self.device = torch.device(device)
        self.net = model.networks["G"].to(self.device).eval()
        self.multiple = size_multiple(self.net, model.meta)
        self.precision = model_precision(precision, self.device, model.meta)
        if compile:  # one graph for every image size, as TranslationPipeline
            self.net = torch.compile(self.net, dynamic=True)
        self.wrapped = PadCrop(self.net, self.multiple, value_range=value_range(model))

    @torch.no_grad()
    def __call__(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        check_stop()  # a stop signal is acted on before each call (per image in eval loops)
        x = x.to(self.device)  # (B, 3, H, W) in [0, 1]
        mask = mask.to(self.device, x.dtype)  # (B, 1, H, W), 1 = hole
        with self.precision.autocast():
            y = self.wrapped(x, mask)  # composited in x's dtype (float32)
        return y.clamp_(0, 1)


def _lama_base(stem: str) -> str | None:
    """``name`` for a LaMa mask stem ``name_mask…``, else None."""
    at = stem.rfind(LAMA_MARK)
    return stem[:at] if at > 0 else None


@dataclasses.dataclass(frozen=True)
class Pairing:
    """Which mask each image gets, what failed, and which masks no image claimed."""

    masks: dict[Path, Path]  # image → its mask
    problems: dict[Path, str]  # image → why it has no usable mask
    orphans: list[Path]  # mask files no image claimed
    mask_files: frozenset[Path]  # files that are masks (in MASK_DIR = INPUT layouts)


class MaskFolder:
    """Mask files for a folder of images (see the module docstring for the pairing rules).

    Args:
        root: the mask folder.
        hole: ``"white"`` (nonzero = hole, LaMa) or ``"black"`` (0 = hole).
        max_pixels: refuse larger mask files.

    Raises:
        TranslateError: the folder does not exist, or an unknown ``hole``.
    """

    def __init__(self, root: str | Path, hole: str = "white",
                 max_pixels: int | None = DEFAULT_MAX_PIXELS):
        self.root = Path(root)
        if hole not in HOLE_CONVENTIONS:
            raise TranslateError(f"--hole {hole}: one of {', '.join(HOLE_CONVENTIONS)}")
        if not self.root.is_dir():
            raise TranslateError(f"mask folder not found: {self.root}")
        self.hole, self.max_pixels = hole, max_pixels

    def match(self, input_path: Path) -> Pairing:
        """Pair every image under ``input_path`` (a folder or one file) with its mask."""
        input_path = Path(input_path)
        if input_path.is_dir():
            inputs = scan_images(input_path)
            relative = [f.relative_to(input_path) for f in inputs]
        else:
            inputs, relative = [input_path], [Path(input_path.name)]
        same = input_path.is_dir() and input_path.resolve() == self.root.resolve()
        files = scan_images(self.root)
        if same:  # masks beside the images: the `_mask` files are the masks
            files = [f for f in files if _lama_base(f.stem) is not None]
        lama: dict[tuple[Path, str], list[Path]] = {}
        plain: dict[tuple[Path, str], list[Path]] = {}
        for f in files:
            rel = f.relative_to(self.root)
            base = _lama_base(rel.stem)
            if base is not None and rel.suffix.lower() == ".png":
                lama.setdefault((rel.parent, base), []).append(f)
            plain.setdefault((rel.parent, rel.stem), []).append(f)
        mask_files = frozenset(files)
        masks: dict[Path, Path] = {}
        problems: dict[Path, str] = {}
        claimed: set[Path] = set()
        for src, rel in zip(inputs, relative, strict=True):
            if src in mask_files:
                continue
            key = (rel.parent, rel.stem)
            found = lama.get(key) or [f for f in plain.get(key, []) if f != src]
            claimed.update(found)
            if len(found) == 1:
                masks[src] = found[0]
            elif not found:
                where = self.root / rel.parent
                problems[src] = (f"no mask for this image in {where} (expected "
                                 f"{rel.stem}{LAMA_MARK}*.png or {rel.stem}.<image extension>)")
            else:
                problems[src] = "several masks match it: " + ", ".join(
                    f.name for f in sorted(found))
        orphans = sorted(f for f in files if f not in claimed)
        return Pairing(masks, problems, orphans, mask_files)

    def pair(self, plan: Any, input_path: Path, rank: int = 0, world_size: int = 1) -> Any:
        """The runner's hook: set each job's mask; unpaired images and (on rank 0) masks without
        an image become failures."""
        pairing = self.match(input_path)
        jobs, failures = [], list(plan.failures)
        for job in plan.jobs:
            if job.src in pairing.mask_files:
                continue
            if job.src in pairing.masks:
                jobs.append(dataclasses.replace(job, mask=pairing.masks[job.src]))
            else:
                failures.append({**path_record(job.src), "reason": pairing.problems[job.src]})
        if rank == 0:
            failures += [{**path_record(f), "reason": "mask without an image: no input image "
                          "pairs with it"} for f in pairing.orphans]
        return dataclasses.replace(plan, jobs=jobs, failures=failures)

    def decode(self, mask_path: Path, image: LoadedImage) -> dict[str, Any]:
        """Read the mask of ``image`` (in a decoding worker). Raises ImageReadError naming the
        image and the mask when the mask cannot be used."""
        try:
            hole = load_mask(mask_path, self.hole, self.max_pixels)
        except ImageReadError as e:
            raise ImageReadError(image.source, f"mask {e}") from None
        h, w = image.array.shape[:2]
        if hole.shape != (h, w):
            raise ImageReadError(image.source, f"mask {mask_path} is {hole.shape[1]}×"
                                 f"{hole.shape[0]}, the image is {w}×{h}")
        return {"mask": torch.from_numpy(hole)[None].float(), "hole": hole.astype(bool),
                "original": np.asarray(image.array)}
