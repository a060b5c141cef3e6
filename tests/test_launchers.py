"""Sweeps through the real Hydra launchers: joblib (local processes) and submitit (its local mode)."""

from __future__ import annotations

import pytest

from harness import storage
from tests.conftest import reproducible_part
from tests.test_cli import FAST, cli


@pytest.mark.parametrize("launcher", ["joblib", "submitit_local"])
def test_sweep_through_a_launcher(tmp_path, launcher, nb201_csv):
    extra = ["hydra.launcher.n_jobs=2"] if launcher == "joblib" else ["hydra.launcher.timeout_min=5"]
    proc = cli("-m", f"hydra/launcher={launcher}", *extra, "searcher=rs,rea", "seed=0,1", *FAST, tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    runs, problems = storage.load_runs(tmp_path / "results")
    assert not problems
    assert sorted((s["searcher"], s["seed"]) for _, s in runs) == [("rea", 0), ("rea", 1), ("rs", 0), ("rs", 1)]
    # the same runs as the default launcher would write
    serial = cli("searcher=rs", "seed=1", *FAST, tmp_path=tmp_path / "serial")
    assert serial.returncode == 0
    [one] = [f for f, s in runs if (s["searcher"], s["seed"]) == ("rs", 1)]
    [ref] = list((tmp_path / "serial" / "results").rglob("records.csv"))
    assert reproducible_part(one / "records.csv") == reproducible_part(ref)
