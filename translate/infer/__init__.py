"""Inference: a pipeline object per task, and the folder runner that streams files through one.

``build.py``        ``build_pipeline``: model file → its task's pipeline (``translate infer``)
``folder.py``       ``run_folder``: decode in workers → batch → pipeline → writer threads; failures
``wrap.py``         ``PadCrop``: [0, 1] → pad → network → crop → [0, 1], shared with export
``translation.py``  ``TranslationPipeline`` (CycleGAN; Winograd, channels_last, compile)
``sr.py``           ``SRPipeline`` (whole image or blended overlapping tiles)
``inpaint.py``      ``InpaintPipeline`` and ``MaskFolder`` (image ↔ mask pairing)
``onnx.py``         ``OnnxPipeline``: an exported ``.onnx`` file in onnxruntime
"""

from translate.infer.build import build_pipeline
from translate.infer.folder import FAILURES, InferReport, run_folder
from translate.infer.inpaint import InpaintPipeline, MaskFolder
from translate.infer.onnx import OnnxPipeline
from translate.infer.sr import SRPipeline
from translate.infer.translation import TranslationPipeline
from translate.infer.wrap import PadCrop

__all__ = [
    "FAILURES",
    "InferReport",
    "InpaintPipeline",
    "MaskFolder",
    "OnnxPipeline",
    "PadCrop",
    "SRPipeline",
    "TranslationPipeline",
    "build_pipeline",
    "run_folder",
]
