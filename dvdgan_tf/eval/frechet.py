"""Fréchet distance between Gaussians fitted to two activation sets (FID / FVD).

For activations X1 [N, D] and X2 [M, D] with means mu_i and covariances S_i
(unbiased, divisor N - 1, as `np.cov` and TF-GAN use):

    d^2 = ||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2))

This is the formula of FID (Heusel et al. 2017) and FVD (Unterthiner et al. 2018,
whose reference code calls TF-GAN's `frechet_classifier_distance_from_activations`).
`tensorflow-gan` cannot be imported on TensorFlow >= 2.16, so the math is written
here in numpy, float64.

Stability: S1 S2 is not symmetric, and `scipy.linalg.sqrtm` of it can return
complex values or fail on rank-deficient covariances (N < D is common). Only the
trace of the square root is needed, and

    Tr((S1 S2)^(1/2)) = sum_i sqrt(lambda_i(A)),  A = S1^(1/2) S2 S1^(1/2),

because S1 S2 and A have the same eigenvalues (AB and BA share a spectrum). A is
symmetric PSD, so `np.linalg.eigh` applies; eigenvalues that round-off makes
slightly negative are clipped to 0.
"""

from __future__ import annotations

import numpy as np


def _psd_sqrt(s: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric PSD matrix [D, D], via eigh."""
    s = 0.5 * (s + s.T)  # Remove round-off asymmetry before eigh.
    w, v = np.linalg.eigh(s)
    w = np.clip(w, 0.0, None)
    return (v * np.sqrt(w)) @ v.T


def _check_stats(mu: np.ndarray, sigma: np.ndarray, name: str) -> None:
    if mu.ndim != 1 or sigma.shape != (mu.shape[0], mu.shape[0]):
        raise ValueError(
            f"{name}: expected mu [D] and sigma [D, D]; received mu.shape={mu.shape}, "
            f"sigma.shape={sigma.shape}"
        )


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """Tr((S1 S2)^(1/2)) for symmetric PSD S1, S2 [D, D], in float64."""
    sigma1 = np.asarray(sigma1, np.float64)
    sigma2 = np.asarray(sigma2, np.float64)
    sqrt1 = _psd_sqrt(sigma1)
    a = sqrt1 @ sigma2 @ sqrt1  # [D, D], symmetric PSD, same spectrum as S1 S2.
    a = 0.5 * (a + a.T)
    w = np.clip(np.linalg.eigvalsh(a), 0.0, None)
    return float(np.sum(np.sqrt(w)))


def frechet_distance_from_stats(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray
) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2).

    Args:
      mu1, mu2: float [D] means.
      sigma1, sigma2: float [D, D] covariances (symmetric PSD).

    Returns:
      ||mu1 - mu2||^2 + Tr(S1) + Tr(S2) - 2 Tr((S1 S2)^(1/2)), a Python float >= 0
      up to round-off (clipped at 0).
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1 = np.atleast_2d(np.asarray(sigma1, np.float64))
    sigma2 = np.atleast_2d(np.asarray(sigma2, np.float64))
    mu1, mu2 = np.atleast_1d(mu1), np.atleast_1d(mu2)
    _check_stats(mu1, sigma1, "first Gaussian")
    _check_stats(mu2, sigma2, "second Gaussian")
    if mu1.shape != mu2.shape:
        raise ValueError(
            f"dimensions differ: mu1.shape={mu1.shape}, mu2.shape={mu2.shape}"
        )
    diff = mu1 - mu2
    d2 = (
        diff @ diff
        + np.trace(sigma1)
        + np.trace(sigma2)
        - 2.0 * trace_sqrt_product(sigma1, sigma2)
    )
    return float(max(d2, 0.0))


def gaussian_stats(acts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean [D] and unbiased covariance [D, D] (float64) of activations [N, D]."""
    acts = np.asarray(acts, np.float64)
    if acts.ndim != 2 or acts.shape[0] < 2:
        raise ValueError(
            f"activations must be [N, D] with N >= 2; received shape {acts.shape}"
        )
    mu = acts.mean(axis=0)
    sigma = np.cov(acts, rowvar=False).reshape(acts.shape[1], acts.shape[1])
    return mu, sigma


def frechet_distance(acts1: np.ndarray, acts2: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to acts1 [N, D] and acts2 [M, D]."""
    acts1, acts2 = np.asarray(acts1), np.asarray(acts2)
    if acts1.ndim != 2 or acts2.ndim != 2 or acts1.shape[1] != acts2.shape[1]:
        raise ValueError(
            "activations must be [N, D] and [M, D] with the same D; received "
            f"shapes {acts1.shape} and {acts2.shape}"
        )
    return frechet_distance_from_stats(*gaussian_stats(acts1), *gaussian_stats(acts2))
