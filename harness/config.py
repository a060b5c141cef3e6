"""Composing a config: the schema (:mod:`harness.schema`) registered, its resolvers, the checks of
top-level settings and plug-in keywords, and the Hydra callback that refuses secrets."""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from harness.errors import ConfigError, HarnessError, refuse_password
from harness.sampling import ARCH_SPLITS
from harness.schema import CONF, HarnessConfig


def register() -> None:
    """Register the schema, the ``run_path`` resolver of run folders and the ``experiment_folder`` resolver
    (idempotent)."""
    from harness.identity import run_path_resolver

    ConfigStore.instance().store(name="harness_schema", node=HarnessConfig)
    if not OmegaConf.has_resolver("run_path"):
        OmegaConf.register_new_resolver("run_path", run_path_resolver)
    if not OmegaConf.has_resolver("experiment_folder"):
        OmegaConf.register_new_resolver("experiment_folder", experiment_folder)


def compose(overrides: list[str]) -> DictConfig:
    """The job config ``python -m harness OVERRIDES`` would run, composed without starting a Hydra app."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    register()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return hydra_compose(config_name="config", overrides=overrides)


def one_line(exc: BaseException) -> str:
    """What a config Hydra or OmegaConf could not compose says (an unknown plug-in or key, a bad override), as one
    line: its message and its cause's, without Hydra's config search path."""
    detail = "; ".join(line.strip() for line in [str(exc), str(exc.__cause__ or "")] if line.strip())
    return " ".join(detail.split()).split(" Config search path:")[0]


def cpus_given() -> int:
    """The CPUs this job was given: its affinity mask, capped by ``$SLURM_CPUS_PER_TASK`` when that is set."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    slurm = os.environ.get("SLURM_CPUS_PER_TASK", "")
    return min(cpus, int(slurm)) if slurm.isdigit() and int(slurm) > 0 else cpus


def experiment_folder(results_dir: str, experiment_name: str) -> str:
    """``results_dir/experiment_name``, with ``~`` in ``results_dir`` expanded (the ``experiment_folder`` resolver
    of the run folders). A :class:`ConfigError` for a name that is not one folder inside ``results_dir``."""
    if experiment_name in ("", ".", "..") or "/" in experiment_name or "\\" in experiment_name:
        raise ConfigError(
            f"experiment_name={experiment_name!r} is not a folder name: it must name one folder inside results_dir "
            "(no '/', '\\', '.' or '..'); use results_dir=... to write elsewhere"
        )
    return str(Path(results_dir).expanduser() / experiment_name)


def check(cfg: DictConfig) -> None:
    """Refuse a top-level setting no run can use, before anything is built or written (:class:`ConfigError`)."""
    experiment_folder(cfg.results_dir, cfg.experiment_name)
    if cfg.estimator_seed < 0:
        raise ConfigError(f"estimator_seed must be >= 0, got {cfg.estimator_seed}")
    if cfg.max_consecutive_failures < 1:
        raise ConfigError(
            f"max_consecutive_failures must be >= 1 (the failures in a row that stop a run), got "
            f"{cfg.max_consecutive_failures}"
        )
    if cfg.split not in ARCH_SPLITS:
        raise ConfigError(f"split={cfg.split!r} is not one of {', '.join(ARCH_SPLITS)}")
    if cfg.task == "search" and cfg.split != "all":
        raise ConfigError(
            f"split={cfg.split} applies to task=rank (the half of the space its sample is drawn from); a search "
            "explores the whole space: leave split at all"
        )
    if cfg.archs is not None and cfg.split != "all":
        raise ConfigError(f"split={cfg.split} draws a random sample; archs= are scored as given: drop one of the two")
    cpus = cpus_given()
    if cfg.threads is not None and not 1 <= cfg.threads <= cpus:
        raise ConfigError(
            f"threads must be >= 1 and at most the {cpus} CPUs this job was given, got {cfg.threads}; "
            "or threads=null: all of them"
        )


def check_keywords(group: str, name: str, factory: Callable[..., Any]) -> None:
    """Refuse a plug-in config key its class does not take (``+searcher.lr=0.1`` for a searcher without ``lr``),
    naming the plug-in, the key and the keys it takes. ``factory`` is the plug-in's partial
    (:func:`harness.plugins.build`); the run supplies the parameters without a default (a searcher's space and rng)."""
    if not isinstance(factory, functools.partial):
        return
    params = inspect.signature(factory.func).parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return
    given = set(factory.keywords)
    unknown = sorted(given - {p.name for p in params if p.kind is not p.POSITIONAL_ONLY})
    if unknown:
        valid = [p.name for p in params if p.default is not p.empty or p.name in given]
        raise ConfigError(
            f"{group} {name} has no parameter {', '.join(map(repr, unknown))}; it takes {', '.join(valid)} "
            f"(remove {', '.join(f'+{group}.{k}' for k in unknown)})"
        )
    for p in params:  # a word where the class's default is a number (steps=ten), or the other way round
        value = factory.keywords.get(p.name)
        kind, wanted = _kind(value), _kind(p.default)
        if value is not None and wanted is not None and kind != wanted:
            raise ConfigError(
                f"{group} {name}: {p.name}={value!r} is not {wanted} (its default is {p.default!r}); "
                f"set {group}.{p.name}= to {wanted}"
            )


def _kind(value: Any) -> str | None:
    """What kind of setting a plain value is (``a number``, ``true or false``, ``a word``); None for any other."""
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, int | float):
        return "a number"
    return "a word" if isinstance(value, str) else None


class RefuseSecrets(Callback):
    """A Hydra callback (``conf/hydra/default.yaml``) that ends a run or sweep whose config holds a URL with a
    password, with one ``error:`` line and status 2, before Hydra writes the config into ``.hydra/*.yaml``
    and before the job writes anything: from the command line, an experiment file or an interpolation alike."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        refuse_secrets(config)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        refuse_secrets(config)


def refuse_secrets(config: DictConfig) -> None:
    """Exit with one ``error:`` line if a setting of ``config`` (Hydra's own node aside) holds a URL with a
    password (:func:`check_secrets`)."""
    import sys

    try:
        check_secrets(config)
    except HarnessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)


def check_secrets(config: DictConfig) -> None:
    """Raise :class:`ConfigError` if a setting of ``config`` (Hydra's own node aside) holds a URL with a password
    (:func:`harness.errors.refuse_password`)."""
    settings = {
        str(k): OmegaConf.to_container(config[k], resolve=True) if OmegaConf.is_config(config[k]) else config[k]
        for k in config
        if k != "hydra"  # Hydra's node does not resolve yet (its run folder is being made)
    }
    for key, text in _strings(settings):
        refuse_password(f"{key}={text}")


def _strings(value: Any, key: str = "") -> list[tuple[str, str]]:
    """(dotted key, text) of every string in ``value``."""
    if isinstance(value, dict):
        return [t for k, v in value.items() for t in _strings(v, f"{key}.{k}" if key else str(k))]
    if isinstance(value, list):
        return [t for i, v in enumerate(value) for t in _strings(v, f"{key}[{i}]")]
    return [(key, value)] if isinstance(value, str) else []
