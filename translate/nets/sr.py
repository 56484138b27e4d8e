"""The super-resolution generator: the residual trunk without downsampling or normalisation,
a global skip, and a pixel-shuffle upsampler (SRResNet, Ledig et al. 2017; EDSR, Lim et al. 2017).

Layout (``x``: (B, in_ch, h, w) in [0, 1])::

    f0   = head(x)                                  3×3 conv, nf channels
    f    = f0 + body(f0)                            n_blocks × ResidualBlock(norm="none") + 3×3
                                                    conv; the long (global) skip of SRResNet/EDSR
    y    = tail(upsample(f)) [+ bilinear(x)]        pixel shuffle ×2 / ×3 / ×2·×2, 3×3 conv

Choices, and why:

* **No normalisation.** EDSR (Sec. 3.1) removes BatchNorm from SRResNet's blocks: it normalises
  away the range flexibility SR needs and costs memory. The blocks are the shared
  ``layers.ResidualBlock`` (conv–ReLU–conv + skip) with ``norm="none"``.
* **3×3 head** as EDSR, rather than the ResNet trunk's 7×7 stem (SRResNet uses 9×9): the blocks
  supply the receptive field; a wide stem costs FLOPs at every LR pixel for little gain.
* **Pixel shuffle** (Shi et al. 2016, ESPCN): a conv to ``r² · nf`` channels at low resolution,
  then a rearrangement to ×r — no transposed-conv checkerboard, convs run at low resolution.
  ×4 is two ×2 stages, as EDSR's upsampler.
* **Image skip** (``image_skip=True``): the output is added to a bilinear upscale of the input,
  so the network learns only the missing detail (the residual learning of VDSR, Kim et al.
  2016, and of Real-ESRGAN's compact net). It starts training near interpolation quality, which
  matters on a CPU budget; it has no parameters.

The network works in the [0, 1] value range and does not clamp: training sees the raw output
(L1 on it), inference clamps.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from translate.nets.layers import ResidualBlock

SCALES = (2, 3, 4)
UPSAMPLERS = ("pixelshuffle", "lite")
BLOCKS = ("residual", "rrdb")


def _conv3(in_ch: int, out_ch: int) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, 3, padding=1, padding_mode="reflect")


class PixelShuffleUpsampler(nn.Sequential):
    """×2, ×3 or ×4 by sub-pixel convolution (Shi et al. 2016); ×4 is two ×2 stages (EDSR).

    Args:
        scale: 2, 3 or 4.
        nf: channels in and out.
    """

    def __init__(self, scale: int, nf: int):
        if scale not in SCALES:
            raise ValueError(f"scale must be one of {SCALES}, got {scale}")
        stages = [2, 2] if scale == 4 else [scale]
        layers: list[nn.Module] = []
        for r in stages:
            # (B, nf, h, w) -> (B, r² nf, h, w) -> (B, nf, r h, r w)
            layers += [_conv3(nf, r * r * nf), nn.PixelShuffle(r)]
        super().__init__(*layers)


class ResidualDenseBlock(nn.Module):
    """Five densely connected 3×3 convs, LeakyReLU 0.2, scaled residual (ESRGAN, Wang et al.
    2018, Fig. 4): conv k sees the block input and every earlier conv's ``gc`` channels.

    Args:
        nf: channels in and out.
        gc: growth channels of each inner conv.
    """

    def __init__(self, nf: int = 64, gc: int = 32):
        super().__init__()
        self.convs = nn.ModuleList(
            [_conv3(nf + i * gc, gc) for i in range(4)] + [_conv3(nf + 4 * gc, nf)]
        )
        self.act = nn.LeakyReLU(0.2, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, nf, h, w) -> same
        features = [x]
        for conv in self.convs[:-1]:
            features.append(self.act(conv(torch.cat(features, 1))))
        return x + 0.2 * self.convs[-1](torch.cat(features, 1))  # residual scaling β = 0.2


class RRDB(nn.Sequential):
    """Residual-in-residual dense block (ESRGAN Fig. 4): three dense blocks inside a scaled skip.

    Args:
        nf: channels in and out.
        gc: growth channels of the dense blocks.
    """

    def __init__(self, nf: int = 64, gc: int = 32):
        super().__init__(*[ResidualDenseBlock(nf, gc) for _ in range(3)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, nf, h, w) -> same
        return x + 0.2 * super().forward(x)


class SRGenerator(nn.Module):
    """Single-image super-resolution by ``scale`` (see the module docstring for the layout).

    Args:
        scale: upscaling factor: 2, 3 or 4.
        nf: feature channels (64 in SRResNet/EDSR-baseline).
        n_blocks: residual blocks (16 in SRResNet/EDSR-baseline).
        in_ch: input image channels.
        out_ch: output image channels; must equal ``in_ch`` when ``image_skip``.
        image_skip: add a bilinear upscale of the input to the output.
        upsampler: ``"pixelshuffle"`` (EDSR: conv + shuffle stages at nf channels, ×4 as two
            ×2, then a 3×3 conv to the image) or ``"lite"`` (ESPCN: one LR conv to
            ``out_ch · scale²`` channels + shuffle). At ×4 the two stages cost as much as 20
            nf×nf convs at LR (10 residual blocks), "lite" 1.5 at nf 32: for CPU budgets.
        block: ``"residual"`` (EDSR's conv–ReLU–conv, the shared ``ResidualBlock``) or
            ``"rrdb"`` (ESRGAN's residual-in-residual dense blocks; heavier, ESRGAN uses 23 at
            nf 64, gc 32).
        gc: growth channels of the RRDB dense blocks (``block="rrdb"`` only).

    Input: (B, in_ch, h, w) in [0, 1], any h, w ≥ 2 (the convolutions pad by reflection, so no
    size multiple is needed). Output: (B, out_ch, scale·h, scale·w), not clamped.
    """

    def __init__(
        self,
        scale: int = 4,
        nf: int = 64,
        n_blocks: int = 16,
        in_ch: int = 3,
        out_ch: int = 3,
        image_skip: bool = True,
        upsampler: str = "pixelshuffle",
        block: str = "residual",
        gc: int = 32,
    ):
        super().__init__()
        if scale not in SCALES:
            raise ValueError(f"scale must be one of {SCALES}, got {scale}")
        if upsampler not in UPSAMPLERS:
            raise ValueError(f"upsampler must be one of {UPSAMPLERS}, got {upsampler!r}")
        if block not in BLOCKS:
            raise ValueError(f"block must be one of {BLOCKS}, got {block!r}")
        if image_skip and in_ch != out_ch:
            raise ValueError(f"image_skip needs in_ch == out_ch, got {in_ch} and {out_ch}")
        self.config: dict = dict(
            scale=scale, nf=nf, n_blocks=n_blocks, in_ch=in_ch, out_ch=out_ch,
            image_skip=image_skip, upsampler=upsampler, block=block, gc=gc,
        )
        self.scale = scale
        self.image_skip = image_skip
        self.head = _conv3(in_ch, nf)
        blocks = [ResidualBlock(nf, norm="none") if block == "residual" else RRDB(nf, gc)
                  for _ in range(n_blocks)]
        self.body = nn.Sequential(*blocks, _conv3(nf, nf))
        if upsampler == "pixelshuffle":
            self.upsample: nn.Module = PixelShuffleUpsampler(scale, nf)
            self.tail: nn.Module = _conv3(nf, out_ch)
        else:
            # ESPCN / Real-ESRGAN's compact net: one LR conv straight to out_ch·r² channels,
            # shuffled into the image. No conv runs above LR resolution.
            self.upsample = nn.Sequential(_conv3(nf, out_ch * scale * scale),
                                          nn.PixelShuffle(scale))
            self.tail = nn.Identity()
        self._init_weights()

    @torch.no_grad()
    def _init_weights(self) -> None:
        # Kaiming-uniform (PyTorch's default) for the trunk, with each residual branch's last
        # conv scaled by 0.1 so the blocks start close to identities (the residual scaling of
        # EDSR Sec. 3.1 / ESRGAN's initialisation), which keeps early updates stable. The tail
        # starts small, so with the image skip the untrained net is close to bilinear.
        for block in self.body:
            if isinstance(block, ResidualBlock):
                last = [m for m in block.modules() if isinstance(m, nn.Conv2d)][-1]
                last.weight.mul_(0.1)
            elif isinstance(block, RRDB):  # ESRGAN: every conv of the dense blocks × 0.1
                for m in block.modules():
                    if isinstance(m, nn.Conv2d):
                        m.weight.mul_(0.1)
        last = self.upsample[0] if isinstance(self.tail, nn.Identity) else self.tail
        last.weight.mul_(0.1)
        nn.init.zeros_(last.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (B, in_ch, h, w) -> (B, out_ch, scale h, scale w)
        f0 = self.head(x)
        f = f0 + self.body(f0)  # global (long) skip over the residual blocks
        y = self.tail(self.upsample(f))
        if self.image_skip:
            y = y + F.interpolate(x, scale_factor=self.scale, mode="bilinear", align_corners=False)
        return y

    @property
    def receptive_radius(self) -> int:
        """LR pixels of context on each side that can influence an output pixel.

        Every 3×3 conv at LR resolution adds 1; the head, two per block (15 per RRDB), the
        body's last conv and the first upsampler conv run at LR; a second ×2 conv adds ½, the
        tail 1/scale and the bilinear skip 1. Tiled inference wants an overlap of about twice
        this.
        """
        per_block = 15 if self.config["block"] == "rrdb" else 2  # longest conv path per block
        lr_convs = 1 + per_block * (len(self.body) - 1) + 1 + 1
        if isinstance(self.tail, nn.Identity):  # "lite": nothing after the LR conv
            return lr_convs + 1
        extra = (0.5 if self.scale == 4 else 0.0) + 1.0 / self.scale + 1.0
        return math.ceil(lr_convs + extra)
