"""workers=2 (harness/lookahead.py): a second process evaluates the next architecture ahead; the run's records and
answer are those of one process, whatever the worker does (right guesses, wrong ones, failing, dying)."""

from __future__ import annotations

import json
import math
import os
import signal
from pathlib import Path

import numpy as np
import pytest
from omegaconf import open_dict

from harness import experiment
from harness.errors import ConfigError
from harness.experiment import run_job
from harness.interfaces import Estimator, EstimatorTags
from harness.lookahead import Lookahead
from harness.plugins import build, resolve_workers
from harness.spaces import nb201
from harness.types import Arch, Estimate
from tests.conftest import compose_cfg

SEARCH = [
    "estimator=nwot",  # a real network per evaluation (~0.4 s): the worker, up after a few, takes part
    "searcher=rminas",
    "searcher.n_warmup=10",
    "searcher.n_positives=3",
    "searcher.n_candidates=40",
    "score_cache=off",
]
SEARCHERS = ["rs", "rea", "rl", "rminas"]


def _what(folder: Path) -> str:
    """The run's records but for what a live estimator's time measures (its CPU seconds vary from run to run)."""
    import pandas as pd

    records = pd.read_csv(folder / "records.csv", keep_default_na=False)
    return records.drop(columns=["cost_s", "clock_s", "wall_s"]).to_csv(index=False)


def _run(overrides: list[str], tmp_path: Path, name: str) -> Path:
    [folder] = run_job(compose_cfg(overrides, tmp_path / name), tmp_path / name / "job")
    return folder


def test_a_search_with_a_lookahead_worker_records_what_one_process_records(tmp_path: Path) -> None:
    one = _run([*SEARCH, "workers=1"], tmp_path, "one")
    two = _run([*SEARCH, "workers=2"], tmp_path, "two")
    assert _what(two) == _what(one)
    summary = json.loads((two / "summary.json").read_text())
    assert summary["incumbent"] == json.loads((one / "summary.json").read_text())["incumbent"]
    ahead = summary["lookahead"]
    assert ahead["workers"] == 2 and ahead["right_guesses"] >= 1, ahead  # the worker took part
    assert "lookahead" not in json.loads((one / "summary.json").read_text())


def test_a_rank_run_with_a_lookahead_worker_records_what_one_process_records(tmp_path: Path) -> None:
    rank = ["task=rank", "n_archs=16", "estimator=nwot", "score_cache=off"]
    one = _run([*rank, "workers=1"], tmp_path, "one")
    two = _run([*rank, "workers=2"], tmp_path, "two")
    assert _what(two) == _what(one)
    ahead = json.loads((two / "summary.json").read_text())["lookahead"]
    assert ahead["right_guesses"] >= 1, ahead  # the worker took part


@pytest.mark.parametrize("name", SEARCHERS)
def test_searchers_guess_their_next_ask_often_enough_to_pay(name: str, tmp_path: Path) -> None:
    """On NB201 with a score that looks like a real estimator's: RS and RMI-NAS's warm-up never guess wrong, the
    others often enough that a second process is not wasted. (That a guess changes no ask is the searcher
    contract's.)"""
    cfg = compose_cfg([f"searcher={name}", "searcher.unique=true"], tmp_path)
    with open_dict(cfg):
        if name == "rminas":
            cfg.searcher.update(n_warmup=10, n_candidates=50)
    _, make = build(cfg.searcher)
    searcher, right, guess = make(nb201.NB201Space(), np.random.default_rng(3)), 0, None
    for _ in range(40):
        arch = searcher.ask()
        right += arch == guess
        guess = next(searcher.speculate(arch), None)
        searcher.tell(arch, float(np.sin(sum((i + 1) * op for i, op in enumerate(arch.ops)))))
    assert right >= {"rs": 39, "rminas": 9}.get(name, 10), right


class _Constant(Estimator):
    tags = EstimatorTags(live=True)

    def estimate(self, arch: Arch) -> Estimate:
        return Estimate(float(sum(arch.ops)), 0.0, "cpu")


def _broken(_: object) -> Estimator:
    raise RuntimeError("no data here")


class _Slow(_Constant):
    """Takes a while: long enough that the two processes' turns interleave."""

    def estimate(self, arch: Arch) -> Estimate:
        import time

        time.sleep(0.1)
        return super().estimate(arch)


def _slow() -> Estimator:
    return _Slow()


def test_the_two_processes_take_turns_on_the_guesses_and_never_wait_for_a_guess_not_started() -> None:
    """Once the worker is up, every ask of a list it can guess was ready or under way; the worker is handed the
    guesses this process does not take, so between them they evaluate each architecture about once."""
    archs = [Arch((i % 5, i // 5, 1, 2, 3, 4)) for i in range(16)]
    with Lookahead(_slow) as ahead:
        got = [ahead.estimate(archs[0], _Slow(), archs[1:])]
        ahead._read(wait=True)  # its first message: it is up
        got += [ahead.estimate(a, _Slow(), archs[i + 1 :]) for i, a in enumerate(archs) if i > 0]
    assert [e.score for e in got] == [float(sum(a.ops)) for a in archs]
    assert ahead.right >= len(archs) - 3, ahead.summary()  # a start still in the pipe can make one a miss
    assert ahead.guesses <= len(archs) + 2, ahead.summary()  # no architecture evaluated by both, but by a race


def test_a_guess_not_started_by_the_worker_is_evaluated_here_at_once() -> None:
    """The worker is still building its estimator (5 s): the asks do not wait for it."""
    import time

    with Lookahead(_constant, 5.0) as ahead:
        t0 = time.perf_counter()
        got = [ahead.estimate(a, _Constant(), ARCHS[i + 1 :]).score for i, a in enumerate(ARCHS)]
        assert time.perf_counter() - t0 < 4.0
    assert got == [float(sum(a.ops)) for a in ARCHS]


def _constant(seconds: float) -> Estimator:
    import time

    time.sleep(seconds)
    return _Constant()


ARCHS = [Arch((i % 5, 0, 1, 2, 3, 4)) for i in range(5)]


def test_a_worker_that_cannot_build_its_estimator_leaves_the_run_to_this_process(caplog) -> None:
    with Lookahead(_broken, None) as ahead:
        ahead._process.join(30)  # it has said why it stopped
        got = [ahead.estimate(a, _Constant(), ARCHS[i + 1 :]).score for i, a in enumerate(ARCHS)]
    assert got == [float(sum(a.ops)) for a in ARCHS]
    assert "lookahead worker stopped (RuntimeError: no data here)" in caplog.text


def test_a_worker_killed_mid_run_leaves_the_run_to_this_process(caplog) -> None:
    with Lookahead(_constant, 0.0) as ahead:
        first = ahead.estimate(ARCHS[0], _Constant(), ARCHS[1:])
        os.kill(ahead._process.pid, signal.SIGKILL)
        ahead._process.join(10)
        rest = [ahead.estimate(a, _Constant(), ARCHS[i + 2 :]) for i, a in enumerate(ARCHS[1:])]
    assert [e.score for e in [first, *rest]] == [float(sum(a.ops)) for a in ARCHS]
    assert "lookahead worker stopped" in caplog.text


def test_the_worker_ends_when_the_run_s_process_is_gone() -> None:
    ahead = Lookahead(_constant, 0.0)
    ahead._conn.close()  # what the end of the run's process does to its end of the pipe, even on kill -9
    ahead._process.join(30)
    assert ahead._process.exitcode == 0


def test_workers_null_takes_a_second_process_only_where_it_pays(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr("harness.plugins.default_threads", lambda: 2)
    monkeypatch.setattr("harness.plugins.cpus_given", lambda: 2)
    cfg = compose_cfg(["estimator=n_layers", "device=cpu"], tmp_path)
    with open_dict(cfg):
        cfg.threads = cfg.workers = None
    assert resolve_workers(cfg, live=True, rebuildable=True) == 2
    assert resolve_workers(cfg, live=False, rebuildable=True) == 1  # a table is instant
    assert resolve_workers(cfg, live=True, rebuildable=False) == 1  # an object handed to the API
    cfg.threads = 2
    assert resolve_workers(cfg, live=True, rebuildable=True) == 1  # no CPUs left for a second process
    for workers, rebuildable, message in [(3, True, "1 or 2"), (2, True, "needs 4 CPUs"), (2, False, "by name")]:
        cfg.workers = workers
        with pytest.raises(ConfigError, match=message):
            resolve_workers(cfg, live=True, rebuildable=rebuildable)


def test_each_worker_gets_half_the_cpus_and_its_scores_are_keyed_by_that(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr("harness.plugins.default_threads", lambda: 2)
    cfg = compose_cfg(["estimator=n_layers", "device=cpu", "score_cache=off"], tmp_path)
    with open_dict(cfg):
        cfg.threads = cfg.workers = None
    job = experiment.prepare(cfg)
    assert (job.workers, job.threads) == (2, 1)
    assert json.loads(job.score_key)["threads"] == 1
    assert experiment.worker_config(job)["threads"] == 1 and experiment.worker_config(job)["workers"] == 1
    assert math.isfinite(experiment.fitted_estimator(experiment.worker_config(job), 0).estimate(ARCHS[0]).score)
