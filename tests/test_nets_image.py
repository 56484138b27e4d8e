"""ResNet generator, PatchGAN discriminator and their shared layers, at tiny widths on CPU."""

from __future__ import annotations

from itertools import pairwise

import pytest
import torch
from torch import nn

from translate.nets.layers import (
    InstanceNorm,
    ResidualBlock,
    crop_to,
    init_weights,
    norm_layer,
    pad_to_multiple,
)
from translate.nets.patchgan import PatchDiscriminator
from translate.nets.resnet import ResnetDecoder, ResnetGenerator, ResnetTrunk

TINY_G = dict(ngf=8, n_blocks=2)


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def resnet_count(in_ch: int, out_ch: int, ngf: int, n_blocks: int) -> int:
    """The CycleGAN ResNet generator's parameter count, written out layer by layer."""
    conv = lambda cin, cout, k: cin * cout * k * k + cout  # noqa: E731  (all convs have bias)
    return (
        conv(in_ch, ngf, 7)
        + conv(ngf, 2 * ngf, 3)
        + conv(2 * ngf, 4 * ngf, 3)
        + n_blocks * 2 * conv(4 * ngf, 4 * ngf, 3)
        + conv(4 * ngf, 2 * ngf, 3)  # deconv and resize+conv have the same 3x3 weights
        + conv(2 * ngf, ngf, 3)
        + conv(ngf, out_ch, 7)
    )


# --- parameter counts (no forward pass needed) ---------------------------------------------


def test_resnet_generator_default_count_matches_cyclegan():
    assert n_params(ResnetGenerator()) == 11_378_179
    assert resnet_count(3, 3, 64, 9) == 11_378_179


def test_resnet_generator_resize_upsample_count():
    # nearest x2 + 3x3 conv carries exactly the weights of the 3x3 transposed conv it replaces
    g = ResnetGenerator(upsample="resize")
    assert n_params(g) == resnet_count(3, 3, 64, 9) == 11_378_179
    assert not any(isinstance(m, nn.ConvTranspose2d) for m in g.modules())
    assert sum(isinstance(m, nn.Upsample) for m in g.modules()) == 2


def test_resnet_generator_batch_norm_drops_conv_biases():
    # batch norm: no conv bias before BN (-1 per channel) but BN scale and shift (+2 per channel)
    ngf, nb = 8, 2
    normed = [2 * ngf, 4 * ngf] + [4 * ngf] * 2 * nb + [2 * ngf, ngf, ngf]
    g = ResnetGenerator(**TINY_G, norm="batch")
    assert n_params(g) == resnet_count(3, 3, ngf, nb) + sum(normed)


def test_resnet_generator_affine_instance_norm_adds_a_scale_and_shift():
    # imported weights trained with InstanceNorm2d(affine=True): conv biases kept, +2 per channel
    ngf, nb = 8, 2
    normed = [ngf, 2 * ngf, 4 * ngf] + [4 * ngf] * 2 * nb + [2 * ngf, ngf]
    g = ResnetGenerator(**TINY_G, norm="instance_affine")
    assert n_params(g) == resnet_count(3, 3, ngf, nb) + 2 * sum(normed)
    assert n_params(ResnetGenerator(norm="instance_affine")) == 11_388_675  # vintagify's count
    assert n_params(ResnetGenerator(norm="instance")) == 11_378_179
    x = torch.randn(2, 4, 5, 6)
    affine = norm_layer("instance_affine", 4)
    with torch.no_grad():
        affine.weight.copy_(torch.tensor([0.5, 1.0, 2.0, -1.0]))
        affine.bias.copy_(torch.tensor([0.1, 0.0, -0.3, 0.2]))
    want = nn.InstanceNorm2d(4, affine=True)
    want.load_state_dict(affine.state_dict())
    torch.testing.assert_close(affine(x), want(x), atol=1e-5, rtol=0)


def test_patch_discriminator_default_count_matches_reference():
    assert n_params(PatchDiscriminator()) == 2_764_737


def test_spectral_norm_keeps_the_parameter_count():
    assert n_params(PatchDiscriminator(ndf=8, spectral_norm=True)) == n_params(
        PatchDiscriminator(ndf=8)
    )


def test_config_holds_the_constructor_arguments():
    g = ResnetGenerator(in_ch=1, out_ch=2, ngf=8, n_blocks=3, norm="none", upsample="resize")
    assert g.config == dict(in_ch=1, out_ch=2, ngf=8, n_blocks=3, norm="none", upsample="resize")
    assert n_params(ResnetGenerator(**g.config)) == n_params(g)
    d = PatchDiscriminator(in_ch=6, ndf=8, n_layers=2, norm="batch", spectral_norm=True)
    assert d.config == dict(in_ch=6, ndf=8, n_layers=2, norm="batch", spectral_norm=True)


# --- shapes ---------------------------------------------------------------------------------


@pytest.mark.parametrize("upsample", ["deconv", "resize"])
@pytest.mark.parametrize("hw", [(32, 32), (64, 48)])
def test_resnet_generator_keeps_the_size(upsample, hw):
    torch.manual_seed(0)
    g = ResnetGenerator(**TINY_G, upsample=upsample)
    x = torch.rand(2, 3, *hw) * 2 - 1
    y = g(x)
    assert y.shape == (2, 3, *hw)
    assert torch.isfinite(y).all()
    assert y.abs().max() <= 1


def test_resnet_trunk_and_decoder_shapes():
    x = torch.randn(1, 4, 16, 20)
    trunk = ResnetTrunk(in_ch=4, ngf=8, n_blocks=1, n_down=2)
    z = trunk(x)
    assert z.shape == (1, 32, 4, 5) and trunk.out_ch == 32 and trunk.size_multiple == 4
    assert ResnetDecoder(out_ch=1, ngf=8, n_up=2)(z).shape == (1, 1, 16, 20)
    # super-resolution uses the trunk at full resolution
    sr = ResnetTrunk(in_ch=3, ngf=8, n_blocks=1, n_down=0, norm="none")
    assert sr(torch.randn(1, 3, 7, 9)).shape == (1, 8, 7, 9)


def test_resnet_generator_rejects_sizes_it_cannot_keep():
    g = ResnetGenerator(**TINY_G)
    with pytest.raises(ValueError, match=r"divisible by 4, got 67x131.*pad_to_multiple"):
        g(torch.zeros(1, 3, 67, 131))


def test_odd_size_round_trips_through_pad_and_crop():
    torch.manual_seed(0)
    g = ResnetGenerator(**TINY_G)
    x = torch.rand(1, 3, 67, 131) * 2 - 1
    padded, size = pad_to_multiple(x, g.size_multiple)
    assert padded.shape == (1, 3, 68, 132) and size == (67, 131)
    y = crop_to(g(padded), size)
    assert y.shape == (1, 3, 67, 131)
    assert torch.isfinite(y).all()
    assert y.min() >= -1 and y.max() <= 1


def test_pad_to_multiple_reflects_and_crop_restores_exactly():
    x = torch.randn(2, 3, 67, 131)
    padded, size = pad_to_multiple(x, 4)
    assert torch.equal(crop_to(padded, size), x)
    # reflection about the last row/column (not edge replication, not zeros)
    assert torch.equal(padded[..., 67, :131], x[..., 65, :])
    assert torch.equal(padded[..., :67, 131], x[..., :, 129])
    # already a multiple: returned untouched
    same, size = pad_to_multiple(padded, 4)
    assert same is padded and size == (68, 132)


def test_pad_to_multiple_falls_back_to_replicate_on_tiny_images():
    x = torch.arange(2.0).view(1, 1, 1, 2)  # too small to reflect a pad of 3 rows
    padded, size = pad_to_multiple(x, 4)
    assert padded.shape == (1, 1, 4, 4) and torch.equal(crop_to(padded, size), x)
    assert torch.equal(padded[0, 0, 3], torch.tensor([0.0, 1.0, 1.0, 1.0]))


@pytest.mark.parametrize("hw,out", [(256, 30), (64, 6)])
def test_patch_discriminator_map_size(hw, out):
    d = PatchDiscriminator(ndf=8)
    y = d(torch.randn(1, 3, hw, hw))
    assert y.shape == (1, 1, out, out)
    assert torch.isfinite(y).all()


def test_patch_discriminator_returns_logits_not_probabilities():
    torch.manual_seed(0)
    d = PatchDiscriminator(ndf=8, norm="none")
    nn.init.constant_(d.layers[-1].bias, 5.0)  # a sigmoid output could not exceed 1
    assert d(torch.randn(1, 3, 64, 64)).min() > 1
    assert not any(isinstance(m, nn.Sigmoid) for m in d.modules())


def test_spectral_norm_discriminator_runs_and_bounds_the_weights():
    torch.manual_seed(0)
    d = PatchDiscriminator(ndf=8, norm="none", spectral_norm=True)
    x = torch.randn(2, 3, 64, 64)
    for _ in range(3):  # training-mode forwards advance the power iteration
        y = d(x)
    assert y.shape == (2, 1, 6, 6) and torch.isfinite(y).all()
    d.eval()
    convs = [m for m in d.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 5
    for conv in convs:
        sigma = torch.linalg.matrix_norm(conv.weight.flatten(1), ord=2)
        assert sigma.item() == pytest.approx(1.0, abs=0.1)


# --- gradients and initialisation -----------------------------------------------------------


def _backward(net: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    net.zero_grad()
    net(x).square().mean().backward()
    return {n: p.grad for n, p in net.named_parameters()}


def _dead_biases(net: nn.Module) -> set[str]:
    """Conv biases followed directly by an affine-free InstanceNorm.

    The norm subtracts each channel's mean, so such a bias cannot change the output and its
    gradient is zero up to rounding. The CycleGAN reference keeps them (they are part of its
    11,378,179 count), so we keep them too and exclude them from the "non-zero gradient" check.
    """
    dead = set()
    for name, seq in net.named_modules():
        if not isinstance(seq, nn.Sequential):
            continue
        kids = list(seq.named_children())
        for (cname, conv), (_, nxt) in pairwise(kids):
            if isinstance(conv, (nn.Conv2d, nn.ConvTranspose2d)) and isinstance(
                nxt, InstanceNorm
            ):
                dead.add(f"{name}.{cname}.bias".lstrip("."))
    return dead


@pytest.mark.parametrize("norm", ["instance", "batch", "none"])
@pytest.mark.parametrize("upsample", ["deconv", "resize"])
def test_every_generator_parameter_gets_a_gradient(norm, upsample):
    torch.manual_seed(0)
    g = ResnetGenerator(**TINY_G, norm=norm, upsample=upsample)
    grads = _backward(g, torch.randn(2, 3, 16, 16))
    dead = _dead_biases(g)
    assert len(dead) == (9 if norm == "instance" else 0)  # 1 stem + 2 down + 2*2 res + 2 up
    for name, grad in grads.items():
        assert grad is not None, name
        assert torch.isfinite(grad).all(), name
        if name not in dead:
            assert grad.abs().sum() > 0, name


@pytest.mark.parametrize("norm", ["instance", "batch", "none"])
@pytest.mark.parametrize("spectral", [False, True])
def test_every_discriminator_parameter_gets_a_gradient(norm, spectral):
    torch.manual_seed(0)
    d = PatchDiscriminator(ndf=8, norm=norm, spectral_norm=spectral)
    grads = _backward(d, torch.randn(2, 3, 64, 64))
    dead = _dead_biases(d)
    for name, grad in grads.items():
        assert grad is not None, name
        assert torch.isfinite(grad).all(), name
        if name not in dead:
            assert grad.abs().sum() > 0, name


def test_init_weights_draws_normal_002():
    torch.manual_seed(0)
    g = ResnetGenerator()  # default widths: a 256->256 3x3 conv has 589,824 weights
    conv = g.trunk.layers[-1].block[1]
    assert conv.weight.numel() == 589_824
    assert conv.weight.std().item() == pytest.approx(0.02, rel=0.01)
    assert conv.weight.mean().abs().item() < 1e-3
    assert torch.count_nonzero(conv.bias) == 0


def test_init_weights_sets_norm_scales_and_spectral_originals():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(64, 64, 3), nn.BatchNorm2d(4096), nn.Linear(8, 8))
    nn.utils.parametrizations.spectral_norm(net[0])
    init_weights(net, std=0.05)
    raw = net[0].parametrizations.weight.original
    assert raw.std().item() == pytest.approx(0.05, rel=0.05)
    assert net[1].weight.mean().item() == pytest.approx(1.0, abs=0.005)
    assert net[1].weight.std().item() == pytest.approx(0.05, rel=0.05)
    assert torch.count_nonzero(net[1].bias) == 0 and torch.count_nonzero(net[2].bias) == 0


def test_instance_norm_is_affine_free_like_the_reference():
    layer = norm_layer("instance", 8)
    assert isinstance(layer, InstanceNorm) and n_params(layer) == 0
    assert not layer.affine and layer.num_groups == 8 and not list(layer.buffers())
    x = torch.randn(2, 8, 5, 7)
    torch.testing.assert_close(layer(x), nn.functional.instance_norm(x), rtol=0, atol=1e-5)


def test_instance_norm_gradient_is_right_for_channels_last_at_batch_1():
    # torch.nn.InstanceNorm2d gets this wrong on CPU (torch 2.14.1); ours must not.
    x = torch.randn(1, 8, 8, 8, dtype=torch.float64, requires_grad=True)
    g = torch.randn(1, 8, 8, 8, dtype=torch.float64)
    layer = norm_layer("instance", 8)
    (plain,) = torch.autograd.grad(layer(x), x, g)
    (nhwc,) = torch.autograd.grad(layer(x), x, g.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(plain, nhwc)
    assert isinstance(norm_layer("none", 8), nn.Identity)
    with pytest.raises(ValueError, match="unknown norm 'group'"):
        norm_layer("group", 8)
    with pytest.raises(ValueError, match="unknown upsample 'bilinear'"):
        ResnetGenerator(**TINY_G, upsample="bilinear")


def test_residual_block_is_identity_plus_residual():
    torch.manual_seed(0)
    block = ResidualBlock(4, norm="none")
    x = torch.randn(1, 4, 8, 8)
    assert torch.allclose(block(x), x + block.block(x))
    nn.init.zeros_(block.block[-2].weight)  # last conv silenced -> exact identity
    nn.init.zeros_(block.block[-2].bias)
    assert torch.equal(block(x), x)
