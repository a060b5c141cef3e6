"""From a composed config to written runs: build the plug-ins, run each seed, write its folder.

Kept apart from ``__main__`` so tests and notebooks can call :func:`run_job` on a composed config.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import logging
import os
import platform
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from harness import loop, seeding, storage
from harness.budget import Budget
from harness.cache import CachedEstimator, estimator_key, open_cache
from harness.config import HarnessConfig
from harness.errors import ConfigError
from harness.interfaces import Benchmark, Estimator, EstimatorContext, SearchSpace
from harness.types import Arch, RunResult

TASKS = ("search", "rank")
log = logging.getLogger("harness")


def build(node: DictConfig) -> tuple[str, Callable[..., Any]]:
    """Instantiate one plug-in config as a factory (``_partial_``): returns (its ``name``, the factory).

    The factory takes what only the run knows (a searcher's space and rng) and gives a fresh object per call.
    """
    from hydra.utils import instantiate

    params = OmegaConf.to_container(node, resolve=True)
    assert isinstance(params, dict)
    name = params.pop("name")
    return str(name), instantiate({**params, "_partial_": True})


def resolve_device(device: str, live: bool) -> str:
    """``auto`` -> ``cuda`` when a GPU is present, else ``cpu``; torch is imported only for live estimators."""
    if device != "auto":
        return device
    if not live:
        return "cpu"
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


@functools.cache
def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in ("nas-harness", "numpy", "hydra-core", "torch"):
        if pkg == "torch" and "torch" not in sys.modules:
            continue
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def run_folder(job_dir: Path, seed: int, first_seed: int) -> Path:
    """Where the run of ``seed`` goes: the job's folder, or its ``seed=<k>`` sibling for the other seeds."""
    return job_dir if seed == first_seed else job_dir.parent / f"seed={seed}"


#: settings that do not change what a run computes; a finished run is re-used whatever their values
_NOT_DEFINING = ("progress", "n_seeds", "skip_done", "score_cache", "data_dir", "cache_dir", "results_dir", "threads")


def _defining(config: dict[str, Any]) -> dict[str, Any]:
    """The settings of ``config`` that define what a run computes; a top-level setting the config lacks (a run
    written before that setting existed) counts as its default."""
    defaults = {f.name: f.default for f in dataclasses.fields(HarnessConfig) if f.default is not dataclasses.MISSING}
    return {k: v for k, v in {**defaults, **config}.items() if k not in _NOT_DEFINING}


def _finished(folder: Path, config: dict[str, Any]) -> bool:
    """True if ``folder`` holds a finished run of ``config``; a finished run of another config is an error."""
    if not storage.is_complete(folder):
        return False
    stored, current = _defining(storage.read_summary(folder).get("config", {})), _defining(config)
    if stored != current:
        diff = sorted(k for k in stored.keys() | current.keys() if stored.get(k) != current.get(k))
        raise ConfigError(
            f"{folder} holds a finished run of another config (differs in: {', '.join(diff)}); "
            "choose another experiment_name or results_dir, or delete that folder"
        )
    return True


def rank_sample(cfg: DictConfig, space: SearchSpace) -> tuple[list[Arch], int]:
    """The architectures a rank job scores (``archs``, else the ``split`` sample of ``n_archs`` of ``sample_seed``)
    and the number of draws that took."""
    if cfg.archs:
        return [space.parse(text) for text in cfg.archs], len(cfg.archs)
    return loop.sample_distinct(space, cfg.n_archs, seeding.rng(cfg.sample_seed, "rank-sample"), cfg.split)


def estimator_context(
    cfg: DictConfig, benchmark_name: str, benchmark: Benchmark, estimator_seed: int, live: bool
) -> EstimatorContext:
    """What an estimator of this job sees: its space, data, device and seeded rng."""
    return EstimatorContext(
        space=benchmark.space,
        benchmark=benchmark_name,
        dataset=benchmark.dataset,
        query=benchmark.query,
        rng=seeding.rng(estimator_seed, "estimator"),
        seed=estimator_seed,
        device=resolve_device(cfg.device, live),
        data_dir=cfg.data_dir,
        cache_dir=cfg.cache_dir,
    )


def score_key(cfg: DictConfig, estimator: Estimator, space: SearchSpace) -> str:
    """The score cache's key for this job's estimator (:func:`harness.cache.estimator_key`)."""
    params = OmegaConf.to_container(cfg.estimator, resolve=True)
    assert isinstance(params, dict)
    device = resolve_device(cfg.device, estimator.tags.live)
    return estimator_key(params, estimator, space=space, device=device, data_dir=cfg.data_dir)


def default_threads() -> int:
    """The CPUs this job was given: its affinity mask, capped by ``$SLURM_CPUS_PER_TASK``, shared among the
    workers of Hydra's joblib launcher when it runs this job (``n_jobs``, -1 = one per CPU)."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    slurm = os.environ.get("SLURM_CPUS_PER_TASK", "")
    if slurm.isdigit() and int(slurm) > 0:
        cpus = min(cpus, int(slurm))
    workers = 1
    if HydraConfig.initialized():
        launcher = HydraConfig.get().launcher
        if "joblib" in str(launcher.get("_target_", "")):
            n_jobs = int(launcher.get("n_jobs", -1))
            workers = cpus if n_jobs < 0 else max(1, min(n_jobs, cpus))
    return max(1, cpus // workers)


def set_torch_threads(cfg: DictConfig) -> int:
    """Give torch ``cfg.threads`` intra-op threads (``null``: :func:`default_threads`) and return the number."""
    import torch

    threads = cfg.threads if cfg.threads is not None else default_threads()
    if threads < 1:
        raise ConfigError(f"threads must be >= 1 (or null: the CPUs this job was given), got {threads}")
    torch.set_num_threads(int(threads))
    return int(threads)


def run_job(cfg: DictConfig, job_dir: Path) -> list[Path]:
    """Run the task of ``cfg`` for each of its seeds and write one folder per seed; returns the folders."""
    if cfg.task not in TASKS:
        raise ConfigError(f"task={cfg.task!r} is not a task; valid: {', '.join(TASKS)}")
    if cfg.n_seeds < 1 or cfg.seed < 0:
        raise ConfigError(f"seed must be >= 0 and n_seeds >= 1, got seed={cfg.seed}, n_seeds={cfg.n_seeds}")
    benchmark_name, make_benchmark = build(cfg.benchmark)
    benchmark = make_benchmark().load()
    estimator_name, make_estimator = build(cfg.estimator)
    searcher_name, make_searcher = build(cfg.searcher) if cfg.task == "search" else (None, None)
    config = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(config, dict)
    probe = make_estimator()
    cache = open_cache(cfg.score_cache, cfg.cache_dir) if probe.tags.live else None
    cache_key = score_key(cfg, probe, benchmark.space) if cache is not None else ""
    threads = set_torch_threads(cfg) if probe.tags.live else None
    budget = Budget(cfg.budget.max_evals, cfg.budget.max_cost_s) if cfg.task == "search" else None
    if cfg.task == "rank":
        archs, draws = rank_sample(cfg, benchmark.space)
    seeds = range(cfg.seed, cfg.seed + cfg.n_seeds)
    folders = []
    bar = loop._progress(len(seeds), "run", cfg.progress and len(seeds) > 1)
    with bar:
        for seed in seeds:
            folder = run_folder(job_dir, seed, cfg.seed)
            if cfg.skip_done and _finished(folder, {**config, "seed": seed, "n_seeds": 1}):
                log.info("skipped %s: already finished", folder)
                folders.append(folder)
                bar.update(1)
                continue
            estimator = make_estimator()
            if cache is not None:
                estimator = CachedEstimator(estimator, cache, cache_key)
            estimator_seed = seed if cfg.task == "rank" else cfg.estimator_seed
            context = estimator_context(cfg, benchmark_name, benchmark, estimator_seed, estimator.tags.live)
            progress = cfg.progress and len(seeds) == 1
            started = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
            if cfg.task == "search":
                assert make_searcher is not None and budget is not None
                searcher = make_searcher(benchmark.space, seeding.rng(seed, "searcher"))
                result = loop.search(
                    benchmark,
                    estimator,
                    searcher,
                    budget,
                    context,
                    progress=progress,
                    max_consecutive_failures=cfg.max_consecutive_failures,
                )
            else:
                result = loop.rank(
                    benchmark,
                    estimator,
                    archs,
                    context,
                    ci_rng=seeding.rng(seed, "bootstrap"),
                    progress=progress,
                    max_consecutive_failures=cfg.max_consecutive_failures,
                )
                result.summary["n_draws"] = draws
            if isinstance(estimator, CachedEstimator):
                result.summary["n_cache_hits"] = estimator.hits
            if threads is not None:
                result.summary["threads"] = threads
            summary = {
                "task": cfg.task,
                "experiment": cfg.experiment_name,
                "benchmark": benchmark_name,
                "dataset": benchmark.dataset,
                "searcher": searcher_name,
                "estimator": estimator_name,
                "seed": seed,
                "estimator_seed": estimator_seed,
                "budget": config["budget"] if budget else None,
                **result.summary,
                "started_utc": started,
                "versions": _versions(),
                "config": {**config, "seed": seed, "n_seeds": 1},
            }
            folders.append(storage.write_run(folder, RunResult(result.records, summary)))
            bar.update(1)
    return folders
