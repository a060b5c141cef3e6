"""The Python API: what ``python -m harness`` does, from Python (re-exported by ``import harness``)::

    import harness

    result = harness.rank("nb201", harness.estimator("synflow", batch_size=32), n_archs=10)
    result.summary["kendall_tau_test"]

A plug-in is named as on the command line, configured with keyword overrides of its YAML defaults
(:func:`benchmark`, :func:`estimator`, :func:`searcher`), or given as the user's own object. Defaults and checks
are the CLI's own: the config is composed by :func:`harness.config.compose` and the plug-ins built by
:func:`harness.plugins.build` (an unknown name or key, a value of the wrong kind: the CLI's one-line
:class:`~harness.errors.ConfigError`). A run is the CLI's: :func:`harness.experiment.prepare` and
:func:`harness.experiment.run`, so the same loop, seeds, records, summary, threads, score cache and honesty rules
(an estimator sees validation numbers only, a searcher only what it is told).

Nothing is written unless asked: ``results_dir=`` writes the CLI's run folders (a finished one is skipped, an
interrupted one resumed), :func:`write` writes one result into a folder you name.

Own objects: an :class:`~harness.interfaces.Estimator` or :class:`~harness.interfaces.Searcher` subclass (built
as the CLI builds a plug-in: an estimator with no argument, a searcher with the space and the run's seeded rng) or
instance (used as it is: a searcher instance keeps its own rng, so ``seed`` does not reach it), and a loaded
:class:`~harness.interfaces.Benchmark`. Their parameters are not known, so their runs are recorded by class name
and import path only: an own estimator's scores are not cached (the score cache is keyed by a config), and
``results_dir=`` (whose folders are named, skipped and resumed by config) is refused for them; use :func:`write`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from harness import experiment, identity, storage
from harness.config import check_secrets, compose, experiment_folder, one_line
from harness.errors import ConfigError
from harness.interfaces import Benchmark, Estimator, Searcher
from harness.plugins import build, plain
from harness.types import RunResult


@dataclass(frozen=True)
class Plugin:
    """A plug-in named as on the command line (``group=name``) with keyword overrides of its YAML defaults, checked
    when made (:func:`benchmark`, :func:`estimator`, :func:`searcher`)."""

    group: str
    name: str
    overrides: Mapping[str, Any] = field(default_factory=dict)

    @property
    def params(self) -> dict[str, Any]:
        """Its config: the YAML defaults with the overrides, resolved with the top-level defaults."""
        return plain(_node(self))

    def make(self, *args: Any) -> Any:
        """A fresh object, as a run builds it: a benchmark loaded, an estimator unfitted, a searcher from
        ``(space, rng)``."""
        made = build(_node(self))[1](*args)
        return made.load() if self.group == "benchmark" else made


def benchmark(name: str = "nb201", **overrides: Any) -> Plugin:
    """The benchmark ``conf/benchmark/<name>.yaml``, e.g. ``benchmark("nb201", dataset="cifar100")``."""
    return _plugin("benchmark", name, overrides)


def estimator(name: str, **overrides: Any) -> Plugin:
    """The estimator ``conf/estimator/<name>.yaml``, e.g. ``estimator("synflow", batch_size=32)``."""
    return _plugin("estimator", name, overrides)


def searcher(name: str, **overrides: Any) -> Plugin:
    """The searcher ``conf/searcher/<name>.yaml``, e.g. ``searcher("rea", population_size=20)``."""
    return _plugin("searcher", name, overrides)


#: a benchmark as the API takes it: its name, :func:`benchmark`, or a :class:`Benchmark` object
BenchmarkLike = str | Plugin | Benchmark
#: an estimator: its name, :func:`estimator`, an :class:`Estimator` subclass or instance
EstimatorLike = str | Plugin | type[Estimator] | Estimator
#: a searcher: its name, :func:`searcher`, a :class:`Searcher` subclass or instance
SearcherLike = str | Plugin | type[Searcher] | Searcher


def rank(
    benchmark: BenchmarkLike,
    estimator: EstimatorLike,
    archs: Sequence[str] | None = None,
    *,
    n_archs: int = 100,
    sample_seed: int = 0,
    split: str = "all",
    seed: int = 0,
    device: str = "auto",
    threads: int | None = None,
    data_dir: str | None = None,
    cache_dir: str | None = None,
    score_cache: str = "auto",
    max_consecutive_failures: int = 10,
    progress: bool = False,
    results_dir: str | os.PathLike[str] | None = None,
    experiment_name: str = "default",
    skip_done: bool = True,
) -> RunResult:
    """Score ``archs`` (architecture strings, as ``archs=`` on the command line) or a sample of ``n_archs``
    (``sample_seed``, ``split``) and compare with ground truth: ``python -m harness task=rank``. ``seed`` is the
    estimator's seed and the bootstrap's. The other settings are the CLI's (``harness/schema.py``); ``progress``
    shows a bar. Returns the records and the summary; writes the CLI's run folder only under ``results_dir``."""
    settings = {
        "archs": list(archs) if archs is not None else None,
        "n_archs": n_archs,
        "sample_seed": sample_seed,
        "split": split,
        "seed": seed,
        "device": device,
        "threads": threads,
        "data_dir": data_dir,
        "cache_dir": cache_dir,
        "score_cache": score_cache,
        "max_consecutive_failures": max_consecutive_failures,
        "experiment_name": experiment_name,
        "skip_done": skip_done,
    }
    return _run("rank", {"benchmark": benchmark, "estimator": estimator}, settings, results_dir, progress)


def search(
    benchmark: BenchmarkLike,
    estimator: EstimatorLike,
    searcher: SearcherLike,
    *,
    max_evals: int | None = None,
    max_cost_s: float | None = None,
    seed: int = 0,
    estimator_seed: int = 0,
    device: str = "auto",
    threads: int | None = None,
    data_dir: str | None = None,
    cache_dir: str | None = None,
    score_cache: str = "auto",
    max_consecutive_failures: int = 10,
    progress: bool = False,
    results_dir: str | os.PathLike[str] | None = None,
    experiment_name: str = "default",
    skip_done: bool = True,
) -> RunResult:
    """Search under a budget of ``max_evals`` evaluations and/or ``max_cost_s`` charged seconds (neither: the CLI's
    default budget, ``conf/budget/time12k.yaml``): ``python -m harness task=search``. ``seed`` seeds the searcher,
    ``estimator_seed`` the estimator. The other settings as for :func:`rank`."""
    settings: dict[str, Any] = {
        "seed": seed,
        "estimator_seed": estimator_seed,
        "device": device,
        "threads": threads,
        "data_dir": data_dir,
        "cache_dir": cache_dir,
        "score_cache": score_cache,
        "max_consecutive_failures": max_consecutive_failures,
        "experiment_name": experiment_name,
        "skip_done": skip_done,
    }
    if max_evals is not None or max_cost_s is not None:
        settings["budget"] = {"max_evals": max_evals, "max_cost_s": max_cost_s}
    plugins = {"benchmark": benchmark, "estimator": estimator, "searcher": searcher}
    return _run("search", plugins, settings, results_dir, progress)


def write(result: RunResult, folder: str | os.PathLike[str]) -> Path:
    """Write ``result`` into ``folder`` (created) as a run folder: ``records.csv`` and ``summary.json``
    (:func:`harness.storage.write_run`). A folder that holds a finished run is refused, never overwritten."""
    if storage.is_complete(folder):
        raise ConfigError(f"{folder} holds a finished run; choose another folder, or delete that one")
    return storage.write_run(folder, result)


def load(folder: str | os.PathLike[str]) -> RunResult:
    """The records and summary of a finished run folder (written by the CLI, ``results_dir=`` or :func:`write`)."""
    if not storage.is_complete(folder):
        raise ConfigError(f"{folder} holds no finished run (no {storage.SUMMARY}); give a run's seed=<k> folder")
    records = storage.read_partial_records(Path(folder) / storage.RECORDS)
    return RunResult(tuple(records), storage.read_summary(folder))


# ------------------------------------------------------------------------------------------------ composing


def _compose(overrides: list[str]) -> DictConfig:
    """:func:`harness.config.compose`, its Hydra errors (an unknown plug-in name) as the CLI's one line."""
    try:
        return compose(overrides)
    except (HydraException, OmegaConfBaseException) as exc:
        raise ConfigError(one_line(exc)) from None


def _set(cfg: DictConfig, key: str, value: Any, merge: bool = True) -> None:
    """Set the dotted ``key`` of ``cfg`` (a dict value merged into the node there, as ``key.sub=`` would be, unless
    not ``merge``); a value the schema refuses is the CLI's one-line error."""
    try:
        with open_dict(cfg):
            OmegaConf.update(cfg, key, value, merge=merge, force_add=True)
    except OmegaConfBaseException as exc:
        raise ConfigError(f"{key}={value!r}: {one_line(exc)}") from None


def _node(plugin: Plugin) -> DictConfig:
    """The config node of ``plugin``: its YAML file with its overrides."""
    cfg = _compose([f"{plugin.group}={plugin.name}"])
    for key, value in plugin.overrides.items():
        _set(cfg, f"{plugin.group}.{key}", value)
    node = cfg[plugin.group]
    assert isinstance(node, DictConfig)
    return node


def _plugin(group: str, name: str, overrides: Mapping[str, Any]) -> Plugin:
    plugin = Plugin(group, name, dict(overrides))
    build(_node(plugin))  # an unknown name or key, a value of the wrong kind: refused now
    return plugin


#: the base class of an own object, per group (a benchmark is a protocol: any object with its members)
_BASES: dict[str, type] = {"estimator": Estimator, "searcher": Searcher}


def _own(group: str, value: object) -> tuple[str, Callable[..., Any]] | None:
    """(name, factory) of a plug-in given as an object, None for a name or a :class:`Plugin`; a
    :class:`ConfigError` for anything else."""
    if isinstance(value, str | Plugin):
        if isinstance(value, Plugin) and value.group != group:
            raise ConfigError(f"{group}= got the {value.group} {value.name}; use harness.{group}(...)")
        return None
    base = _BASES.get(group)
    if base is not None and isinstance(value, type) and issubclass(value, base):
        return value.__name__, value
    if base is not None and isinstance(value, base) or group == "benchmark" and isinstance(value, Benchmark):
        name = str(value.name) if isinstance(value, Benchmark) else type(value).__name__
        return name, lambda *_: value
    kind = f"{'an' if group == 'estimator' else 'a'} {group}"
    objects = f"{kind.split()[0]} {base.__name__} subclass or instance" if base else "a Benchmark object"
    raise ConfigError(f"{group}={value!r} is not {kind}: give its name, harness.{group}(...), or {objects}")


def _run(
    task: str,
    plugins: Mapping[str, object],
    settings: dict[str, Any],
    results_dir: str | os.PathLike[str] | None,
    progress: bool,
) -> RunResult:
    """Compose the CLI's config of ``task`` with ``plugins`` and ``settings``, run its one seed, return its result
    (from the run folder under ``results_dir`` when given)."""
    given = {group: own for group, value in plugins.items() if (own := _own(group, value)) is not None}
    if given and results_dir is not None:
        raise ConfigError(
            f"results_dir= writes run folders named, skipped and resumed by their config, and the {', '.join(given)} "
            "given as an object has none: leave results_dir out and write the result with harness.write(result, "
            "folder)"
        )
    configured = {g: v if isinstance(v, Plugin) else Plugin(g, str(v)) for g, v in plugins.items() if g not in given}
    cfg = _compose([f"task={task}", *(f"{group}={plugin.name}" for group, plugin in configured.items())])
    for group, plugin in configured.items():
        for key, value in plugin.overrides.items():
            _set(cfg, f"{group}.{key}", value)
    for group, (name, factory) in given.items():  # recorded by what is known of it: its class (and dataset)
        cls = factory if isinstance(factory, type) else type(plugins[group])
        node = {"name": name, "_target_": f"{cls.__module__}.{cls.__qualname__}"}
        if group == "benchmark":
            node["dataset"] = str(getattr(plugins[group], "dataset", ""))
        _set(cfg, group, node, merge=False)
    for key, value in settings.items():
        _set(cfg, key, value)
    if results_dir is not None:
        _set(cfg, "results_dir", os.fspath(results_dir))
    check_secrets(cfg)
    job = experiment.prepare(cfg, given)
    if results_dir is None:
        return experiment.run(job, cfg.seed, progress)
    run_path = identity.run_path(identity.resolved(cfg))
    folder = Path(experiment_folder(cfg.results_dir, cfg.experiment_name)) / run_path / f"seed={cfg.seed}"
    return load(experiment.run_or_skip(job, cfg.seed, folder, progress))
