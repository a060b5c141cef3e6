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


def top1_regret(scores: Sequence[float] | np.ndarray, truth: Sequence[float] | np.ndarray) -> float:
    """The best ``truth`` of the sample minus the ``truth`` of its best-scored member (the first on a tie)."""
    s, t = np.asarray(scores, dtype=float), np.asarray(truth, dtype=float)
    return float(t.max() - t[int(np.argmax(s))])


def bootstrap_ci(
    stat: Callable[[np.ndarray], float],
    n: int,
    rng: np.random.Generator,
    *,
    n_boot: int = 1000,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``stat(indices)`` over ``n_boot`` resamples (with replacement) of the
    ``n`` members of a sample; ``stat`` gets an index array, so paired data stay paired. Non-finite values of a
    resample are left out; NaN bounds when none is finite.

    The one bootstrap of the harness. ``scipy.stats.bootstrap(..., paired=True, method="percentile")`` draws the
    same resamples and cuts the same quantiles (a test checks it), but keeps NaN resamples (tau of a constant
    resample, a vote answer missing from a closed table) in its quantiles and hands its statistic the resampled
    data, not the indices that the vote answers of :func:`harness.loop.rank_metrics` need."""
    vals = np.array([stat(idx) for idx in rng.integers(n, size=(n_boot, n))], dtype=float)
    vals = vals[np.isfinite(vals)]
    if len(vals) == 0:
        return (float("nan"), float("nan"))
    lo, hi = np.quantile(vals, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def tau_ci(x: np.ndarray, y: np.ndarray, rng: np.random.Generator, n_boot: int = 1000) -> tuple[float, float]:
    """:func:`bootstrap_ci` of Kendall's tau between paired ``x`` and ``y``."""
    return bootstrap_ci(lambda i: kendall_tau(x[i], y[i]), len(x), rng, n_boot=n_boot)


def tau_diff_ci(
    a: np.ndarray, b: np.ndarray, y: np.ndarray, rng: np.random.Generator, n_boot: int = 1000
) -> tuple[float, float]:
    """:func:`bootstrap_ci` of tau(a, y) - tau(b, y): two scorers of the same members, resampled jointly."""
    return bootstrap_ci(lambda i: kendall_tau(a[i], y[i]) - kendall_tau(b[i], y[i]), len(y), rng, n_boot=n_boot)


def argmax_so_far(values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Index of the largest value up to each position (the earliest on a tie); -1 before the first finite one.
    Only finite values count (NaN marks a failed evaluation)."""
    v = np.asarray(values, dtype=float)
    v = np.where(np.isfinite(v), v, -np.inf)
    record = v > np.maximum.accumulate(np.concatenate([[-np.inf], v]))[:-1]  # above every earlier value
    return np.maximum.accumulate(np.where(record, np.arange(len(v)), -1))


def mean_std(values: Sequence[float] | np.ndarray) -> tuple[float, float, int]:
    """(mean, sample standard deviation with ddof=1, n) of the finite values."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return float("nan"), float("nan"), 0
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0, len(v)


VOTE_MODES = ("sum", "greedy")
TIE_BREAKS = ("index", "score")


def vote(
    ops: np.ndarray,
    scores: np.ndarray,
    choices: Sequence[int],
    *,
    mode: str = "sum",
    tie_break: str = "index",
) -> tuple[int, ...]:
    """RMI-NAS's answer from its voters: the architecture most probable under their distribution.

    Args:
        ops: (voters, decisions) chosen option per decision. scores: each voter's score (higher = better).
        choices: options per decision.
        mode: ``sum`` = per decision, the choice most voters made (the reference sums one-hot encodings);
            ``greedy`` = a path through the decisions in order (the reference's ``path_info``): start with the
            majority choice of the first decision; for each next one, among the voters that agree with the choice
            just made for the previous decision, their most frequent choice, ties to the choice with more voters
            overall at that decision (the reference's one-step look-ahead).
        tie_break: a remaining tie goes to ``index`` = the lower option index (the reference's ``np.argmax``) or
            ``score`` = the larger total score of the voters of the option (of those on the path, for greedy), then
            the lower index.
    """
    ops = np.asarray(ops, dtype=np.int64)
    scores = np.asarray(scores, dtype=np.float64)

    def best(n: int, *keys: np.ndarray) -> int:
        used = keys if tie_break == "score" else keys[:-1]  # the last key is always the total score
        return max(range(n), key=lambda i: (*(float(k[i]) for k in used), -i))

    def tally(d: int, rows: np.ndarray | slice) -> tuple[np.ndarray, np.ndarray]:
        n = choices[d]
        return np.bincount(ops[rows, d], minlength=n), np.bincount(ops[rows, d], weights=scores[rows], minlength=n)

    if mode == "sum":
        return tuple(best(n, *tally(d, slice(None))) for d, n in enumerate(choices))
    path = [best(choices[0], *tally(0, slice(None)))]
    for d in range(1, len(choices)):
        counts, totals = tally(d, ops[:, d - 1] == path[-1])
        overall, _ = tally(d, slice(None))
        path.append(best(choices[d], counts, overall, totals))
    return tuple(path)
