"""Classifier score (Inception Score) from logits, as TF-GAN computes it.

For class posteriors p(y|x) = softmax(logits) and the marginal p(y) = E_x p(y|x)
over a split of the samples:

    IS = exp( E_x KL(p(y|x) || p(y)) )
       = exp( E_x sum_y p(y|x) (log p(y|x) - log p(y)) )

It lies in [1, K]: 1 when every prediction equals the marginal (uniform or all
the same), K when predictions are confident and spread evenly over K classes.
As in Salimans et al. (2016) and the TGAN/TGANv2 UCF-101 protocol the paper uses
(C3D, 2048 samples x 10 splits), the samples are cut into `num_splits` splits, the
score is computed per split, and the mean and standard deviation over splits are
reported. `log p(y|x)` comes from a log-softmax of the logits (stable for large
logits), in float64.
"""

from __future__ import annotations

import numpy as np
from scipy.special import log_softmax, logsumexp


def _split_score(logits: np.ndarray) -> float:
    """exp(E_x KL(p(y|x) || p(y))) for one split, logits float64 [n, K]."""
    log_p = log_softmax(logits, axis=1)  # [n, K]: log p(y|x)
    # log p(y) = log mean_x p(y|x), computed in log space.
    log_py = logsumexp(log_p, axis=0) - np.log(log_p.shape[0])  # [K]
    kl = np.sum(np.exp(log_p) * (log_p - log_py[None, :]), axis=1)  # [n]
    return float(np.exp(np.mean(kl)))


def classifier_score(logits: np.ndarray, num_splits: int = 10) -> tuple[float, float]:
    """Inception / classifier score from logits.

    Args:
      logits: float [N, K] unnormalised class scores.
      num_splits: number of (near-)equal splits the score is averaged over; each
        split needs at least one sample. Splits follow the given order.

    Returns:
      (mean, std) of the per-split scores (std is 0 for one split).
    """
    logits = np.asarray(logits, np.float64)
    if logits.ndim != 2:
        raise ValueError(f"logits must be [N, K]; received shape {logits.shape}")
    if num_splits < 1 or num_splits > logits.shape[0]:
        raise ValueError(
            f"num_splits must be in [1, N]; received num_splits={num_splits}, "
            f"N={logits.shape[0]}"
        )
    scores = [_split_score(s) for s in np.array_split(logits, num_splits)]
    return float(np.mean(scores)), float(np.std(scores))
