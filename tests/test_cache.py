from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

import numpy as np

from harness import loop
from harness.budget import Budget
from harness.cache import CachedEstimator, ScoreCache, estimator_key
from harness.interfaces import Estimator, EstimatorTags
from harness.types import Arch, Estimate
from searchers.random_search import RandomSearch
from tests.conftest import toy_context


class Counting(Estimator):
    """A live estimator that counts its calls; score = sum of ops, cost = 2 s (as if measured)."""

    tags = EstimatorTags(live=True)

    def __init__(self) -> None:
        self.calls = 0

    def estimate(self, arch: Arch) -> Estimate:
        self.calls += 1
        return Estimate(float(sum(arch.ops)), 2.0, "cpu")


def test_round_trip_and_key(tmp_path):
    cache = ScoreCache(tmp_path / "s.sqlite")
    key = estimator_key({"name": "snip", "proxy": "snip", "batch_size": 64})
    assert key == estimator_key({"batch_size": 64, "proxy": "snip", "name": "zero_cost"})  # the name is cosmetic
    cache.put(key, "nb201", "cifar10", "abc", 0, Estimate(1.5, 0.25, "cpu"))
    cache.put(key, "nb201", "cifar10", "abc", 0, Estimate(9.0, 9.0, "cuda"))  # the first write wins
    assert cache.get(key, "nb201", "cifar10", "abc", 0) == Estimate(1.5, 0.25, "cpu")
    other = estimator_key({"proxy": "snip", "batch_size": 32})
    assert cache.get(other, "nb201", "cifar10", "abc", 0) is None
    assert cache.get(key, "nb201", "cifar10", "abc", 1) is None
    assert len(cache) == 1
    assert '"code":' in estimator_key({}, Counting())  # the implementation is part of the key


def _writer(path: str, worker: int) -> None:
    cache = ScoreCache(path)
    for i in range(150):
        arch = f"a{(i + 50 * worker) % 300}"  # overlapping ranges across workers
        cache.put("k", "b", "d", arch, 0, Estimate(float(i), 1.0, f"w{worker}"))
        cache.get("k", "b", "d", arch, 0)
    cache.close()


def test_parallel_writers(tmp_path):
    path = str(tmp_path / "s.sqlite")
    ScoreCache(path).close()
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(path, w)) for w in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    assert len(ScoreCache(path)) == 250  # archs a0..a249, each stored once


def test_hits_charge_the_recorded_cost_and_skip_the_work(toy, tmp_path: Path):
    cache = ScoreCache(tmp_path / "s.sqlite")

    def run() -> tuple[list[tuple[str, float, float, float]], Counting, CachedEstimator]:
        inner = Counting()
        est = CachedEstimator(inner, cache, "counting")
        result = loop.search(
            toy, est, RandomSearch(toy.space, np.random.default_rng(0)), Budget(max_evals=30), toy_context(toy)
        )
        return [(r.arch, r.score, r.cost_s, r.clock_s) for r in result.records], inner, est

    first, inner1, est1 = run()
    second, inner2, est2 = run()
    assert first == second  # same scores, same costs, same clock
    assert est1.hits == 30 - inner1.calls > 0  # random search repeats some architectures within a run
    assert inner2.calls == 0 and est2.hits == 30


def test_a_non_finite_score_is_never_stored(tmp_path):
    cache = ScoreCache(tmp_path / "s.sqlite")
    for bad in (float("nan"), float("inf"), -float("inf")):
        cache.put("k", "toy", "toy", "a", 0, Estimate(bad, 1.0, "cpu"))
    assert len(cache) == 0 and cache.get("k", "toy", "toy", "a", 0) is None
    cache.put("k", "toy", "toy", "a", 0, Estimate(0.5, 1.0, "cpu"))
    assert cache.get("k", "toy", "toy", "a", 0) == Estimate(0.5, 1.0, "cpu")
