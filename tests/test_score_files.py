"""Score files carry data, never code (issue 20, item 6): ``python -m harness.cache import`` compares each key with
the key this checkout computes for an estimator it knows by name, and builds nothing a file names."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness import paths
from harness.cache import SqliteCache
from harness.cache.cli import main
from harness.cache.transfer import read_scores
from tests.conftest import compose_cfg

COMMITTED = paths.PROJECT_ROOT / "results" / "scores" / "rmi_paper.csv"


def _exported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """A score file of five parameter counts, as `export` writes it."""
    from harness.experiment import run_job

    here = tmp_path / "here.sqlite"
    overrides = ["task=rank", "estimator=params", "n_archs=5", "threads=1", f"score_cache='{here}'"]
    run_job(compose_cfg(overrides, tmp_path), tmp_path / "run")
    out = tmp_path / "scores.csv"
    assert main(["export", str(out), f"score_cache='{here}'"]) == 0
    capsys.readouterr()
    return out


def _with_key(path: Path, edit: dict[str, object]) -> None:
    """Rewrite every row's key of score file ``path`` with ``edit`` merged into it."""
    import csv

    rows = list(csv.reader(path.open(newline="")))
    for row in rows[1:]:
        row[0] = json.dumps({**json.loads(row[0]), **edit}, sort_keys=True, separators=(",", ":"))
    with path.open("w", newline="") as handle:
        csv.writer(handle, lineterminator="\n").writerows(rows)


def _refused(path: Path, there: Path, capsys: pytest.CaptureFixture[str], message: str) -> None:
    assert main(["import", str(path), f"score_cache='{there}'"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err, err
    assert not there.exists()  # refused before the cache was opened: no database left behind


def test_a_crafted_key_runs_nothing_and_imports_nothing(nb201_csv, tmp_path, capsys):
    """A key naming a file-writing function: nothing is built, written or imported, and the file is refused."""
    out = _exported(tmp_path, capsys)
    victim = tmp_path / "written-by-the-file"
    _with_key(out, {"_target_": "xmlrpc.server.SimpleXMLRPCServer", "proxy": str(victim)})
    assert "xmlrpc.server" not in sys.modules
    _refused(out, tmp_path / "there.sqlite", capsys, "an estimator this checkout does not know")
    assert "xmlrpc.server" not in sys.modules and not victim.exists()


def test_an_object_to_build_inside_a_known_estimators_parameters_is_refused(nb201_csv, tmp_path, capsys):
    out = _exported(tmp_path, capsys)
    victim = tmp_path / "made"
    _with_key(out, {"proxy": {"_target_": "os.makedirs", "name": str(victim)}})
    _refused(out, tmp_path / "there.sqlite", capsys, "names an object to build")
    assert not victim.exists()


def test_a_crafted_key_through_the_cli_writes_nothing(nb201_csv, tmp_path, capsys):
    """The same as a user runs it: a real process, one line, exit 2, no file written where the key said."""
    out = _exported(tmp_path, capsys)
    victim = tmp_path / "pwned.txt"
    _with_key(out, {"_target_": "pathlib.Path.write_text", "self": str(victim), "data": "x"})
    done = subprocess.run(
        [sys.executable, "-m", "harness.cache", "import", str(out), f"cache_dir={tmp_path / 'c'}"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "does not know" in done.stderr, done.stderr
    assert not victim.exists() and not (tmp_path / "c").exists()


def test_conflicting_scores_of_one_key_are_refused_whole(nb201_csv, tmp_path, capsys):
    out = _exported(tmp_path, capsys)
    lines = out.read_text().splitlines(keepends=True)
    first = lines[1].split(",")
    first[-4] = repr(float(first[-4]) + 1.0)  # the score column of a copy of the first row
    out.write_text("".join([*lines, ",".join(first)]))
    _refused(out, tmp_path / "there.sqlite", capsys, "differ from another score of the same key")


def test_a_score_that_conflicts_with_a_stored_one_is_refused(nb201_csv, tmp_path, capsys):
    out = _exported(tmp_path, capsys)
    there = tmp_path / "there.sqlite"
    assert main(["import", str(out), f"score_cache='{there}'"]) == 0
    lines = out.read_text().splitlines(keepends=True)
    row = lines[1].split(",")
    row[-4] = repr(float(row[-4]) * 2 + 1)
    out.write_text("".join([lines[0], ",".join(row)]))
    capsys.readouterr()
    assert main(["import", str(out), f"score_cache='{there}'"]) == 2
    assert "differ from another score of the same key" in capsys.readouterr().err
    assert len(SqliteCache(there)) == 5


@pytest.mark.parametrize("device", ["tpu", "auto"])
def test_an_unknown_device_is_refused(nb201_csv, tmp_path, capsys, device):
    out = _exported(tmp_path, capsys)
    out.write_text(out.read_text().replace(",cpu,", f",{device},"))
    _refused(out, tmp_path / "there.sqlite", capsys, f"unknown device {device!r}")


def test_a_missing_file_leaves_no_database_behind(tmp_path, capsys):
    _refused(tmp_path / "no-such.csv", tmp_path / "there.sqlite", capsys, "cannot read score file")


def test_an_unknown_estimator_in_the_overrides_is_one_line(tmp_path, capsys):
    assert main(["export", str(tmp_path / "x.csv"), "estimator=no_such", f"cache_dir={tmp_path}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "no_such" in err


def test_the_committed_paper_setting_scores_are_keyed_as_this_checkout_keys_them(tmp_path, capsys, data_dir):
    """results/scores/rmi_paper.csv (the long search of issue 21) holds scores under the key this checkout computes
    for rmi_paper: an edit of the code they depend on fails here, so it is never made unnoticed. They import where
    the machine's CPU kernels are the file's (elsewhere they are refused, rightly: see harness.cache.keys)."""
    import torch

    from harness.cache import score_key
    from harness.plugins import build

    rows = read_scores(COMMITTED)
    assert rows, f"{COMMITTED} holds no score"
    cfg = compose_cfg(["estimator=rmi_paper", "device=cpu"], tmp_path)
    _, make_estimator = build(cfg.estimator)
    _, make_benchmark = build(cfg.benchmark)
    mine = json.loads(score_key(cfg, make_estimator(), make_benchmark().space))
    for key in {r[0] for r in rows}:
        assert {k: v for k, v in json.loads(key).items() if k != "cpu"} == {k: v for k, v in mine.items() if k != "cpu"}
    if {json.loads(r[0])["cpu"] for r in rows} != {torch.backends.cpu.get_cpu_capability()}:
        pytest.skip("the committed scores were computed on another CPU kernel set than this machine's")
    there = tmp_path / "there.sqlite"
    assert main(["import", str(COMMITTED), f"score_cache='{there}'"]) == 0, capsys.readouterr().err
    assert f"imported {len(rows)} new scores" in capsys.readouterr().out
