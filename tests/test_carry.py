"""``python -m harness.cache carry``: scores kept across a code change only when recomputing some gives them bit for
bit, and score files that carry only this checkout's code."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.cache import SqliteCache
from harness.cache.cli import main
from harness.cache.transfer import read_scores
from tests.conftest import compose_cfg

OLD = "0123456789ab"  # the code hash of a version of the estimator's code that is not this checkout's


def _scored(tmp_path: Path, n: int = 6) -> tuple[Path, list[tuple[object, ...]]]:
    """A cache holding ``n`` real nwot scores (a live estimator: torch, threads and data in its key)."""
    from harness.experiment import run_job

    db = tmp_path / "scores.sqlite"
    overrides = ["task=rank", "estimator=nwot", f"n_archs={n}", f"score_cache='{db}'"]
    run_job(compose_cfg(overrides, tmp_path), tmp_path / "run")
    return db, SqliteCache(db).rows()


def _as_older_code(db: Path, rows: list[tuple[object, ...]], edit: dict[str, object] | None = None) -> str:
    """Store ``rows`` again under their key with another code hash (and ``edit``), as an older checkout would have
    written them; drop this checkout's rows. Returns the older key."""
    old = json.dumps(
        {**json.loads(str(rows[0][0])), "code": OLD, **(edit or {})}, sort_keys=True, separators=(",", ":")
    )
    cache = SqliteCache(db)
    cache.put_rows([(old, *row[1:]) for row in rows])
    cache._execute("DELETE FROM scores WHERE estimator=?", (rows[0][0],))
    return old


def _carry(db: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> str:
    assert main(["carry", "estimator=nwot", f"score_cache='{db}'", "threads=1", *extra]) == 0
    return capsys.readouterr().out


def test_scores_a_code_change_left_as_they_were_are_carried_with_their_costs(nb201_csv, tmp_path, capsys):
    db, rows = _scored(tmp_path)
    _as_older_code(db, rows)
    out = _carry(db, capsys, "--verify", "2")
    assert f"code {OLD} -> " in out and ": 6 scores (6 new), 2 recomputed bit for bit" in out, out
    assert sorted(SqliteCache(db).rows(str(rows[0][0]))) == sorted(rows)  # this checkout's key again, costs as stored
    assert "nothing to do" in _carry(db, capsys)  # a second carry finds every score there, verifies nothing


def test_one_score_that_the_change_changed_carries_nothing_and_names_it(nb201_csv, tmp_path, capsys):
    db, rows = _scored(tmp_path, n=3)
    changed = [(*row[:5], float(row[5]) + 1e-12, *row[6:]) if i == 1 else row for i, row in enumerate(rows)]
    _as_older_code(db, changed)
    out = _carry(db, capsys, "--verify", "3")
    assert out.startswith("not carried:") and "1 of 3 recomputed scores differ" in out and str(rows[1][3]) in out, out
    assert SqliteCache(db).rows(str(rows[0][0])) == []


def test_a_key_that_differs_in_more_than_code_is_left_for_the_machine_that_wrote_it(nb201_csv, tmp_path, capsys):
    db, rows = _scored(tmp_path, n=2)
    _as_older_code(db, rows, {"torch": "1.0.0"})
    out = _carry(db, capsys)
    assert out.startswith("not carried:") and "differs in torch too" in out, out


def test_an_export_writes_only_this_checkouts_code_so_the_file_imports_anywhere_it_runs(nb201_csv, tmp_path, capsys):
    db, rows = _scored(tmp_path, n=4)
    old = _as_older_code(db, rows)
    _carry(db, capsys, "--verify", "1")
    out = tmp_path / "nwot.csv"
    assert main(["export", str(out), "estimator=nwot", f"score_cache='{db}'"]) == 0
    said = capsys.readouterr().out
    assert "exported 4 scores" in said and "(4 under older code keys left out)" in said, said
    written = read_scores(out)
    assert len(written) == 4 and all(row[0] != old for row in written)
    assert main(["import", str(out), f"score_cache='{tmp_path / 'there.sqlite'}'"]) == 0


def test_carry_needs_an_estimator_and_a_positive_sample(tmp_path, capsys):
    assert main(["carry", f"score_cache='{tmp_path / 'c.sqlite'}'"]) == 2
    assert "carry needs the estimator" in capsys.readouterr().err
    assert main(["carry", "estimator=nwot", f"score_cache='{tmp_path / 'c.sqlite'}'", "--verify", "0"]) == 2
    assert "--verify must be >= 1" in capsys.readouterr().err


def test_an_export_that_would_hold_only_older_code_writes_nothing(nb201_csv, tmp_path, capsys):
    """The file a search commits as it goes is not replaced by an empty one after a code change."""
    db, rows = _scored(tmp_path, n=2)
    _as_older_code(db, rows)
    out = tmp_path / "nwot.csv"
    out.write_text("the committed file\n")
    assert main(["export", str(out), "estimator=nwot", f"score_cache='{db}'"]) == 2
    assert "all 2 scores of this estimator were computed by an older code" in capsys.readouterr().err
    assert out.read_text() == "the committed file\n"
