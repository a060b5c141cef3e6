"""Pure functions over arrays of scores and ground truth. No I/O, no state."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np


def kendall_tau(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> float:
    """Kendall's tau-b between two score vectors (scipy); NaN if either is constant."""
    from scipy.stats import kendalltau

    return float(kendalltau(x, y).statistic)


def spearman_rho(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> float:
    """Spearman's rank correlation (scipy); NaN if either is constant."""
    from scipy.stats import spearmanr

    return float(spearmanr(x, y).statistic)


def top_k_precision(
    scores: Sequence[float] | np.ndarray, truth: Sequence[float] | np.ndarray, frac: float = 0.1
) -> float:
    """Fraction of the true top ``frac`` (at least one) that is also in the predicted top ``frac``.

    Ties are broken by position (stable sort), so the result is deterministic.
    """
    s, t = np.asarray(scores, dtype=float), np.asarray(truth, dtype=float)
    k = max(1, int(round(frac * len(s))))
    pred = set(np.argsort(-s, kind="stable")[:k].tolist())
    true = set(np.argsort(-t, kind="stable")[:k].tolist())
    return len(pred & true) / k


def bootstrap_ci(
    stat: Callable[[np.ndarray, np.ndarray], float],
    x: Sequence[float] | np.ndarray,
    y: Sequence[float] | np.ndarray,
    rng: np.random.Generator,
    *,
    n_boot: int = 1000,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``stat(x, y)`` over resampled pairs."""
    xa, ya = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    idx = rng.integers(len(xa), size=(n_boot, len(xa)))
    vals = np.array([stat(xa[i], ya[i]) for i in idx])
    vals = vals[np.isfinite(vals)]
    if len(vals) == 0:
        return (float("nan"), float("nan"))
    lo, hi = np.quantile(vals, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def best_so_far(values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Running maximum, ignoring NaN (NaN until the first finite value)."""
    v = np.asarray(values, dtype=float)
    out = np.fmax.accumulate(v) if len(v) else v
    return out


def mean_std(values: Sequence[float] | np.ndarray) -> tuple[float, float, int]:
    """(mean, sample standard deviation with ddof=1, n) of the finite values."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return float("nan"), float("nan"), 0
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0, len(v)
