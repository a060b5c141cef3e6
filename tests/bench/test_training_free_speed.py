"""CPU seconds per architecture of the estimators that claim to cost "milliseconds", side by side (``make bench``).

Each estimator is built from its own YAML file (``estimator=<name>``, its defaults: what a rank run measures) and
times ``estimate`` (build the NB201 network, initialise it, compute the score) on the same 30 random NB201
architectures, one round each, at one torch thread, after one warm-up estimate on another architecture. The timer
is the process's CPU time (``time.process_time``, as :func:`harness.budget.stopwatch` charges a CPU run), so the
median column of the one benchmark group is the median CPU seconds per architecture. An estimator whose config is
not in this checkout (issue 24 adds n_layers, zico, meco, swap, vkdnw, az_nas) is skipped with that reason.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch

from harness import seeding
from harness.benchmarks import NB201
from harness.benchmarks.table import TableBenchmark
from harness.config import compose
from harness.interfaces import EstimatorContext
from harness.plugins import build
from harness.schema import CONF
from harness.types import Arch

pytestmark = [pytest.mark.bench, pytest.mark.benchmark(timer=time.process_time)]
N_ARCHS = 30
#: the estimators said to cost milliseconds: the counts, the zero-cost proxies, the training-free methods of 2023-25
FAST = (
    "params",
    "flops",
    "n_layers",
    "synflow",
    "snip",
    "grad_norm",
    "grasp",
    "fisher",
    "jacov",
    "nwot",
    "epe_nas",
    "zico",
    "meco",
    "swap",
    "vkdnw",
    "az_nas",
)
#: the median CPU seconds per architecture that each estimator charged, printed side by side at the end
CHARGED: dict[str, float] = {}


@pytest.fixture(scope="module")
def bench(nb201_csv: object) -> TableBenchmark:
    return NB201("cifar10").load()


@pytest.fixture(scope="module")
def archs(bench: TableBenchmark) -> list[Arch]:
    rng = np.random.default_rng(0)
    return [bench.space.sample(rng) for _ in range(N_ARCHS + 1)]


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
    if CHARGED:
        print("\nmedian CPU s per NB201 architecture that each estimator charged (one thread):")
        for name, seconds in sorted(CHARGED.items(), key=lambda kv: kv[1]):
            print(f"  {name:<12} {seconds:.4f}")


@pytest.mark.parametrize("name", FAST)
def test_cpu_seconds_per_nb201_arch(benchmark: Any, name: str, bench: TableBenchmark, archs: list[Arch]) -> None:
    if not (CONF / "estimator" / f"{name}.yaml").is_file():
        pytest.skip(f"conf/estimator/{name}.yaml is not in this checkout (issue 24 adds it)")
    _, factory = build(compose([f"estimator={name}"]).estimator)
    est = factory()
    est.fit(EstimatorContext(bench.space, "nb201", "cifar10", bench.query, seeding.rng(0, "estimator"), seed=0))
    est.estimate(archs[-1])  # warm-up
    todo = iter(archs[:N_ARCHS])
    charged: list[float] = []

    def next_arch() -> tuple[tuple[Arch], dict[str, object]]:
        return (next(todo),), {}

    def estimate(arch: Arch) -> None:
        charged.append(est.estimate(arch).cost_s)

    benchmark.group = "CPU s per NB201 arch, one thread, each estimator at its defaults"
    benchmark.pedantic(estimate, setup=next_arch, rounds=N_ARCHS, iterations=1, warmup_rounds=0)
    CHARGED[name] = statistics.median(charged)
    benchmark.extra_info["median_charged_cpu_s"] = CHARGED[name]
