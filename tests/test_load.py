"""A busy machine changes how long a live evaluation takes, not what the search does: the same seeded search gives
the same records, timing columns apart, with and without a load the test makes itself (bounded in time)."""

from __future__ import annotations

import subprocess
import sys
import time

import pandas as pd

from harness import storage
from harness.experiment import run_job
from tests.conftest import compose_cfg

TIMING = ["cost_s", "clock_s", "wall_s"]  # what a live estimator measures: everything else must be equal
SEARCH = ["estimator=rmi", "estimator.steps=3", "estimator.batch_size=8", "estimator.pool_factor=2"]
SEARCH += ["searcher=rea", "budget.max_evals=8", "budget.max_cost_s=null", "score_cache=off"]


def _search(tmp_path, name):
    (folder,) = run_job(compose_cfg(SEARCH, tmp_path / name), tmp_path / name / "run")
    return storage.read_records(folder), storage.read_summary(folder)


def test_the_same_search_gives_the_same_records_idle_and_busy(nb201_csv, tmp_path):
    quiet, quiet_summary = _search(tmp_path, "quiet")
    burn = "import time\nt = time.monotonic() + 120\nwhile time.monotonic() < t: pass"
    load = [subprocess.Popen([sys.executable, "-c", burn]) for _ in range(3)]  # 3 busy loops on 2 cores
    try:
        time.sleep(0.5)
        busy, busy_summary = _search(tmp_path, "busy")
    finally:
        for proc in load:
            proc.kill()
            proc.wait()
    pd.testing.assert_frame_equal(quiet.drop(columns=TIMING), busy.drop(columns=TIMING))
    assert quiet_summary["incumbent"] == busy_summary["incumbent"]
    assert busy_summary["cost_unit"] == "CPU seconds of the process on cpu" and busy_summary["threads"] == 1
