"""Time per architecture of each zero-cost proxy on this machine (``make bench``; skipped in the default run).

One benchmark per proxy: ``ZeroCost(proxy, batch_size=64).estimate`` (build the NB201 network, initialise it,
compute the proxy) on 50 random NB201 architectures, one round each, so the reported median is the median over
architectures. One warm-up estimate on another architecture comes first (first-call set-up of torch kernels).
"""

from __future__ import annotations

import numpy as np
import pytest

from estimators.zero_cost import PROXIES, ZeroCost
from harness import seeding
from harness.interfaces import EstimatorContext
from harness.spaces.nb201 import NB201Space
from harness.types import Arch, Observation

pytestmark = pytest.mark.bench
N_ARCHS = 50
BATCH = 64
SPACE = NB201Space()


def _no_table(arch: Arch, *, fidelity: str | None = None) -> Observation:
    raise AssertionError("zero-cost proxies never look at the benchmark table")


@pytest.fixture(scope="module")
def archs() -> list[Arch]:
    rng = np.random.default_rng(0)
    return [SPACE.sample(rng) for _ in range(N_ARCHS + 1)]


@pytest.mark.parametrize("proxy", list(PROXIES))
def test_time_per_nb201_arch(benchmark, proxy, archs):
    est = ZeroCost(proxy=proxy, batch_size=BATCH)
    est.fit(EstimatorContext(SPACE, "nb201", "cifar10", _no_table, seeding.rng(0, "estimator"), seed=0))
    est.estimate(archs[-1])  # warm-up
    todo = iter(archs[:N_ARCHS])

    def next_arch() -> tuple[tuple[Arch], dict[str, object]]:
        return (next(todo),), {}

    benchmark.group = f"zero_cost per NB201 arch, batch {BATCH}"
    benchmark.pedantic(est.estimate, setup=next_arch, rounds=N_ARCHS, iterations=1, warmup_rounds=0)
