"""Budget (the limits of a run) and CostClock (the only place cost is added up).

The clock is simulated: a table estimator charges the benchmark's recorded training seconds, a live estimator
what its :func:`stopwatch` measured (CPU seconds on a CPU, wall seconds on an accelerator). An evaluation starts
only while the budget is not spent; the one that crosses the limit still counts (its cost was spent before anyone
could know it crosses).
"""

from __future__ import annotations

import enum
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from harness.errors import ConfigError


@dataclass(frozen=True, slots=True)
class Budget:
    """Limits of a search run; ``None`` means no limit of that kind.

    Attributes:
        max_evals: number of evaluations.
        max_cost_s: seconds on the cost clock (recorded benchmark seconds or what live estimators measured).
    """

    max_evals: int | None = None
    max_cost_s: float | None = None

    def __post_init__(self) -> None:
        if self.max_evals is not None and self.max_evals <= 0:
            raise ConfigError(f"budget.max_evals must be a positive integer or null, got {self.max_evals}")
        if self.max_cost_s is not None and not (self.max_cost_s > 0 and math.isfinite(self.max_cost_s)):
            raise ConfigError(f"budget.max_cost_s must be a positive number of seconds or null, got {self.max_cost_s}")
        if self.max_evals is None and self.max_cost_s is None:
            raise ConfigError("the budget is unlimited: set budget.max_evals or budget.max_cost_s")


class CostClock:
    """Adds up the cost of a run. ``elapsed_s`` is simulated seconds; ``n_evals`` counts evaluations."""

    __slots__ = ("elapsed_s", "n_evals")

    def __init__(self) -> None:
        self.elapsed_s = 0.0
        self.n_evals = 0

    def charge(self, seconds: float, *, evaluation: bool = True) -> None:
        """Add ``seconds`` (finite, >= 0) to the clock; ``evaluation=False`` for one-time work such as ``fit``."""
        if not (seconds >= 0.0 and math.isfinite(seconds)):
            raise ValueError(f"cost must be a finite number of seconds >= 0, got {seconds}")
        self.elapsed_s += seconds
        if evaluation:
            self.n_evals += 1

    def exhausted(self, budget: Budget) -> bool:
        """True when no further evaluation may start under ``budget``."""
        if budget.max_evals is not None and self.n_evals >= budget.max_evals:
            return True
        return budget.max_cost_s is not None and self.elapsed_s >= budget.max_cost_s


def stopwatch(device: str) -> Callable[[], float]:
    """Start the clock a live estimator charges on ``device``; calling the result gives the seconds since.

    On a CPU it counts the process's CPU seconds (all threads, user + system): another job's load delays the work
    but adds little to them at a fixed thread count, whereas wall seconds grow with the load. On an accelerator it
    counts wall seconds, since CPU time does not see the device's work.
    """
    now = time.process_time if device.startswith("cpu") else time.perf_counter
    start = now()
    return lambda: now() - start


class CostUnit(enum.StrEnum):
    """What a run's costs count, as ``summary.json`` and ``records.csv`` readers name it (``cost_unit``, and each
    device's ``unit`` in ``cost_by_device``). A measured unit names its device: :meth:`on` writes it
    (``"CPU seconds of the process on cpu"``, ``"wall seconds on cuda"``), :meth:`of` reads any written unit back."""

    #: a table estimator: the seconds the benchmark recorded for training
    RECORDED = "recorded benchmark training seconds"
    #: a live estimator on a CPU: the process's CPU seconds (:func:`stopwatch`)
    CPU = "CPU seconds of the process"
    #: a live estimator on an accelerator: wall seconds (:func:`stopwatch`)
    WALL = "wall seconds"
    #: a run charged on several devices in different units: see its ``cost_by_device``
    MIXED = "mixed: see cost_by_device"

    def on(self, device: str) -> str:
        """The unit as written for costs charged on ``device``: a measured unit names it, the others do not."""
        return f"{self.value} on {device}" if self in (CostUnit.CPU, CostUnit.WALL) else self.value

    @classmethod
    def of(cls, written: str) -> CostUnit:
        """The unit of a written ``cost_unit``; ``"measured wall seconds on <device>"`` is how runs written before
        the CPU-second clock named wall seconds. A :class:`ValueError` for any other text."""
        device = written.rpartition(" on ")[2]
        for unit in cls:
            if written in (unit.value, unit.on(device)):
                return unit
        if written.startswith("measured wall seconds on "):
            return cls.WALL
        raise ValueError(f"{written!r} is not a cost unit the harness writes")

    @property
    def measured(self) -> bool:
        """Whether the cost was measured in this process (a live estimator), not recorded by the benchmark."""
        return self is not CostUnit.RECORDED


def cost_unit(device: str) -> str:
    """What :func:`stopwatch` counts on ``device``, as the records and summaries name it."""
    return (CostUnit.CPU if device.startswith("cpu") else CostUnit.WALL).on(device)
