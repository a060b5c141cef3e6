"""The loop: the only caller of estimators and of ground-truth look-ups.

``search`` runs ask -> estimate (charges the clock) -> tell under a budget; ``rank`` scores a fixed sample of
architectures and compares the scores with ground truth. Both record every evaluation, failed ones included.
Over 300 lines for a reason: search and rank share the evaluator, the one place that calls estimators and looks
up ground truth; kept in one file so that claim can be checked by reading one file.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import math
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from harness import metrics, stopping
from harness.budget import Budget, CostClock, CostUnit, cost_unit, stopwatch
from harness.errors import ConfigError, OutOfDomainError, RunAborted, ServiceUnavailable
from harness.interfaces import Benchmark, Estimator, EstimatorContext, Searcher
from harness.lookahead import Lookahead
from harness.summaries import DeviceCost, LoopResult, RankMetrics, RankSummary, SearchSummary
from harness.types import FAILED, OK, Arch, EvalRecord

log = logging.getLogger("harness")


def _progress(total: float | None, unit: str, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(
        total=total,
        unit=unit,
        disable=not enabled,
        leave=False,
        dynamic_ncols=True,
        mininterval=0.5,
        bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} {unit} [{elapsed}<{remaining}]",
    )


class _Evaluator:
    """Runs one estimate, turns its failures into records, charges the clock, aborts on a run of failures. A fault
    of the machinery (:class:`~harness.errors.ServiceUnavailable`) is no evaluation's: it stops the run."""

    def __init__(
        self,
        estimator: Estimator,
        benchmark: Benchmark,
        clock: CostClock,
        max_failures: int,
        device: str,
        replay: Sequence[EvalRecord] = (),
        lookahead: Lookahead | None = None,
    ) -> None:
        self.replay = replay
        self.lookahead = lookahead
        self.estimator = estimator
        self.test_accuracy = benchmark.test_accuracy
        self.live = estimator.tags.live
        self.format = benchmark.space.format
        self.clock = clock
        self.max_failures = max_failures
        self.failures_in_a_row = 0
        self.device_of_work = device  # where a failed evaluation's time was spent
        self.cache_hits = 0  # estimates answered from a score cache

    def __call__(self, step: int, arch: Arch, guesses: Iterable[Arch] = ()) -> EvalRecord:
        """The record of evaluating ``arch`` at ``step``; ``guesses``: what is likely asked next, for a lookahead
        to evaluate meanwhile (taken lazily, only by a lookahead)."""
        stopping.check()
        if step < len(self.replay):
            return self._replayed(step, arch)
        t0 = time.perf_counter()
        elapsed = stopwatch(self.device_of_work)
        try:
            if self.lookahead is not None:
                est = self.lookahead.estimate(arch, self.estimator, guesses)
            else:
                est = self.estimator.estimate(arch)
            score, cost, device = est.score, est.cost_s, est.device
            self.cache_hits += est.cached
            reason = "" if math.isfinite(score) else f"non-finite score {score}"
        except ServiceUnavailable:
            raise  # the machinery failed (the score cache), not this evaluation: the run stops, resumable
        except Exception as exc:  # noqa: BLE001 - any failure of one evaluation is recorded, the run goes on
            score, cost, device = math.nan, elapsed() if self.live else 0.0, self.device_of_work
            reason = f"{type(exc).__name__}: {exc}".replace("\n", " ")
        wall = time.perf_counter() - t0
        self.clock.charge(cost)
        record = EvalRecord(
            step=step,
            arch=self.format(arch),
            score=math.nan if reason else float(score),
            cost_s=cost,
            clock_s=self.clock.elapsed_s,
            wall_s=wall,
            device=device,
            status=FAILED if reason else OK,
            reason=reason,
            test_acc=self.test_accuracy(arch),
        )
        self.failures_in_a_row = self.failures_in_a_row + 1 if reason else 0
        if reason and self.failures_in_a_row >= self.max_failures:
            raise RunAborted(
                f"{self.failures_in_a_row} evaluations in a row failed; the last one on {record.arch}: {reason}"
            )
        return record

    def _replayed(self, step: int, arch: Arch) -> EvalRecord:
        """The evaluation an interrupted run of the same config recorded at ``step`` (it asked the same
        architecture: the search is deterministic), charged what it cost then."""
        record = self.replay[step]
        if record.arch != self.format(arch):
            raise ConfigError(
                f"cannot resume: the interrupted run evaluated {record.arch} at step {step}, this one asks "
                f"{self.format(arch)}; the code changed since. Delete the run's folder to start it afresh"
            )
        self.clock.charge(record.cost_s)
        self.failures_in_a_row = 0 if record.status == OK else self.failures_in_a_row + 1
        return dataclasses.replace(record, clock_s=self.clock.elapsed_s)


def _fit(estimator: Estimator, context: EstimatorContext, resume: Sequence[EvalRecord]) -> float:
    """Fit the estimator; the cost to charge: what it measured, or what it cost the interrupted run being resumed
    (the first record's clock minus its cost), so that a resumed run's clock is the uninterrupted one's."""
    cost = estimator.fit(context)
    return resume[0].clock_s - resume[0].cost_s if resume else cost


def _lookup(benchmark: Benchmark, arch: Arch) -> tuple[float, float]:
    """(validation, test) accuracy of an answer; NaN for one a closed-set table does not hold."""
    try:
        return benchmark.query(arch).valid_acc, benchmark.test_accuracy(arch)
    except OutOfDomainError:
        return math.nan, math.nan


def _device(estimator: Estimator, context: EstimatorContext) -> str:
    """Where an estimator's work is charged: its context's device when it is live, the table otherwise."""
    return context.device if estimator.tags.live else "table"


def _costs(
    estimator: Estimator, records: list[EvalRecord], fit_cost: float, fit_device: str
) -> tuple[str, dict[str, DeviceCost]]:
    """The cost of a run per device, each in its own unit (a run whose scores partly come from a cache filled on
    another device mixes units), and the one unit of the total when there is a single device (else
    :attr:`CostUnit.MIXED`): (``cost_unit``, ``cost_by_device``)."""
    per: dict[str, DeviceCost] = {}
    for device, cost in [(fit_device, fit_cost), *((r.device, r.cost_s) for r in records)]:
        unit = cost_unit(device) if estimator.tags.live else CostUnit.RECORDED.value
        entry = per.setdefault(device, DeviceCost(unit))
        per[device] = dataclasses.replace(entry, cost_s=entry.cost_s + cost)
    for r in records:
        per[r.device] = dataclasses.replace(per[r.device], n_evals=per[r.device].n_evals + 1)
    used = {d: e for d, e in per.items() if e.n_evals or d == fit_device and fit_cost}
    units = {e.unit for e in used.values()} or {per[fit_device].unit}
    return (units.pop() if len(units) == 1 else CostUnit.MIXED.value), used


def search(
    benchmark: Benchmark,
    estimator: Estimator,
    searcher: Searcher,
    budget: Budget,
    context: EstimatorContext,
    *,
    progress: bool = False,
    max_consecutive_failures: int = 10,
    resume: Sequence[EvalRecord] = (),
    on_record: Callable[[EvalRecord], None] | None = None,
    lookahead: Lookahead | None = None,
) -> LoopResult[SearchSummary]:
    """Search under ``budget``; the final answer is ``searcher.recommend()`` or the best-scored evaluation.

    Args:
        benchmark: ground truth; its test accuracy is looked up once, for the final answer.
        estimator: scores architectures; fitted here (its fit cost is charged).
        searcher: asks and is told.
        budget: evaluations or clock seconds; an evaluation starts only while the budget is not spent.
        context: what the estimator may know.
        progress: show a progress bar of what stops the search: the searcher's own
            :attr:`~harness.interfaces.Searcher.goal` when it has one (as RMI-NAS's positives), else the budget.
        max_consecutive_failures: abort the run after this many failed evaluations in a row.
        resume: the records of an interrupted run of the same config: replayed (the same architectures are asked,
            their recorded scores told, their recorded costs charged, the fit charged what it cost then), so the
            search goes on exactly where it stopped.
        on_record: called with each record as soon as it is final (to append it to ``records.csv``).
        lookahead: a second process that evaluates the searcher's guess of its next ask
            (:meth:`~harness.interfaces.Searcher.speculate`) meanwhile; the search, its records and answer are
            those of one process.
    """
    if budget.max_cost_s is not None and not estimator.tags.live and not benchmark.has_train_cost:
        raise ConfigError(
            f"{benchmark.name} records no training time, so a table estimator cannot spend "
            f"budget.max_cost_s; use budget.max_evals=N (and budget.max_cost_s=null)"
        )
    t_start = time.perf_counter()
    clock = CostClock()
    fit_cost = _fit(estimator, context, resume)
    clock.charge(fit_cost, evaluation=False)
    device = _device(estimator, context)
    evaluate = _Evaluator(estimator, benchmark, clock, max_consecutive_failures, device, resume, lookahead)
    records: list[EvalRecord] = []
    best: Arch | None = None
    best_score = -math.inf
    by_cost = budget.max_cost_s is not None
    bar = _progress(budget.max_cost_s if by_cost else budget.max_evals, "s" if by_cost else "eval", progress)
    answer_test: dict[Arch, float] = {}
    with bar:
        while not clock.exhausted(budget):
            arch = searcher.ask()
            if arch is None:
                break
            record = evaluate(len(records), arch, searcher.speculate(arch))
            if record.status == OK:
                searcher.tell(arch, record.score)
                if record.score > best_score:
                    best, best_score = arch, record.score
            answer = searcher.recommend() or best
            if answer is not None:  # what the search would answer if it stopped now, for regret curves
                if answer not in answer_test:
                    answer_test[answer] = _lookup(benchmark, answer)[1]
                record = dataclasses.replace(
                    record, answer=benchmark.space.format(answer), answer_test_acc=answer_test[answer]
                )
            records.append(record)
            if on_record is not None:
                on_record(record)
            goal = searcher.goal
            if goal is not None:
                what, done, total = goal
                bar.unit, bar.total, bar.n = what, total, done
                bar.refresh()
            else:
                bar.update(record.cost_s if by_cost else 1)
    own = searcher.recommend()
    incumbent = own or best
    note: str | None = None
    why = searcher.no_answer_reason() if own is None else None
    if why is not None:
        note = (
            f"{type(searcher).__name__} gave no answer of its own within the budget ({why}); the answer is the "
            "best-scored evaluation"
        )
        log.warning("%s", note)
    valid = test = None
    if incumbent is not None:
        valid, test = _lookup(benchmark, incumbent)
        if math.isnan(valid):
            note = (
                f"the answer is not in {benchmark.name}'s table (a closed set: the vote of its members need not be "
                "one), so it has no accuracy here"
            )
    optimum_valid, optimum_test = benchmark.optimum()
    unit, by_device = _costs(estimator, records, fit_cost, device)
    summary = SearchSummary(
        incumbent=None if incumbent is None else benchmark.space.format(incumbent),
        incumbent_by="searcher" if own is not None else "best-scored evaluation",
        incumbent_score=best_score if incumbent is not None and incumbent == best else None,
        incumbent_valid_acc=valid,
        incumbent_test_acc=test,
        incumbent_note=note,
        optimum_valid_acc=optimum_valid,
        optimum_test_acc=optimum_test,
        n_evals=len(records),
        n_failed=sum(r.status != OK for r in records),
        fit_cost_s=fit_cost,
        total_cost_s=clock.elapsed_s,
        cost_unit=unit,
        cost_by_device=by_device,
        device=device,
        n_cache_hits=evaluate.cache_hits if estimator.tags.live else None,
        lookahead=lookahead.summary() if lookahead is not None else None,
        wall_s=time.perf_counter() - t_start,
    )
    return LoopResult(tuple(records), summary)


def rank_metrics(benchmark: Benchmark, archs: list[Arch], scores: np.ndarray, rng: np.random.Generator) -> RankMetrics:
    """How well ``scores`` order ``archs`` (each a point estimate and a 95% bootstrap interval over the sample):

    * Kendall tau and Spearman rho against validation and test accuracy, for the sample as a whole;
    * what a search depends on, the top of the sample: precision of the predicted top 5% and 10%, top-1 regret
      (the sample's best accuracy minus that of its best-scored member), nDCG at :func:`metrics.ndcg_cutoff`
      (VKDNW's top-heavy metric, ``ndcg_k`` members), and the **vote answer**
      (:func:`metrics.rminas_vote_preview`, which need not be in the sample) with its validation and test accuracy:
      what RMI-NAS would answer from these scores, without a searcher.
    """
    valid = np.array([benchmark.query(a).valid_acc for a in archs])
    test = np.array([benchmark.test_accuracy(a) for a in archs])
    ops = np.array([a.ops for a in archs], dtype=np.int64)
    k = metrics.ndcg_cutoff(len(archs))
    answers: dict[Arch, tuple[float, float]] = {}

    def vote_answer(i: np.ndarray) -> tuple[Arch, float, float]:
        arch = Arch(metrics.rminas_vote_preview(ops[i], scores[i], benchmark.space.choices))
        if arch not in answers:
            answers[arch] = _lookup(benchmark, arch)  # NaN when a closed-set table lacks the voted architecture
        return (arch, *answers[arch])

    def against(split: str, truth: np.ndarray) -> dict[str, Callable[[np.ndarray], float]]:
        return {
            f"kendall_tau_{split}": lambda i: metrics.kendall_tau(scores[i], truth[i]),
            f"top5_precision_{split}": lambda i: metrics.top_k_precision(scores[i], truth[i], 0.05),
            f"top10_precision_{split}": lambda i: metrics.top_k_precision(scores[i], truth[i], 0.1),
            f"top1_regret_{split}": lambda i: metrics.top1_regret(scores[i], truth[i]),
        }

    stats = against("test", test) | against("valid", valid)
    stats["vote_answer_valid_acc"] = lambda i: vote_answer(i)[1]
    stats["vote_answer_test_acc"] = lambda i: vote_answer(i)[2]
    # after the others, so that their intervals keep the resamples they had before nDCG was added
    stats["ndcg_test"] = lambda i: metrics.ndcg(scores[i], test[i], k)
    stats["ndcg_valid"] = lambda i: metrics.ndcg(scores[i], valid[i], k)
    everything = np.arange(len(archs))
    out: dict[str, Any] = {
        "spearman_rho_test": metrics.spearman_rho(scores, test),
        "spearman_rho_valid": metrics.spearman_rho(scores, valid),
        "vote_answer": benchmark.space.format(vote_answer(everything)[0]),
        "vote_voters": metrics.rminas_voters(len(archs)),
        "ndcg_k": k,
        "sample_best_valid_acc": float(valid.max()),
        "sample_best_test_acc": float(test.max()),
    }
    for name, stat in stats.items():
        out[name] = stat(everything)
        low, high = metrics.bootstrap_ci(stat, len(archs), rng)
        out[f"{name}_ci95"] = (low, high)
    return RankMetrics(**out)


def rank(
    benchmark: Benchmark,
    estimator: Estimator,
    archs: Iterable[Arch],
    context: EstimatorContext,
    *,
    ci_rng: np.random.Generator,
    progress: bool = False,
    max_consecutive_failures: int = 10,
    resume: Sequence[EvalRecord] = (),
    on_record: Callable[[EvalRecord], None] | None = None,
    lookahead: Lookahead | None = None,
) -> LoopResult[RankSummary]:
    """Score ``archs`` and compare with ground truth (full-schedule validation and test accuracy); ``resume``,
    ``on_record`` and ``lookahead`` (which evaluates the next architecture of the list meanwhile) as for
    :func:`search`.

    Reports :func:`rank_metrics` and the cost. Failed evaluations are recorded and left out of the metrics.
    """
    t_start = time.perf_counter()
    archs = list(archs)
    clock = CostClock()
    fit_cost = _fit(estimator, context, resume)
    clock.charge(fit_cost, evaluation=False)
    device = _device(estimator, context)
    evaluate = _Evaluator(estimator, benchmark, clock, max_consecutive_failures, device, resume, lookahead)
    records: list[EvalRecord] = []
    with _progress(len(archs), "arch", progress) as bar:
        for arch in archs:
            records.append(evaluate(len(records), arch, itertools.islice(archs, len(records) + 1, None)))
            if on_record is not None:
                on_record(records[-1])
            bar.update(1)
    ok = [(a, r.score) for a, r in zip(archs, records, strict=True) if r.status == OK]
    scored = rank_metrics(benchmark, [a for a, _ in ok], np.array([s for _, s in ok]), ci_rng) if len(ok) >= 2 else None
    costs = [r.cost_s for r in records]
    unit, by_device = _costs(estimator, records, fit_cost, device)
    summary = RankSummary(
        n_archs=len(archs),
        n_unique=len({benchmark.space.iso_key(a) for a in archs}),
        n_scored=len(ok),
        n_failed=len(archs) - len(ok),
        metrics=scored,
        fit_cost_s=fit_cost,
        total_cost_s=clock.elapsed_s,
        median_cost_per_arch_s=float(np.median(costs)) if costs else None,
        cost_unit=unit,
        cost_by_device=by_device,
        device=device,
        n_cache_hits=evaluate.cache_hits if estimator.tags.live else None,
        lookahead=lookahead.summary() if lookahead is not None else None,
        wall_s=time.perf_counter() - t_start,
    )
    return LoopResult(tuple(records), summary)
