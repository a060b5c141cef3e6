"""nas-harness: estimators x searchers over real NAS benchmark tables.

The Python API (:mod:`harness.api`, docs/api.md), as small as the command line ``python -m harness``::

    import harness

    ranked = harness.rank("nb201", "synflow", n_archs=10)
    found = harness.search("nb201", "train12", harness.searcher("rea", population_size=20), max_evals=50)

The names below are imported when first used, so ``import harness.types`` stays as light as that module.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from harness.api import Plugin, benchmark, estimator, load, rank, search, searcher, write
    from harness.errors import ConfigError, HarnessError
    from harness.interfaces import Benchmark, Estimator, EstimatorContext, Searcher, SearchSpace
    from harness.types import Arch, Estimate, EvalRecord, RunResult

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
    """A public name, imported when first used."""
    if name not in __all__:
        raise AttributeError(f"module 'harness' has no attribute {name!r}")
    from harness import api, errors, interfaces, types

    return next(getattr(module, name) for module in (api, errors, interfaces, types) if hasattr(module, name))


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
