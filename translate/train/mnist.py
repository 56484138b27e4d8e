"""The course's MNIST tasks on the shared core: the MLP GAN and the VAE (G step only)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torchvision.utils import make_grid

from translate.config import GanConfig, VaeConfig
from translate.data.mnist import DigitDataset, load_mnist
from translate.nets.mlp import MLPDiscriminator, MLPGenerator
from translate.nets.vae import VAE, negative_elbo
from translate.train.adversarial import d_loss, generator_adv_loss
from translate.train.loop import Task, adam, evaluating, maybe_compile

GRID = 64  # samples in a training grid (8 × 8)


def stacked(batch: torch.Tensor) -> torch.Tensor:
    """Collate for datasets whose ``__getitems__`` already returns a stacked batch."""
    return batch



def fixed_noise(n: int, dim: int, seed: int, device: torch.device) -> torch.Tensor:
    """The same latent points for every sample grid, drawn without touching the global RNG."""
    return torch.randn(n, dim, generator=torch.Generator().manual_seed(seed)).to(device)


class GanTask(Task):
    """MLP GAN (the course's baseline): D on real=1/fake=0, then G through a frozen D.

    ``train.ema`` keeps an average of G for samples and export, ``train.compile`` compiles both
    networks' forward passes; ``train.channels_last`` is refused by the config (no conv layers).
    """

    name = "gan"

    def __init__(self, cfg: GanConfig, device: torch.device):
        images, _ = load_mnist(cfg.data.source, "train")
        self.dataset = DigitDataset(images, value_range="tanh")
        self.collate_fn = stacked
        self.device = device
        self.latent_dim = cfg.model.latent_dim
        self.G = MLPGenerator(latent_dim=cfg.model.latent_dim).to(device)
        self.D = MLPDiscriminator().to(device)
        self.generators, self.discriminators = [self.G], [self.D]
        self.opt_g = adam(self.G.parameters(), cfg.train, device)
        self.opt_d = adam(self.D.parameters(), cfg.train, device)
        self.make_schedulers(cfg.train)
        self.make_emas(cfg.train.ema, "G")
        self.f_G, self.f_D = maybe_compile(self.G, cfg.train.compile), maybe_compile(
            self.D, cfg.train.compile)
        self.loss = cfg.train.gan_loss
        self.z_grid = fixed_noise(GRID, self.latent_dim, cfg.train.seed + 1, device)

    def networks(self) -> dict[str, nn.Module]:
        nets = {"G": self.G, "D": self.D}
        if self.emas:
            nets["G_ema"] = self.emas["G"].model
        return nets

    def generate(self, real: torch.Tensor) -> torch.Tensor:
        z = torch.randn(real.shape[0], self.latent_dim, device=self.device)
        return self.f_G(z)  # (B, 1, 28, 28)

    def discriminator_losses(
        self, real: torch.Tensor, fake: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        # The course averages D's losses on the real (label 1) and fake (label 0) batches.
        return {"d": 0.5 * d_loss(self.loss, self.f_D(real), self.f_D(fake))}

    def generator_losses(self, real: torch.Tensor, fake: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"g": generator_adv_loss(self.loss, self.f_D, fake, real)}  # fakes labelled 1

    @torch.no_grad()
    def sample_grid(self) -> torch.Tensor:
        net = self.inference_generator("G")
        with evaluating(net):
            images = net(self.z_grid).float()
        return make_grid((images + 1) / 2, nrow=8, padding=2)

    def export(self) -> tuple[dict[str, nn.Module], dict[str, Any]]:
        return {"G": self.inference_generator("G")}, {
            "value_range": [-1.0, 1.0], "latent_dim": self.latent_dim, "ema": bool(self.emas)}


class VaeTask(Task):
    """MNIST VAE: the shared loop with the G step only; the loss is the negative ELBO.

    ``train.ema`` and ``train.compile`` act as for the GAN; ``train.channels_last`` and
    ``train.gan_loss`` are refused by the config.
    """

    name = "vae"

    def __init__(self, cfg: VaeConfig, device: torch.device):
        images, _ = load_mnist(cfg.data.source, "train")
        self.dataset = DigitDataset(images, value_range="unit")
        self.collate_fn = stacked
        self.device = device
        self.vae = VAE(latent_dim=cfg.model.latent_dim, hidden=cfg.model.hidden).to(device)
        self.generators, self.discriminators = [self.vae], []
        self.opt_g, self.opt_d = adam(self.vae.parameters(), cfg.train, device), None
        self.make_schedulers(cfg.train)
        self.make_emas(cfg.train.ema, "vae")
        self.f_vae = maybe_compile(self.vae, cfg.train.compile)
        self.z_grid = fixed_noise(GRID, cfg.model.latent_dim, cfg.train.seed + 1, device)

    def networks(self) -> dict[str, nn.Module]:
        nets = {"vae": self.vae}
        if self.emas:
            nets["vae_ema"] = self.emas["vae"].model
        return nets

    def generate(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.f_vae(x)

    def generator_losses(self, x: torch.Tensor, out: Any) -> dict[str, torch.Tensor]:
        logits, mu, logvar = out
        recon, kl = negative_elbo(logits, x, mu, logvar)
        return {"recon": recon, "kl": kl}  # their sum is −ELBO in nats per image

    @torch.no_grad()
    def sample_grid(self) -> torch.Tensor:
        decoded = self.inference_generator("vae").decode(self.z_grid)
        return make_grid(decoded.float(), nrow=8, padding=2)

    def export(self) -> tuple[dict[str, nn.Module], dict[str, Any]]:
        return {"vae": self.inference_generator("vae")}, {
            "value_range": [0.0, 1.0], "latent_dim": self.vae.latent_dim, "ema": bool(self.emas)}
