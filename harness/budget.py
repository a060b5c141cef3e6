"""Budget (the limits of a run) and CostClock (the only place cost is added up).

The clock is simulated: a table estimator charges the benchmark's recorded training seconds, a live estimator
what its :func:`stopwatch` measured (CPU seconds on a CPU, wall seconds on an accelerator). An evaluation starts
only while the budget is not spent; the one that crosses the limit still counts (its cost was spent before anyone
could know it crosses).
"""

from __future__ import annotations

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


def cost_unit(device: str) -> str:
    """What :func:`stopwatch` counts on ``device``, as the records and summaries name it."""
    return f"CPU seconds of the process on {device}" if device.startswith("cpu") else f"wall seconds on {device}"
