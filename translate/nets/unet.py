"""The pix2pix U-Net generator (Ronneberger et al., 2015; Isola et al., "Image-to-Image
Translation with Conditional Adversarial Networks", CVPR 2017).

An encoder-decoder whose mirrored layers are joined by skip connections, so low-level structure
(edges, layout) shared by input and output need not squeeze through the bottleneck (Isola et
al., Sec. 3.2.1). Built as the reference implementation (junyanz/pytorch-CycleGAN-and-pix2pix,
``UnetGenerator``/``UnetSkipConnectionBlock``) builds it, block inside block, with the same
module tree, so the reference's state-dict keys (``model.model.1.model.3.weight``, ...) load
unchanged:

* down: LeakyReLU 0.2 → Conv 4×4 stride 2 → norm (no activation before the outermost conv, no
  norm after the outermost and the innermost conv);
* up: ReLU → ConvTranspose 4×4 stride 2 → norm (the outermost ends in tanh, no norm), then
  dropout 0.5 in the ``num_downs - 5`` middle ngf*8 blocks — pix2pix's only noise source
  ("we provide noise only in the form of dropout", Sec. 3.2).

``unet_256`` (8 downsamplings, 1×1 at the bottleneck of a 256² input) has 54,413,955
parameters at ngf 64 with batch norm, as the reference; ``unet_128`` (7) has 41,828,995.
"""

from __future__ import annotations

import torch
from torch import nn

from translate.nets.layers import check_size_multiple, conv_bias, init_weights, norm_layer
from translate.nets.resnet import resize_conv

# The two depths the reference names; ``num_downs`` is the number of stride-2 convs.
UNET_DEPTHS = {"unet_64": 6, "unet_128": 7, "unet_256": 8}
MIN_DOWNS = 5  # innermost + three widening blocks + outermost


def _up_conv(in_ch: int, out_ch: int, bias: bool, upsample: str) -> nn.Module:
    """A x2 upsampling conv: the reference's transposed conv, or resize + conv."""
    if upsample == "deconv":
        return nn.ConvTranspose2d(in_ch, out_ch, 4, stride=2, padding=1, bias=bias)
    if upsample == "resize":  # the ResNet decoder's resize + conv
        return nn.Sequential(*resize_conv(in_ch, out_ch, bias))
    raise ValueError(f"unknown upsample {upsample!r}; expected deconv or resize")


class UnetSkipConnectionBlock(nn.Module):
    """One level of the U-Net: ``x → [x, up(sub(down(x)))]``, channels concatenated.

    ``self.model`` is an ``nn.Sequential`` laid out as the reference's (down layers, the inner
    block, up layers, optional dropout), so parameter names match it index for index.

    Args:
        outer_nc: channels of this level's input (``input_nc`` overrides it) and output.
        inner_nc: channels after this level's down conv.
        input_nc: input channels of the outermost block (the image), else ``outer_nc``.
        submodule: the next level inward (None for the innermost).
        outermost: the first and last layer: no activation before the down conv, tanh after
            the up conv, no skip concatenation.
        innermost: the bottleneck: no norm after the down conv, no inner block.
        norm: normalisation name (see ``layers.norm_layer``).
        use_dropout: dropout 0.5 after the up conv's norm (pix2pix's noise, Sec. 3.2).
        upsample: ``"deconv"`` (the reference's 4x4 stride-2 transposed conv) or ``"resize"``
            (nearest x2, reflect pad, 3x3 conv: no checkerboard, as ``ResnetDecoder``'s).
        input_skip: outermost only, with ``"resize"``: the last conv also sees the input image
            (concatenated after the upsampling), a skip at full resolution; without it the
            finest skip is at half resolution and the image's finest detail is rebuilt.
    """

    def __init__(
        self,
        outer_nc: int,
        inner_nc: int,
        input_nc: int | None = None,
        submodule: nn.Module | None = None,
        outermost: bool = False,
        innermost: bool = False,
        norm: str = "batch",
        use_dropout: bool = False,
        upsample: str = "deconv",
        input_skip: bool = False,
    ):
        super().__init__()
        if (submodule is None) != innermost:
            raise ValueError("the innermost U-Net block, and only it, has no submodule")
        if input_skip and not (outermost and upsample == "resize"):
            raise ValueError("input_skip is for the outermost block with upsample='resize'")
        self.outermost, self.input_skip = outermost, input_skip
        # As the reference: a conv bias only where no batch norm could absorb it — including the
        # outermost and innermost down convs, which have no norm after them at all.
        bias = conv_bias(norm)
        input_nc = outer_nc if input_nc is None else input_nc
        down_conv = nn.Conv2d(input_nc, inner_nc, 4, stride=2, padding=1, bias=bias)
        # Not in place (the reference's is): x is also the skip (see forward).
        down_relu = nn.LeakyReLU(0.2)
        up_relu = nn.ReLU(inplace=True)  # acts on a fresh concatenation or conv output
        if outermost and input_skip:
            # features at full size, then (with the image) the output layer
            layers = [down_conv, submodule, up_relu, nn.Upsample(scale_factor=2, mode="nearest")]
            self.out = nn.Sequential(nn.ReflectionPad2d(1),
                                     nn.Conv2d(inner_nc * 2 + input_nc, outer_nc, 3), nn.Tanh())
        elif outermost:
            # The output layer keeps its bias (no norm follows) and maps to [-1, 1].
            up_conv = _up_conv(inner_nc * 2, outer_nc, True, upsample)
            layers = [down_conv, submodule, up_relu, up_conv, nn.Tanh()]
        elif innermost:
            up_conv = _up_conv(inner_nc, outer_nc, bias, upsample)
            layers = [down_relu, down_conv, up_relu, up_conv, norm_layer(norm, outer_nc)]
        else:
            up_conv = _up_conv(inner_nc * 2, outer_nc, bias, upsample)
            layers = [down_relu, down_conv, norm_layer(norm, inner_nc), submodule,
                      up_relu, up_conv, norm_layer(norm, outer_nc)]
            if use_dropout:
                layers.append(nn.Dropout(0.5))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (B, outer_nc, H, W) -> (B, 2 * outer_nc, H, W); outermost: -> (B, outer_nc, H, W)
        if self.outermost:
            return self.out(torch.cat([self.model(x), x], 1)) if self.input_skip else self.model(x)
        # The reference's LeakyReLU is in place, so its skip carries LeakyReLU(x) rather than x;
        # the parent level's first layer is a ReLU, and ReLU(LeakyReLU(x)) = ReLU(x), so the
        # function is the same either way.
        return torch.cat([x, self.model(x)], 1)


class UnetGenerator(nn.Module):
    """The pix2pix U-Net generator: ``num_downs`` stride-2 levels with skip connections.

    Widths ngf, 2ngf, 4ngf, then 8ngf for every deeper level; ``num_downs - 5`` middle 8ngf
    levels carry dropout when ``dropout`` is set. 54,413,955 parameters at the defaults
    (``unet_256``: in 3, out 3, ngf 64, batch norm). Weights are initialised N(0, 0.02) at
    construction (norm scales N(1, 0.02)), as pix2pix.

    Args:
        in_ch: input image channels.
        out_ch: output image channels.
        num_downs: stride-2 downsamplings (8 for 256² images, 7 for 128²; at least 5). A 2^n
            input reaches 1×1 at the bottleneck.
        ngf: channels of the outermost level.
        norm: ``"batch"`` (pix2pix), ``"instance"``, ``"instance_affine"`` or ``"none"``.
        dropout: dropout 0.5 in the middle 8ngf levels, in training and — as pix2pix runs
            it, the generator's noise — also at test time if the caller keeps it in train mode.
        upsample: ``"deconv"`` (the reference) or ``"resize"`` (see ``_up_conv``).
        input_skip: with ``"resize"``: the output layer also sees the input image (see
            :class:`UnetSkipConnectionBlock`).

    Input H and W must be multiples of ``size_multiple = 2 ** num_downs``; pad others with
    ``layers.pad_to_multiple`` and crop the output with ``layers.crop_to``.
    """

    def __init__(
        self,
        in_ch: int = 3,
        out_ch: int = 3,
        num_downs: int = 8,
        ngf: int = 64,
        norm: str = "batch",
        dropout: bool = True,
        upsample: str = "deconv",
        input_skip: bool = False,
    ):
        super().__init__()
        if num_downs < MIN_DOWNS:
            raise ValueError(f"UnetGenerator needs num_downs >= {MIN_DOWNS}, got {num_downs}")
        self.config: dict = dict(
            in_ch=in_ch, out_ch=out_ch, num_downs=num_downs, ngf=ngf, norm=norm, dropout=dropout
        )
        if upsample != "deconv":  # model files of deconv U-Nets keep their earlier args
            self.config["upsample"] = upsample
        if input_skip:
            self.config["input_skip"] = True
        up = {"norm": norm, "upsample": upsample}
        # Built from the inside out, as the reference does.
        block = UnetSkipConnectionBlock(ngf * 8, ngf * 8, innermost=True, **up)
        for _ in range(num_downs - MIN_DOWNS):
            block = UnetSkipConnectionBlock(ngf * 8, ngf * 8, submodule=block,
                                            use_dropout=dropout, **up)
        block = UnetSkipConnectionBlock(ngf * 4, ngf * 8, submodule=block, **up)
        block = UnetSkipConnectionBlock(ngf * 2, ngf * 4, submodule=block, **up)
        block = UnetSkipConnectionBlock(ngf, ngf * 2, submodule=block, **up)
        self.model = UnetSkipConnectionBlock(out_ch, ngf, input_nc=in_ch, submodule=block,
                                             outermost=True, input_skip=input_skip, **up)
        self.size_multiple = 2**num_downs
        init_weights(self, 0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Translate images (B, in_ch, H, W) in [-1, 1] to (B, out_ch, H, W) in [-1, 1].

        Raises:
            ValueError: H or W is not a multiple of ``size_multiple``.
        """
        # Otherwise a skip concatenation fails with a shape error deep inside the net.
        check_size_multiple("UnetGenerator", x, self.size_multiple)
        return self.model(x)


def unet(name: str, in_ch: int = 3, out_ch: int = 3, ngf: int = 64, norm: str = "batch",
         dropout: bool = True, upsample: str = "deconv", input_skip: bool = False
         ) -> UnetGenerator:
    """The named U-Nets: the reference's ``"unet_256"`` (8 levels) and ``"unet_128"`` (7), and
    ``"unet_64"`` (6) for 64-pixel crops.

    Raises:
        ValueError: an unknown name.
    """
    if name not in UNET_DEPTHS:
        raise ValueError(f"unknown U-Net {name!r}; expected one of {', '.join(UNET_DEPTHS)}")
    return UnetGenerator(in_ch, out_ch, UNET_DEPTHS[name], ngf, norm, dropout, upsample,
                         input_skip)
