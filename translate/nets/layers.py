"""Building blocks shared by the image networks: ResNet generator, PatchGAN, SR, inpainting."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

NORMS = ("instance", "instance_affine", "batch", "none")


def _check_norm(kind: str) -> None:
    if kind not in NORMS:
        raise ValueError(f"unknown norm {kind!r}; expected one of {', '.join(NORMS)}")


class InstanceNorm(nn.GroupNorm):
    """Instance normalisation with no running statistics; no affine parameters unless asked.

    Computed as GroupNorm with one channel per group, which is the same function (each channel of
    each image normalised over its H × W). Two reasons not to use ``nn.InstanceNorm2d``: in torch
    2.14.1 its CPU backward gives wrong input gradients when the incoming gradient is
    channels_last at batch size 1 (CycleGAN's default batch), and ``group_norm`` is about 3×
    faster on CPU. No buffers either way; without ``affine`` no parameters (CycleGAN's default),
    with it a per-channel scale ``weight`` and shift ``bias``, as ``InstanceNorm2d(affine=True)``
    (the reference's forks and e.g. vintagify train with those).
    """

    def __init__(self, channels: int, eps: float = 1e-5, affine: bool = False):
        super().__init__(channels, channels, eps=eps, affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, C, H, W)
        if x.device.type == "cpu":
            return super().forward(x)
        # On a GPU, ``group_norm`` under autocast casts its input to fp32 and its kernel wants
        # NCHW, so each of a ResNet's norms would copy a channels_last activation twice;
        # this keeps the input's memory format and dtype (statistics in fp32).
        return instance_norm_nhwc(x, self.eps, self.weight, self.bias)


def instance_norm_nhwc(x: torch.Tensor, eps: float, weight: torch.Tensor | None = None,
                       bias: torch.Tensor | None = None) -> torch.Tensor:
    """Instance normalisation of (B, C, H, W) ``x`` in its own memory format and dtype: per
    image and channel, (x − mean) / sqrt(var + eps) over H × W, the mean and (biased) variance
    taken in fp32; then ``weight`` and ``bias`` per channel when given."""
    xf = x.float()  # x itself at fp32; in fp32 the centring below cannot cancel
    var, mean = torch.var_mean(xf, dim=(-2, -1), keepdim=True, correction=0)  # (B, C, 1, 1)
    y = (xf - mean) * torch.rsqrt(var + eps)
    if weight is not None:
        y = torch.addcmul(bias.float().view(1, -1, 1, 1), y, weight.float().view(1, -1, 1, 1))
    return y.to(x.dtype)


def norm_layer(kind: str, channels: int) -> nn.Module:
    """Return the 2-D normalisation layer named ``kind`` for ``channels`` feature maps.

    Args:
        kind: ``"instance"`` (no affine parameters, no running stats, as in CycleGAN),
            ``"instance_affine"`` (the same with a per-channel scale and shift), ``"batch"`` or
            ``"none"`` (an identity).
        channels: number of channels to normalise.

    Raises:
        ValueError: ``kind`` is not one of :data:`NORMS`.
    """
    _check_norm(kind)
    if kind == "instance":
        return InstanceNorm(channels)
    if kind == "instance_affine":
        return InstanceNorm(channels, affine=True)
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    return nn.Identity()


def conv_bias(kind: str) -> bool:
    """Whether a conv followed by norm ``kind`` carries a bias.

    BatchNorm has its own shift, so a bias before it is redundant. The CycleGAN reference keeps
    the bias before its affine-free InstanceNorm (it is mean-subtracted away, but counted in the
    reference's 11,378,179 parameters), and a conv with no norm after it needs its bias.
    """
    _check_norm(kind)
    return kind != "batch"


class ResidualBlock(nn.Module):
    """Two 3x3 convs with reflect padding and a skip: ``x + block(x)`` (He et al., 2016).

    Args:
        ch: channels in and out.
        norm: normalisation after each conv (see :func:`norm_layer`).
        use_dropout: dropout 0.5 between the two convs, as pix2pix optionally does.
    """

    def __init__(self, ch: int, norm: str = "instance", use_dropout: bool = False):
        super().__init__()
        bias = conv_bias(norm)
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(1),
            nn.Conv2d(ch, ch, 3, bias=bias),
            norm_layer(norm, ch),
            nn.ReLU(inplace=True),
        ]
        if use_dropout:
            layers.append(nn.Dropout(0.5))
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(ch, ch, 3, bias=bias), norm_layer(norm, ch)]
        self.block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, C, H, W)
        return x + self.block(x)


class GatedConv2d(nn.Module):
    """Gated convolution (Yu et al., "Free-Form Image Inpainting with Gated Convolution", 2019).

    One conv gives ``2 * out_ch`` maps, split into features and gates:
    ``O = φ(Feature) ⊙ σ(Gating)`` (DeepFill v2, Eqn. 3), so the network learns per pixel and
    channel how much to trust what it sees (a hole, a known pixel, a filled-in guess). Zero
    "same" padding, as DeepFill v2, so any size and any dilation work.

    Args:
        in_ch: input channels.
        out_ch: output channels.
        kernel_size: odd kernel side.
        stride: 1, or 2 to halve H and W.
        dilation: spacing of the kernel taps (widens the receptive field at no cost).
        activation: apply φ = ELU to the features (False for a linear output layer).
    """

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int = 3, stride: int = 1,
                 dilation: int = 1, activation: bool = True):
        super().__init__()
        pad = dilation * (kernel_size - 1) // 2
        self.conv = nn.Conv2d(in_ch, 2 * out_ch, kernel_size, stride, pad, dilation)
        self.act: nn.Module = nn.ELU() if activation else nn.Identity()  # not in place: a view

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (B, in_ch, H, W) -> (B, out_ch, H / stride, W / stride)
        feature, gate = self.conv(x).chunk(2, dim=1)
        return self.act(feature) * torch.sigmoid(gate)


_WEIGHTED = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d, nn.Linear)
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.InstanceNorm2d, nn.GroupNorm, nn.LayerNorm)


def _raw_weight(m: nn.Module) -> torch.Tensor:
    # Under a parametrization (e.g. spectral norm) ``m.weight`` is recomputed on every access,
    # so initialising it would silently do nothing; initialise the stored original instead.
    if parametrize.is_parametrized(m, "weight"):
        return m.parametrizations.weight.original
    return m.weight


@torch.no_grad()
def init_weights(module: nn.Module, std: float = 0.02) -> None:
    """Initialise in place as in pix2pix/CycleGAN: weights ~ N(0, std), biases 0.

    Affine norm layers get scale ~ N(1, std) and shift 0. Affine-free norms have nothing to set.

    Args:
        module: the network; every submodule is visited.
        std: standard deviation of the normal draws.
    """
    for m in module.modules():
        if isinstance(m, _WEIGHTED):
            nn.init.normal_(_raw_weight(m), 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, _NORMS) and getattr(m, "weight", None) is not None:
            nn.init.normal_(m.weight, 1.0, std)
            nn.init.zeros_(m.bias)


def pad_to_multiple(x: torch.Tensor, m: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad the bottom and right of ``x`` so H and W are multiples of ``m``.

    Reflect padding avoids the dark border that zero padding leaves after translation. Images
    too small to reflect (a side shorter than the pad + 1) are padded by replication instead.

    Args:
        x: images, (B, C, H, W).
        m: the multiple, e.g. ``2 ** n_down`` of a ResNet generator.

    Returns:
        The padded images and the original ``(h, w)`` to give to :func:`crop_to`.
    """
    h, w = x.shape[-2:]
    ph, pw = -h % m, -w % m
    if ph == 0 and pw == 0:
        return x, (h, w)
    mode = "reflect" if h > ph and w > pw else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode), (h, w)


def _mirror_index(n: int, total: int, device: torch.device) -> torch.Tensor:
    """Indices 0 … total − 1 of a side of ``n`` pixels reflected about its ends as often as
    needed (period 2n − 2: 0 1 2 1 0 1 2 …); ``n`` = 1 repeats its one pixel."""
    # The period as a (1,) tensor, 2·(n − 1) from the last index of arange(n): the ONNX exporter
    # translates tensor arithmetic on a dynamic size, but not torch.sym_max of one.
    period = (torch.arange(n, device=device)[-1:] * 2).clamp_(min=1)
    i = torch.arange(total, device=device) % period
    return torch.minimum(i, period - i)


def mirror_pad_to_multiple(x: torch.Tensor, m: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Reflect-pad the bottom and right of ``x`` (B, C, H, W) to multiples of ``m``, however
    large the pad: the reflection is repeated where the pad is longer than the image (NumPy's
    ``pad(..., "reflect")``). Where the pad is shorter it equals :func:`pad_to_multiple`.

    One gather per axis and no branch on the size, so a graph exported at one size pads every
    size alike; a U-Net's multiple (256) is larger than many images, where ``F.pad`` reflect
    fails and :func:`pad_to_multiple` would switch to replicate (a branch an exporter fixes).

    Returns:
        The padded images and the original ``(h, w)`` to give to :func:`crop_to`.
    """
    h, w = x.shape[-2:]
    rows = _mirror_index(h, h + (-h % m), x.device)
    cols = _mirror_index(w, w + (-w % m), x.device)
    return x.index_select(-2, rows).index_select(-1, cols), (h, w)


def crop_to(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Undo :func:`pad_to_multiple`: keep the top-left ``size = (h, w)`` of ``x`` (B, C, H, W)."""
    h, w = size
    return x[..., :h, :w]


def check_size_multiple(net: str, x: torch.Tensor, multiple: int) -> None:
    """Refuse an input whose H or W is not a multiple of ``multiple`` (the net's size multiple).

    Raises:
        ValueError: naming the network, the multiple and the size, and how to pad.
    """
    h, w = x.shape[-2:]
    if h % multiple or w % multiple:
        raise ValueError(
            f"{net} needs H and W divisible by {multiple}, got {h}x{w}; "
            "pad with translate.nets.layers.pad_to_multiple and crop back with crop_to"
        )
