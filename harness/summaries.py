"""What a run's ``summary.json`` holds: typed, frozen records, one for a search and one for a rank run, and one for
what ran.

:func:`harness.loop.search` and :func:`harness.loop.rank` build one record each, once, at the end of the run;
:func:`harness.experiment.run_summary` builds a :class:`RunInfo` (task, plug-ins, seeds, config, versions) and
writes both into ``summary.json`` with :func:`run_dict`: :func:`as_dict` of each (``dataclasses.asdict``, the rank
metrics flattened to their ``name`` and ``name_ci95`` keys), side by side, no key in both. A field marked
:func:`_optional` is left out of the dict when it is ``None``, as the harness left such keys out before the records
existed (``n_cache_hits`` of a table estimator, ``incumbent_note`` of a search that gave its own answer, ``threads``
of a table estimator), so a ``summary.json`` holds the same keys and values as one written before them. The readers
(:mod:`harness.storage`, :mod:`harness.report`, :mod:`harness.aggregate`, :mod:`harness.plots`) name the keys they
need through :func:`summary_key`, so a renamed field fails at import, not in a report.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from harness.types import EvalRecord

_OMIT = "omit_if_none"


def _optional() -> Any:
    """A field that defaults to ``None`` and is left out of :func:`as_dict` while it is ``None``."""
    return field(default=None, metadata={_OMIT: True})


@dataclass(frozen=True, slots=True)
class DeviceCost:
    """The cost charged on one device (``cost_by_device``): ``unit`` as :class:`~harness.budget.CostUnit` writes
    it, seconds in that unit, and the evaluations charged there."""

    unit: str
    cost_s: float = 0.0
    n_evals: int = 0


@dataclass(frozen=True, slots=True)
class RankMetrics:
    """How well a rank run's scores order its sample (:func:`harness.loop.rank_metrics`): each statistic with its 95%
    bootstrap interval (``*_ci95``: low, high), on test and validation accuracy; the vote answer is what RMI-NAS
    would answer from these scores (a formatted architecture), with its accuracies; ``ndcg_k`` the nDCG cutoff;
    ``vote_voters`` how many best-scored members voted; ``sample_best_*``: the best accuracy in the sample."""

    spearman_rho_test: float
    spearman_rho_valid: float
    vote_answer: str
    vote_voters: int
    ndcg_k: int
    sample_best_valid_acc: float
    sample_best_test_acc: float
    kendall_tau_test: float
    kendall_tau_test_ci95: tuple[float, float]
    top5_precision_test: float
    top5_precision_test_ci95: tuple[float, float]
    top10_precision_test: float
    top10_precision_test_ci95: tuple[float, float]
    top1_regret_test: float
    top1_regret_test_ci95: tuple[float, float]
    kendall_tau_valid: float
    kendall_tau_valid_ci95: tuple[float, float]
    top5_precision_valid: float
    top5_precision_valid_ci95: tuple[float, float]
    top10_precision_valid: float
    top10_precision_valid_ci95: tuple[float, float]
    top1_regret_valid: float
    top1_regret_valid_ci95: tuple[float, float]
    vote_answer_valid_acc: float
    vote_answer_valid_acc_ci95: tuple[float, float]
    vote_answer_test_acc: float
    vote_answer_test_acc_ci95: tuple[float, float]
    ndcg_test: float
    ndcg_test_ci95: tuple[float, float]
    ndcg_valid: float
    ndcg_valid_ci95: tuple[float, float]


@dataclass(frozen=True, slots=True)
class SearchSummary:
    """What :func:`harness.loop.search` reports.

    Attributes:
        incumbent: the answer (formatted), ``None`` when nothing was evaluated successfully.
        incumbent_by: ``"searcher"`` (its own recommendation) or ``"best-scored evaluation"``.
        incumbent_score: the answer's score when it is the best-scored evaluation, else ``None``.
        incumbent_valid_acc, incumbent_test_acc: the answer's accuracies (NaN when a closed-set table lacks it).
        optimum_valid_acc, optimum_test_acc: the benchmark's best.
        n_evals, n_failed: evaluations made, and failed.
        fit_cost_s, total_cost_s: the estimator's fit, and the cost clock at the end (fit included).
        cost_unit: the unit of the costs (:class:`~harness.budget.CostUnit`, as written).
        cost_by_device: the cost per device, each in its own unit.
        device: where the estimator's work is charged (``"table"`` for a table estimator).
        wall_s: real seconds of the whole run.
        incumbent_note: why the answer is not the searcher's own, or has no accuracy; absent otherwise.
        n_cache_hits: estimates answered from a score cache (live estimators only).
        lookahead: what a second evaluating process did (:meth:`harness.lookahead.Lookahead.summary`), if any.
    """

    incumbent: str | None
    incumbent_by: str
    incumbent_score: float | None
    incumbent_valid_acc: float | None
    incumbent_test_acc: float | None
    optimum_valid_acc: float
    optimum_test_acc: float
    n_evals: int
    n_failed: int
    fit_cost_s: float
    total_cost_s: float
    cost_unit: str
    cost_by_device: dict[str, DeviceCost]
    device: str
    wall_s: float
    incumbent_note: str | None = _optional()
    n_cache_hits: int | None = _optional()
    lookahead: dict[str, int] | None = _optional()


@dataclass(frozen=True, slots=True)
class RankSummary:
    """What :func:`harness.loop.rank` reports.

    Attributes:
        n_archs, n_unique, n_scored, n_failed: the sample's size, its distinct (isomorphism) classes, the members
            scored, and those whose evaluation failed.
        metrics: :class:`RankMetrics` of the scored members; ``None`` (no metric key written) below two.
        median_cost_per_arch_s: the median cost of one evaluation; ``None`` for an empty sample.
        The cost fields, ``wall_s``, ``n_cache_hits`` and ``lookahead`` as in :class:`SearchSummary`.
    """

    n_archs: int
    n_unique: int
    n_scored: int
    n_failed: int
    metrics: RankMetrics | None
    fit_cost_s: float
    total_cost_s: float
    median_cost_per_arch_s: float | None
    cost_unit: str
    cost_by_device: dict[str, DeviceCost]
    device: str
    wall_s: float
    n_cache_hits: int | None = _optional()
    lookahead: dict[str, int] | None = _optional()


@dataclass(frozen=True, slots=True)
class Where:
    """Where a run's data and caches were on the machine that finished it (machine-local paths)."""

    data_dir: str
    cache_dir: str


@dataclass(frozen=True, slots=True)
class RunInfo:
    """What ran, beside what the loop reports (:func:`harness.experiment.run_summary` builds it).

    Attributes:
        task: ``"search"`` or ``"rank"``.
        experiment: the experiment's name (``experiment_name``).
        benchmark, dataset, searcher, estimator: the plug-ins' names (``searcher`` is ``None`` in a rank run).
        seed: the run's seed; estimator_seed: the estimator's (:func:`harness.experiment.estimator_seed`).
        budget: the search's budget as configured, ``None`` in a rank run.
        test_split: false on a benchmark whose "test" accuracy repeats the validation number (NB301's surrogate
            sample; :attr:`~harness.interfaces.Benchmark.has_test_split`).
        n_resumed: evaluations replayed from an interrupted run.
        started_utc: when the run first started (ISO 8601, seconds).
        versions: Python's and the packages' versions.
        config_id, config_label, config: the defining config (:mod:`harness.identity`), its id and label.
        where: :class:`Where`.
        n_draws: the draws a rank sample took (rank runs only; absent otherwise).
        threads: the torch threads of a live estimator (absent for a table estimator).
    """

    task: str
    experiment: str
    benchmark: str
    dataset: str
    searcher: str | None
    estimator: str
    seed: int
    estimator_seed: int
    budget: dict[str, Any] | None
    test_split: bool
    n_resumed: int
    started_utc: str
    versions: dict[str, str]
    config_id: str
    config_label: str
    config: dict[str, Any]
    where: Where
    n_draws: int | None = _optional()
    threads: int | None = _optional()


Summary = SearchSummary | RankSummary
S = TypeVar("S", SearchSummary, RankSummary)


@dataclass(frozen=True, slots=True)
class LoopResult(Generic[S]):
    """What the loop returns: the evaluations in order, and its summary record."""

    records: tuple[EvalRecord, ...]
    summary: S


def _lists(value: Any) -> Any:
    """Tuples as lists, as ``summary.json`` holds them (and a summary read back from it)."""
    if isinstance(value, dict):
        return {k: _lists(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_lists(v) for v in value]
    return value


def as_dict(summary: Summary | RunInfo) -> dict[str, Any]:
    """The keys and values ``summary.json`` holds for ``summary``: ``dataclasses.asdict``, the rank metrics
    flattened into it (absent when there are none), the :func:`_optional` fields left out while ``None``."""
    values = dataclasses.asdict(summary)
    out: dict[str, Any] = {}
    for f in dataclasses.fields(summary):
        value = _lists(values[f.name])
        if f.name == "metrics":
            out |= value or {}
        elif value is not None or not f.metadata.get(_OMIT):
            out[f.name] = value
    return out


def run_dict(info: RunInfo, summary: Summary) -> dict[str, Any]:
    """What ``summary.json`` holds for a run: :func:`as_dict` of what ran and of what the loop reported."""
    ran, reported = as_dict(info), as_dict(summary)
    both = ran.keys() & reported.keys()
    if both:
        raise ValueError(f"RunInfo and {type(summary).__name__} both have {sorted(both)}")
    return ran | reported


def _names(*records: type[Any]) -> frozenset[str]:
    return frozenset(f.name for r in records for f in dataclasses.fields(r) if f.name != "metrics")


def summary_key(name: str, *records: type[Any]) -> str:
    """``name``, checked to be a field of each of ``records`` (summary records): how a reader names a summary key,
    so that a renamed field fails where the reader is imported, not in a report."""
    for record in records:
        if name not in _names(record):
            raise AttributeError(f"{record.__name__} has no field {name!r}")
    return name


def interval_key(name: str) -> str:
    """``name``, checked to be a :class:`RankMetrics` statistic with an interval (its ``name_ci95``)."""
    summary_key(f"{name}_ci95", RankMetrics)
    return summary_key(name, RankMetrics)
