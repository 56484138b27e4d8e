"""Fréchet distance between Gaussians (Heusel et al. 2017, Eqn. 6) against closed forms."""

from __future__ import annotations

import pytest
import torch

from translate.eval.frechet import frechet_distance, frechet_distance_features, gaussian_stats


def features(n: int, d: int, seed: int) -> torch.Tensor:
    """Correlated (non-diagonal covariance) features."""
    g = torch.Generator().manual_seed(seed)
    mix = torch.randn(d, d, generator=g, dtype=torch.float64)
    return torch.randn(n, d, generator=g, dtype=torch.float64) @ mix + 3.0


def test_gaussian_stats() -> None:
    f = features(50, 4, seed=0)
    mu, cov = gaussian_stats(f.float())
    assert mu.dtype == torch.float64 and mu.shape == (4,) and cov.shape == (4, 4)
    centred = f - f.mean(0)
    torch.testing.assert_close(cov, centred.T @ centred / 49, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(mu, f.mean(0), rtol=1e-6, atol=1e-6)


def test_a_set_against_itself_is_zero() -> None:
    f = features(200, 16, seed=1)
    _, cov = gaussian_stats(f)
    d2 = frechet_distance_features(f, f)
    assert 0.0 <= d2 < 1e-6 * float(torch.trace(cov))


def test_diagonal_gaussians_match_closed_form() -> None:
    # For diagonal Σ, Tr(Σ₁ + Σ₂ − 2(Σ₁Σ₂)^½) = Σᵢ (σ₁ᵢ − σ₂ᵢ)², so
    # d² = ‖μ₁ − μ₂‖² + Σᵢ (σ₁ᵢ − σ₂ᵢ)².
    mu1 = torch.tensor([0.0, 1.0, -2.0, 0.5], dtype=torch.float64)
    mu2 = torch.tensor([1.0, 1.0, 0.0, -0.5], dtype=torch.float64)
    s1 = torch.tensor([1.0, 2.0, 0.5, 3.0], dtype=torch.float64)
    s2 = torch.tensor([2.0, 2.0, 1.5, 0.1], dtype=torch.float64)
    expected = float((mu1 - mu2).pow(2).sum() + (s1 - s2).pow(2).sum())
    assert expected == pytest.approx(1 + 0 + 4 + 1 + 1 + 0 + 1 + 2.9**2)
    d2 = frechet_distance(mu1, torch.diag(s1**2), mu2, torch.diag(s2**2))
    assert d2 == pytest.approx(expected, rel=1e-9)


def test_same_spectrum_rotated_covariance() -> None:
    # Equal means; Σ₂ = R Σ₁ Rᵀ for a 90° rotation swaps the variances: diag(4, 1) vs diag(1, 4).
    mu = torch.zeros(2, dtype=torch.float64)
    cov1 = torch.diag(torch.tensor([4.0, 1.0], dtype=torch.float64))
    cov2 = torch.diag(torch.tensor([1.0, 4.0], dtype=torch.float64))
    assert frechet_distance(mu, cov1, mu, cov2) == pytest.approx(2 * (2.0 - 1.0) ** 2, rel=1e-9)


def test_shifted_set() -> None:
    f = features(300, 8, seed=2)
    shift = 0.7
    d2 = frechet_distance_features(f, f + shift)
    assert d2 == pytest.approx(shift**2 * 8, rel=1e-6)


def test_symmetric() -> None:
    a = features(300, 8, seed=3)
    b = features(300, 8, seed=4) * 0.5 + 1.0
    ab = frechet_distance_features(a, b)
    ba = frechet_distance_features(b, a)
    assert ab > 1.0  # different distributions: a real distance, not ~0
    assert ab == pytest.approx(ba, rel=1e-9)


@pytest.mark.parametrize("shape", [(1, 8), (0, 8), (8,)])
def test_needs_two_or_more_2d_features(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match=r"need \(N >= 2, D\) features, got"):
        frechet_distance_features(torch.zeros(shape), torch.randn(10, 8))
