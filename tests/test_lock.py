"""One process per run folder: a seed that another live process is running is left alone, named with that
process's pid, and counted as a failed seed; the lock dies with its holder, so a killed run never blocks the next."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import identity, storage
from harness.config import compose
from harness.errors import RunFolderBusy, StateFileError
from harness.experiment import run_job
from tests.conftest import ROOT, compose_cfg
from tests.test_resume import Interrupt, interrupt_after

JOB = ["searcher=rs", "budget=evals100"]

#: a real second process that holds a run folder's lock (as a running seed does) until it is killed
HOLDER = """
import sys, time
from pathlib import Path
from harness import identity, storage
from harness.config import compose
with storage.hold_run(Path(sys.argv[1])):
    print("locked", flush=True)
    time.sleep(600)
"""


def _hold(folder: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline() == "locked\n"
    return proc


@pytest.fixture
def holders() -> Iterator[list[subprocess.Popen[str]]]:
    procs: list[subprocess.Popen[str]] = []
    yield procs
    for proc in procs:  # only the processes this test started
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)


def _kill(proc: subprocess.Popen[str], signum: int) -> None:
    os.kill(proc.pid, signum)
    proc.wait(timeout=30)


def test_a_seed_another_process_runs_is_left_alone_and_resumed_after(nb201_csv, tmp_path, monkeypatch, holders):
    folder = tmp_path / "job" / "seed=0"
    with monkeypatch.context() as m:  # an interrupted run: records.csv and started.json to protect
        interrupt_after(5, m)
        with pytest.raises(Interrupt):
            run_job(compose_cfg(JOB, tmp_path), folder)
    assert not (folder / storage.LOCK).exists()  # released on the exception
    before = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}

    holder = _hold(folder)
    holders.append(holder)
    with pytest.raises(RunFolderBusy) as caught:
        run_job(compose_cfg(JOB, tmp_path), folder)
    message = str(caught.value)
    assert f"{folder} is being run by another process (pid {holder.pid} on " in message
    assert f"wait for that one to finish, or end it (kill {holder.pid}) and run this command again" in message
    after = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file() and p.name != storage.LOCK}
    assert after == {k: v for k, v in before.items() if k != storage.LOCK}  # records.csv untouched, nothing new

    _kill(holder, signal.SIGKILL)  # no cleanup at all: the lock file stays, the lock does not
    assert (folder / storage.LOCK).exists()
    (done,) = run_job(compose_cfg(JOB, tmp_path), folder)
    summary = storage.read_summary(done)
    assert summary["n_resumed"] == 5 and summary["n_evals"] == 100
    assert not (done / storage.LOCK).exists()


def test_a_busy_seed_does_not_block_the_other_seeds(nb201_csv, tmp_path, holders):
    job_dir = tmp_path / "job" / "seed=0"
    busy = job_dir.parent / "seed=1"
    holders.append(_hold(busy))
    with pytest.raises(StateFileError, match=r"seed=1 is being run by another process .*; the other seeds ran"):
        run_job(compose_cfg([*JOB, "n_seeds=3"], tmp_path), job_dir)
    assert storage.is_complete(job_dir) and storage.is_complete(job_dir.parent / "seed=2")
    assert [p.name for p in busy.iterdir()] == [storage.LOCK]  # only the holder's own file


def test_the_lock_is_released_on_sigterm_and_by_a_finished_run(tmp_path, holders):
    folder = tmp_path / "run"
    holder = _hold(folder)
    holders.append(holder)
    with pytest.raises(RunFolderBusy), storage.hold_run(folder):
        pass
    _kill(holder, signal.SIGTERM)
    with storage.hold_run(folder):
        assert (folder / storage.LOCK).read_text().split()[0] == str(os.getpid())
    assert not (folder / storage.LOCK).exists()


def test_the_cli_names_the_holder_in_one_error_line(nb201_csv, tmp_path, holders):
    results = tmp_path / "results"
    args = [*JOB, f"results_dir={results}", "experiment_name=locked", "progress=false"]
    folder = results / "locked" / identity.run_path(identity.resolved(compose(args))) / "seed=0"
    holder = _hold(folder)
    holders.append(holder)
    proc = subprocess.run(
        [sys.executable, "-m", "harness", *args], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"error: {folder} is being run by another process (pid "), lines
    assert f"(pid {holder.pid} on " in lines[0] and f"(kill {holder.pid})" in lines[0]
    # the harness wrote nothing there (Hydra's own .hydra/ and log file are made before the job starts)
    assert not (folder / storage.RECORDS).exists() and not (folder / storage.STARTED).exists()
