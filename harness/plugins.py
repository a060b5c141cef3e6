"""From a config to plug-ins: build a plug-in from its config node, resolve the device, set the threads, make the
context an estimator sees.

Below both :mod:`harness.cache` (whose score files name devices and whose key is computed from a built estimator)
and :mod:`harness.experiment` (which runs what is built here), so neither reaches into the other. The thread
policy is here because a live estimator's scores depend on it (the score key names the threads): what builds the
estimator also decides where and on how many threads it computes.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from harness import seeding
from harness.config import check_keywords, cpus_given
from harness.errors import ConfigError
from harness.interfaces import Benchmark, EstimatorContext
from harness.types import Observation


def plain(node: DictConfig) -> dict[str, Any]:
    """``node`` resolved, as plain dicts and lists (a composed config's keys are strings)."""
    params = OmegaConf.to_container(node, resolve=True)
    assert isinstance(params, dict)
    return {str(k): v for k, v in params.items()}


def build(node: DictConfig) -> tuple[str, Callable[..., Any]]:
    """Instantiate one plug-in config as a factory (``_partial_``): returns (its ``name``, the factory).

    The factory takes what only the run knows (a searcher's space and rng) and gives a fresh object per call.
    """
    from hydra.utils import instantiate

    params = plain(node)
    name = str(params.pop("name"))
    factory = instantiate({**params, "_partial_": True})
    # a key the plug-in does not take fails here, not at its call
    check_keywords(str(node._key() or "plug-in"), name, factory)
    return name, factory


#: the device settings a config may give (``auto`` is resolved by :func:`resolve_device`)
DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?|mps")


def resolve_device(device: str, live: bool) -> str:
    """``auto`` -> ``cuda`` when a GPU is present, else ``cpu``. A device that does not exist, or is not present
    on this machine, is a :class:`ConfigError` for every estimator; torch is imported only when needed (a live
    estimator, or a named accelerator)."""
    if not DEVICE.fullmatch(device):
        raise ConfigError(f"device={device!r} is not a torch device; use auto, cpu, cuda, cuda:N or mps")
    if device == "cpu" or (device == "auto" and not live):
        return "cpu"
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = int(device.partition(":")[2] or 0)
        if index >= count:
            raise ConfigError(
                f"device={device} is not present: torch sees {count} CUDA devices; use device=cpu or auto"
            )
    elif not torch.backends.mps.is_available():
        raise ConfigError("device=mps is not present on this machine; use device=cpu or auto")
    return device


def default_threads() -> int:
    """The CPUs this job was given: its affinity mask, capped by ``$SLURM_CPUS_PER_TASK``, shared among the
    workers of Hydra's joblib launcher when it runs this job (``n_jobs``, -1 = one per CPU)."""
    cpus = cpus_given()
    workers = 1
    if HydraConfig.initialized():
        launcher = HydraConfig.get().launcher
        if "joblib" in str(launcher.get("_target_", "")):
            n_jobs = int(launcher.get("n_jobs", -1))
            workers = cpus if n_jobs < 0 else max(1, min(n_jobs, cpus))
    return max(1, cpus // workers)


def resolve_workers(cfg: DictConfig, live: bool, rebuildable: bool) -> int:
    """The processes that evaluate a run's architectures (:mod:`harness.lookahead`): ``cfg.workers``, or when it
    is null, 2 for a live estimator on the CPU when this job has CPUs for two (``threads`` each, 1 when null), else 1.
    A table estimator is always evaluated in one process (it is instant). ``rebuildable``: the estimator comes from
    its config (the worker builds its own), not an object handed to the Python API."""
    workers = cfg.workers
    if workers is not None and workers not in (1, 2):
        raise ConfigError(f"workers must be 1 or 2 (or null: 2 when the CPUs allow), got {workers}")
    if not live:
        return 1
    if workers is None:
        cpu = resolve_device(cfg.device, live) == "cpu"
        return 2 if cpu and rebuildable and default_threads() >= 2 * (cfg.threads or 1) else 1
    if workers == 2 and not rebuildable:
        raise ConfigError(
            "workers=2 needs an estimator given by name: the second process builds its own from the config; an "
            "estimator handed over as an object runs in one process (workers=1)"
        )
    if workers == 2 and cfg.threads is not None and 2 * cfg.threads > cpus_given():
        raise ConfigError(
            f"workers=2 with threads={cfg.threads} needs {2 * cfg.threads} CPUs, this job has {cpus_given()}; "
            "lower threads, or set workers=1"
        )
    return int(workers)


def set_torch_threads(cfg: DictConfig, workers: int = 1) -> int:
    """Give torch ``cfg.threads`` intra-op threads (``null``: :func:`default_threads` shared by ``workers``
    processes) and return the number."""
    import torch

    threads = cfg.threads if cfg.threads is not None else max(1, default_threads() // workers)
    if threads < 1:
        raise ConfigError(f"threads must be >= 1 (or null: the CPUs this job was given), got {threads}")
    torch.set_num_threads(int(threads))
    return int(threads)


def estimator_context(
    cfg: DictConfig,
    benchmark_name: str,
    benchmark: Benchmark,
    estimator_seed: int,
    live: bool,
    view: Callable[..., Observation] | None = None,
) -> EstimatorContext:
    """What an estimator of this job sees: its space, data, device, seeded rng, and validation numbers only
    (``view``, made from ``benchmark`` when not given; never the benchmark itself)."""
    return EstimatorContext(
        space=benchmark.space,
        benchmark=benchmark_name,
        dataset=benchmark.dataset,
        query=view or benchmark.validation(),
        rng=seeding.rng(estimator_seed, "estimator"),
        seed=estimator_seed,
        device=resolve_device(cfg.device, live),
        data_dir=cfg.data_dir,
        cache_dir=cfg.cache_dir,
    )
