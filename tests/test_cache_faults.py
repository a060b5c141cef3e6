"""Faults of the score database are not results: a real PostgreSQL restart during a run is reconnected and retried
(no failed row, the records of an undisturbed run), and a database that stays away stops the run, which the same
command resumes; a score computed before it went away is kept."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from estimators.zero_cost import ZeroCost
from harness import storage
from harness.cache import ScoreCache, open_cache
from harness.errors import ServiceUnavailable
from harness.experiment import run_job
from harness.types import OK, Arch, Estimate
from tests import pg
from tests.conftest import compose_cfg
from tests.test_cache_backends import _unavailable

#: a live rank job: 40 parameter counts, each scored through the score database
JOB = ["task=rank", "estimator=params", "n_archs=40"]
MEASURED = ["cost_s", "clock_s"]  # a live estimator's measured seconds: never the same in two computations


@pytest.fixture(scope="module")
def server() -> Iterator[pg.PostgresServer]:
    """A server of these tests' own: they restart and stop it."""
    reason = pg.missing()
    if reason is not None:
        _unavailable(reason)
    started = pg.PostgresServer()
    try:
        yield started.start()
    finally:
        started.stop()


def _run(tmp_path: Path, name: str, url: str) -> Path:
    return run_job(compose_cfg([*JOB, f"score_cache='{url}'"], tmp_path / name), tmp_path / name / "run")[0]


def _after_record(monkeypatch: pytest.MonkeyPatch, actions: dict[int, Callable[[], None]]) -> None:
    """Run ``actions[n]`` once the n-th record of the next run reached records.csv (between two evaluations)."""
    real, seen = storage.RecordLog.__call__, [0]

    def log(self: storage.RecordLog, record: object) -> None:
        real(self, record)  # type: ignore[arg-type]
        seen[0] += 1
        actions.get(seen[0], lambda: None)()

    monkeypatch.setattr(storage.RecordLog, "__call__", log)


def _during_estimate(monkeypatch: pytest.MonkeyPatch, actions: dict[int, Callable[[], None]]) -> None:
    """Run ``actions[n]`` inside the n-th computed score, after it is computed: its ``put`` meets the fault."""
    real, seen = ZeroCost.estimate, [0]

    def estimate(self: ZeroCost, arch: Arch) -> Estimate:
        result = real(self, arch)
        seen[0] += 1
        actions.get(seen[0], lambda: None)()
        return result

    monkeypatch.setattr(ZeroCost, "estimate", estimate)


def _table(folder: Path, drop: list[str]) -> str:
    import pandas as pd

    records = pd.read_csv(folder / storage.RECORDS, keep_default_na=False)
    return records.drop(columns=["wall_s", *drop]).to_csv(index=False)


def test_a_postgres_restart_during_a_run_is_no_failed_row(nb201_csv, server, tmp_path, monkeypatch, caplog):
    whole = _run(tmp_path, "whole", server.new_database())
    url = server.new_database()
    with monkeypatch.context() as m, caplog.at_level(logging.WARNING, logger="harness"):
        _after_record(m, {5: server.restart})  # the next look at the cache meets a closed connection
        _during_estimate(m, {15: server.restart})  # a computed score's put meets it
        disturbed = _run(tmp_path, "disturbed", url)
    records = storage.read_partial_records(disturbed / storage.RECORDS)
    assert [r.status for r in records] == [OK] * 40
    assert _table(disturbed, MEASURED) == _table(whole, MEASURED)
    cache = open_cache(url, None)
    assert cache is not None and len(cache) == 40  # every score stored, the two after a restart too
    failed = [r.getMessage() for r in caplog.records if "failed (" in r.getMessage()]
    assert len(failed) == 2 and all("reconnecting for up to 60 s" in f for f in failed), failed  # once a fault
    # the same run again, all from the cache, through a third restart: the same records, their costs included (the
    # clock differs by the estimator's fit, measured in each run)
    with monkeypatch.context() as m:
        _after_record(m, {10: server.restart})
        again = _run(tmp_path, "again", url)
    assert _table(again, ["clock_s"]) == _table(disturbed, ["clock_s"])
    assert storage.read_summary(again)["n_cache_hits"] == 40


def test_a_database_that_stays_away_stops_the_run_resumable(nb201_csv, server, tmp_path, monkeypatch):
    whole = _run(tmp_path, "whole", server.new_database())
    url = server.new_database()
    with monkeypatch.context() as m:
        m.setattr(ScoreCache, "retry_s", 1.0)
        _during_estimate(m, {8: server.halt})  # stopped for good while the 8th score is computed
        with pytest.raises(ServiceUnavailable) as info:
            _run(tmp_path, "cut", url)
    message = str(info.value)
    assert message.startswith("the score database postgresql://postgres@/test") and "\n" not in message
    assert "is unreachable" in message and "run the same command again to resume" in message
    cut = tmp_path / "cut" / "run"
    kept = storage.read_partial_records(cut / storage.RECORDS)
    assert [r.status for r in kept] == [OK] * 8  # the 8th score, computed but not stored, is kept too
    assert not storage.is_complete(cut)
    server.resume()
    resumed = _run(tmp_path, "cut", url)
    assert _table(resumed, MEASURED) == _table(whole, MEASURED)
    assert storage.read_summary(resumed)["n_resumed"] == 8
