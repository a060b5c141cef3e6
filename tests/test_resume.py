"""Records that survive: an interrupted run keeps every finished evaluation and resumes exactly from them;
signals end a run with one line; unreadable state files are named and do not block the other seeds."""

from __future__ import annotations

import csv
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from harness import storage
from harness.errors import StateFileError
from harness.experiment import run_job
from tests.conftest import ROOT, compose_cfg, reproducible_part


class Interrupt(KeyboardInterrupt):
    pass


def interrupt_after(n: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the next run stop (as Ctrl-C would) right after its n-th record reached records.csv."""
    real = storage.RecordLog.__call__
    count = {"n": 0}

    def log(self: storage.RecordLog, record: object) -> None:
        real(self, record)
        count["n"] += 1
        if count["n"] == n:
            raise Interrupt

    monkeypatch.setattr(storage.RecordLog, "__call__", log)


@pytest.mark.parametrize(
    "overrides",
    [
        ["searcher=rminas", "searcher.n_warmup=20", "searcher.n_positives=5", "budget=evals100"],
        ["searcher=rea", "budget.max_cost_s=6000"],  # a cost budget: the resumed clock must be the same
        ["task=rank", "n_archs=30"],
    ],
)
def test_an_interrupted_run_resumes_exactly(nb201_csv, tmp_path, monkeypatch, overrides):
    whole = run_job(compose_cfg(overrides, tmp_path / "whole"), tmp_path / "whole" / "run")[0]
    cut = tmp_path / "cut" / "run"
    with monkeypatch.context() as m:
        interrupt_after(17, m)
        with pytest.raises(Interrupt):
            run_job(compose_cfg(overrides, tmp_path / "cut"), cut)
    assert not storage.is_complete(cut) and len(storage.read_partial_records(cut / storage.RECORDS)) == 17
    assert not (cut / storage.LOCK).exists()  # the folder's lock ended with the run
    (folder,) = run_job(compose_cfg(overrides, tmp_path / "cut"), cut)
    assert reproducible_part(folder / storage.RECORDS) == reproducible_part(whole / storage.RECORDS)
    a, b = storage.read_summary(whole), storage.read_summary(folder)
    assert b["n_resumed"] == 17 and a["n_resumed"] == 0
    for key in ("incumbent", "incumbent_test_acc", "n_evals", "total_cost_s", "kendall_tau_test"):
        assert a.get(key) == b.get(key), key
    assert not (folder / storage.STARTED).exists()


def test_a_file_from_before_the_answer_columns_is_migrated_once_its_replay_ends(nb201_csv, tmp_path, monkeypatch):
    """records.csv has one writer (RecordLog): the answer columns of kept records, which only the replay computes,
    are written by it when the replay ends; stopped within the replay, the file is left as it was."""
    overrides = ["searcher=rea", "budget=evals100"]
    whole = run_job(compose_cfg(overrides, tmp_path / "whole"), tmp_path / "whole" / "run")[0]
    cut = tmp_path / "cut" / "run"

    def stop_after(n: int) -> None:
        with monkeypatch.context() as m:
            interrupt_after(n, m)  # counts replayed records too
            with pytest.raises(Interrupt):
                run_job(compose_cfg(overrides, tmp_path / "cut"), cut)

    stop_after(30)
    path = cut / storage.RECORDS
    old = "".join(",".join(row[:10]) + "\n" for row in csv.reader(path.open()))  # as written before answers
    path.write_text(old)
    stop_after(10)  # within the replay of 30: nothing written
    assert path.read_text() == old
    stop_after(40)  # after it: the 30 replayed rows with their answers, then 10 new ones
    expected = reproducible_part(whole / storage.RECORDS).splitlines()[:41]
    assert reproducible_part(path).splitlines() == expected
    (folder,) = run_job(compose_cfg(overrides, tmp_path / "cut"), cut)
    assert reproducible_part(folder / storage.RECORDS) == reproducible_part(whole / storage.RECORDS)
    assert storage.read_summary(folder)["n_resumed"] == 40


def test_a_resumed_run_of_another_config_is_refused(nb201_csv, tmp_path, monkeypatch):
    cut = tmp_path / "run"
    with monkeypatch.context() as m:
        interrupt_after(3, m)
        with pytest.raises(Interrupt):
            run_job(compose_cfg(["searcher=rs", "budget=evals100"], tmp_path), cut)
    with pytest.raises(Exception, match="holds an unfinished run of another config"):
        run_job(compose_cfg(["searcher=rea", "budget=evals100"], tmp_path), cut)


def test_a_cut_last_line_is_dropped_and_garbage_is_named(tmp_path):
    path = tmp_path / storage.RECORDS
    path.write_text(",".join(storage.RECORD_COLUMNS) + "\n0,abc,1.0,1.0,1.0,0.1,table,ok,,90.0,,nan\n1,abd,2.0")
    assert [r.arch for r in storage.read_partial_records(path)] == ["abc"]
    path.write_text("\x00\x01 garbage\nmore")
    with pytest.raises(StateFileError, match="records.csv has no records.csv header; delete its folder"):
        storage.read_partial_records(path)


def test_rows_that_earlier_versions_appended_twice_on_resume_are_read_once(tmp_path):
    path = tmp_path / storage.RECORDS
    header = ",".join(storage.RECORD_COLUMNS) + "\n"
    rows = [f"{i},a{i},1.0,1.0,{i}.0,0.1,table,ok,,90.0,,nan\n" for i in range(3)]
    path.write_text(header + "".join(rows) + "".join(rows[:2]))  # kept 0-2, then replayed 0-1 appended again
    assert [r.arch for r in storage.read_partial_records(path)] == ["a0", "a1", "a2"]
    path.write_text(header + "".join(rows) + rows[0].replace("a0", "b0"))
    with pytest.raises(StateFileError, match="line 5, records step 0 after step 2; delete its folder"):
        storage.read_partial_records(path)


@pytest.mark.parametrize("content", ["{truncated", "[1, 2]", "\x00\xff\xfe"])
def test_a_corrupt_finished_run_does_not_block_the_other_seeds(nb201_csv, tmp_path, content):
    cfg = compose_cfg(["searcher=rs", "budget=evals100", "n_seeds=3"], tmp_path)
    first = run_job(cfg, tmp_path / "job" / "seed=0")
    (first[1] / storage.SUMMARY).write_bytes(content.encode("latin-1"))
    for folder in (first[0], first[2]):
        (folder / storage.SUMMARY).unlink()  # seeds 0 and 2 must run again
    with pytest.raises(StateFileError, match=r"seed=1/summary.json .*delete its folder.*the other seeds ran"):
        run_job(cfg, tmp_path / "job" / "seed=0")
    assert storage.is_complete(first[0]) and storage.is_complete(first[2])


def _cli(*args: str, tmp_path: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "harness", *args, f"results_dir={tmp_path / 'results'}", "threads=1"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


# a live rank job of a few seconds, with every score in its own cache
def _slow_job(tmp_path: Path) -> list[str]:
    # one process: a lookahead worker's claim is a live one (it ends its estimate, then itself)
    cache = f"score_cache={tmp_path / 's.sqlite'}"
    return ["task=rank", "estimator=params", "n_archs=400", "progress=false", "workers=1", cache]


def _records(tmp_path: Path) -> Path:
    (path,) = (tmp_path / "results").rglob(storage.RECORDS)
    return path


def _wait_for_rows(tmp_path: Path, n: int, proc: subprocess.Popen[str], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        found = list((tmp_path / "results").rglob(storage.RECORDS))
        if found and len(storage.read_partial_records(found[0])) >= n:
            return
        time.sleep(0.05)
    raise AssertionError(f"no {n} records within {timeout} s")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_ends_the_run_with_one_line_and_the_records_kept(nb201_csv, tmp_path, signum):
    proc = _cli(*_slow_job(tmp_path), tmp_path=tmp_path)
    _wait_for_rows(tmp_path, 20, proc)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signum
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"stopped by {signal.Signals(signum).name}"), err
    kept = storage.read_partial_records(_records(tmp_path))
    assert len(kept) >= 20 and _records(tmp_path).read_text().endswith("\n")  # whole rows only
    assert not list(tmp_path.rglob("*.tmp")) and not list(tmp_path.rglob("summary.json"))
    assert not list(tmp_path.rglob(storage.LOCK))  # released on the signal
    again = _cli(*_slow_job(tmp_path), tmp_path=tmp_path)
    assert again.wait(timeout=300) == 0, again.stderr.read() if again.stderr else ""
    summary = storage.read_summary(_records(tmp_path).parent)
    assert summary["n_resumed"] == len(kept) and summary["n_scored"] == 400


@pytest.mark.slow
def test_kill_9_at_random_points_loses_no_finished_evaluation(nb201_csv, tmp_path):
    rng = np.random.default_rng(0)
    for attempt in range(10):
        where = tmp_path / str(attempt)
        proc = _cli(*_slow_job(where), tmp_path=where)
        _wait_for_rows(where, int(rng.integers(1, 300)), proc)
        proc.kill()
        proc.wait()
        kept = len(storage.read_partial_records(_records(where)))
        with sqlite3.connect(where / "s.sqlite") as db:
            computed = db.execute("SELECT COUNT(*) FROM scores").fetchone()[0]
        # each score is stored before its record is written: at most the one in flight is missing
        assert 0 <= computed - kept <= 1, (attempt, computed, kept)
        again = _cli(*_slow_job(where), tmp_path=where)
        assert again.wait(timeout=300) == 0
        assert storage.read_summary(_records(where).parent)["n_resumed"] == kept


# a search whose every step after a short warm-up fits a random forest (about 50 ms): slow enough to be stopped
# mid-run and mid-replay by real signals, on the fast table estimator
_RMINAS = ["searcher=rminas", "searcher.n_warmup=10", "budget.max_evals=70", "budget.max_cost_s=null", "progress=false"]


def _stop(proc: subprocess.Popen[str], signum: int) -> str:
    """Send ``signum``; returns stderr once the process ended as that signal ends it."""
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == (-9 if signum == signal.SIGKILL else 128 + signum), (signum, proc.returncode, err)
    return err


def _wait_for_log(tmp_path: Path, text: str, proc: subprocess.Popen[str], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if any(text in log.read_text() for log in (tmp_path / "results").rglob("*.log")):
            return
        time.sleep(0.01)
    raise AssertionError(f"no log line {text!r} within {timeout} s")


def test_a_run_stopped_three_times_once_during_its_replay_gives_the_uninterrupted_records(nb201_csv, tmp_path):
    whole = run_job(compose_cfg(_RMINAS, tmp_path / "whole"), tmp_path / "whole" / "run")[0]
    cut = tmp_path / "cut"

    def kept() -> list[str]:
        return [r.arch for r in storage.read_partial_records(_records(cut))]

    proc = _cli(*_RMINAS, tmp_path=cut)  # 1. Ctrl-C mid-run
    _wait_for_rows(cut, 40, proc)
    assert _stop(proc, signal.SIGINT).startswith("stopped by SIGINT")
    first = kept()
    assert 40 <= len(first) < 70

    proc = _cli(*_RMINAS, tmp_path=cut)  # 2. SIGTERM while it replays those (about 1.5 s of forest fits)
    _wait_for_log(cut, f"from its {len(first)} recorded evaluations", proc)
    time.sleep(0.3)
    assert _stop(proc, signal.SIGTERM).startswith("stopped by SIGTERM")
    assert kept() == first  # stopped before any new evaluation: in the replay, which wrote nothing

    proc = _cli(*_RMINAS, tmp_path=cut)  # 3. kill -9 mid-run, after the replay
    _wait_for_rows(cut, len(first) + 10, proc)
    _stop(proc, signal.SIGKILL)
    third = kept()
    assert third[: len(first)] == first and len(first) + 10 <= len(third) < 70

    last = _cli(*_RMINAS, tmp_path=cut)
    out, err = last.communicate(timeout=120)
    assert last.returncode == 0, err
    folder = _records(cut).parent
    assert reproducible_part(folder / storage.RECORDS) == reproducible_part(whole / storage.RECORDS)
    assert storage.read_summary(folder)["n_resumed"] == len(third)


def test_kill_9_mid_estimate_then_the_same_command_does_not_wait_for_the_dead_claim(nb201_csv, tmp_path):
    for _ in range(5):  # kill -9 while an estimate is in flight: its claim (a 60 s lease) is in the database
        proc = _cli(*_slow_job(tmp_path), tmp_path=tmp_path)
        _wait_for_rows(tmp_path, 20, proc)
        with sqlite3.connect(tmp_path / "s.sqlite") as db:
            while proc.poll() is None and not db.execute("SELECT COUNT(*) FROM claims").fetchone()[0]:
                pass
            proc.kill()
            proc.wait()
            held = db.execute("SELECT arch FROM claims").fetchall()
        if held:
            break
    assert len(held) == 1, held
    t0 = time.monotonic()
    again = _cli(*_slow_job(tmp_path), tmp_path=tmp_path)
    _, err = again.communicate(timeout=300)
    assert again.returncode == 0, err
    rows = storage.read_partial_records(_records(tmp_path))
    (claimed,) = [r for r in rows if r.arch == held[0][0]]
    assert claimed.status == "ok" and claimed.wall_s < 5, claimed  # taken over at once, not waited for
    print(f"re-run after kill -9 mid-estimate: {time.monotonic() - t0:.1f} s, {claimed.wall_s:.3f} s on {claimed.arch}")
