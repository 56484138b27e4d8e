"""The CycleGAN ResNet generator (Johnson et al., 2016; Zhu et al., 2017), split into parts.

``ResnetTrunk`` (stem, stride-2 downsampling, residual blocks) is shared with the
super-resolution head (``n_down=0``) and the inpainting head; ``ResnetDecoder`` upsamples back
to full resolution and maps to an image in [-1, 1].

The generator needs H and W to be multiples of ``2 ** n_down`` (4 by default) and returns the
same size. Callers with other sizes reflect-pad with ``layers.pad_to_multiple`` and crop back
with ``layers.crop_to``.
"""

from __future__ import annotations

import torch
from torch import nn

from translate.nets.layers import (
    ResidualBlock,
    check_size_multiple,
    conv_bias,
    init_weights,
    norm_layer,
)

UPSAMPLES = ("deconv", "resize")


class ResnetTrunk(nn.Module):
    """Stem, ``n_down`` stride-2 downsamplings, then ``n_blocks`` residual blocks.

    Args:
        in_ch: input channels.
        ngf: channels after the 7x7 stem; doubled at each downsampling.
        n_blocks: residual blocks at the bottleneck width ``ngf * 2 ** n_down``.
        n_down: stride-2 downsamplings (2 for translation, 0 for super-resolution).
        norm: normalisation after each conv (see ``layers.norm_layer``).
        use_dropout: dropout inside each residual block.
    """

    def __init__(
        self,
        in_ch: int = 3,
        ngf: int = 64,
        n_blocks: int = 9,
        n_down: int = 2,
        norm: str = "instance",
        use_dropout: bool = False,
    ):
        super().__init__()
        bias = conv_bias(norm)
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(in_ch, ngf, 7, bias=bias),
            norm_layer(norm, ngf),
            nn.ReLU(inplace=True),
        ]
        ch = ngf
        for _ in range(n_down):
            layers += [
                nn.Conv2d(ch, ch * 2, 3, stride=2, padding=1, bias=bias),
                norm_layer(norm, ch * 2),
                nn.ReLU(inplace=True),
            ]
            ch *= 2
        layers += [ResidualBlock(ch, norm, use_dropout) for _ in range(n_blocks)]
        self.layers = nn.Sequential(*layers)
        self.out_ch = ch
        self.size_multiple = 2**n_down

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (B, in_ch, H, W) -> (B, ngf * 2**n_down, H / 2**n_down, W / 2**n_down)
        return self.layers(x)


def resize_conv(in_ch: int, out_ch: int, bias: bool) -> list[nn.Module]:
    """A x2 upsampling without a transposed conv: nearest resize, reflect pad, 3x3 conv. No
    uneven kernel overlap, so no checkerboard (Odena et al., "Deconvolution and Checkerboard
    Artifacts", Distill 2016)."""
    return [
        nn.Upsample(scale_factor=2, mode="nearest"),
        nn.ReflectionPad2d(1),
        nn.Conv2d(in_ch, out_ch, 3, bias=bias),
    ]


def _upsample(in_ch: int, out_ch: int, mode: str, bias: bool) -> list[nn.Module]:
    if mode == "deconv":
        return [nn.ConvTranspose2d(in_ch, out_ch, 3, 2, 1, output_padding=1, bias=bias)]
    if mode == "resize":
        return resize_conv(in_ch, out_ch, bias)
    raise ValueError(f"unknown upsample {mode!r}; expected one of {', '.join(UPSAMPLES)}")


class ResnetDecoder(nn.Module):
    """``n_up`` x2 upsamplings from ``ngf * 2 ** n_up`` channels to ``ngf``, then 7x7 conv + tanh.

    Args:
        out_ch: output image channels.
        ngf: channels after the last upsampling.
        n_up: x2 upsamplings; undoes a trunk's ``n_down``.
        norm: normalisation after each upsampling.
        upsample: ``"deconv"`` (transposed conv, as in CycleGAN) or ``"resize"``
            (nearest x2 + 3x3 conv, the cure for checkerboard artifacts). Same parameter count.
    """

    def __init__(
        self,
        out_ch: int = 3,
        ngf: int = 64,
        n_up: int = 2,
        norm: str = "instance",
        upsample: str = "deconv",
    ):
        super().__init__()
        bias = conv_bias(norm)
        layers: list[nn.Module] = []
        ch = ngf * 2**n_up
        for _ in range(n_up):
            layers += _upsample(ch, ch // 2, upsample, bias)
            layers += [norm_layer(norm, ch // 2), nn.ReLU(inplace=True)]
            ch //= 2
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, out_ch, 7), nn.Tanh()]
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (B, ngf * 2**n_up, h, w) -> (B, out_ch, h * 2**n_up, w * 2**n_up), values in [-1, 1]
        return self.layers(x)


class ResnetGenerator(nn.Module):
    """The CycleGAN ResNet generator: trunk (2 downsamplings + residual blocks) + decoder.

    11,378,179 parameters at the defaults (ResNet-9, ngf 64), as in the CycleGAN reference.
    Weights are initialised N(0, 0.02) at construction.

    Args:
        in_ch: input image channels.
        out_ch: output image channels.
        ngf: width of the first and last layers.
        n_blocks: residual blocks (9 for 256x256 images, 6 for 128x128 in CycleGAN).
        norm: ``"instance"``, ``"instance_affine"`` (imported weights trained with
            ``InstanceNorm2d(affine=True)``), ``"batch"`` or ``"none"``.
        upsample: ``"deconv"`` or ``"resize"`` (see :class:`ResnetDecoder`).

    Input H and W must be multiples of ``size_multiple`` (4); pad others with
    ``layers.pad_to_multiple`` and crop the output with ``layers.crop_to``.
    """

    def __init__(
        self,
        in_ch: int = 3,
        out_ch: int = 3,
        ngf: int = 64,
        n_blocks: int = 9,
        norm: str = "instance",
        upsample: str = "deconv",
    ):
        super().__init__()
        self.config: dict = dict(
            in_ch=in_ch, out_ch=out_ch, ngf=ngf, n_blocks=n_blocks, norm=norm, upsample=upsample
        )
        self.trunk = ResnetTrunk(in_ch, ngf, n_blocks, n_down=2, norm=norm)
        self.decoder = ResnetDecoder(out_ch, ngf, n_up=2, norm=norm, upsample=upsample)
        self.size_multiple = self.trunk.size_multiple
        init_weights(self, 0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Translate images (B, in_ch, H, W) in [-1, 1] to (B, out_ch, H, W) in [-1, 1].

        Raises:
            ValueError: H or W is not a multiple of ``size_multiple``.
        """
        # Otherwise the output would silently come back a different size.
        check_size_multiple("ResnetGenerator", x, self.size_multiple)
        return self.decoder(self.trunk(x))
