"""``build_pipeline``: the pipeline ``translate infer`` runs for a model file, by its task."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from translate import runtime
from translate.errors import TranslateError, refuse_foreign_options
from translate.infer.inpaint import InpaintPipeline, MaskFolder
from translate.infer.memory import parse_bytes
from translate.infer.onnx import onnx_pipeline
from translate.infer.sr import SRPipeline
from translate.infer.translation import TranslationPipeline
from translate.io.images import DEFAULT_MAX_OUTPUT_PIXELS, DEFAULT_MAX_PIXELS
from translate.modelfile import Model, load_model


def build_pipeline(model_path: str | Path, *, device: str = "auto", direction: str | None = None,
                   precision: str = "auto", compile: bool = False, fast_conv: bool | None = None,
                   masks: str | Path | None = None, hole: str = "white",
                   max_pixels: int | None = DEFAULT_MAX_PIXELS, outscale: float | None = None,
                   tile: int | None = None, tile_overlap: int | None = None,
                   max_memory: int | str | None = None,
                   max_output_pixels: int | None = DEFAULT_MAX_OUTPUT_PIXELS,
                   require_masks: bool = True) -> tuple[Any, MaskFolder | None]:
    """The pipeline ``translate infer`` runs for a model, and its mask folder (inpainting).

    ``model_path`` is a run directory or model folder (PyTorch: a ``TranslationPipeline``,
    ``InpaintPipeline`` or ``SRPipeline`` by the model's task) or an exported ``.onnx`` file
    (``translate.infer.onnx.OnnxPipeline``). Options for another kind of model are refused by
    name, never ignored. Under torchrun (``runtime.init_from_env`` called first) a PyTorch
    model goes on this rank's GPU.

    Args:
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        direction: translation models: ``a2b`` (default) or ``b2a``.
        precision: ``auto``, ``fp32``, ``bf16`` or ``fp16``.
        compile: ``torch.compile`` the network (translation and inpainting models).
        fast_conv: translation models: Winograd 3x3 convs (default: on for CPU at fp32).
        masks: inpainting models (required there): the folder of hole masks.
        hole: how ``masks`` mark holes: ``white`` (nonzero = hole) or ``black`` (0 = hole).
        max_pixels: masks larger than this are refused (as the images by ``run_folder``).
        max_output_pixels: super-resolution outputs (after ``outscale``) larger than this are
            refused before any work.
        require_masks: False: an inpainting model without ``masks`` is built anyway (its
            masks come with each call, ``translate.load``); the mask folder is then None.
        outscale, tile, tile_overlap: super-resolution models (``SRPipeline``); ``tile``
            None chooses tiles by ``max_memory``, 0 forces the whole image.
        max_memory: super-resolution models: the memory budget of one batch, bytes or a size
            such as ``4G`` (``translate.infer.memory.parse_bytes``); default half the memory
            available.

    Returns:
        ``(pipeline, mask_folder)``; ``mask_folder`` (``translate.infer.inpaint.MaskFolder``)
        is None except for inpainting models, and goes to ``run_folder(masks=...)``. The
        pipeline's ``task`` names its model's task.

    Raises:
        TranslateError: a missing or unreadable model, a model that is not image-to-image, an
            option for another kind of model, an inpainting model without ``masks``, or a
            ``max_memory`` that is not a size.
    """
    model_path = Path(model_path)
    if max_memory is not None:
        max_memory = parse_bytes(max_memory)
    if model_path.suffix.lower() == ".onnx":  # an exported model: onnxruntime runs it
        return onnx_pipeline(model_path, device, direction, precision, compile, masks, hole,
                             max_pixels, require_masks=require_masks,
                             pytorch_only={"--outscale": outscale, "--tile": tile,
                                           "--tile-overlap": tile_overlap,
                                           "--max-memory": max_memory,
                                           "--fast-conv": fast_conv or None})
    dev = runtime.resolve_device(runtime.device_for(runtime.WORLD, device))
    loaded = load_model(model_path, device=dev, task=tuple(PIPELINES))
    task = loaded.task
    refuse_foreign_options(task, model_path, [
        ("--outscale and --tile", outscale is not None or tile is not None, ("sr",),
         "super-resolution"),
        ("--fast-conv", bool(fast_conv), ("cyclegan",), "translation"),
        ("--masks", masks is not None, ("inpaint",), "inpainting"),
        ("--tile-overlap", tile_overlap is not None, ("sr",), "super-resolution"),
        ("--max-memory", max_memory is not None, ("sr",), "super-resolution"),
        ("--direction", direction is not None, ("cyclegan",), "translation"),
        ("--compile", compile, ("cyclegan", "pix2pix", "inpaint"), "translation and inpainting"),
    ])
    options = PipelineOptions(direction, precision, compile, fast_conv, masks, hole, max_pixels,
                              outscale, tile, tile_overlap, max_memory, max_output_pixels,
                              require_masks)
    pipeline, mask_folder = PIPELINES[task](loaded, model_path, dev, options)
    pipeline.task = task
    return pipeline, mask_folder


@dataclass(frozen=True)
class PipelineOptions:
    """``build_pipeline``'s options, as the builders in :data:`PIPELINES` take them."""

    direction: str | None
    precision: str
    compile: bool
    fast_conv: bool | None
    masks: str | Path | None
    hole: str
    max_pixels: int | None
    outscale: float | None
    tile: int | None
    tile_overlap: int | None
    max_memory: int | None = None
    max_output_pixels: int | None = DEFAULT_MAX_OUTPUT_PIXELS
    require_masks: bool = True


Built = tuple[Any, MaskFolder | None]


def _translation(model: Model, path: Path, dev: torch.device, o: PipelineOptions) -> Built:
    return TranslationPipeline(model, o.direction or "a2b", dev, o.precision, compile=o.compile,
                               fast_conv=o.fast_conv), None


def _inpainting(model: Model, path: Path, dev: torch.device, o: PipelineOptions) -> Built:
    if o.masks is None and not o.require_masks:
        return InpaintPipeline(model, dev, o.precision, compile=o.compile), None
    if o.masks is None:
        raise TranslateError(f"{path} holds an inpainting model: give the holes "
                             "with --masks MASK_DIR")
    mask_folder = MaskFolder(o.masks, o.hole, o.max_pixels)
    return InpaintPipeline(model, dev, o.precision, compile=o.compile), mask_folder


def _super_resolution(model: Model, path: Path, dev: torch.device, o: PipelineOptions) -> Built:
    return SRPipeline(model, dev, o.precision, tile=o.tile, tile_overlap=o.tile_overlap,
                      outscale=o.outscale, max_memory=o.max_memory,
                      max_pixels=o.max_output_pixels), None


# Task name → its pipeline builder: this layer's part of the task table (translate/tasks.py), for
# the tasks of kind "image" (tests/test_tasks.py keeps the keys equal).
PIPELINES: dict[str, Callable[[Model, Path, torch.device, PipelineOptions], Built]] = {
    "cyclegan": _translation,
    "inpaint": _inpainting,
    "sr": _super_resolution,
    "pix2pix": _translation,  # one way, A → B (no --direction)
}
