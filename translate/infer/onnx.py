"""Folder inference with an exported ONNX model through onnxruntime.

:class:`OnnxPipeline` has the interface of ``translate.infer.TranslationPipeline`` (one
``__call__``: (B, 3, H, W) floats in [0, 1] → (B, 3, s·H, s·W) in [0, 1], and a ``.device``), so
``translate.infer.run_folder`` streams, batches and writes exactly as for a PyTorch model. The
graph is ``translate.infer.wrap.PadCrop`` around the network, in the network's value range; this
pipeline maps [0, 1] to that range and back with the same functions as the PyTorch wrapper. The
network runs in onnxruntime; PyTorch only hands the decoded batch over as a numpy array.
Everything the pipeline needs (task, direction, value range, scale) is read from the file's
metadata, written by ``translate export``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from translate import runtime
from translate.errors import TranslateError
from translate.infer.inpaint import MaskFolder
from translate.infer.wrap import from_network, keeps_gray, to_network
from translate.modelfile import EXPORT_FORMAT, export_meta
from translate.runtime import World
from translate.signals import check as check_stop
from translate.tasks import names

# Tasks whose exported graph maps images to images (inpainting takes a mask as well).
IMAGE_TASKS = names("image")
CUDA, CPU = "CUDAExecutionProvider", "CPUExecutionProvider"


def providers_for(device: str, world: World | None = None) -> list:
    """onnxruntime execution providers for ``--device``: ``auto`` (CUDA when this onnxruntime
    has it, else CPU), ``cpu``, ``cuda`` or ``cuda:N``. Under torchrun (``world``, default
    ``runtime.WORLD``) a rank on GPUs takes GPU LOCAL_RANK, as PyTorch models do
    (``runtime.device_for``).

    Raises:
        TranslateError: CUDA asked for but not available, or an unknown device.
    """
    import onnxruntime as ort

    available = ort.get_available_providers()
    world = runtime.WORLD if world is None else world
    ranked = [(CUDA, {"device_id": world.local_rank}), CPU] if world.active else [CUDA, CPU]
    if device == "auto":
        return ranked if CUDA in available else [CPU]
    if device == "cpu":
        return [CPU]
    if device == "cuda" or device.startswith("cuda:"):
        if CUDA not in available:
            raise TranslateError(f"--device {device}: this onnxruntime has no CUDA provider "
                                 f"(it has {', '.join(available)}); install onnxruntime-gpu")
        index = device.partition(":")[2] or "0"
        if not index.isdigit():
            raise TranslateError(f"--device {device}: expected cuda:N")
        return ranked if world.active else [(CUDA, {"device_id": int(index)}), CPU]
    raise TranslateError(f"--device {device}: expected auto, cpu, cuda or cuda:N")


class OnnxPipeline:
    """An exported image-to-image model (``translate export --format onnx``) in onnxruntime.

    Args:
        path: the ``.onnx`` file.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (see :func:`providers_for`).
        direction: if given, the direction the file must translate (a CycleGAN export holds
            one direction, named in its metadata).

    Raises:
        TranslateError: a missing or unreadable file, a file without translate metadata, a
            model that is not image-to-image, or another direction than asked for.
    """

    def __init__(self, path: str | Path, device: str = "auto", direction: str | None = None):
        import onnxruntime as ort

        path = Path(path)
        if not path.is_file():
            raise TranslateError(f"model not found: {path}")
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only
        try:
            self.session = ort.InferenceSession(str(path), options,
                                                providers=providers_for(device))
        except TranslateError:
            raise
        except Exception as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise TranslateError(f"cannot load {path}: {first}") from None
        meta = self.session.get_modelmeta().custom_metadata_map
        if meta.get("format") != EXPORT_FORMAT:
            raise TranslateError(f"{path} has no translate metadata; "
                                 "make it with `translate export RUN --format onnx`")
        values = export_meta(str(path), meta)  # parsed and checked, as model.json's
        self.task = meta["task"]
        if self.task not in IMAGE_TASKS:
            raise TranslateError(f"{path} holds a '{self.task}' model; infer runs image-to-image "
                                 f"models ({', '.join(IMAGE_TASKS)})")
        self.keeps_gray = keeps_gray(self.task)
        self.direction = meta.get("direction") or None
        if direction is not None and self.direction is not None and direction != self.direction:
            raise TranslateError(f"{path} translates {self.direction}, not {direction} "
                                 "(export the other direction)")
        self.meta = meta
        self.lo, self.hi = (float(v) for v in values["value_range"])
        self.value_range = (self.lo, self.hi)
        self.scale = values["scale"]
        self.multiple = values["size_multiple"]
        # The graph is right only up to this side (size-dependent loops fixed at export).
        self.max_side = values.get("max_side")
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.needs_mask = len(self.input_names) == 2  # (image, mask): inpainting
        self._check_graph(path)
        self.providers = self.session.get_providers()
        # run_folder moves batches to .device; onnxruntime takes host arrays and copies them to
        # the GPU itself when the CUDA provider runs.
        self.device = torch.device("cpu")

    def _check_graph(self, path: Path) -> None:
        """Refuse a file whose metadata contradicts its graph (an edited file, or metadata
        from another export): the task's inputs (image, and mask for inpainting), and the
        output a probe of the graph makes (3 channels, ``scale`` × the input's size)."""
        inputs = self.session.get_inputs()
        want = 2 if self.task == "inpaint" else 1
        if len(inputs) != want:
            raise TranslateError(f"{path}: its metadata says a '{self.task}' model ({want} "
                                 f"input{'s' if want > 1 else ''}), but the graph takes "
                                 f"{len(inputs)}; the file was edited or the metadata is "
                                 "another export's")
        dims = inputs[0].shape
        if len(dims) != 4:
            raise TranslateError(f"{path}: the graph's input has shape {dims}, not (N, 3, H, W)")
        n = dims[0] if isinstance(dims[0], int) else 1
        h, w = dims[2], dims[3]
        if not (isinstance(h, int) and isinstance(w, int)):  # dynamic: a small probe
            h = w = -(-32 // self.multiple) * self.multiple
        feed = {inputs[0].name: np.full((n, 3, h, w), 0.5, np.float32)}
        if want == 2:
            feed[inputs[1].name] = np.zeros((n, 1, h, w), np.float32)
        try:
            y = self.session.run(None, feed)[0]
        except Exception:  # a size the graph does not take: its images are checked one by one
            return
        expected = (3, h * self.scale, w * self.scale)
        if tuple(y.shape[1:]) != expected:
            raise TranslateError(
                f"{path}: its metadata (scale {self.scale}) says the graph makes "
                f"{expected[0]}×{expected[1]}×{expected[2]} from 3×{h}×{w}, but it makes "
                f"{'×'.join(map(str, y.shape[1:]))}; the file was edited or the metadata is "
                "another export's")

    def __call__(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] → (B, 3, scale·H, scale·W) in [0, 1].

        ``mask`` (B, 1, H, W), 1 = hole, is the inpainting model's second input.

        Raises:
            RuntimeError: onnxruntime refused the input (run_folder records it as that file's
                failure).
        """
        check_stop()  # a stop signal is acted on before each call (per image in eval loops)
        longest = max(-(-side // self.multiple) * self.multiple for side in x.shape[-2:])
        if self.max_side is not None and longest > self.max_side:
            raise ValueError(f"this export handles sides up to {self.max_side} pixels; "
                             "use the PyTorch model (the run directory) for larger images")
        pixels = x.detach().cpu().numpy().astype(np.float32, copy=False)
        feed = {self.input_names[0]: to_network(pixels, self.value_range)}
        if self.needs_mask:
            if mask is None:
                raise ValueError("this inpainting model needs a mask")
            feed[self.input_names[1]] = mask.detach().cpu().numpy().astype(np.float32)
        try:
            y = self.session.run(None, feed)[0]
        except Exception as e:  # onnxruntime's own exception types do not derive RuntimeError
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise RuntimeError(first) from None
        h, w = x.shape[-2:]
        if tuple(y.shape[1:]) != (3, h * self.scale, w * self.scale):
            raise ValueError(f"the graph made {'×'.join(map(str, y.shape[1:]))} from "
                             f"3×{h}×{w}, not the ×{self.scale} its metadata says")
        return torch.from_numpy(np.clip(from_network(y, self.value_range), 0.0, 1.0))


def onnx_pipeline(path: Path, device: str = "auto", direction: str | None = None,
                  precision: str = "auto", compile: bool = False, masks: Path | None = None,
                  hole: str = "white", max_pixels: int | None = None,
                  pytorch_only: dict[str, object] | None = None, require_masks: bool = True
                  ) -> tuple[OnnxPipeline, MaskFolder | None]:
    """The pipeline (and, for inpainting, the mask folder) ``translate infer`` runs for a
    ``.onnx`` file.

    Args:
        pytorch_only: options that need the PyTorch model (name → value); any that is set is
            refused by name.

    Raises:
        TranslateError: an option this file cannot honour, or a missing ``--masks``.
    """
    if precision not in ("auto", "fp32"):
        raise TranslateError(f"--precision {precision}: an ONNX export runs in fp32")
    if compile:
        raise TranslateError("--compile is for PyTorch models, not ONNX files")
    for name, value in (pytorch_only or {}).items():
        if value is not None:
            raise TranslateError(f"{name} needs the PyTorch model (the run directory), "
                                 "not an ONNX file")
    pipeline = OnnxPipeline(path, device, direction)
    if masks is not None and not pipeline.needs_mask:
        raise TranslateError(f"--masks is for inpainting models; {path} holds a "
                             f"'{pipeline.task}' model")
    if not pipeline.needs_mask or (masks is None and not require_masks):
        return pipeline, None
    if masks is None:
        raise TranslateError(f"{path} holds an inpainting model: give the holes with "
                             "--masks MASK_DIR")
    return pipeline, MaskFolder(masks, hole, max_pixels)
