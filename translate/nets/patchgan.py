"""The N-layer PatchGAN discriminator (Isola et al., 2017), shared by every image task.

At ``n_layers=3`` each output logit sees a 70x70 patch of the input; a 256x256 image gives a
30x30 map. It returns logits, never probabilities, so the GAN losses (and autocast) stay safe.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm as _spectral_norm

from translate.nets.layers import conv_bias, init_weights, norm_layer


class PatchDiscriminator(nn.Module):
    """A fully convolutional classifier of overlapping patches: real (high) or fake (low) logits.

    2,764,737 parameters at the defaults, as in the CycleGAN/pix2pix reference.
    Weights are initialised N(0, 0.02) at construction.

    Args:
        in_ch: input channels (pix2pix-style conditional D: condition + image channels).
        ndf: channels of the first conv; doubled per layer up to ``8 * ndf``.
        n_layers: stride-2 convs (3 gives the 70x70 receptive field).
        norm: ``"instance"``, ``"batch"`` or ``"none"``; never on the first layer.
        spectral_norm: wrap every conv in spectral normalisation (Miyato et al., 2018), as
            SN-PatchGAN discriminators for inpainting do (usually with ``norm="none"``).
    """

    def __init__(
        self,
        in_ch: int = 3,
        ndf: int = 64,
        n_layers: int = 3,
        norm: str = "instance",
        spectral_norm: bool = False,
    ):
        super().__init__()
        self.config: dict = dict(
            in_ch=in_ch, ndf=ndf, n_layers=n_layers, norm=norm, spectral_norm=spectral_norm
        )
        bias = conv_bias(norm)
        layers: list[nn.Module] = [
            nn.Conv2d(in_ch, ndf, 4, stride=2, padding=1),
            nn.LeakyReLU(0.2, inplace=True),
        ]
        ch = ndf
        for n in range(1, n_layers + 1):
            out = ndf * min(2**n, 8)
            stride = 2 if n < n_layers else 1  # the last widening conv keeps the resolution
            layers += [
                nn.Conv2d(ch, out, 4, stride=stride, padding=1, bias=bias),
                norm_layer(norm, out),
                nn.LeakyReLU(0.2, inplace=True),
            ]
            ch = out
        layers.append(nn.Conv2d(ch, 1, 4, stride=1, padding=1))
        self.layers = nn.Sequential(*layers)
        init_weights(self, 0.02)
        if spectral_norm:
            for m in self.layers:
                if isinstance(m, nn.Conv2d):
                    _spectral_norm(m)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (B, in_ch, H, W) -> (B, 1, h, w) logits, one per patch; h = H / 2**n_layers - 2
        return self.layers(x)
