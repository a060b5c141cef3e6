"""The score cache's key and :class:`CachedEstimator` (hits, costs, claims); the store itself, on both backends,
is tested in ``test_cache_backends.py``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harness import cache, loop, paths
from harness.budget import Budget
from harness.cache import CachedEstimator, SqliteCache, estimator_key
from harness.interfaces import Estimator, EstimatorTags
from harness.types import Arch, Estimate
from searchers.random_search import RandomSearch
from tests.conftest import toy_context


class Counting(Estimator):
    """A live estimator that counts its calls; score = sum of ops, cost = 2 s (as if measured)."""

    tags = EstimatorTags(live=True)

    def __init__(self, score: float | None = None, error: Exception | None = None) -> None:
        self.calls = 0
        self.score = score
        self.error = error

    def estimate(self, arch: Arch) -> Estimate:
        self.calls += 1
        if self.error is not None:
            raise self.error
        return Estimate(float(sum(arch.ops)) if self.score is None else self.score, 2.0, "cpu")


_MODULES = {
    "harness/__init__.py": "",
    "harness/ops.py": 'def op(x):\n    """Doubles."""\n    return 2 * x\n',
    "estimators/__init__.py": "",
    "estimators/est.py": "from harness.ops import op\n\ndef score(x):\n    return op(x)\n",
}


@pytest.mark.parametrize(
    ("edit", "rekeys"),
    [
        (("harness/ops.py", "return 2 * x", "return 3 * x"), True),  # the code an estimator imports
        (("harness/ops.py", '"""Doubles."""', '"""Doubles its input."""'), False),  # prose
        (("harness/ops.py", "def op(x):", "def op(x: float) -> float:  # typed"), False),  # annotations, comments
        (("estimators/est.py", "def score", "if TYPE_CHECKING:\n    import harness.other\n\ndef score"), False),
    ],
    ids=["code", "docstring", "annotation", "type-checking-block"],
)
def test_the_code_hash_follows_what_runs_through_imports(tmp_path, monkeypatch, edit, rekeys):
    monkeypatch.setattr(paths, "PROJECT_ROOT", tmp_path)
    for name, text in _MODULES.items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(text)
    cache.code_hash.cache_clear()
    before = cache.code_hash("estimators.est")
    file, old, new = edit
    (tmp_path / file).write_text((tmp_path / file).read_text().replace(old, new))
    cache.code_hash.cache_clear()
    try:
        assert (cache.code_hash("estimators.est") != before) is rekeys
    finally:
        cache.code_hash.cache_clear()


def test_key():
    key = estimator_key({"name": "snip", "proxy": "snip", "batch_size": 64})
    assert key == estimator_key({"batch_size": 64, "proxy": "snip", "name": "zero_cost"})  # the name is cosmetic
    assert key != estimator_key({"proxy": "snip", "batch_size": 32})
    assert '"code":' in estimator_key({}, Counting())  # the implementation is part of the key


def test_hits_charge_the_recorded_cost_and_skip_the_work(toy, tmp_path: Path):
    cache = SqliteCache(tmp_path / "s.sqlite")

    def run() -> tuple[list[tuple[str, float, float, float]], Counting, int]:
        inner = Counting()
        est = CachedEstimator(inner, cache, "counting")
        result = loop.search(
            toy, est, RandomSearch(toy.space, np.random.default_rng(0)), Budget(max_evals=30), toy_context(toy)
        )
        return [(r.arch, r.score, r.cost_s, r.clock_s) for r in result.records], inner, result.summary.n_cache_hits

    first, inner1, hits1 = run()
    second, inner2, hits2 = run()
    assert first == second  # same scores, same costs, same clock
    assert hits1 == 30 - inner1.calls > 0  # random search repeats some architectures within a run
    assert inner2.calls == 0 and hits2 == 30


@pytest.mark.parametrize(
    "inner", [Counting(error=RuntimeError("out of memory")), Counting(score=float("nan"))], ids=["raises", "nan"]
)
def test_a_failed_evaluation_is_not_stored_and_releases_its_claim(toy, tmp_path, inner):
    cache = SqliteCache(tmp_path / "s.sqlite")
    est = CachedEstimator(inner, cache, "k")
    est.fit(toy_context(toy))
    arch = toy.space.sample(np.random.default_rng(0))
    for _ in range(2):  # recomputed each time
        try:
            estimate = est.estimate(arch)
            assert np.isnan(estimate.score) and not estimate.cached
        except RuntimeError:
            pass
    assert inner.calls == 2 and len(cache) == 0
    assert cache.claim("k", "toy", "toy", toy.space.format(arch), 0, "another worker", 60)  # nobody holds it
