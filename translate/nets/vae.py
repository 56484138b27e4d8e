"""The MNIST VAE (Kingma & Welling 2014), shaped like pytorch/examples' VAE.

Encoder x → h → (μ, log σ²); z = μ + σ·ε (the reparameterisation trick); decoder z → h → logits of
a Bernoulli per pixel. The decoder returns logits so the BCE is computed stably (and autocast-safe).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


class VAE(nn.Module):
    def __init__(
        self, latent_dim: int = 20, hidden: int = 400, img_shape: tuple[int, int, int] = (1, 28, 28)
    ):
        super().__init__()
        self.config = {"latent_dim": latent_dim, "hidden": hidden, "img_shape": list(img_shape)}
        self.latent_dim = latent_dim
        self.img_shape = tuple(img_shape)
        n = math.prod(self.img_shape)
        self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(n, hidden), nn.ReLU())
        self.to_mu = nn.Linear(hidden, latent_dim)
        self.to_logvar = nn.Linear(hidden, latent_dim)
        self.decoder = nn.Sequential(nn.Linear(latent_dim, hidden), nn.ReLU(), nn.Linear(hidden, n))

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.encoder(x)
        return self.to_mu(h), self.to_logvar(h)  # (B, latent), (B, latent)

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z).view(z.shape[0], *self.img_shape)  # (B, C, H, W) logits

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Mean image p(x|z) in [0, 1]."""
        return torch.sigmoid(self.decode_logits(z))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mu, logvar = self.encode(x)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)  # reparameterisation
        return self.decode_logits(z), mu, logvar


def negative_elbo(
    logits: torch.Tensor, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image reconstruction NLL and KL in nats, each averaged over the batch.

    −ELBO = E_q[−log p(x|z)] + KL(q(z|x) ‖ N(0, I)), with the Gaussian KL in closed form
    −½ Σ (1 + log σ² − μ² − σ²) (Kingma & Welling 2014, Appendix B).
    """
    b = x.shape[0]
    recon = F.binary_cross_entropy_with_logits(logits.float(), x.float(), reduction="sum") / b
    kl = -0.5 * torch.sum(1 + logvar.float() - mu.float().pow(2) - logvar.float().exp()) / b
    return recon, kl
