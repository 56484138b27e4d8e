"""The pix2pix U-Net generator and the conditional PatchGAN, at tiny widths on CPU (parameter
counts at full width need no forward pass)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from translate.nets.patchgan import PatchDiscriminator
from translate.nets.unet import UnetGenerator, UnetSkipConnectionBlock, unet


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def unet_count(in_ch: int, out_ch: int, num_downs: int, ngf: int) -> int:
    """The reference U-Net's parameter count with batch norm, written out level by level."""
    conv = lambda cin, cout: cin * cout * 16  # noqa: E731  4×4 kernels, no bias
    bn = lambda c: 2 * c  # noqa: E731  scale and shift
    widths = [ngf, 2 * ngf, 4 * ngf] + [8 * ngf] * (num_downs - 3)  # inner_nc per level
    total = conv(in_ch, ngf) + conv(2 * ngf, out_ch) + out_ch  # outermost: up conv has a bias
    for outer, inner in zip(widths[:-2], widths[1:-1], strict=True):  # middle levels
        total += conv(outer, inner) + bn(inner) + conv(2 * inner, outer) + bn(outer)
    outer, inner = widths[-2], widths[-1]  # innermost: no norm after its down conv
    return total + conv(outer, inner) + conv(inner, outer) + bn(outer)


# --- parameter counts ------------------------------------------------------------------------


def test_unet_256_count_matches_pix2pix():
    g = unet("unet_256")
    assert g.config == dict(in_ch=3, out_ch=3, num_downs=8, ngf=64, norm="batch", dropout=True)
    assert g.size_multiple == 256
    assert n_params(g) == 54_413_955 == unet_count(3, 3, 8, 64)


def test_unet_128_count():
    g = unet("unet_128")
    assert g.size_multiple == 128
    assert n_params(g) == 41_828_995 == unet_count(3, 3, 7, 64)


def test_unet_count_formula_at_other_shapes():
    assert n_params(UnetGenerator(1, 2, num_downs=6, ngf=8)) == unet_count(1, 2, 6, 8)


def test_unet_biases_only_where_no_batch_norm_follows():
    g = UnetGenerator(num_downs=6, ngf=4)
    biased = [name for name, m in g.named_modules()
              if isinstance(m, nn.Conv2d | nn.ConvTranspose2d) and m.bias is not None]
    assert biased == ["model.model.3"]  # the outermost up conv only, as the reference
    # instance norm (no affine): every conv has a bias, no norm parameters
    gi = UnetGenerator(num_downs=6, ngf=4, norm="instance")
    convs = [m for m in gi.modules() if isinstance(m, nn.Conv2d | nn.ConvTranspose2d)]
    assert all(m.bias is not None for m in convs) and len(convs) == 12
    assert n_params(gi) == sum(m.weight.numel() + m.bias.numel() for m in convs)


def test_conditional_patchgan_count_matches_pix2pix():
    # pix2pix's D sees the input and the (real or fake) output concatenated: 6 channels
    d = PatchDiscriminator(in_ch=6, norm="batch")
    assert n_params(d) == 2_768_705
    biased = [m for m in d.modules() if isinstance(m, nn.Conv2d) and m.bias is not None]
    assert [m.in_channels for m in biased] == [6, 512]  # first and last conv: no BN after them
    assert n_params(PatchDiscriminator()) == 2_764_737  # the CycleGAN D is unchanged


# --- structure and forward -------------------------------------------------------------------


def test_dropout_sits_in_the_middle_levels():
    for num_downs in (5, 6, 8):
        g = UnetGenerator(num_downs=num_downs, ngf=2)
        assert sum(isinstance(m, nn.Dropout) for m in g.modules()) == num_downs - 5
    assert not any(isinstance(m, nn.Dropout) for m in UnetGenerator(ngf=2, dropout=False)
                   .modules())


def test_shapes_and_gradients_at_tiny_width():
    torch.manual_seed(0)
    g = UnetGenerator(in_ch=1, out_ch=3, num_downs=5, ngf=4)
    x = torch.randn(2, 1, 32, 64)
    y = g(x)
    assert y.shape == (2, 3, 32, 64)
    assert torch.isfinite(y).all() and y.abs().max() <= 1
    y.square().mean().backward()
    missing = [n for n, p in g.named_parameters() if p.grad is None or not p.grad.abs().sum()]
    assert not missing


def test_size_must_be_a_multiple():
    g = UnetGenerator(num_downs=5, ngf=2)
    with pytest.raises(ValueError, match="divisible by 32, got 32x48"):
        g(torch.zeros(1, 3, 32, 48))


def test_bad_arguments():
    with pytest.raises(ValueError, match="num_downs >= 5"):
        UnetGenerator(num_downs=4)
    with pytest.raises(ValueError, match="unknown U-Net 'unet_32'"):
        unet("unet_32")
    with pytest.raises(ValueError, match="innermost"):
        UnetSkipConnectionBlock(8, 8)


class _ReferenceBlock(nn.Module):
    """The reference block as it runs: an *in-place* LeakyReLU and ``cat([x, model(x)])`` (its
    skip carries the activated x). Same module tree as ours, so state dicts are exchangeable.
    """

    def __init__(self, outer, inner, input_nc=None, sub=None, outermost=False, innermost=False,
                 dropout=False):
        super().__init__()
        self.outermost = outermost
        down = nn.Conv2d(input_nc or outer, inner, 4, 2, 1, bias=False)
        relu_d, relu_u = nn.LeakyReLU(0.2, True), nn.ReLU(True)
        if outermost:
            layers = [down, sub, relu_u, nn.ConvTranspose2d(2 * inner, outer, 4, 2, 1), nn.Tanh()]
        elif innermost:
            layers = [relu_d, down, relu_u, nn.ConvTranspose2d(inner, outer, 4, 2, 1, bias=False),
                      nn.BatchNorm2d(outer)]
        else:
            layers = [relu_d, down, nn.BatchNorm2d(inner), sub, relu_u,
                      nn.ConvTranspose2d(2 * inner, outer, 4, 2, 1, bias=False),
                      nn.BatchNorm2d(outer)] + ([nn.Dropout(0.5)] if dropout else [])
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        return self.model(x) if self.outermost else torch.cat([x, self.model(x)], 1)


def test_matches_the_reference_forward_and_state_dict_keys():
    torch.manual_seed(0)
    ngf = 4
    ours = UnetGenerator(3, 3, num_downs=6, ngf=ngf)
    block = _ReferenceBlock(ngf * 8, ngf * 8, innermost=True)
    block = _ReferenceBlock(ngf * 8, ngf * 8, sub=block, dropout=True)
    for outer, inner in ((ngf * 4, ngf * 8), (ngf * 2, ngf * 4), (ngf, ngf * 2)):
        block = _ReferenceBlock(outer, inner, sub=block)
    ref = nn.Module()
    ref.model = _ReferenceBlock(3, ngf, input_nc=3, sub=block, outermost=True)
    with torch.no_grad():  # non-trivial norm statistics, so eval mode is a real check
        for m in ours.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    ref.load_state_dict(ours.state_dict(), strict=True)
    x = torch.randn(2, 3, 64, 64)
    ours.eval()
    ref.eval()
    torch.testing.assert_close(ours(x), ref.model(x), rtol=0, atol=1e-6)


def test_resize_upsampling_has_no_transposed_conv_and_keeps_the_shapes():
    deconv = UnetGenerator(num_downs=6, ngf=4, norm="instance", dropout=False)
    resize = UnetGenerator(num_downs=6, ngf=4, norm="instance", dropout=False,
                           upsample="resize")
    assert not any(isinstance(m, torch.nn.ConvTranspose2d) for m in resize.modules())
    assert sum(isinstance(m, torch.nn.ConvTranspose2d) for m in deconv.modules()) == 6
    assert resize.config["upsample"] == "resize" and "upsample" not in deconv.config
    x = torch.rand(2, 3, 64, 128) * 2 - 1
    with torch.no_grad():
        y = resize(x)
    assert y.shape == x.shape and float(y.abs().max()) <= 1
    with pytest.raises(ValueError, match="unknown upsample"):
        UnetGenerator(num_downs=6, ngf=4, upsample="bilinear")


def test_input_skip_feeds_the_image_to_the_output_layer():
    torch.manual_seed(0)
    g = UnetGenerator(num_downs=6, ngf=4, norm="instance", dropout=False, upsample="resize",
                      input_skip=True)
    assert g.config["input_skip"] is True
    last = g.model.out[1]
    assert last.in_channels == 2 * 4 + 3  # the upsampled features and the image
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        y = g(x)
        # the output depends on a single input pixel at full resolution through the skip
        x2 = x.clone()
        x2[0, :, 31, 31] += 0.5
        changed = (g(x2) - y).abs().sum(1)[0] > 1e-6
    assert y.shape == x.shape
    assert changed[31, 31] and changed[30:33, 30:33].all()
    with pytest.raises(ValueError, match="input_skip"):
        UnetGenerator(num_downs=6, ngf=4, input_skip=True)  # deconv
