"""From a composed config to written runs: build the plug-ins, run each seed, write its folder.

Kept apart from ``__main__`` so tests and notebooks can call :func:`run_job` on a composed config. The steps, in
the order they run: :func:`prepare` builds what every seed shares (a :class:`Job`); for each seed,
:func:`run_or_skip` skips a finished folder or takes the folder's lock and calls :func:`run_seed`, which resumes the
folder's records, runs the task's loop (:func:`run_task`) and writes ``summary.json`` (:func:`run_summary`).
Over 300 lines for a reason: these steps read top to bottom in the order they run. Building the plug-ins from
their config (devices, threads, the estimator's context) is :mod:`harness.plugins`; the score key is
:func:`harness.cache.score_key`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import functools
import logging
import platform
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from harness import identity, loop, paths, sampling, seeding, storage
from harness.budget import Budget
from harness.cache import CachedEstimator, ScoreCache, open_cache, score_key
from harness.config import check
from harness.errors import ConfigError, StateFileError
from harness.interfaces import Benchmark, Estimator, EstimatorContext
from harness.lookahead import Lookahead
from harness.plugins import build, estimator_context, plain, resolve_device, resolve_workers, set_torch_threads
from harness.summaries import LoopResult, RankSummary, RunInfo, SearchSummary, Where, run_dict
from harness.types import Arch, EvalRecord, Observation, RunResult

TASKS = ("search", "rank")
log = logging.getLogger("harness")


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


def _finished(folder: Path, config: dict[str, Any]) -> bool:
    """True if ``folder`` holds a finished run of ``config``; a finished run of another defining config
    (:func:`harness.identity.defining`) is a :class:`ConfigError`, so it is never reused nor overwritten."""
    if not storage.is_complete(folder):
        return False
    stored, current = identity.defining(storage.read_summary(folder).get("config", {})), identity.defining(config)
    if stored != current:
        diff = sorted(k for k in stored.keys() | current.keys() if stored.get(k) != current.get(k))
        raise ConfigError(
            f"{folder} holds a finished run of another config (differs in: {', '.join(diff)}); "
            "choose another experiment_name or results_dir, or delete that folder"
        )
    return True


@dataclasses.dataclass
class Job:
    """What every seed of a job shares, built once by :func:`prepare`."""

    cfg: DictConfig
    config: dict[str, Any]
    benchmark_name: str
    benchmark: Benchmark
    view: Callable[..., Observation]
    estimator_name: str
    make_estimator: Callable[..., Any]
    searcher_name: str | None
    make_searcher: Callable[..., Any] | None
    budget: Budget | None
    cache: ScoreCache | None
    #: a live estimator's :func:`~harness.cache.score_key` (what its scores are computed with), "" for a table or
    #: an estimator given as an object (not cached)
    score_key: str
    threads: int | None
    #: processes that evaluate the architectures (:func:`~harness.plugins.resolve_workers`)
    workers: int
    archs: list[Arch]
    draws: int


def prepare(cfg: DictConfig, given: Mapping[str, tuple[str, Callable[..., Any]]] | None = None) -> Job:
    """Check the task, build the plug-ins' factories, load the benchmark, open the score cache, set the threads,
    draw the rank sample: everything the seeds share.

    ``given``: plug-ins the Python API was handed as objects, ``{group: (name, factory)}``, used instead of
    building that group's node. An estimator given so has no config to key its scores by: it is not cached.
    """
    given = given or {}
    check(cfg)
    if cfg.task not in TASKS:
        raise ConfigError(f"task={cfg.task!r} is not a task; valid: {', '.join(TASKS)}")
    if cfg.n_seeds < 1 or cfg.seed < 0:
        raise ConfigError(f"seed must be >= 0 and n_seeds >= 1, got seed={cfg.seed}, n_seeds={cfg.n_seeds}")
    if cfg.task == "rank" and cfg.estimator_seed != 0:
        raise ConfigError(
            f"estimator_seed={cfg.estimator_seed} is not used by task=rank: there seed is the estimator's seed (one "
            f"run folder seed=<k> per estimator seed); set seed={cfg.estimator_seed} instead and leave estimator_seed "
            "at 0"
        )
    benchmark_name, make_benchmark = given.get("benchmark") or build(cfg.benchmark)
    benchmark = make_benchmark().load()
    estimator_name, make_estimator = given.get("estimator") or build(cfg.estimator)
    searcher_name, make_searcher = (
        (given.get("searcher") or build(cfg.searcher)) if cfg.task == "search" else (None, None)
    )
    if make_searcher is not None:  # a searcher checks its hyper-parameters when built: now, before any run writes
        make_searcher(benchmark.space, seeding.rng(cfg.seed, "searcher"))
    config = plain(cfg)
    probe = make_estimator()
    resolve_device(cfg.device, probe.tags.live)  # a device that is not there fails now, for every estimator
    keyed = probe.tags.live and "estimator" not in given
    cache = open_cache(cfg.score_cache, cfg.cache_dir) if keyed else None
    workers = resolve_workers(cfg, probe.tags.live, rebuildable=not given)
    threads = set_torch_threads(cfg, workers) if probe.tags.live else None
    archs, draws = (
        sampling.rank_sample(benchmark.space, cfg.archs, cfg.n_archs, cfg.sample_seed, cfg.split)
        if cfg.task == "rank"
        else ([], 0)
    )
    return Job(
        cfg=cfg,
        config=config,
        benchmark_name=benchmark_name,
        benchmark=benchmark,
        view=benchmark.validation(),
        estimator_name=estimator_name,
        make_estimator=make_estimator,
        searcher_name=searcher_name,
        make_searcher=make_searcher,
        budget=Budget(cfg.budget.max_evals, cfg.budget.max_cost_s) if cfg.task == "search" else None,
        cache=cache,
        score_key=score_key(cfg, probe, benchmark.space, threads) if keyed else "",
        threads=threads,
        workers=workers,
        archs=archs,
        draws=draws,
    )


def estimator_seed(cfg: DictConfig, seed: int) -> int:
    """The estimator's seed in the run of ``seed``: ``cfg.estimator_seed`` in task=search (fixed across searcher
    seeds, so their scores are shared in the cache), ``seed`` itself in task=rank, where the seeds of a job are
    repeats of the estimator (:func:`prepare` refuses an ``estimator_seed`` there)."""
    return seed if cfg.task == "rank" else int(cfg.estimator_seed)


def seed_config(job: Job, seed: int) -> dict[str, Any]:
    """The config of the run of ``seed`` alone, as its ``summary.json`` stores it (``n_seeds`` = 1)."""
    return {**job.config, "seed": seed, "n_seeds": 1}


def make_estimator(job: Job) -> Estimator:
    """A fresh estimator of ``job``, its scores kept in and reused from the job's score cache when it has one."""
    estimator: Estimator = job.make_estimator()
    return CachedEstimator(estimator, job.cache, job.score_key) if job.cache is not None else estimator


def run_task(
    job: Job,
    seed: int,
    estimator: Estimator,
    context: EstimatorContext,
    common: dict[str, Any],
) -> LoopResult[SearchSummary] | LoopResult[RankSummary]:
    """The task's loop for one seed: a search by a fresh searcher seeded by ``seed`` under the budget, or the
    ranking of the job's sample with bootstrap intervals seeded by ``seed``. ``common`` holds the keyword
    arguments both loops take (progress, failure limit, resumed records, record callback)."""
    if job.cfg.task == "search":
        assert job.make_searcher is not None and job.budget is not None
        searcher = job.make_searcher(job.benchmark.space, seeding.rng(seed, "searcher"))
        return loop.search(job.benchmark, estimator, searcher, job.budget, context, **common)
    ci_rng = seeding.rng(seed, "bootstrap")
    return loop.rank(job.benchmark, estimator, job.archs, context, ci_rng=ci_rng, **common)


def run_summary(
    job: Job,
    seed: int,
    result: LoopResult[SearchSummary] | LoopResult[RankSummary],
    n_resumed: int,
    started: str,
) -> dict[str, Any]:
    """The ``summary.json`` of a finished run of ``seed`` (:func:`harness.summaries.run_dict`): what ran, a
    :class:`~harness.summaries.RunInfo` (task, plug-ins, seeds, budget, versions, the defining config with its id
    and label from :mod:`harness.identity`, the draws of a rank sample, the threads of a live estimator, how many
    evaluations were resumed, when the run first started, and where its data and caches were on the machine that
    finished it), beside what the loop reported (``result.summary``, cache hits and lookahead included)."""
    cfg = job.cfg
    config = seed_config(job, seed)
    info = RunInfo(
        task=cfg.task,
        experiment=cfg.experiment_name,
        benchmark=job.benchmark_name,
        dataset=job.benchmark.dataset,
        searcher=job.searcher_name,
        estimator=job.estimator_name,
        seed=seed,
        estimator_seed=estimator_seed(cfg, seed),
        budget=job.config["budget"] if job.budget else None,
        test_split=job.benchmark.has_test_split,
        n_resumed=n_resumed,
        started_utc=started,
        versions=_versions(),
        config_id=identity.config_id(config),
        config_label=identity.label(config),
        config=identity.defining(config),
        where=Where(data_dir=str(paths.data_dir(cfg.data_dir)), cache_dir=str(paths.cache_dir(cfg.cache_dir))),
        n_draws=job.draws if isinstance(result.summary, RankSummary) else None,
        threads=job.threads,
    )
    return run_dict(info, result.summary)


def run(
    job: Job,
    seed: int,
    progress: bool,
    *,
    resume: list[EvalRecord] | None = None,
    on_record: Callable[[EvalRecord], None] | None = None,
    started: str | None = None,
) -> RunResult:
    """One seed of ``job``, in memory: a fresh estimator (answered from the job's score cache when it has one) in
    its context, the task's loop (:func:`run_task`), and the run's summary (:func:`run_summary`). ``resume`` and
    ``on_record`` as for :func:`harness.loop.search`; ``started``: when the run first started (default: now).
    :func:`run_seed` adds the run folder; the Python API calls this alone, writing nothing."""
    resume = resume or []
    started = started or dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    estimator = make_estimator(job)
    rng_seed, live = estimator_seed(job.cfg, seed), estimator.tags.live
    context = estimator_context(job.cfg, job.benchmark_name, job.benchmark, rng_seed, live, job.view)
    common: dict[str, Any] = {
        "progress": progress,
        "max_consecutive_failures": job.cfg.max_consecutive_failures,
        "resume": resume,
        "on_record": on_record,
    }
    # the worker starts before this process fits its estimator, so that both fit at once
    ahead = Lookahead(fitted_estimator, worker_config(job), rng_seed) if job.workers == 2 else None
    with ahead or contextlib.nullcontext():
        result = run_task(job, seed, estimator, context, {**common, "lookahead": ahead})
    return RunResult(result.records, run_summary(job, seed, result, len(resume), started))


def worker_config(job: Job) -> dict[str, Any]:
    """The config a lookahead worker builds its estimator from: the job's, resolved, on this job's threads."""
    return {**job.config, "threads": job.threads, "workers": 1}


def fitted_estimator(config: dict[str, Any], estimator_seed: int) -> Estimator:
    """A lookahead worker's estimator (:mod:`harness.lookahead`): the one a run of ``config`` evaluates with, built,
    cached and fitted the same way, with the same ``estimator_seed``."""
    job = prepare(OmegaConf.create(config))
    estimator = make_estimator(job)
    estimator.fit(estimator_context(job.cfg, job.benchmark_name, job.benchmark, estimator_seed, True, job.view))
    return estimator


def run_seed(job: Job, seed: int, folder: Path, progress: bool) -> Path:
    """Run (or resume) one seed of ``job`` in ``folder`` (:func:`run`): every evaluation is appended to
    ``records.csv`` as it finishes; ``summary.json`` is written last. ``started.json`` is written with the first
    evaluation, once the searcher is built and the estimator fitted, so a start that fails leaves nothing that
    stops the corrected command (its empty ``records.csv`` is removed too). The caller holds the folder's lock
    (:func:`run_or_skip`). Returns the folder."""
    config = identity.defining(seed_config(job, seed))
    kept, started = storage.start_run(folder, config, job.score_key)
    if kept:
        log.info("resuming %s from its %d recorded evaluations", folder, len(kept))
    started = started or dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    record_log = storage.RecordLog(folder, kept)
    under_way = bool(kept)

    def on_record(record: EvalRecord) -> None:
        nonlocal under_way
        if not under_way:
            storage.mark_started(folder, config, started, job.score_key)
            under_way = True
        record_log(record)

    try:
        result = run(job, seed, progress, resume=kept, on_record=on_record, started=started)
    finally:
        record_log.close()
        if not under_way:
            (folder / storage.RECORDS).unlink(missing_ok=True)
    return storage.write_run(folder, result)


def run_or_skip(job: Job, seed: int, folder: Path, progress: bool) -> Path:
    """Run, resume or skip one seed in ``folder``; returns the folder.

    A finished run of the same config is skipped (unless ``skip_done=false``, which runs it again); a finished run
    of another config is a :class:`ConfigError` either way, never reused nor overwritten. Otherwise the seed runs
    while this process holds the folder's lock (:func:`harness.storage.hold_run`); if another live process holds
    it, :class:`~harness.errors.RunFolderBusy` is raised and nothing is written here.
    """
    config = seed_config(job, seed)
    if _finished(folder, config) and job.cfg.skip_done:  # before the lock: a finished folder is only read
        log.info("skipped %s: already finished", folder)
        return folder
    with storage.hold_run(folder):
        if _finished(folder, config) and job.cfg.skip_done:  # finished by another process since the check
            log.info("skipped %s: already finished", folder)
            return folder
        return run_seed(job, seed, folder, progress)


def raise_problems(problems: list[StateFileError], n_seeds: int) -> None:
    """Raise one error (of the first problem's type) for the seeds of a job of ``n_seeds`` that could not run, if
    any. In a job of several seeds each was logged as it happened."""
    if problems:
        more = f" (and {len(problems) - 1} more, listed above)" if len(problems) > 1 else ""
        others = "; the other seeds ran" if n_seeds > len(problems) else ""
        raise type(problems[0])(f"{problems[0]}{more}{others}")


def run_job(cfg: DictConfig, job_dir: Path) -> list[Path]:
    """Run the task of ``cfg`` for each of its seeds and write one folder per seed; returns the folders.

    A seed whose folder holds a finished run of the same config is skipped (``skip_done``), an interrupted one
    resumed. A seed whose state files are unreadable, or whose folder another live process is running, is left
    alone (and logged, when the job has other seeds); the other seeds still run, and then one
    :class:`StateFileError` (a :class:`~harness.errors.RunFolderBusy` when the first such seed was busy) names the
    first and counts the rest.
    """
    job = prepare(cfg)
    seeds = range(cfg.seed, cfg.seed + cfg.n_seeds)
    folders: list[Path] = []
    problems: list[StateFileError] = []
    with loop._progress(len(seeds), "run", cfg.progress and len(seeds) > 1) as bar:
        for seed in seeds:
            folder = run_folder(job_dir, seed, cfg.seed)
            try:
                folders.append(run_or_skip(job, seed, folder, progress=cfg.progress and len(seeds) == 1))
            except StateFileError as exc:  # RunFolderBusy too
                if len(seeds) > 1:  # a job of one seed says it once, in the error raised below
                    log.error("seed %d: %s", seed, exc)
                problems.append(exc)
            bar.update(1)
    raise_problems(problems, len(seeds))
    return folders
