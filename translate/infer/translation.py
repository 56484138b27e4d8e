"""Translation inference: a CycleGAN or pix2pix generator at each image's own resolution."""

from __future__ import annotations

import torch

from translate.errors import TranslateError
from translate.infer.wrap import PadCrop, keeps_gray, padding, size_multiple, value_range
from translate.modelfile import Model
from translate.nets.winograd import fast_inference
from translate.runtime import Precision
from translate.signals import check as check_stop


class TranslationPipeline:
    """A translation generator (CycleGAN, pix2pix) applied at the image's own resolution.

    A model with ``directions`` (CycleGAN) runs the one asked for; a one-way model (pix2pix:
    no ``directions``, its generator ``G``) translates ``a2b``, A → B as it was trained.

    ``pipeline(x)`` takes (B, 3, H, W) floats in [0, 1] and returns the same shape in [0, 1].
    ``fast_conv`` (default: on for CPU at fp32) runs the generator's 3x3 stride-1 convs with
    Winograd's algorithm (``translate.nets.winograd.fast_inference``).
    """

    def __init__(self, model: Model, direction: str = "a2b", device: str | torch.device = "cpu",
                 precision: str = "auto", channels_last: bool | None = None,
                 compile: bool = False, fast_conv: bool | None = None):
        directions: dict[str, str] = model.meta.get("directions", {})
        if not directions and "G" in model.networks:
            directions = {"a2b": "G"}  # one-way (pix2pix)
        if direction not in directions:
            have = ", ".join(directions) or "none"
            raise TranslateError(f"the model has no direction {direction!r} (it has: {have})")
        self.keeps_gray = keeps_gray(model.task)
        self.device = torch.device(device)
        if fast_conv and self.device.type != "cpu":
            # cuDNN's convolutions (with their own Winograd kernels) beat it on a GPU.
            raise TranslateError(f"--fast-conv is a CPU path; on {self.device} the stock "
                                 "convolutions are faster (drop --fast-conv)")
        self.net = model.networks[directions[direction]].to(self.device).eval()
        self.multiple = size_multiple(self.net, model.meta)
        self.precision = Precision(precision, self.device)
        if channels_last is None:
            channels_last = self.device.type == "cuda"
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.net.to(memory_format=self.memory_format)
        if fast_conv is None:  # on where measured faster: CPU at fp32 (docs/BENCHMARKS.md)
            fast_conv = self.device.type == "cpu" and self.precision.name == "fp32"
        self.fast_conv = fast_conv
        if fast_conv:
            # Winograd F(4x4, 3x3) for the 3x3 stride-1 convs: ~4x fewer multiplications, same
            # outputs within fp32 rounding (translate/nets/winograd.py). Converts the loaded
            # network in place (no second copy of the weights).
            self.net = fast_inference(self.net, inplace=True)
        if compile:
            # dynamic=True: one compiled graph serves every image size (each image is run at its
            # own resolution), instead of a recompilation per new size. The first image pays the
            # compilation (tens of seconds on a CPU), so it pays off on large folders only.
            self.net = torch.compile(self.net, dynamic=True)
        self.wrapped = PadCrop(self.net, self.multiple, value_range=value_range(model),
                               memory_format=self.memory_format, padding=padding(model.meta))

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        check_stop()  # a stop signal is acted on before each call (per image in eval loops)
        x = x.to(self.device, non_blocking=True)  # (B, 3, H, W) in [0, 1]
        with self.precision.autocast():
            y = self.wrapped(x)
        return y.clamp_(0, 1)
