from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

import numpy as np
import pytest

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


def _rank(tmp_path: Path, cache: Path) -> tuple[dict, object]:
    from harness.experiment import run_job
    from harness.storage import read_records, read_summary
    from tests.conftest import compose_cfg

    overrides = ["task=rank", "estimator=params", "n_archs=5", "threads=1", f"score_cache={cache}/scores.sqlite"]
    (folder,) = run_job(compose_cfg(overrides, tmp_path), tmp_path / cache.name / "run")
    return read_summary(folder), read_records(folder)


def test_exported_scores_replay_on_another_machine(nb201_csv, tmp_path, capsys):
    from harness.cache import main

    first, records = _rank(tmp_path, tmp_path / "here")
    out = tmp_path / "scores.csv"
    assert main(["export", str(out), "estimator=params", f"score_cache={tmp_path / 'here' / 'scores.sqlite'}"]) == 0
    assert "exported 5 scores" in capsys.readouterr().out
    assert main(["import", str(out), f"score_cache={tmp_path / 'there' / 'scores.sqlite'}"]) == 0
    assert "imported 5 new scores" in capsys.readouterr().out
    assert main(["import", str(out), f"score_cache={tmp_path / 'there' / 'scores.sqlite'}"]) == 0  # twice: nothing duplicated
    assert "imported 0 new scores (5 already present)" in capsys.readouterr().out
    second, replayed = _rank(tmp_path, tmp_path / "there")
    assert second["n_cache_hits"] == 5 and first["n_cache_hits"] == 0
    assert replayed[["arch", "score", "cost_s"]].equals(records[["arch", "score", "cost_s"]])


def _tamper(path: Path, line: int, old: str, new: str) -> None:
    lines = path.read_text().splitlines(keepends=True)
    assert old in lines[line]
    lines[line] = lines[line].replace(old, new)
    path.write_text("".join(lines))


@pytest.mark.parametrize(
    ("line", "old", "new", "message"),
    [
        (2, '""code"":""', '""code"":""0', "computed with another version of what they depend on (code: file"),
        (3, '""torch"":""', '""torch"":""1.0', "(torch: file '1.0"),
        (4, ",cpu,", ",cpu,extra,", "line 5: 10 fields, expected 9; nothing was imported"),
        (5, ",cpu,", ",cpu", "line 6: 8 fields"),
        (0, "cost_s", "cost", "must start with the header"),
    ],
)
def test_a_score_file_of_another_version_or_malformed_is_refused_whole(
    nb201_csv, tmp_path, capsys, line, old, new, message
):
    from harness.cache import ScoreCache, main

    _rank(tmp_path, tmp_path / "here")
    out = tmp_path / "scores.csv"
    assert main(["export", str(out), f"score_cache={tmp_path / 'here' / 'scores.sqlite'}"]) == 0
    _tamper(out, line, old, new)
    capsys.readouterr()
    assert main(["import", str(out), f"score_cache={tmp_path / 'there' / 'scores.sqlite'}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err, err
    assert len(ScoreCache(tmp_path / "there" / "scores.sqlite")) == 0  # nothing half-imported
