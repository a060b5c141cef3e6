"""The loop: the only caller of estimators and of ground-truth look-ups.

``search`` runs ask -> estimate (charges the clock) -> tell under a budget; ``rank`` scores a fixed sample of
architectures and compares the scores with ground truth. Both record every evaluation, failed ones included.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Iterable
from typing import Any

import numpy as np

from harness import metrics
from harness.budget import Budget, CostClock, cost_unit
from harness.errors import ConfigError, RunAborted
from harness.interfaces import Benchmark, Estimator, EstimatorContext, Searcher, SearchSpace
from harness.types import FAILED, OK, Arch, EvalRecord, RunResult


def _progress(total: float | None, unit: str, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, unit=unit, disable=not enabled, leave=False, dynamic_ncols=True, mininterval=0.5)


class _Evaluator:
    """Runs one estimate, turns failures into records, charges the clock, aborts on a run of failures."""

    def __init__(self, estimator: Estimator, benchmark: Benchmark, clock: CostClock, max_failures: int) -> None:
        self.estimator = estimator
        self.test_accuracy = benchmark.test_accuracy
        self.live = estimator.tags.live
        self.format = benchmark.space.format
        self.clock = clock
        self.max_failures = max_failures
        self.failures_in_a_row = 0
        self.device = "table"

    def __call__(self, step: int, arch: Arch) -> EvalRecord:
        t0 = time.perf_counter()
        try:
            est = self.estimator.estimate(arch)
            score, cost, device = est.score, est.cost_s, est.device
            reason = "" if math.isfinite(score) else f"non-finite score {score}"
        except Exception as exc:  # noqa: BLE001 - any failure of one evaluation is recorded, the run goes on
            score, cost, device = math.nan, (time.perf_counter() - t0) if self.live else 0.0, self.device
            reason = f"{type(exc).__name__}: {exc}".replace("\n", " ")
        wall = time.perf_counter() - t0
        self.device = device
        self.clock.charge(cost)
        if reason:
            self.failures_in_a_row += 1
            record = EvalRecord(
                step,
                self.format(arch),
                math.nan,
                cost,
                self.clock.elapsed_s,
                wall,
                device,
                FAILED,
                reason,
                self.test_accuracy(arch),
            )
            if self.failures_in_a_row >= self.max_failures:
                raise RunAborted(
                    f"{self.failures_in_a_row} evaluations in a row failed; the last one on {record.arch}: {reason}"
                )
            return record
        self.failures_in_a_row = 0
        return EvalRecord(
            step,
            self.format(arch),
            float(score),
            cost,
            self.clock.elapsed_s,
            wall,
            device,
            OK,
            "",
            self.test_accuracy(arch),
        )


def _cost_unit(estimator: Estimator, device: str) -> str:
    return cost_unit(device) if estimator.tags.live else "recorded benchmark training seconds"


def search(
    benchmark: Benchmark,
    estimator: Estimator,
    searcher: Searcher,
    budget: Budget,
    context: EstimatorContext,
    *,
    progress: bool = False,
    max_consecutive_failures: int = 10,
) -> RunResult:
    """Search under ``budget``; the final answer is ``searcher.recommend()`` or the best-scored evaluation.

    Args:
        benchmark: ground truth; its test accuracy is looked up once, for the final answer.
        estimator: scores architectures; fitted here (its fit cost is charged).
        searcher: asks and is told.
        budget: evaluations or clock seconds; an evaluation starts only while the budget is not spent.
        context: what the estimator may know.
        progress: show a progress bar.
        max_consecutive_failures: abort the run after this many failed evaluations in a row.
    """
    if budget.max_cost_s is not None and not estimator.tags.live and not benchmark.has_train_cost:
        raise ConfigError(
            f"{benchmark.name} records no training time, so a table estimator cannot spend "
            f"budget.max_cost_s; use budget.max_evals=N (and budget.max_cost_s=null)"
        )
    t_start = time.perf_counter()
    clock = CostClock()
    fit_cost = estimator.fit(context)
    clock.charge(fit_cost, evaluation=False)
    evaluate = _Evaluator(estimator, benchmark, clock, max_consecutive_failures)
    records: list[EvalRecord] = []
    best: Arch | None = None
    best_score = -math.inf
    by_cost = budget.max_cost_s is not None
    bar = _progress(budget.max_cost_s if by_cost else budget.max_evals, "s" if by_cost else "eval", progress)
    with bar:
        while not clock.exhausted(budget):
            arch = searcher.ask()
            if arch is None:
                break
            record = evaluate(len(records), arch)
            records.append(record)
            bar.update(record.cost_s if by_cost else 1)
            if record.status == OK:
                searcher.tell(arch, record.score)
                if record.score > best_score:
                    best, best_score = arch, record.score
    incumbent = searcher.recommend() or best
    summary: dict[str, Any] = {
        "incumbent": None,
        "incumbent_score": None,
        "incumbent_valid_acc": None,
        "incumbent_test_acc": None,
    }
    if incumbent is not None:
        summary.update(
            incumbent=benchmark.space.format(incumbent),
            incumbent_score=best_score if incumbent == best else None,
            incumbent_valid_acc=benchmark.query(incumbent).valid_acc,
            incumbent_test_acc=benchmark.test_accuracy(incumbent),
        )
    optimum_valid, optimum_test = benchmark.optimum()
    summary.update(
        optimum_valid_acc=optimum_valid,
        optimum_test_acc=optimum_test,
        n_evals=len(records),
        n_failed=sum(r.status != OK for r in records),
        fit_cost_s=fit_cost,
        total_cost_s=clock.elapsed_s,
        cost_unit=_cost_unit(estimator, evaluate.device),
        device=evaluate.device,
        wall_s=time.perf_counter() - t_start,
    )
    return RunResult(tuple(records), summary)


SPLITS = ("all", "select", "report")


def split_of(space: SearchSpace, arch: Arch) -> str:
    """The fixed half of the space ``arch`` belongs to, ``select`` or ``report`` (a hash of its isomorphism
    class, so isomorphic architectures share a half and every sample of one half is disjoint from the other)."""
    digest = hashlib.sha1(space.iso_key(arch).encode()).digest()
    return "select" if digest[0] % 2 == 0 else "report"


def sample_distinct(space: SearchSpace, n: int, rng: np.random.Generator, split: str = "all") -> tuple[list[Arch], int]:
    """``n`` random architectures that are pairwise non-isomorphic, from the half ``split`` of the space (see
    :func:`split_of`; ``all``: anywhere), and the number of draws it took. The ``split`` sample of a seed is the
    sequence of that half's members in the ``all`` sample of the same seed."""
    if split not in SPLITS:
        raise ConfigError(f"split={split!r} is not one of {', '.join(SPLITS)}")
    seen: set[str] = set()
    archs: list[Arch] = []
    draws = 0
    while len(archs) < n:
        draws += 1
        if draws > 100 * n + 10_000:
            raise ConfigError(f"could not find {n} non-isomorphic architectures in {space.name}; ask for fewer")
        arch = space.sample(rng)
        key = space.iso_key(arch)
        if key not in seen and (split == "all" or split_of(space, arch) == split):
            seen.add(key)
            archs.append(arch)
    return archs, draws


def rank(
    benchmark: Benchmark,
    estimator: Estimator,
    archs: Iterable[Arch],
    context: EstimatorContext,
    *,
    ci_rng: np.random.Generator,
    progress: bool = False,
    max_consecutive_failures: int = 10,
) -> RunResult:
    """Score ``archs`` and compare with ground truth (full-schedule validation and test accuracy).

    Reports Kendall tau (with a 95% bootstrap interval) and Spearman rho against both, the precision of the
    predicted top 10% against the true top 10% by test accuracy, and the cost. Failed evaluations are recorded and
    left out of the correlations.
    """
    t_start = time.perf_counter()
    archs = list(archs)
    clock = CostClock()
    fit_cost = estimator.fit(context)
    clock.charge(fit_cost, evaluation=False)
    evaluate = _Evaluator(estimator, benchmark, clock, max_consecutive_failures)
    records: list[EvalRecord] = []
    with _progress(len(archs), "arch", progress) as bar:
        for arch in archs:
            records.append(evaluate(len(records), arch))
            bar.update(1)
    ok = [(a, r.score) for a, r in zip(archs, records, strict=True) if r.status == OK]
    scores = np.array([s for _, s in ok])
    valid = np.array([benchmark.query(a).valid_acc for a, _ in ok])
    test = np.array([benchmark.test_accuracy(a) for a, _ in ok])
    summary: dict[str, Any] = {
        "n_archs": len(archs),
        "n_unique": len({benchmark.space.iso_key(a) for a in archs}),
        "n_scored": len(ok),
        "n_failed": len(archs) - len(ok),
    }
    if len(ok) >= 2:
        lo, hi = metrics.bootstrap_ci(metrics.kendall_tau, scores, test, ci_rng)
        summary.update(
            kendall_tau_test=metrics.kendall_tau(scores, test),
            kendall_tau_test_ci95=[lo, hi],
            kendall_tau_valid=metrics.kendall_tau(scores, valid),
            spearman_rho_test=metrics.spearman_rho(scores, test),
            spearman_rho_valid=metrics.spearman_rho(scores, valid),
            top10_precision_test=metrics.top_k_precision(scores, test, 0.1),
        )
    costs = [r.cost_s for r in records]
    summary.update(
        fit_cost_s=fit_cost,
        total_cost_s=clock.elapsed_s,
        median_cost_per_arch_s=float(np.median(costs)) if costs else None,
        cost_unit=_cost_unit(estimator, evaluate.device),
        device=evaluate.device,
        wall_s=time.perf_counter() - t_start,
    )
    return RunResult(tuple(records), summary)
