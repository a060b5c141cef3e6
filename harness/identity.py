"""What a run is: its defining config, the id of that config, a readable label, and the folder all three name.

A run's **defining config** is every setting that can change what it computes: each key of each plug-in node
(benchmark, estimator, searcher), the budget, the task's own settings, the device, the failure limit and the seed.
It leaves out where things live on this machine and how the run is shown or scheduled (:data:`NOT_DEFINING`, and
the ``data_dir``/``cache_dir`` keys a plug-in node takes from them), so a run resumes and is skipped from another
data or cache folder, and from a results folder copied elsewhere. Its **id** is a hash of it without the seed: the
seeds of one config share it, and they live side by side in one folder,
``<benchmark>-<dataset>/<searcher>-<estimator>/<label>-<id>/seed=<k>`` (:func:`run_path`), whatever way the run
was launched (alone, ``n_seeds=``, a ``-m`` sweep over any key). Aggregates group runs by it.

``threads`` is left out on purpose although a live estimator's scores depend on it (a short training such as
RMI's is chaotic in the last bits of its floats): it says how this machine schedules the work, not what the
method is, and the score cache's key names it (with the CPU's kernel set, torch, code and data), so scores of
two thread counts are never mixed up. A finished run is reused whatever threads the re-run has (``summary.json``
says which it had); an unfinished one resumes only with the same score key (:func:`harness.storage.start_run`),
so one run never holds scores of two thread counts.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
from collections.abc import Iterator, Mapping
from functools import cache
from typing import Any

from omegaconf import DictConfig, OmegaConf

from harness.schema import CONF, HarnessConfig

#: top-level settings that do not change what a run computes: where things live, how it is shown and scheduled
NOT_DEFINING = (
    "data_dir",
    "cache_dir",
    "results_dir",
    "experiment_name",
    "score_cache",
    "threads",
    "workers",
    "progress",
    "n_seeds",
    "skip_done",
)
#: keys of a plug-in node that say where its files live on this machine (a benchmark's data_dir and cache_dir,
#: interpolated from the top-level ones); the data files' contents are what the score cache's key covers
LOCATION_KEYS = ("data_dir", "cache_dir")
PLUGINS = ("benchmark", "estimator", "searcher")
#: settings only one task reads: the other task's runs leave them out
ONLY_IN = {"search": ("searcher", "budget", "estimator_seed"), "rank": ("n_archs", "sample_seed", "split", "archs")}
#: the settings the folder path names outright, so a label leaves them out
IN_PATH = ("task", "seed", "benchmark.name", "benchmark.dataset", "searcher.name", "estimator.name")
LABEL_CHARS = 60
#: the value of a key that a config lacks
MISSING = object()


def _canonical(value: Any) -> Any:
    """``value`` as JSON would write it, with a float that is a whole number written as an int (``lr=1`` and
    ``lr: 1.0`` are one setting), and a NaN or infinity as null."""
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        return int(value) if value.is_integer() else value
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    return value


def defining(config: Mapping[str, Any]) -> dict[str, Any]:
    """The defining config (seed included) of a run's resolved ``config``, as plain JSON values. A top-level setting
    that ``config`` lacks (a run written before that setting existed) counts as its default."""
    defaults = {f.name: f.default for f in dataclasses.fields(HarnessConfig) if f.default is not dataclasses.MISSING}
    full = {**defaults, **config}
    task = full.get("task")
    other_tasks = {key for t, keys in ONLY_IN.items() if t != task for key in keys}
    out: dict[str, Any] = {}
    for key, value in full.items():
        if key in NOT_DEFINING or key in other_tasks or key == "hydra":
            continue
        if key in PLUGINS and isinstance(value, Mapping):
            value = {k: v for k, v in value.items() if k not in LOCATION_KEYS}
        out[key] = _canonical(value)
    return out


def config_id(config: Mapping[str, Any]) -> str:
    """8 hex digits of a hash of the defining config without its seed: one id for the seeds of one config."""
    settings = {k: v for k, v in defining(config).items() if k != "seed"}
    text = json.dumps(settings, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def flat(node: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted key, value) of each leaf of ``node``."""
    for key, value in node.items():
        if isinstance(value, Mapping) and value:
            yield from flat(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


@cache
def _plugin_file(group: str, name: str) -> dict[str, Any]:
    """The node ``conf/<group>/<name>.yaml`` gives, with the files its defaults list names in its group merged in
    (``- zero_cost``, then ``_self_``, which comes last when it is not listed, as in Hydra); {} if there is none."""
    path = CONF / group / f"{name}.yaml"
    if not path.is_file():
        return {}
    node = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    if not isinstance(node, dict):
        return {}
    entries = [str(e) for e in node.pop("defaults", []) if isinstance(e, str)]
    own = {str(k): _canonical(v) for k, v in node.items()}
    merged: dict[str, Any] = {}
    for entry in entries if "_self_" in entries else [*entries, "_self_"]:
        merged.update(own if entry == "_self_" else _plugin_file(group, entry.split("@")[0]))
    return merged


@cache
def _reference() -> dict[str, Any]:
    """What a label is measured from: the top-level defaults and the default budget (``conf/config.yaml``)."""
    choices: dict[str, str] = {}
    root = OmegaConf.load(CONF / "config.yaml")
    for entry in root.defaults if isinstance(root, DictConfig) else []:
        if isinstance(entry, DictConfig):
            choices.update({str(k): str(v) for k, v in entry.items()})
    top = {f.name: f.default for f in dataclasses.fields(HarnessConfig) if f.default is not dataclasses.MISSING}
    return {**_canonical(top), "budget": _plugin_file("budget", choices.get("budget", ""))}


def text(value: Any) -> str:
    """A setting's value as a label writes it: lists joined by ``_``, ``null``, ``true``/``false``."""
    if isinstance(value, list):
        return "_".join(text(v) for v in value)
    return "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


def label(config: Mapping[str, Any]) -> str:
    """A short readable name of how the defining config differs from the defaults: each plug-in key that differs
    from its file in ``conf/`` (``population_size=5``), the budget's limits when they are not the default budget's
    (``max_evals=5``), each top-level setting not at its default (``device=cuda``); "" when nothing does. Made
    of letters, digits and ``._,=+-`` only, cut to about 60 characters (the id tells configs apart; this is for
    reading)."""
    settings = defining(config)
    reference = _reference()
    parts: list[str] = []
    for node in PLUGINS:
        values = settings.get(node)
        if isinstance(values, Mapping):
            own = _plugin_file(node, str(values.get("name", "")))
            ref = {k: v for k, v in own.items() if k not in LOCATION_KEYS}
            parts += [f"{k}={text(v)}" for k, v in flat(values) if f"{node}.{k}" not in IN_PATH and _get(ref, k) != v]
    budget = settings.get("budget")
    if isinstance(budget, Mapping) and budget != reference["budget"]:
        parts += [f"{k}={text(v)}" for k, v in sorted(budget.items()) if v is not None]
    for key, value in settings.items():
        if key not in (*PLUGINS, "budget", *IN_PATH) and value != reference.get(key):
            parts.append(f"{key}={text(value)}")
    name = re.sub(r"[^A-Za-z0-9._,=+-]", "_", ",".join(parts))
    return name if len(name) <= LABEL_CHARS else name[: LABEL_CHARS - 1].rstrip(",") + "+"


def _get(node: Mapping[str, Any], dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return MISSING
        node = node[part]
    return node


def run_name(task: str, searcher: str | None, estimator: str) -> str:
    """``<searcher>-<estimator>`` for a search, ``<task>-<estimator>`` for another task."""
    return f"{searcher}-{estimator}" if task == "search" else f"{task}-{estimator}"


def config_folder(config: Mapping[str, Any]) -> str:
    """``<label>-<id>`` (just ``<id>`` when the label is empty): the folder of one config's seed folders."""
    name = label(config)
    return f"{name}-{config_id(config)}" if name else config_id(config)


def run_path(config: Mapping[str, Any]) -> str:
    """``<benchmark>-<dataset>/<searcher>-<estimator>/<label>-<id>``: where a run of ``config`` goes under
    ``results_dir/experiment_name``, above its ``seed=<k>`` folder."""
    bench, est = config["benchmark"], config["estimator"]
    searcher = config["searcher"]["name"] if isinstance(config.get("searcher"), Mapping) else None
    pair = run_name(config["task"], searcher, est["name"])
    return f"{bench['name']}-{bench['dataset']}/{pair}/{config_folder(config)}"


def resolved(root: DictConfig) -> dict[str, Any]:
    """The job's settings of a composed config, resolved as plain values (Hydra's own ``hydra`` node left out, so
    this can run while Hydra resolves its run folder)."""
    out: dict[str, Any] = {}
    for key in root:
        if key == "hydra":
            continue
        value = root[key]
        out[str(key)] = OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value
    return out


def run_path_resolver(*, _root_: DictConfig) -> str:
    """``${run_path:}`` in ``conf/hydra/default.yaml``: :func:`run_path` of the config being run."""
    return run_path(resolved(_root_))
