"""The top-level config schema: its dataclasses (typos and wrong types fail when a config is composed) and the
folder of the YAML configs. Below :mod:`harness.config` (which composes configs and registers the resolvers) so
that :mod:`harness.identity` can read the defaults without importing what registers its resolver."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import MISSING

#: the YAML configs: ``conf/`` of the checkout (``harness/conf`` links to it), or their copy in an installed package
CONF = (Path(__file__).parent / "conf").resolve()


@dataclass
class BudgetConfig:
    """Limits of one search run; null = no limit of that kind (at least one must be set)."""

    max_evals: int | None = None
    max_cost_s: float | None = None


@dataclass
class HarnessConfig:
    """Everything a job needs. Plug-in groups (benchmark, estimator, searcher) are free-form: their YAML files
    name a ``_target_`` and its parameters, plus ``name`` (= the file name)."""

    benchmark: Any = MISSING
    estimator: Any = MISSING
    searcher: Any = MISSING
    budget: BudgetConfig = field(default_factory=BudgetConfig)
    #: "search": a searcher with an estimator under the budget; "rank": score a fixed sample, report Kendall tau.
    task: str = "search"
    #: run seed, the name of its folder seed=<seed>: in task=search the searcher's randomness; in task=rank the
    #: estimator's seed (its repeats) and the bootstrap's, while sample_seed picks the architectures
    seed: int = 0
    #: run seeds seed .. seed+n_seeds-1 one after another in this process (same folders as a -m sweep over seed)
    n_seeds: int = 1
    #: task=search: the estimator's own seed, fixed across searcher seeds so its scores can be cached. task=rank
    #: takes the estimator's seed from seed and refuses any other value than 0 here (set seed= instead)
    estimator_seed: int = 0
    #: task=rank: number of pairwise non-isomorphic architectures, and the seed of that sample
    n_archs: int = 100
    sample_seed: int = 0
    #: task=rank: draw the sample from one fixed half of the space (halves by a hash of the architecture's
    #: isomorphism class): "select" to choose an estimator's settings, "report" to measure them on unseen
    #: architectures; "all" = the whole space
    split: str = "all"
    #: task=rank: score exactly these architecture strings instead of a random sample
    archs: list[str] | None = None
    #: torch device for live estimators: auto (CUDA when present), cpu, cuda, cuda:1, ...
    device: str = "auto"
    #: torch threads for live estimators; null = the CPUs this job was given (affinity mask, SLURM_CPUS_PER_TASK)
    #: shared among the joblib launcher's workers
    threads: int | None = None
    #: processes that evaluate a live estimator's architectures: 2 = a second one evaluates the next architecture
    #: of a rank sample, or the searcher's guess of its next ask, while this one evaluates the current one; the
    #: records and answers are those of 1 (harness/lookahead.py), only wall time drops. null = 2 on the CPU when
    #: this job has CPUs for two (threads=null then gives each half of them), else 1
    workers: int | None = None
    #: shared data folder; null = $HARNESS_DATA_DIR or ../shared/data next to the project
    data_dir: str | None = None
    #: derived caches; null = $HARNESS_CACHE_DIR or <project>/.cache
    cache_dir: str | None = None
    #: root of every run folder (see experiment_name)
    results_dir: str = "results"
    #: results go to results_dir/experiment_name/...; set by +experiment=NAME files, or directly
    experiment_name: str = "default"
    #: show a progress bar (per evaluation for one seed, per seed for n_seeds > 1)
    progress: bool = True
    #: skip a seed whose run folder already holds a finished run of the same config (resume an interrupted sweep);
    #: false runs it again. A run folder is named by its defining config (harness/identity.py), which leaves out
    #: data_dir, cache_dir, results_dir, experiment_name, score_cache, threads, workers, progress, n_seeds and
    #: skip_done
    skip_done: bool = True
    #: where live estimators' scores are kept and reused (a hit charges the recorded cost): "auto" =
    #: <cache_dir>/scores.sqlite, "off" = nowhere, an SQLite file's path (or sqlite:///PATH), or a PostgreSQL server,
    #: postgresql://user@host:port/db (pip install .[postgres]; quote a URL with "=" on the command line). SQLite is
    #: for the workers of one machine and not safe on a network filesystem: a cluster's workers share a server
    score_cache: str = "auto"
    #: stop a run (RunAborted) when this many evaluations in a row failed: the estimator is broken, not one arch
    max_consecutive_failures: int = 10
