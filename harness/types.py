"""Typed, frozen values that flow between the loop, the plug-ins and storage."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any

#: Status of one evaluation in ``records.csv``.
OK = "ok"
FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Arch:
    """An architecture: one choice index per decision of its search space (hashable, comparable).

    The search space that made it gives it meaning (``space.format(arch)``); an ``Arch`` carries no behaviour.
    """

    ops: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Observation:
    """What a benchmark table reveals to an estimator about one architecture: validation numbers only.

    Attributes:
        valid_acc: validation accuracy (%) at the requested fidelity.
        train_cost_s: recorded training time (seconds of the original benchmark run) for that fidelity; NaN if the
            benchmark does not record it.
        fidelity: the training schedule this observation stands for (e.g. ``"200ep"``, ``"12ep"``).
    """

    valid_acc: float
    train_cost_s: float
    fidelity: str


@dataclass(frozen=True, slots=True)
class Estimate:
    """An estimator's answer for one architecture. Higher ``score`` means predicted better.

    Attributes:
        score: the predicted quality.
        cost_s: seconds to charge to the cost clock for this estimate.
        device: where the cost was incurred: ``"table"`` for recorded benchmark time, else a torch device name.
        cached: answered from a score cache (:class:`~harness.cache.CachedEstimator`), not computed now.
    """

    score: float
    cost_s: float
    device: str = "table"
    cached: bool = False


@dataclass(frozen=True, slots=True)
class EvalRecord:
    """One row of ``records.csv``: one evaluation the loop made.

    Attributes:
        step: 0-based evaluation counter.
        arch: the architecture string (``space.format``).
        score: the estimator's score (NaN when the evaluation failed).
        cost_s: seconds charged for this evaluation.
        clock_s: the cost clock after this evaluation.
        wall_s: real seconds the evaluation took in this process.
        device: where the cost was incurred (see :class:`Estimate`).
        status: ``"ok"`` or ``"failed"``.
        reason: why it failed; empty when ok.
        test_acc: the benchmark's test accuracy of ``arch``, written by the loop for the report (regret curves,
            re-analysis of rankings); no plug-in ever sees it.
        answer: what the search would answer if it stopped here (the searcher's own recommendation, else the
            best-scored evaluation so far); empty for a rank task or before any success.
        answer_test_acc: the test accuracy of ``answer``, for regret curves (written by the loop, like ``test_acc``).
    """

    step: int
    arch: str
    score: float
    cost_s: float
    clock_s: float
    wall_s: float
    device: str
    status: str = OK
    reason: str = ""
    test_acc: float = math.nan
    answer: str = ""
    answer_test_acc: float = math.nan

    @property
    def ok(self) -> bool:
        return self.status == OK and math.isfinite(self.score)


#: Column order of ``records.csv``.
RECORD_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(EvalRecord))


@dataclass(frozen=True)
class RunResult:
    """Everything one run produced; ``storage.write_run`` turns it into ``records.csv`` + ``summary.json``.

    Attributes:
        records: the evaluations in order.
        summary: what ``summary.json`` holds (or will): built once by :func:`harness.experiment.run_summary` from
            the loop's typed record (:mod:`harness.summaries`) and what ran (config, plug-ins, seeds, versions), or
            read back from a run folder.
    """

    records: tuple[EvalRecord, ...]
    summary: dict[str, Any] = field(default_factory=dict)
