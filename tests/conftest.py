"""Shared fixtures: a toy benchmark that tests can enumerate, the composed Hydra config, data locations."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from omegaconf import DictConfig, open_dict

from harness import paths
from harness.benchmarks.view import ValidationView
from harness.config import CONF, compose
from harness.errors import OutOfDomainError
from harness.interfaces import EstimatorContext, Searcher
from harness.seeding import rng
from harness.spaces.toy import ToySpace
from harness.types import Arch, Observation

ROOT = Path(__file__).resolve().parents[1]
#: the shared data files the tests read (relative to the data folder); without them those tests skip
DATA_FILES = (
    "nb201/nb201.csv",
    "nbmacro/nas-bench-macro_cifar10.json",
    "nb301/nb301_sample.csv",
    "cifar10/CIFAR-10-images-jpg.tar.gz",
    "teachers/resnet20-12fca82f.th",
)


def pytest_configure(config: pytest.Config) -> None:
    """The suite must pass on a busy machine: one torch thread per test process. Several threads of one process
    wait for each other at every parallel region, and on a loaded machine a descheduled thread stalls them all."""
    import torch

    torch.set_num_threads(1)
    if os.environ.get("HARNESS_REQUIRE_DATA"):  # CI: a missing data file must fail the run, not skip its tests
        root = paths.data_dir()
        missing = [name for name in DATA_FILES if not (root / name).is_file()]
        if missing:
            raise pytest.UsageError(
                f"HARNESS_REQUIRE_DATA is set but {root} lacks {', '.join(missing)}: point HARNESS_DATA_DIR at the "
                "shared data folder (see its README)"
            )


class ToyBenchmark:
    """A deterministic 64-row table over :class:`ToySpace`: validation = 50 + 10 * sum(ops) (0..140 -> %),
    test = validation + a fixed per-architecture offset, cost = 10 + index % 7 seconds."""

    name = "toy"
    dataset = "toy"
    space = ToySpace()
    has_train_cost = True
    fidelities = ("full",)
    has_test_split = True

    def __init__(self) -> None:
        noise = np.random.default_rng(0).normal(0, 2, self.space.size)
        self._valid = {a.ops: 50.0 + 5 * sum(a.ops) for a in self.space.enumerate()}
        self._test = {a.ops: self._valid[a.ops] + noise[i] for i, a in enumerate(self.space.enumerate())}
        self._cost = {a.ops: 10.0 + i % 7 for i, a in enumerate(self.space.enumerate())}

    def load(self) -> ToyBenchmark:
        return self

    def query(self, arch: Arch, *, fidelity: str | None = None) -> Observation:
        if arch.ops not in self._valid or fidelity not in (None, "full"):
            raise OutOfDomainError(f"not in the toy table: {arch} {fidelity}")
        return Observation(self._valid[arch.ops], self._cost[arch.ops], "full")

    def validation(self) -> Callable[..., Observation]:
        return ValidationView(
            self.name,
            {ops: i for i, ops in enumerate(self._valid)},
            {"full": (list(self._valid.values()), list(self._cost.values()))},
        ).query

    def test_accuracy(self, arch: Arch) -> float:
        return self._test[arch.ops]

    def optimum(self) -> tuple[float, float]:
        return max(self._valid.values()), max(self._test.values())


@pytest.fixture
def toy() -> ToyBenchmark:
    return ToyBenchmark()


def toy_context(bench: ToyBenchmark, seed: int = 0) -> EstimatorContext:
    return EstimatorContext(
        space=bench.space, benchmark="toy", dataset="toy", query=bench.query, rng=np.random.default_rng(seed)
    )


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return paths.data_dir()


@pytest.fixture(scope="module")
def cifar10_images(data_dir: Path) -> Path:
    """The CIFAR-10 JPEG archive live estimators draw their batches from (a test that needs it is skipped without)."""
    return _shared_file(data_dir / "cifar10" / "CIFAR-10-images-jpg.tar.gz", "CIFAR-10 images")


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """One torch thread: small batches run as fast, and one thread cannot be slowed down by a busy shared CPU
    (oversubscribed OpenMP threads wait for each other at every operation)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _no_table(arch: Arch, *, fidelity: str | None = None) -> Observation:
    raise AssertionError("an estimator that scores networks must not look at the benchmark table")


def tableless_context(space: Any = None, *, seed: int = 0, dataset: str = "cifar10") -> EstimatorContext:
    """The context of a live estimator on ``space`` (default NB201) whose table look-up fails the test if called."""
    from harness.spaces.nb201 import NB201Space

    space = space or NB201Space()
    return EstimatorContext(space, space.name, dataset, _no_table, rng(seed, "estimator"), seed=seed)


@pytest.fixture(scope="session")
def nb201_csv(data_dir: Path) -> Path:
    return _shared_file(data_dir / "nb201" / "nb201.csv", "NB201 table")


def _shared_file(path: Path, what: str) -> Path:
    """``path`` in the shared data folder; the test that needs it is skipped without it (CI fails instead:
    HARNESS_REQUIRE_DATA, :func:`pytest_configure`)."""
    if not path.is_file():
        pytest.skip(f"{what} not found at {path} (set HARNESS_DATA_DIR)")
    return path


def compose_cfg(overrides: list[str], tmp_path: Path) -> DictConfig:
    """The real config, composed with ``overrides``, writing results under ``tmp_path``, no progress bars, one
    torch thread, one process."""
    cfg = compose(overrides)
    with open_dict(cfg):
        cfg.results_dir = str(tmp_path / "results")
        cfg.progress = False
        if not any(o.startswith("threads=") for o in overrides):
            cfg.threads = 1  # see pytest_configure
        if not any(o.startswith("workers=") for o in overrides):
            cfg.workers = 1  # a second process only where a test asks for one (tests/test_lookahead.py)
    return cfg


def plugin_names(group: str) -> list[str]:
    """Every plug-in of a config group, from the file names in ``conf/<group>/``."""
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


@pytest.fixture
def isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    cache = tmp_path / "cache"
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(cache))
    yield cache


def drive(searcher: Searcher, score: Callable[[Arch], float], n: int) -> list[Arch]:
    """Ask/tell ``searcher`` up to ``n`` times with ``score``; returns the asked architectures."""
    asked = []
    for _ in range(n):
        arch = searcher.ask()
        if arch is None:
            break
        asked.append(arch)
        searcher.tell(arch, score(arch))
    return asked


def reproducible_part(records_csv: Path) -> str:
    """``records.csv`` without its ``wall_s`` column (real time is never reproducible; everything else must be)."""
    import pandas as pd

    return pd.read_csv(records_csv, keep_default_na=False).drop(columns="wall_s").to_csv(index=False)


def finite(x: float) -> bool:
    return isinstance(x, float) and math.isfinite(x)
