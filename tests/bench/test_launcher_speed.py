"""A sweep of 3 searchers x 10 seeds (NB201 protocol, table estimator) through Hydra's launchers, timed side by
side in one session (``make bench``): the basic launcher (serial) against joblib with 2 workers; the submitit
launcher's local mode runs the same sweep. Each timing is a fresh ``python -m harness -m`` process writing into an
empty results folder; the table printed at the end gives medians over the rounds and the ratio."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness import storage
from tests.conftest import ROOT

pytestmark = pytest.mark.bench
ROUNDS = 3
SWEEP = [
    "-m",
    "harness",
    "-m",
    "+experiment=nb201_protocol",
    "searcher=rs,rea,rl",
    "seed=range(0,10)",
    "progress=false",
]
LAUNCHERS = {
    "basic (serial)": ["hydra/launcher=basic"],
    "joblib, 2 workers": ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"],
}


def _sweep(results: Path, launcher: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, *SWEEP, *launcher, f"results_dir={results}"], cwd=ROOT, check=True, capture_output=True
    )
    seconds = time.perf_counter() - t0
    runs, problems = storage.load_runs(results)
    assert len(runs) == 30 and not problems
    return seconds


def test_joblib_with_two_workers_beats_the_serial_sweep(tmp_path, nb201_csv):
    times: dict[str, list[float]] = {name: [] for name in LAUNCHERS}
    for r in range(ROUNDS):  # interleaved, so that a slow minute of the machine hits both alike
        for i, (name, launcher) in enumerate(LAUNCHERS.items()):
            times[name].append(_sweep(tmp_path / f"{r}-{i}", launcher))
    serial, joblib = (statistics.median(times[name]) for name in LAUNCHERS)
    print(
        f"\n3 searchers x 10 seeds, medians of {ROUNDS}: serial {serial:.1f} s, joblib n_jobs=2 {joblib:.1f} s, "
        f"ratio {serial / joblib:.2f}x"
    )
    assert joblib < serial


def test_submitit_local_runs_the_same_sweep(tmp_path, nb201_csv):
    seconds = _sweep(tmp_path, ["hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10"])
    print(f"\nsubmitit local: the same sweep in {seconds:.1f} s")
