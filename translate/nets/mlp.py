"""The course's MLP GAN for MNIST.

Generator 100→256→512→1024→784 (Dense, LeakyReLU 0.2, BatchNorm; tanh out) and discriminator
784→512→256→1, exactly as the course's Keras summary: 1,493,520 generator parameters counting
BatchNorm's moving statistics (1,489,936 trainable) and 533,505 discriminator parameters.
"""

from __future__ import annotations

import math

import torch
from torch import nn

# Keras BatchNormalization(momentum=0.8) keeps 0.8 of the old running value; PyTorch's momentum
# is the weight of the *new* value, so the same update is momentum=0.2. Keras' epsilon is 1e-3.
KERAS_BN = {"momentum": 0.2, "eps": 1e-3}


class MLPGenerator(nn.Module):
    """z (B, latent_dim) → image (B, C, H, W) in [-1, 1]."""

    def __init__(
        self,
        latent_dim: int = 100,
        img_shape: tuple[int, int, int] = (1, 28, 28),
        hidden: tuple[int, ...] = (256, 512, 1024),
    ):
        super().__init__()
        self.config = {
            "latent_dim": latent_dim,
            "img_shape": list(img_shape),
            "hidden": list(hidden),
        }
        self.latent_dim = latent_dim
        self.img_shape = tuple(img_shape)
        layers: list[nn.Module] = []
        width = latent_dim
        for h in hidden:
            # Keras order in the course: Dense → LeakyReLU → BatchNormalization.
            layers += [nn.Linear(width, h), nn.LeakyReLU(0.2), nn.BatchNorm1d(h, **KERAS_BN)]
            width = h
        layers += [nn.Linear(width, math.prod(self.img_shape)), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).view(z.shape[0], *self.img_shape)  # (B, C, H, W)


class MLPDiscriminator(nn.Module):
    """image (B, C, H, W) → one logit per image (B, 1). No sigmoid: losses take logits."""

    def __init__(
        self, img_shape: tuple[int, int, int] = (1, 28, 28), hidden: tuple[int, ...] = (512, 256)
    ):
        super().__init__()
        self.config = {"img_shape": list(img_shape), "hidden": list(hidden)}
        layers: list[nn.Module] = [nn.Flatten()]
        width = math.prod(img_shape)
        for h in hidden:
            layers += [nn.Linear(width, h), nn.LeakyReLU(0.2)]
            width = h
        layers.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def keras_parameter_count(module: nn.Module) -> tuple[int, int]:
    """(total, trainable) counted as Keras does: BatchNorm's moving mean/variance count as
    non-trainable parameters."""
    trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
    frozen = sum(p.numel() for p in module.parameters() if not p.requires_grad)
    running = sum(
        m.running_mean.numel() + m.running_var.numel()
        for m in module.modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is not None
    )
    return trainable + frozen + running, trainable
