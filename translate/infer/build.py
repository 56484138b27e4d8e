"""``build_pipeline``: the pipeline ``translate infer`` runs for a model file, by its task."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from translate import runtime
from translate.errors import TranslateError, refuse_foreign_options
from translate.infer.inpaint import InpaintPipeline, MaskFolder
from translate.infer.onnx import onnx_pipeline
from translate.infer.sr import SRPipeline
from translate.infer.translation import TranslationPipeline
from translate.io.images import DEFAULT_MAX_PIXELS
from translate.modelfile import load_model


def build_pipeline(model_path: str | Path, *, device: str = "auto", direction: str | None = None,
                   precision: str = "auto", compile: bool = False, fast_conv: bool | None = None,
                   masks: str | Path | None = None, hole: str = "white",
                   max_pixels: int | None = DEFAULT_MAX_PIXELS, outscale: float | None = None,
                   tile: int | None = None, tile_overlap: int | None = None
                   ) -> tuple[Any, MaskFolder | None]:
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
        outscale, tile, tile_overlap: super-resolution models (``SRPipeline``).

    Returns:
        ``(pipeline, mask_folder)``; ``mask_folder`` (``translate.infer.inpaint.MaskFolder``)
        is None except for inpainting models, and goes to ``run_folder(masks=...)``.

    Raises:
        TranslateError: a missing or unreadable model, a model that is not image-to-image, an
            option for another kind of model, or an inpainting model without ``masks``.
    """
    model_path = Path(model_path)
    if model_path.suffix.lower() == ".onnx":  # an exported model: onnxruntime runs it
        return onnx_pipeline(model_path, device, direction, precision, compile, masks, hole,
                             max_pixels,
                             pytorch_only={"--outscale": outscale, "--tile": tile,
                                           "--tile-overlap": tile_overlap,
                                           "--fast-conv": fast_conv or None})
    dev = runtime.resolve_device(runtime.device_for(runtime.WORLD, device))
    loaded = load_model(model_path, device=dev, task=("cyclegan", "inpaint", "sr"))
    task = loaded.task
    refuse_foreign_options(task, model_path, [
        ("--outscale and --tile", outscale is not None or tile is not None, ("sr",),
         "super-resolution"),
        ("--fast-conv", bool(fast_conv), ("cyclegan",), "translation"),
        ("--masks", masks is not None, ("inpaint",), "inpainting"),
        ("--tile-overlap", tile_overlap is not None, ("sr",), "super-resolution"),
        ("--direction", direction is not None, ("cyclegan",), "translation"),
        ("--compile", compile, ("cyclegan", "inpaint"), "translation and inpainting"),
    ])
    if task == "inpaint":
        if masks is None:
            raise TranslateError(f"{model_path} holds an inpainting model: give the holes "
                                 "with --masks MASK_DIR")
        mask_folder = MaskFolder(masks, hole, max_pixels)
        return InpaintPipeline(loaded, dev, precision, compile=compile), mask_folder
    if task == "sr":
        return SRPipeline(loaded, dev, precision, tile=tile or 0, tile_overlap=tile_overlap,
                          outscale=outscale), None
    return TranslationPipeline(loaded, direction or "a2b", dev, precision, compile=compile,
                               fast_conv=fast_conv), None
