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


#: VKDNW's cut-off as a fraction: its nDCG sums over the top P = 1,000 of NB201's 15,625 architectures
NDCG_FRAC = 1000 / 15625


def ndcg_cutoff(n: int) -> int:
    """The nDCG cut-off for a sample of ``n``: :data:`NDCG_FRAC` of it (at least 1), so that on a sample it covers
    the share of the space that VKDNW's P = 1,000 covers of NB201's 15,625 (64 of a 1,000-architecture sample)."""
    return max(1, round(NDCG_FRAC * n))


def ndcg(scores: Sequence[float] | np.ndarray, truth: Sequence[float] | np.ndarray, k: int | None = None) -> float:
    """Normalised discounted cumulative gain of the order of ``scores`` at cut-off ``k`` (all members when None).

    As VKDNW reports it (Tybl & Neumann, CVPR 2025, arXiv 2502.04975, the nDCG of its evaluation metrics):
    nDCG_P = (1/Z) sum_{j=1..P} (2^acc(j) - 1) / log2(1 + j), where acc(j) is the accuracy of the member the scores
    put at place j and Z is the same sum over the members in the order of their accuracy, so a perfect order gives 1.
    ``truth`` is the accuracy in percent, as NB201's tables give it: the scale matters, as one point of accuracy
    halves the gain, which makes the metric top-heavy. Ties of ``scores`` go by position (stable sort); NaN when no
    member has a positive gain.
    """
    s, t = np.asarray(scores, dtype=float), np.asarray(truth, dtype=float)
    k = len(s) if k is None else max(1, min(k, len(s)))
    shift = float(t.max())  # 2^acc / 2^max: the ratio is unchanged and nothing overflows

    def dcg(acc: np.ndarray) -> float:
        gain = np.exp2(acc - shift) - np.exp2(-shift)
        return float(np.sum(gain / np.log2(np.arange(2, len(acc) + 2))))

    ideal = dcg(np.sort(t)[::-1][:k])
    return dcg(t[np.argsort(-s, kind="stable")[:k]]) / ideal if ideal > 0 else float("nan")


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
    return percentile_interval(bootstrap_values(stat, n, rng, n_boot=n_boot), level)


def bootstrap_values(
    stat: Callable[[np.ndarray], float], n: int, rng: np.random.Generator, *, n_boot: int = 1000
) -> np.ndarray:
    """``stat(indices)`` of each of the ``n_boot`` resamples of :func:`bootstrap_ci` (the same draws): two
    statistics bootstrapped from generators in the same state see the same resamples, so the differences of their
    values are a paired bootstrap (how the report pairs runs without recomputing each run's statistic)."""
    return np.array([stat(idx) for idx in rng.integers(n, size=(n_boot, n))], dtype=float)


def percentile_interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """The central ``level`` interval of the finite ``values`` (percentile bootstrap); NaN bounds when none is."""
    vals = values[np.isfinite(values)]
    if len(vals) == 0:
        return (float("nan"), float("nan"))
    lo, hi = np.quantile(vals, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def tau_ci(x: np.ndarray, y: np.ndarray, rng: np.random.Generator, n_boot: int = 1000) -> tuple[float, float]:
    """:func:`bootstrap_ci` of Kendall's tau between paired ``x`` and ``y``."""
    return bootstrap_ci(lambda i: kendall_tau(x[i], y[i]), len(x), rng, n_boot=n_boot)


def paired_diff_ci(
    stat: Callable[[np.ndarray, np.ndarray], float],
    a: np.ndarray,
    b: np.ndarray,
    y: np.ndarray,
    rng: np.random.Generator,
    n_boot: int = 1000,
) -> tuple[float, float]:
    """:func:`bootstrap_ci` of stat(a, y) - stat(b, y): two scorers of the same members, resampled jointly."""
    return bootstrap_ci(lambda i: stat(a[i], y[i]) - stat(b[i], y[i]), len(y), rng, n_boot=n_boot)


def tau_diff_ci(
    a: np.ndarray, b: np.ndarray, y: np.ndarray, rng: np.random.Generator, n_boot: int = 1000
) -> tuple[float, float]:
    """:func:`paired_diff_ci` of Kendall's tau: tau(a, y) - tau(b, y)."""
    return paired_diff_ci(kendall_tau, a, b, y, rng, n_boot)


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


#: RMI-NAS's voters as a share of its evaluations, and their most: the best 5 % of the warm-up are its positives
#: (conf/searcher/rminas.yaml positive_quantile; RMINAS_nb201.py:26) and the best 50 positives vote (top_k; :229)
RMINAS_VOTER_FRAC = 0.05
RMINAS_MAX_VOTERS = 50


def rminas_voters(n: int) -> int:
    """How many of ``n`` scored architectures vote in :func:`rminas_vote_preview`: 5 %, at least 1, at most 50."""
    return max(1, min(RMINAS_MAX_VOTERS, round(RMINAS_VOTER_FRAC * n)))


def rminas_vote_preview(ops: np.ndarray, scores: np.ndarray, choices: Sequence[int]) -> tuple[int, ...]:
    """What RMI-NAS would answer from these scores, without its searcher: the per-decision :func:`vote` (``sum``,
    ties to the lower index, as RMI-NAS's defaults) of the best-scored :func:`rminas_voters` members (the first
    on a tie of scores). ``ops``: (members, decisions) chosen option per decision; ``choices``: options per decision.
    The answer need not be one of the members."""
    scores = np.asarray(scores, dtype=np.float64)
    top = np.argsort(-scores, kind="stable")[: rminas_voters(len(scores))]
    return vote(np.asarray(ops, dtype=np.int64)[top], scores[top], choices)
