"""Winograd convolution for CPU inference: 3x3 stride-1 convs with ~4x fewer multiplications.

A 3x3 convolution computed tile by tile with Winograd's minimal filtering algorithm
F(m x m, 3 x 3) (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", CVPR 2016,
Eqn. 8):

    Y = A^T [ (G g G^T) ⊙ (B^T d B) ] A

``d`` is an (m+2) x (m+2) input tile, ``g`` the 3x3 kernel, ``Y`` the m x m output tile. Summed
over input channels, the element-wise product becomes (m+2)^2 independent matrix products
(Cout x Cin) @ (Cin x tiles) -- one batched GEMM -- so an m x m output tile costs (m+2)^2
multiply-adds per channel pair instead of 9 m^2: 36 instead of 144 at m = 4 (4x fewer), 16
instead of 36 at m = 2 (2.25x). The transforms B^T d B and A^T M A are small fixed linear maps,
applied with their Kronecker products (as a GEMM, or for B^T d B on NCHW input as a stride-m
conv with those (m+2)^2 fixed kernels); the kernel transform G g G^T is done once, in float64,
when a conv is converted.

The matrices are built here by Toom-Cook from interpolation points (``winograd_matrices``),
not copied from tables. For F(4, 3) the points {0, 1, -1, 1/2, -2, inf} are used: mixing 2 and
1/2 keeps the transforms' entries small, which halves the fp32 error of Lavin's {0, ±1, ±2, inf}
(Barabasz et al., "Error Analysis and Improving the Accuracy of Winograd Convolution for Deep
Neural Networks", ACM TOMS 2020). Measured on a 256->256 conv at 64x64 (scripts/bench_conv.py):
max |error| about 4e-6 of the output's max |value|, against 3e-7 for the direct conv. F(6, 3)
(points {0, ±1, ±1/2, ±2}) measured 2.0e-5 on the same conv and would save only 1.27x more
multiplications than F(4, 3) while its transforms grow from 36x36 to 64x64; it is not offered.

The output keeps the input's memory format (an add of NCHW and channels_last tensors costs
~10x one of equal formats). A contiguous (NCHW) input is transformed per channel in place; a
channels_last one is tiled with every tile element a contiguous C-vector, so gathering tiles and
scattering outputs copy whole vectors.

``fast_inference`` converts a trained network for inference: every eligible conv becomes a
``WinogradConv2d`` holding the transformed weights. Gradients never reach the original weights
(they are buffers here), so converted networks are for inference only.

``fast_training`` is the training form (``train.fast_conv``): each eligible conv stays an
``nn.Conv2d`` with its ``weight`` Parameter and computes F(4, 3) by :func:`winograd_conv2d`, an
autograd function whose backward (written out, every GEMM operand laid out for the GEMM) runs in
the transformed domain too; the kernel transform is done at every forward, and checkpoints hold
ordinary conv weights. On NCHW input the training form takes the inference form's stride-m conv
for B^T d B as well (one pass over the image instead of a gathered copy and a GEMM). Measured
side by side against the earlier form (autograd through the ops, gathered tiles) on a 256 -> 256
conv at 64x64, forward + backward, Intel Xeon, 2 vCPUs: 1.66x -> 1.86x the direct conv.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

# Interpolation points (the point at infinity is added by ``winograd_matrices``).
POINTS: dict[int, tuple[float, ...]] = {2: (0.0, 1.0, -1.0), 4: (0.0, 1.0, -1.0, 0.5, -2.0)}


def winograd_matrices(
    m: int, r: int, points: Sequence[float]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Toom-Cook matrices ``(A^T, G, B^T)`` of F(m, r), in float64.

    A linear convolution s = g * h (lengths r and m) is evaluated at the ``alpha = m + r - 1``
    points (``points`` plus infinity, whose "value" is the leading coefficient), multiplied
    point-wise and interpolated back: ``s = V_a^-1 [(V_r g) ⊙ (V_m h)]`` with Vandermonde
    matrices V. Correlation, which a conv layer computes, is the transpose of that map:
    ``y = V_m^T [(V_r g) ⊙ (V_a^-T d)]``, so ``A^T = V_m^T``, ``G = V_r``, ``B^T = V_a^-T``.
    Row j of B^T is scaled by prod_{k != j}(p_j - p_k) and row j of G divided by it, which
    leaves the product unchanged and makes B^T's entries small exact numbers (integers for
    integer points), keeping the fractions in the once-only kernel transform.

    Args:
        m: output tile size.
        r: kernel size.
        points: ``m + r - 2`` distinct finite interpolation points.

    Returns:
        ``A^T`` (m, alpha), ``G`` (alpha, r), ``B^T`` (alpha, alpha).

    Raises:
        ValueError: wrong number of points, or points not distinct.
    """
    alpha = m + r - 1
    pts = [float(p) for p in points]
    if len(pts) != alpha - 1 or len(set(pts)) != len(pts):
        raise ValueError(f"F({m}, {r}) needs {alpha - 1} distinct finite points, got {points}")

    def vandermonde(n: int) -> torch.Tensor:  # (alpha, n): row j = p_j^0..p_j^(n-1); inf last
        v = torch.zeros(alpha, n, dtype=torch.float64)
        for j, p in enumerate(pts):
            v[j] = torch.tensor([p**k for k in range(n)], dtype=torch.float64)
        v[alpha - 1, n - 1] = 1.0
        return v

    a_t, g, b_t = vandermonde(m).T.clone(), vandermonde(r), torch.linalg.inv(vandermonde(alpha)).T
    for j, p in enumerate(pts):
        scale = math.prod(p - q for k, q in enumerate(pts) if k != j)
        b_t[j] *= scale
        g[j] /= scale
    # Snap the inverse's rounding noise (~1e-16) away where an entry is a multiple of 2^-10
    # (all of them for the points above), so the fp32 transform is exact.
    snapped = torch.round(b_t * 1024) / 1024
    b_t = torch.where((b_t - snapped).abs() < 1e-12, snapped, b_t)
    return a_t, g, b_t


class WinogradConv2d(nn.Module):
    """Inference-only replacement for a 3x3, stride-1 ``nn.Conv2d``, computed with F(m, 3).

    Same input and output shapes as the conv it is built from (its padding and padding mode
    are applied first; callers that pad themselves, as ``ResidualBlock`` does, give a conv with
    padding 0). Sizes that are not a multiple of ``m`` are handled by zero-extending the last
    tiles and cropping the outputs they produce. The output has the input's memory format
(contiguous or channels_last).

    Args:
        conv: the convolution to replace: 3x3 kernel, stride 1, dilation 1, groups 1. Its
            weights are copied and transformed; later changes to it are not seen.
        m: output tile size, 4 (F(4, 3): 36 multiplies per 16 outputs) or 2 (F(2, 3)).

    Raises:
        ValueError: the conv is not eligible (see :func:`eligible`) or ``m`` is not 2 or 4.
    """

    def __init__(self, conv: nn.Conv2d, m: int = 4):
        super().__init__()
        if not eligible(conv):
            raise ValueError(f"not a 3x3, stride-1, dilation-1, ungrouped Conv2d: {conv}")
        if m not in POINTS:
            raise ValueError(f"tile size m must be one of {sorted(POINTS)}, got {m}")
        a_t, g, b_t = winograd_matrices(m, 3, POINTS[m])
        weight = conv.weight.detach()
        dtype, device = weight.dtype, weight.device
        self.m, self.alpha = m, m + 2
        self.in_channels, self.out_channels = conv.in_channels, conv.out_channels
        pad = conv.padding if isinstance(conv.padding, tuple) else (conv.padding,) * 2
        if isinstance(pad[0], str):  # "same" for a 3x3 stride-1 kernel is 1, "valid" is 0
            pad = (1, 1) if pad[0] == "same" else (0, 0)
        self.pad = (pad[1], pad[1], pad[0], pad[0])  # F.pad order: left, right, top, bottom
        self.pad_mode = "constant" if conv.padding_mode == "zeros" else conv.padding_mode
        # U = G g G^T for every (Cout, Cin) pair, as (alpha^2, Cout, Cin): 4x the weights at
        # m = 4. Computed in float64 a few output channels at a time, so the float64
        # temporaries stay small (whole-layer ones fragmented the heap: +2x the buffers' size).
        u = torch.empty(self.alpha**2, self.out_channels, self.in_channels, dtype=dtype)
        for o in range(0, self.out_channels, 16):
            part = torch.einsum("ik,ockl,jl->ijoc", g, weight[o:o + 16].double().cpu(), g)
            u[:, o:o + 16] = part.reshape(self.alpha**2, -1, self.in_channels)
        self.register_buffer("u", u.to(device), persistent=False)
        # vec(B^T d B) = (B^T ⊗ B^T) vec(d), row-major vec; likewise for A^T M A.
        self.register_buffer("kb", torch.kron(b_t, b_t).to(device, dtype), persistent=False)
        self.register_buffer("ka", torch.kron(a_t, a_t).to(device, dtype), persistent=False)
        bias = None if conv.bias is None else conv.bias.detach().clone()
        self.register_buffer("bias", bias, persistent=False)

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, F({self.m}x{self.m}, 3x3)"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, Cin, H, W) -> (N, Cout, H', W'), as the replaced conv; computed in the weights'
        dtype with autocast off (the transforms need full precision)."""
        with torch.autocast(x.device.type, enabled=False):
            return self._forward(x.to(self.u.dtype))

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        m = self.m
        if any(self.pad):
            x = F.pad(x, self.pad, mode=self.pad_mode)
        n, c, hp, wp = x.shape
        if c != self.in_channels:
            raise ValueError(f"expected {self.in_channels} input channels, got {c}")
        if hp < 3 or wp < 3:
            raise ValueError(f"input {hp}x{wp} is smaller than the 3x3 kernel")
        a = self.alpha
        kb_conv = self.kb.view(a * a, 1, a, a)
        return _in_whole_tiles(x, m, lambda x, channels_last: _tiles_forward(
            x, self.u, self.bias, m, channels_last, self.kb, self.ka, kb_conv)[0])


def eligible(conv: nn.Module) -> bool:
    """Whether ``conv`` is a 3x3, stride-1, dilation-1, ungrouped ``nn.Conv2d`` in float32/64."""
    return (
        isinstance(conv, nn.Conv2d)
        and not isinstance(conv, nn.LazyConv2d)
        and tuple(conv.kernel_size) == (3, 3)
        and tuple(conv.stride) == (1, 1)
        and tuple(conv.dilation) == (1, 1)
        and conv.groups == 1
        and conv.weight.dtype in (torch.float32, torch.float64)
    )


def fast_inference(
    module: nn.Module, m: int = 4, min_channels: int = 128, inplace: bool = False
) -> nn.Module:
    """A copy of ``module`` for inference, its eligible 3x3 convs replaced by Winograd convs.

    Eligible: 3x3, stride 1, dilation 1, groups 1, float32/float64 (see :func:`eligible`), with
    at least ``min_channels`` input and output channels -- with fewer, the transforms' memory
    traffic costs as much as the multiplications saved (measured on 2 cores: 0.85-0.99x the
    direct conv at 64 channels, 1.35x at 128, 1.6-1.9x at 256; docs/BENCHMARKS.md). In the
    CycleGAN ResNet generator at ngf 64 these are the residual blocks' 256-channel convs (88%
    of its FLOPs), and the first 256->128 conv after resizing with ``upsample="resize"``.

    Args:
        module: the network (unchanged unless ``inplace``).
        m: Winograd output tile size (4 or 2; see :class:`WinogradConv2d`).
        min_channels: smallest in/out channel count converted.
        inplace: convert ``module`` itself instead of a deep copy.

    Returns:
        The converted network, in eval mode with ``requires_grad`` off: for inference only.
    """
    net = module if inplace else copy.deepcopy(module)
    for parent in list(net.modules()):
        for name, child in list(parent.named_children()):
            if (
                eligible(child)
                and min(child.in_channels, child.out_channels) >= min_channels
            ):
                setattr(parent, name, WinogradConv2d(child, m))
    return net.eval().requires_grad_(False)


# ── Training: the same algorithm as differentiable torch ops on the ordinary conv's weight.

_TRAIN_MATRICES: dict[tuple[int, torch.dtype, torch.device], tuple[torch.Tensor, ...]] = {}


def _train_matrices(m: int, dtype: torch.dtype, device: torch.device) -> tuple[torch.Tensor, ...]:
    """``(G ⊗ G, B^T ⊗ B^T, A^T ⊗ A^T)`` of F(m, 3) in ``dtype`` on ``device``, and B^T ⊗ B^T
    again as (alpha^2, 1, alpha, alpha) conv kernels; built once."""
    key = (m, dtype, device)
    if key not in _TRAIN_MATRICES:
        a_t, g, b_t = winograd_matrices(m, 3, POINTS[m])
        kg, kb, ka = (torch.kron(t, t).to(device, dtype) for t in (g, b_t, a_t))
        _TRAIN_MATRICES[key] = (kg, kb, ka, kb.reshape(-1, 1, m + 2, m + 2).contiguous())
    return _TRAIN_MATRICES[key]


def _tile_view(t: torch.Tensor, rows: int, cols: int, m: int, tiles: tuple[int, int],
               channels_last: bool, offset: tuple[int, int] = (0, 0)) -> torch.Tensor:
    """A view of the ``rows`` x ``cols`` tiles, stride ``m``, of an (N, C, H, W) tensor's memory
    in the GEMMs' orders: (rows, cols, N, th, tw, C) for channels_last, else (rows, cols, C, N,
    th, tw). Element (i, j) of tile (r, s) is ``t[.., m r + i + offset[0], m s + j + offset[1]]``;
    tiles wider than ``m`` overlap, so such a view is only read."""
    sn, sc, sh, sw = t.stride()
    (n, c), (th, tw) = t.shape[:2], tiles
    if channels_last:
        shape, strides = (rows, cols, n, th, tw, c), (sh, sw, sn, m * sh, m * sw, sc)
    else:
        shape, strides = (rows, cols, c, n, th, tw), (sh, sw, sc, sn, m * sh, m * sw)
    return t.as_strided(shape, strides, t.storage_offset() + offset[0] * sh + offset[1] * sw)


def _overlap_add(grad: torch.Tensor, m: int, shape: tuple[int, ...],
                 channels_last: bool) -> torch.Tensor:
    """The adjoint of gathering the (m+2) x (m+2) tiles, stride m, of an (N, C, m th + 2,
    m tw + 2) input: the tiles' gradients ``grad`` (alpha^2 rows in the gather's order) summed
    into an input-shaped tensor. The tiles' first m x m elements cover the image once (one
    scatter); their last two rows and columns overlap the next tiles' first two (three strided
    adds of those strips; the last tiles' strips are the image's last two rows and columns)."""
    n, c, hp, wp = shape
    a, tiles = m + 2, ((hp - 2) // m, (wp - 2) // m)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    out = torch.empty(shape, dtype=grad.dtype, device=grad.device, memory_format=memory_format)
    g = grad.view(_tile_view(out, a, a, m, tiles, channels_last).shape)
    _tile_view(out, m, m, m, tiles, channels_last).copy_(g[:m, :m])
    out[:, :, hp - 2:].zero_()  # the rows and columns the cores do not reach
    out[:, :, : hp - 2, wp - 2:].zero_()
    for i, j in ((m, 0), (0, m), (m, m)):  # below the core, right of it, the corner
        strip = g[i: i + (a - m if i else m), j: j + (a - m if j else m)]
        _tile_view(out, *strip.shape[:2], m, tiles, channels_last, (i, j)).add_(strip)
    return out


def _tiles_forward(x: torch.Tensor, u: torch.Tensor, bias: torch.Tensor | None, m: int,
                   channels_last: bool, kb: torch.Tensor, ka: torch.Tensor,
                   kb_conv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """F(m x m, 3 x 3) of an (N, C, m th + 2, m tw + 2) input whose kernels are already
    transformed (``u``: (alpha^2, Cout, Cin)): ``V = B^T d B`` of every tile, ``M_k = U_k @ V_k``
    (alpha^2 GEMMs), ``Y = A^T M A`` scattered (with the bias) into the output, which has the
    input's memory format. Returns the output and V. ``kb``, ``ka``: B^T ⊗ B^T and A^T ⊗ A^T;
    ``kb_conv``: B^T ⊗ B^T as (alpha^2, 1, alpha, alpha) conv kernels."""
    a, co, (n, c, hp, wp) = m + 2, u.shape[1], x.shape
    th, tw = (hp - 2) // m, (wp - 2) // m
    tiles = n * th * tw
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    out = torch.empty((n, co, m * th, m * tw), dtype=x.dtype, device=x.device,
                      memory_format=memory_format)
    if channels_last:  # tile elements are contiguous C-vectors; the GEMMs run along C
        d = torch.empty((a, a, n, th, tw, c), dtype=x.dtype, device=x.device)
        d.copy_(_tile_view(x, a, a, m, (th, tw), True))  # one strided gather
        v = torch.mm(kb, d.view(a * a, tiles * c)).view(a * a, tiles, c)  # B^T d B
        prod = torch.bmm(v, u.transpose(1, 2))  # (a*a, tiles, Cout)
    else:
        # B^T d B of every tile is a stride-m conv of each channel with the a*a fixed a x a
        # kernels: it reads the image in place, no gathered copy of the overlapping tiles.
        v = F.conv2d(x.reshape(n * c, 1, hp, wp), kb_conv, stride=m)
        v = v.view(n, c, a * a, th * tw).permute(2, 1, 0, 3)  # (a*a, C, N, tiles per image)
        v = v[:, :, 0] if n == 1 else v.reshape(a * a, c, tiles)  # a strided view when n == 1
        prod = torch.bmm(u, v)  # (a*a, Cout, tiles)
    y = torch.mm(ka, prod.view(a * a, -1))  # A^T M A: (m*m, tiles * Cout)
    blocks = _tile_view(out, m, m, m, (th, tw), channels_last)
    if bias is None:
        blocks.copy_(y.view(blocks.shape))
    else:
        shift = bias if channels_last else bias.view(co, 1, 1, 1)
        torch.add(y.view(blocks.shape), shift, out=blocks)  # scatter + bias, one pass
    return out, v


def _in_whole_tiles(x: torch.Tensor, m: int,
                    compute: Callable[[torch.Tensor, bool], torch.Tensor]) -> torch.Tensor:
    """``compute(x, channels_last)`` of an (N, C, H, W) input (already padded) zero-extended to
    whole m x m output tiles, the extra outputs cropped; the result keeps the input's memory
    format (channels_last, else contiguous)."""
    n, c, hp, wp = x.shape
    h, w = hp - 2, wp - 2
    th, tw = -(-h // m), -(-w // m)  # tiles down and across, the last ones possibly ragged
    channels_last = c > 1 and x.is_contiguous(memory_format=torch.channels_last) and \
        not x.is_contiguous()
    if not channels_last:
        x = x.contiguous()
    if th * m != h or tw * m != w:  # zero-extend to whole tiles; the extra outputs are cropped
        x = F.pad(x, (0, tw * m - w, 0, th * m - h))
    y = compute(x, channels_last)
    if th * m == h and tw * m == w:
        return y
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    return y[..., :h, :w].contiguous(memory_format=memory_format)


class _WinogradConv(torch.autograd.Function):
    """F(m x m, 3 x 3) "valid" correlation of an (N, C, m th + 2, m tw + 2) input, with its
    backward written out so that every operand of the GEMMs is laid out for them (autograd
    through the ops alone left transposed gradients that cost strided copies).

    Forward: ``U = G g G^T`` (every call: the weight is a parameter), ``V = B^T d B`` of every
    tile, ``M_k = U_k @ V_k`` (alpha^2 GEMMs), ``Y = A^T M A`` scattered into the output.
    Backward: ``dM = A dY A^T`` of the gathered output-gradient tiles, ``dU_k = dM_k @ V_k^T``,
    ``dV_k = U_k^T @ dM_k`` (GEMMs of the forward's reduced size), ``dg = G^T dU G`` and ``dx``
    = ``B dV B^T`` overlap-added into the input. U and V are kept from the forward."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                m: int, channels_last: bool) -> torch.Tensor:
        kg, kb, ka, kb_conv = _train_matrices(m, x.dtype, x.device)
        a, (co, ci) = m + 2, weight.shape[:2]
        u = torch.mm(kg, weight.reshape(co * ci, 9).T).view(a * a, co, ci)
        out, v = _tiles_forward(x, u, bias, m, channels_last, kb, ka, kb_conv)
        ctx.save_for_backward(u, v)
        ctx.m, ctx.channels_last, ctx.x_shape = m, channels_last, tuple(x.shape)
        ctx.has_bias = bias is not None
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        u, v = ctx.saved_tensors
        m, channels_last, shape = ctx.m, ctx.channels_last, ctx.x_shape
        kg, kb, ka, _ = _train_matrices(m, grad.dtype, grad.device)
        a, (_, co, ci), tiles = m + 2, u.shape, (grad.shape[2] // m, grad.shape[3] // m)
        memory_format = torch.channels_last if channels_last else torch.contiguous_format
        grad = grad.contiguous(memory_format=memory_format)
        blocks = _tile_view(grad, m, m, m, tiles, channels_last)
        gy = torch.empty(blocks.shape, dtype=grad.dtype, device=grad.device)
        gy.copy_(blocks)  # gather the output-gradient tiles
        g_prod = torch.mm(ka.T, gy.view(m * m, -1))  # A dY A^T
        n_tiles = v.shape[1] if channels_last else v.shape[2]
        g_prod = g_prod.view((a * a, n_tiles, co) if channels_last else (a * a, co, n_tiles))
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        gx = gw = gb = None
        if channels_last:  # g_prod: (a*a, tiles, Cout); v: (a*a, tiles, Cin)
            g_u = torch.bmm(g_prod.transpose(1, 2), v) if need_w else None
            g_v = torch.bmm(g_prod, u) if need_x else None
        else:  # g_prod: (a*a, Cout, tiles); v: (a*a, Cin, tiles)
            g_u = torch.bmm(g_prod, v.transpose(1, 2)) if need_w else None
            g_v = torch.bmm(u.transpose(1, 2), g_prod) if need_x else None
        if g_u is not None:
            gw = torch.mm(g_u.view(a * a, co * ci).T, kg).view(co, ci, 3, 3)
        if g_v is not None:
            gx = _overlap_add(torch.mm(kb.T, g_v.reshape(a * a, -1)), m, shape, channels_last)
        if need_b and ctx.has_bias:
            gb = grad.sum((0, 2, 3))
        return gx, gw, gb, None, None


def winograd_conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                    m: int = 4) -> torch.Tensor:
    """A 3x3 "valid" correlation (``F.conv2d(x, weight, bias)``, stride 1, no padding) by F(m, 3)
    (:class:`_WinogradConv`), differentiable in ``x``, ``weight`` and ``bias`` with a backward
    in the same transformed domain. The output has ``x``'s memory format.

    Args:
        x: (N, Cin, H, W), already padded, H and W at least 3.
        weight: (Cout, Cin, 3, 3). bias: (Cout,) or None.
        m: output tile size (4 or 2).

    Returns:
        (N, Cout, H - 2, W - 2).
    """
    return _in_whole_tiles(x, m, lambda x, channels_last: _WinogradConv.apply(
        x, weight, bias, m, channels_last))


class WinogradTrainConv2d(nn.Conv2d):
    """An ``nn.Conv2d`` (the same ``weight`` and ``bias`` parameters, the same state_dict) whose
    forward computes F(4x4, 3x3) from the weight at every call (:func:`winograd_conv2d`), so
    gradients reach the weight and the input through the transformed domain.

    Made by :func:`fast_training` from a 3x3 stride-1 conv; under autocast, or for inputs that
    are not float32/float64, it runs as the stock conv (Winograd needs full precision).
    """

    m = 4
    # Set by :func:`fast_training`: ``decide(input shape, out_channels)`` says whether Winograd
    # pays for an input of that shape (asked once per shape, kept in ``winograd_shapes``);
    # None: always Winograd.
    winograd_decide: Callable[[tuple[int, ...], int], bool] | None = None

    def _conv_forward(self, input: torch.Tensor, weight: torch.Tensor,
                      bias: torch.Tensor | None) -> torch.Tensor:
        if (torch.is_autocast_enabled(input.device.type)
                or input.dtype not in (torch.float32, torch.float64)
                or not self.uses_winograd(tuple(input.shape))):
            return super()._conv_forward(input, weight, bias)
        pad = self.padding if isinstance(self.padding, tuple) else (self.padding,) * 2
        if isinstance(pad[0], str):  # "same" for a 3x3 stride-1 kernel is 1, "valid" is 0
            pad = (1, 1) if pad[0] == "same" else (0, 0)
        if any(pad):
            mode = "constant" if self.padding_mode == "zeros" else self.padding_mode
            input = F.pad(input, (pad[1], pad[1], pad[0], pad[0]), mode=mode)
        return winograd_conv2d(input, weight, bias, self.m)

    def uses_winograd(self, shape: tuple[int, ...]) -> bool:
        """Whether an input of ``shape`` is computed by Winograd (else by the stock conv)."""
        if self.winograd_decide is None:
            return True
        shapes: dict[tuple[int, ...], bool] = self.__dict__.setdefault("winograd_shapes", {})
        if shape not in shapes:
            if torch.compiler.is_compiling():  # no measuring inside a traced graph
                return True
            shapes[shape] = bool(self.winograd_decide(shape, self.out_channels))
        return shapes[shape]


def training_convs(module: nn.Module, min_channels: int = 128) -> list[nn.Conv2d]:
    """The convs :func:`fast_training` converts: plain ``nn.Conv2d`` (not a subclass, not
    parametrized) that are :func:`eligible`, with at least ``min_channels`` in and out."""
    return [c for c in module.modules()
            if type(c) is nn.Conv2d and eligible(c)
            and min(c.in_channels, c.out_channels) >= min_channels]


def fast_training(module: nn.Module, min_channels: int = 128,
                  decide: Callable[[tuple[int, ...], int], bool] | None = None) -> int:
    """Make ``module``'s eligible convs (:func:`training_convs`) compute by Winograd F(4x4, 3x3),
    in place; returns how many. With ``decide``, each conv asks it once per input shape
    (``decide(shape, out_channels)``) and computes that shape by Winograd only where it says
    so, else as the stock conv: Winograd's gain depends on the feature map's size (its tile
    transforms cost more, relative to the GEMMs, on small maps).

    Each conv stays the same object with the same parameters (its class becomes
    :class:`WinogradTrainConv2d`, a subclass that changes only the arithmetic), so optimizers,
    EMA copies, ``state_dict`` keys and values, checkpoints and model files are those of the
    ordinary network: a run trained with it and one trained without are interchangeable.
    """
    convs = training_convs(module, min_channels)
    for conv in convs:
        conv.__class__ = WinogradTrainConv2d
        conv.winograd_decide = decide
    return len(convs)


def plain_training(module: nn.Module) -> int:
    """Undo :func:`fast_training`: ``module``'s converted convs compute as the stock conv again
    (the same objects and parameters); returns how many."""
    convs = [c for c in module.modules() if isinstance(c, WinogradTrainConv2d)]
    for conv in convs:
        conv.__class__ = nn.Conv2d
        conv.__dict__.pop("winograd_decide", None)
        conv.__dict__.pop("winograd_shapes", None)
    return len(convs)


def shape_choices(module: nn.Module) -> list[list[Any]]:
    """``[conv's module name, input shape, by Winograd]`` for every input shape a converted conv
    of ``module`` has decided (``decide`` of :func:`fast_training`): what a checkpoint keeps so
    that a resumed run computes each shape as before (:func:`keep_shape_choices`)."""
    return [[name, list(shape), on] for name, conv in module.named_modules()
            if isinstance(conv, WinogradTrainConv2d)
            for shape, on in conv.__dict__.get("winograd_shapes", {}).items()]


def keep_shape_choices(module: nn.Module,
                       decide: Callable[[tuple[int, ...], int], bool] | None,
                       choices: list[list[Any]]) -> None:
    """Give ``module``'s converted convs ``decide`` (as :func:`fast_training`) and, with it, the
    decisions :func:`shape_choices` recorded in place of any they hold; a shape not recorded is
    decided at its first input. Convs not converted ignore them."""
    convs = [(n, c) for n, c in module.named_modules() if isinstance(c, WinogradTrainConv2d)]
    for _, conv in convs:
        conv.winograd_decide = decide
        conv.__dict__.pop("winograd_shapes", None)
    if decide is None:
        return
    by_name = dict(convs)
    for name, shape, on in choices:
        if name in by_name:
            by_name[name].__dict__.setdefault("winograd_shapes", {})[tuple(shape)] = bool(on)


def winograd_in_use(module: nn.Module) -> int:
    """How many of ``module``'s converted convs have computed (or, not yet asked, would
    compute) some input shape by Winograd."""
    def in_use(conv: WinogradTrainConv2d) -> bool:
        shapes = getattr(conv, "winograd_shapes", None)
        return conv.winograd_decide is None or not shapes or any(shapes.values())

    return sum(1 for c in module.modules() if isinstance(c, WinogradTrainConv2d) and in_use(c))
