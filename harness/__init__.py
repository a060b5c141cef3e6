"""nas-harness: estimators x searchers over real NAS benchmark tables.

The Python API (:mod:`harness.api`, docs/api.md), as small as the command line ``python -m harness``::

    import harness

    ranked = harness.rank("nb201", "synflow", n_archs=10)
    found = harness.search("nb201", "train12", harness.searcher("rea", population_size=20), max_evals=50)

The names below are imported when first used, so ``import harness.types`` stays as light as that module.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from harness.api import Plugin, benchmark, estimator, load, rank, search, searcher, write
    from harness.errors import ConfigError, HarnessError
    from harness.interfaces import Benchmark, Estimator, EstimatorContext, Searcher, SearchSpace
    from harness.types import Arch, Estimate, EvalRecord, RunResult

#: each public name and the module it comes from
_FROM = {
    **dict.fromkeys(("Plugin", "benchmark", "estimator", "load", "rank", "search", "searcher", "write"), "harness.api"),
    **dict.fromkeys(("ConfigError", "HarnessError"), "harness.errors"),
    **dict.fromkeys(("Benchmark", "Estimator", "EstimatorContext", "SearchSpace", "Searcher"), "harness.interfaces"),
    **dict.fromkeys(("Arch", "Estimate", "EvalRecord", "RunResult"), "harness.types"),
}

__all__ = [
    "Arch",
    "Benchmark",
    "ConfigError",
    "Estimate",
    "Estimator",
    "EstimatorContext",
    "EvalRecord",
    "HarnessError",
    "Plugin",
    "RunResult",
    "SearchSpace",
    "Searcher",
    "benchmark",
    "estimator",
    "load",
    "rank",
    "search",
    "searcher",
    "write",
]


def __getattr__(name: str) -> Any:
    if name in _FROM:
        return getattr(importlib.import_module(_FROM[name]), name)
    raise AttributeError(f"module 'harness' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
