"""A parallel sweep ends with its parent, and its parent with a stopped worker: real ``python -m harness -m``
sweeps on the joblib launcher (loky workers), real signals, processes found in ``/proc``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness import storage
from tests.conftest import ROOT

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="finds processes in Linux's /proc")

#: 4 jobs of a live estimator on 2 workers: each job scores for several seconds, so the sweep is mid-run when
#: signalled (score_cache=off: no score is a cache hit)
SWEEP = [
    "-m",
    "hydra/launcher=joblib",
    "hydra.launcher.n_jobs=2",
    "task=rank",
    "estimator=synflow",
    "n_archs=60",
    "seed=0,1,2,3",
    "threads=1",
    "score_cache=off",
    "progress=false",
]


def _session(sid: int) -> list[int]:
    """The processes of session ``sid`` that are not zombies: the sweep's parent and every descendant (loky's
    workers and resource trackers), wherever they were reparented."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state = stat.read_text().rsplit(")", 1)[1].split()[0]
            if os.getsid(int(stat.parent.name)) == sid and state not in "ZX":
                found.append(int(stat.parent.name))
        except (OSError, IndexError):
            continue
    return found


def _rows(results: Path) -> dict[Path, list[str]]:
    return {f.parent: f.read_text().splitlines()[1:] for f in results.rglob("records.csv")}


def _start(results: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "harness", *SWEEP, f"results_dir={results}"],
        cwd=ROOT,
        start_new_session=True,  # its own session and group: the test finds, and signals, all of it
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _mid_run(proc: subprocess.Popen[str], results: Path) -> dict[Path, list[str]]:
    """Wait until both workers have recorded evaluations of their first jobs; those records."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        rows = _rows(results)
        if sum(bool(r) for r in rows.values()) >= 2:
            return rows
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        time.sleep(0.1)
    raise AssertionError("the sweep recorded no evaluations in 120 s")


def _workers(sid: int) -> list[int]:
    return [pid for pid in _session(sid) if b"popen_loky" in Path(f"/proc/{pid}/cmdline").read_bytes()]


@pytest.mark.parametrize(
    ("signum", "target"),
    [
        (signal.SIGTERM, "parent"),  # what SLURM sends, to the job's process
        (signal.SIGINT, "group"),  # Ctrl-C in a terminal: every process of the group
        # the busy message names a worker's pid: killing it stops the sweep
        pytest.param(signal.SIGTERM, "worker", marks=pytest.mark.slow),
        # nothing can be handled: the workers notice their parent is gone
        pytest.param(signal.SIGKILL, "parent", marks=pytest.mark.slow),
    ],
)
def test_a_signalled_sweep_leaves_no_process_and_keeps_every_evaluation(tmp_path, nb201_csv, signum, target):
    results = tmp_path / "results"
    proc = _start(results)
    try:
        before = _mid_run(proc, results)
        assert len(_workers(proc.pid)) == 2
        if target == "parent":
            os.kill(proc.pid, signum)
        elif target == "group":
            os.killpg(proc.pid, signum)
        else:
            os.kill(_workers(proc.pid)[0], signum)
        _, stderr = proc.communicate(timeout=30)
        deadline = time.monotonic() + 10
        while _session(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _session(proc.pid) == [], "harness processes left 10 s after the signal"
    finally:
        for pid in _session(proc.pid):
            os.kill(pid, signal.SIGKILL)

    name = signal.Signals(signum if signum != signal.SIGKILL else signal.SIGTERM).name
    lines = stderr.strip().splitlines()
    assert "Traceback" not in stderr
    # each worker stops its job with its line, naming the job's folder; then the parent, with its own
    after = _rows(results)
    stopped = [folder for folder in after if not (folder / "summary.json").is_file()]  # not a job that ended
    assert stopped and sorted(line for line in lines if " under " in line) == sorted(
        f"stopped by {name}: every finished evaluation is kept in records.csv under {folder}; run the same command "
        "again to resume"
        for folder in stopped
    ), stderr
    if signum == signal.SIGKILL:  # loky's resource tracker then also reports the files it cleaned up for it
        assert proc.returncode == -signal.SIGKILL
        assert [line for line in lines if line.startswith("stopped")] == lines[:2]
    else:
        assert proc.returncode == 128 + signum
        assert lines[-1] == (
            f"stopped by {name}: every finished evaluation is kept in records.csv; run the same command again to resume"
        )
        assert len(lines) == 3
    assert after.keys() == before.keys()  # no worker took the next job
    for folder, rows in before.items():
        assert after[folder][: len(rows)] == rows  # every evaluation finished before the signal is kept
    assert not list(storage.find_runs(results))


@pytest.mark.slow
def test_the_same_command_resumes_a_stopped_sweep(tmp_path, nb201_csv):
    results = tmp_path / "results"
    proc = _start(results)
    _mid_run(proc, results)
    os.kill(proc.pid, signal.SIGTERM)
    proc.communicate(timeout=30)
    assert proc.returncode == 128 + signal.SIGTERM
    again = subprocess.run(
        [sys.executable, "-m", "harness", *SWEEP, f"results_dir={results}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert again.returncode == 0, again.stderr[-2000:]
    runs, problems = storage.load_runs(results)
    assert not problems
    assert sorted(s["seed"] for _, s in runs) == [0, 1, 2, 3]
    assert all(s["n_scored"] == 60 and s["n_resumed"] > 0 for _, s in runs if s["seed"] in (0, 1))


#: put first on a sweep's PYTHONPATH, makes the job of seed ``$STOP_SEED`` stop itself (SIGINT) as it starts, before
#: it has a run folder, once the job of seed 0 has recorded an evaluation (so that one is mid-run)
_STOP_AT_START = """
import os
if os.environ.get("STOP_SEED"):
    import signal, time
    from pathlib import Path
    import harness.experiment as experiment

    prepare = experiment.prepare

    def stopped_prepare(cfg, *args, **kwargs):
        if cfg.seed == int(os.environ["STOP_SEED"]):
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and not any(
                len(f.read_text().splitlines()) > 1 for f in Path(os.environ["STOP_RESULTS"]).rglob("records.csv")
            ):
                time.sleep(0.05)
            os.kill(os.getpid(), signal.SIGINT)
        return prepare(cfg, *args, **kwargs)

    experiment.prepare = stopped_prepare
"""


def test_a_worker_stopped_before_its_first_evaluation_says_nothing_was_lost(tmp_path: Path, nb201_csv: Path) -> None:
    """The stop reaches a worker before its job has a run folder: its line says nothing was lost (no folder
    named), and the sweep still stops as one, the other worker with its folder's line."""
    site, results = tmp_path / "site", tmp_path / "results"
    site.mkdir()
    (site / "sitecustomize.py").write_text(_STOP_AT_START)
    path = os.pathsep.join([str(site), str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    env = {**os.environ, "PYTHONPATH": path, "STOP_SEED": "1", "STOP_RESULTS": str(results)}
    sweep = [arg if not arg.startswith("seed=") else "seed=0,1" for arg in SWEEP]
    proc = subprocess.run(
        [sys.executable, "-m", "harness", *sweep, f"results_dir={results}"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        timeout=300,
    )
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 128 + signal.SIGINT, proc.stderr
    rows = _rows(results)
    stopped = [folder for folder in rows if not (folder / "summary.json").is_file()]
    assert sorted(lines[:-1]) == sorted(
        [
            "stopped by SIGINT before any evaluation was recorded: nothing was lost; run the same command again",
            *(
                f"stopped by SIGINT: every finished evaluation is kept in records.csv under {folder}; run the same "
                "command again to resume"
                for folder in stopped
            ),
        ]
    ), proc.stderr
    assert lines[-1].startswith("stopped by SIGINT: every finished evaluation is kept in records.csv; ")
    assert all(folder.name == "seed=0" for folder in rows)  # seed 1 recorded nothing, not even an empty file


def test_a_worker_stopped_between_jobs_says_nothing_was_lost() -> None:
    """After a job, until the next one starts, a stop signal ends a launcher's worker with its own line (a worker
    that died silently would make the launcher kill the other workers before their lines)."""
    code = (
        "import os, signal, time\n"
        "from harness import stopping\n"
        "stopping._cli_pid = -1  # as in a launcher's worker (no parent to wait for here)\n"
        "stopping.job_done()\n"
        "os.kill(os.getpid(), signal.SIGTERM)\n"
        "time.sleep(30)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM
    assert proc.stderr == "stopped by SIGTERM between jobs: nothing was lost; run the same command again to resume\n"
