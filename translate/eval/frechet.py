"""Fréchet distance between Gaussians fitted to two feature sets (Heusel et al. 2017, Eqn. 6):

d² = ‖μ₁ − μ₂‖² + Tr(Σ₁ + Σ₂ − 2 (Σ₁ Σ₂)^½)
"""

from __future__ import annotations

import torch


def gaussian_stats(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and (unbiased) covariance of (N, D) features, in float64."""
    f = features.double()
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"need (N >= 2, D) features, got {tuple(f.shape)}")
    return f.mean(0), torch.cov(f.T)


def frechet_distance(
    mu1: torch.Tensor, cov1: torch.Tensor, mu2: torch.Tensor, cov2: torch.Tensor
) -> float:
    """d² between N(μ₁, Σ₁) and N(μ₂, Σ₂).

    Tr((Σ₁Σ₂)^½) is computed as Σ √λᵢ over the eigenvalues of Σ₁^½ Σ₂ Σ₁^½, which is symmetric
    positive semi-definite, so no complex square roots appear (unlike ``scipy.linalg.sqrtm``).
    """
    mu1, mu2, cov1, cov2 = (t.double() for t in (mu1, mu2, cov1, cov2))
    vals, vecs = torch.linalg.eigh(cov1)
    sqrt1 = vecs @ torch.diag(vals.clamp(min=0).sqrt()) @ vecs.T
    middle = sqrt1 @ cov2 @ sqrt1
    tr_sqrt = torch.linalg.eigvalsh((middle + middle.T) / 2).clamp(min=0).sqrt().sum()
    d2 = (mu1 - mu2).pow(2).sum() + torch.trace(cov1) + torch.trace(cov2) - 2 * tr_sqrt
    return float(d2.clamp(min=0))


def frechet_distance_features(a: torch.Tensor, b: torch.Tensor) -> float:
    return frechet_distance(*gaussian_stats(a), *gaussian_stats(b))
