"""The score store's contract, for both backends (an SQLite file, a PostgreSQL server started by these tests):
round trip, first write wins, non-finite scores never stored, export/import, claims, and faults: concurrent
writers, kill -9 during a write, a corrupt database file."""

from __future__ import annotations

import itertools
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from harness.cache import (
    ScoreCache,
    SqliteCache,
    export_scores,
    main,
    network_filesystem,
    open_cache,
    read_scores,
)
from harness.cache.backends import claim_owner, owner_gone
from harness.errors import ConfigError, StateFileError
from harness.experiment import run_job
from harness.types import Arch, Estimate
from tests import pg
from tests.cache_workers import ROWS, cached, row
from tests.conftest import ROOT, compose_cfg


def _unavailable(reason: str) -> None:
    """Skip, but never in CI: there the PostgreSQL backend must be tested."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true and {reason}: the PostgreSQL backend must be tested in CI", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def postgres() -> Iterator[pg.PostgresServer]:
    reason = pg.missing()
    if reason is not None:
        _unavailable(reason)
    server = pg.PostgresServer()
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def new_url(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], str]:
    """Makes the ``score_cache`` setting of a new, empty score database of the backend under test."""
    if request.param == "sqlite":
        numbers = itertools.count()
        return lambda: str(tmp_path / f"scores{next(numbers)}.sqlite")
    return request.getfixturevalue("postgres").new_database


@pytest.fixture
def url(new_url: Callable[[], str]) -> str:
    return new_url()


def _open(url: str) -> ScoreCache:
    cache = open_cache(url, None)
    assert cache is not None
    return cache


def _workers(*commands: list[str], tmp_path: Path) -> list[subprocess.Popen[str]]:
    """Start ``python -m tests.cache_workers COMMAND ...`` processes; returns them once all are ready, then lets
    them go at once."""
    go = tmp_path / f"go{time.monotonic_ns()}"
    env = {**os.environ, "GO": str(go)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.cache_workers", *args],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for args in commands
    ]
    for proc in procs:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line == "ready\n", (line, proc.stderr.read() if proc.stderr else "")
    go.touch()
    return procs


def _finish(procs: list[subprocess.Popen[str]], timeout: float = 120) -> list[str]:
    outs = []
    for proc in procs:
        out, err = proc.communicate(timeout=timeout)
        assert proc.returncode == 0, err
        outs.append(out)
    return outs


# ------------------------------------------------------------------------------------------------------ contract


def test_round_trip_first_write_wins(url):
    cache = _open(url)
    cache.put("k", "nb201", "cifar10", "abc", 0, Estimate(1.5, 0.25, "cpu"))
    cache.put("k", "nb201", "cifar10", "abc", 0, Estimate(9.0, 9.0, "cuda"))  # the first write wins
    assert cache.get("k", "nb201", "cifar10", "abc", 0) == Estimate(1.5, 0.25, "cpu")
    assert cache.get("other", "nb201", "cifar10", "abc", 0) is None
    assert cache.get("k", "nb201", "cifar10", "abc", 1) is None
    assert cache.get("k", "nb201", "cifar100", "abc", 0) is None
    assert len(cache) == 1
    score = 0.1 + 0.2  # not a float4: the score comes back exactly
    cache.put("k", "nb201", "cifar10", "xyz", 3, Estimate(score, 1e-7, "cpu"))
    cache.close()
    again = _open(url)  # it persists
    assert again.get("k", "nb201", "cifar10", "xyz", 3) == Estimate(score, 1e-7, "cpu")
    assert [r[:8] for r in again.rows("k")] == [
        ("k", "nb201", "cifar10", "abc", 0, 1.5, 0.25, "cpu"),
        ("k", "nb201", "cifar10", "xyz", 3, score, 1e-7, "cpu"),
    ]
    assert again.rows("none") == []


def test_a_non_finite_score_is_never_stored(url):
    cache = _open(url)
    for bad in (float("nan"), float("inf"), -float("inf")):
        cache.put(*ROWS, "a", 0, Estimate(bad, 1.0, "cpu"))
    assert cache.put_rows([row("a", float("nan"), "cpu"), row("b", float("inf"), "cpu")]) == 0
    assert len(cache) == 0 and cache.get(*ROWS, "a", 0) is None
    cache.put(*ROWS, "a", 0, Estimate(0.5, 1.0, "cpu"))
    assert cache.get(*ROWS, "a", 0) == Estimate(0.5, 1.0, "cpu")


def test_put_rows_counts_new_rows_and_is_all_or_none(url):
    cache = _open(url)
    cache.put(*ROWS, "a", 0, Estimate(1.0, 1.0, "cpu"))
    assert cache.put_rows([row("a", 2.0, "x"), row("b", 2.0, "x"), row("b", 3.0, "x"), row("c", 2.0, "x")]) == 2
    assert cache.get(*ROWS, "a", 0) == Estimate(1.0, 1.0, "cpu") and len(cache) == 3
    broken = (*ROWS, "e", 0, 1.0, None, "cpu", 0.0)  # a NULL cost: the whole batch is refused
    with pytest.raises(Exception, match="(?i)null"):
        cache.put_rows([row("d", 1.0, "x"), broken])
    assert len(cache) == 3 and cache.get(*ROWS, "d", 0) is None


def test_exported_scores_import_into_either_backend(new_url, tmp_path):
    source, target = _open(new_url()), SqliteCache(tmp_path / "other.sqlite")
    for i in range(20):
        source.put(*ROWS, f"a{i}", i % 3, Estimate(i / 7, i + 0.5, "cpu"))
    source.put('{"estimator":"other"}', "b", "*", "a0", 0, Estimate(-1.0, 0.0, "cuda"))
    assert export_scores(source, tmp_path / "all.csv") == (21, 0)
    assert export_scores(source, tmp_path / "k.csv", ROWS[0]) == (20, 0)
    assert target.put_rows(read_scores(tmp_path / "all.csv")) == 21
    assert sorted(target.rows()) == sorted(source.rows())  # every digit of every float
    assert export_scores(target, tmp_path / "back.csv") == (21, 0)
    back = _open(new_url())  # and back into the backend under test
    assert back.put_rows(read_scores(tmp_path / "back.csv")) == 21
    assert back.put_rows(read_scores(tmp_path / "k.csv")) == 0  # nothing duplicated
    assert sorted(back.rows()) == sorted(source.rows())


def _rank(tmp_path: Path, score_cache: str, name: str) -> tuple[dict, object]:
    from harness.experiment import run_job
    from harness.storage import read_records, read_summary

    overrides = ["task=rank", "estimator=params", "n_archs=5", "threads=1", f"score_cache='{score_cache}'"]
    (folder,) = run_job(compose_cfg(overrides, tmp_path), tmp_path / name / "run")
    return read_summary(folder), read_records(folder)


@pytest.mark.parametrize("new_url", ["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)], indirect=True)
def test_exported_scores_replay_on_another_machine(nb201_csv, new_url, tmp_path, capsys):
    here, there = new_url(), new_url()
    first, records = _rank(tmp_path, here, "here")
    out = tmp_path / "scores.csv"
    assert main(["export", str(out), "estimator=params", f"score_cache='{here}'"]) == 0
    assert "exported 5 scores" in capsys.readouterr().out
    assert main(["import", str(out), f"score_cache='{there}'"]) == 0
    assert "imported 5 new scores" in capsys.readouterr().out
    assert main(["import", str(out), f"score_cache='{there}'"]) == 0  # twice: nothing duplicated
    assert "imported 0 new scores (5 already present)" in capsys.readouterr().out
    second, replayed = _rank(tmp_path, there, "there")
    assert second["n_cache_hits"] == 5 and first["n_cache_hits"] == 0
    assert replayed[["arch", "score", "cost_s"]].equals(records[["arch", "score", "cost_s"]])


def _tamper(path: Path, line: int, old: str, new: str) -> None:
    lines = path.read_text().splitlines(keepends=True)
    assert old in lines[line]
    lines[line] = lines[line].replace(old, new)
    path.write_text("".join(lines))


@pytest.mark.parametrize(
    ("line", "old", "new", "message"),
    [
        (2, '""code"":""', '""code"":""0', "computed with another version of what they depend on (code: file"),
        (3, '""torch"":""', '""torch"":""1.0', "(torch: file '1.0"),
        (4, ",cpu,", ",cpu,extra,", "line 5: 10 fields, expected 9; nothing was imported"),
        (5, ",cpu,", ",cpu", "line 6: 8 fields"),
        (0, "cost_s", "cost", "must start with the header"),
    ],
)
def test_a_score_file_of_another_version_or_malformed_is_refused_whole(
    nb201_csv, tmp_path, capsys, line, old, new, message
):
    here, there = tmp_path / "here.sqlite", tmp_path / "there.sqlite"
    _rank(tmp_path, str(here), "here")
    out = tmp_path / "scores.csv"
    assert main(["export", str(out), f"score_cache='{here}'"]) == 0
    _tamper(out, line, old, new)
    capsys.readouterr()
    assert main(["import", str(out), f"score_cache='{there}'"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err, err
    assert len(SqliteCache(there)) == 0  # nothing half-imported


def test_a_database_of_the_previous_version_opens_with_its_rows(tmp_path):
    import sqlite3

    path = tmp_path / "scores.sqlite"
    old = sqlite3.connect(path, isolation_level=None)  # the schema before claims existed, REAL columns
    old.execute("PRAGMA journal_mode=WAL")
    old.execute(
        "CREATE TABLE scores (estimator TEXT NOT NULL, benchmark TEXT NOT NULL, dataset TEXT NOT NULL, arch TEXT NOT "
        "NULL, seed INTEGER NOT NULL, score REAL NOT NULL, cost_s REAL NOT NULL, device TEXT NOT NULL, created REAL "
        "NOT NULL, PRIMARY KEY (estimator, benchmark, dataset, arch, seed))"
    )
    old.execute("INSERT OR IGNORE INTO scores VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", row("a", 0.25, "cpu"))
    cache = SqliteCache(path)  # while the old version still has it open
    assert cache.get(*ROWS, "a", 0) == Estimate(0.25, 1.0, "cpu")
    assert cache.claim(*ROWS, "b", 0, "me", 60)
    old.execute("INSERT OR IGNORE INTO scores VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", row("b", 0.5, "cpu"))
    assert len(cache) == 2


# -------------------------------------------------------------------------------------------------------- claims


def test_a_claim_is_one_workers_until_released_or_expired(url):
    cache = _open(url)
    slot = (*ROWS, "a", 0)
    assert cache.claim(*slot, "A", 60)
    assert not cache.claim(*slot, "B", 60)  # live: B waits
    assert cache.claim(*slot, "A", 60)  # A may renew its own
    cache.release(*slot, "B")  # not B's to release
    assert not cache.claim(*slot, "B", 60)
    cache.release(*slot, "A")
    assert cache.claim(*slot, "B", 0.2)
    assert cache.claim(*ROWS, "other", 0, "A", 60)  # claims are per slot
    time.sleep(0.3)
    assert cache.claim(*slot, "A", 60)  # B's lease ran out: taken over
    cache.release(*slot, "B")
    assert not cache.claim(*slot, "C", 60)


def test_parallel_workers_compute_a_missing_score_once(url, tmp_path):
    log = tmp_path / "computations.txt"
    archs = ["0", "1", "2", "3"]
    commands = [["claim", url, str(log), "0.5", "60", *archs[w:], *archs[:w]] for w in range(3)]
    t0 = time.monotonic()
    outs = [json.loads(out) for out in _finish(_workers(*commands, tmp_path=tmp_path))]
    elapsed = time.monotonic() - t0
    computed = [line.split()[1] for line in log.read_text().splitlines()]
    assert sorted(computed) == archs  # each architecture computed once, by one of the 3 workers
    assert all(out["scores"] == {a: float(a) for a in archs} for out in outs)
    assert sum(out["hits"] for out in outs) == 3 * 4 - 4
    assert len(_open(url)) == 4
    print(f"3 workers x 4 archs: {len(computed)} computations in {elapsed:.1f} s")


def _computing(url: str, log: Path, tmp_path: Path, lease_s: float) -> subprocess.Popen[str]:
    """A worker that claims a7 and computes it for 600 s, once it is computing."""
    (victim,) = _workers(["claim", url, str(log), "600", str(lease_s), "7"], tmp_path=tmp_path)
    deadline = time.monotonic() + 60
    while not log.exists() and time.monotonic() < deadline:  # it holds the claim and computes
        time.sleep(0.01)
    return victim


def test_a_killed_workers_claim_on_this_host_is_taken_over_at_once(url, tmp_path):
    log = tmp_path / "computations.txt"
    victim = _computing(url, log, tmp_path, lease_s=600)
    assert not _open(url).claim(*ROWS, "a7", 0, "someone", 60)  # live: held
    victim.kill()  # kill -9 in the middle of its computation, its 600 s lease far from over
    victim.wait()
    est = cached(url, log, 0.0, 60)
    t0 = time.monotonic()
    assert est.estimate(Arch((7,))) == Estimate(7.0, 0.0, "cpu")  # its process is gone: taken over, computed
    waited = time.monotonic() - t0
    assert waited < 1  # and computed, not cached: the estimate equals an uncached one
    assert len(log.read_text().splitlines()) == 2  # the killed attempt and ours
    cache = _open(url)
    assert cache.get(*ROWS, "a7", 0) == Estimate(7.0, 0.0, "cpu")
    assert cache.claim(*ROWS, "a7", 0, "next", 60)  # ours was released
    print(f"took over a killed worker's claim after {waited:.3f} s")


def test_a_claim_of_a_process_that_runs_or_reused_its_pid(url):
    cache, me = _open(url), claim_owner()
    host, pid, start, _ = me.rsplit(":", 3)
    slot = (*ROWS, "a1", 0)
    assert cache.claim(*slot, f"{host}:{pid}:{start}:other", 600)  # this very process: alive
    assert not cache.claim(*slot, me, 60)
    assert not owner_gone(me) and not owner_gone(f"elsewhere:{pid}:1:x") and not owner_gone("A")
    reused = f"{host}:{pid}:{int(start) - 1}:x"  # our pid, but a process that started before us: gone
    assert owner_gone(reused)
    cache.release(*slot, f"{host}:{pid}:{start}:other")
    assert cache.claim(*slot, reused, 600) and cache.claim(*slot, me, 60)


def test_a_claim_of_another_host_lasts_while_renewed_then_its_lease(url, tmp_path):
    cache, slot = _open(url), (*ROWS, "a2", 0)
    assert cache.claim(*slot, "elsewhere:1:1:x", 0.5)
    for _ in range(4):  # its heartbeat renews it: never taken over
        time.sleep(0.25)
        assert cache.renew(*slot, "elsewhere:1:1:x", 0.5) and not cache.claim(*slot, "me", 60)
    time.sleep(0.6)  # no more heartbeat: its lease runs out
    assert cache.claim(*slot, "me", 60) and not cache.renew(*slot, "elsewhere:1:1:x", 0.5)
    cache.release(*slot, "me")
    assert not cache.renew(*slot, "me", 60) and cache.claim(*slot, "other", 60)  # renew never creates one


def test_a_worker_computing_longer_than_its_lease_keeps_its_claim(url, tmp_path):
    log = tmp_path / "computations.txt"
    archs = ["4"]
    commands = [["claim", url, str(log), "2", "0.6", *archs]] * 2  # 2 s of work on a 0.6 s lease, renewed
    outs = [json.loads(out) for out in _finish(_workers(*commands, tmp_path=tmp_path))]
    assert len(log.read_text().splitlines()) == 1  # computed once: the other waited, then hit
    assert sorted(out["hits"] for out in outs) == [0, 1]


def test_a_worker_waits_at_most_wait_s_then_computes(url, tmp_path):
    log = tmp_path / "computations.txt"
    assert _open(url).claim(*ROWS, "a3", 0, "a stuck worker", 600)
    est = cached(url, log, 0.0, 600, wait_s=0.5)
    t0 = time.monotonic()
    assert est.estimate(Arch((3,))).score == 3.0 and log.read_text().count("\n") == 1
    assert 0.5 <= time.monotonic() - t0 < 5
    assert est.estimate(Arch((3,))) == Estimate(3.0, 0.0, "cpu", cached=True)  # stored all the same


# -------------------------------------------------------------------------------------------------------- faults


def test_an_sqlite_file_locked_by_another_process_is_waited_for_not_called_corrupt(tmp_path):
    # a sweep's joblib workers start at once and create the cache file together; SQLite answers "database is
    # locked" at once (no busy wait) to the switch into WAL mode while another connection holds a lock, which once
    # stopped a sweep as a "corrupt" database
    path = tmp_path / "new.sqlite"
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN EXCLUSIVE")
    threading.Timer(0.5, other.execute, ["COMMIT"]).start()
    cache = SqliteCache(path, timeout_s=30)  # waits for the other's lock
    assert len(cache) == 0
    cache.close()
    other.execute("BEGIN EXCLUSIVE")
    with pytest.raises(StateFileError, match="stayed locked by another process for 0.3 s"):
        SqliteCache(path, timeout_s=0.3)
    other.execute("COMMIT")


def test_four_concurrent_writers_lose_and_duplicate_nothing(url, tmp_path):
    t0 = time.monotonic()
    _finish(_workers(*[["write", url, str(w), "300"] for w in range(4)], tmp_path=tmp_path))
    elapsed = time.monotonic() - t0
    rows = _open(url).rows()
    slots = [r[:5] for r in rows]
    assert len(slots) == len(set(slots))  # 0 duplicated
    assert sorted(r[3] for r in rows) == sorted(f"a{i}" for i in range(500))  # 0 lost
    for r in rows:  # every row is one writer's whole row
        assert r[7] == f"w{int(r[5])}" and (int(r[3][1:]) - 100 * int(r[5])) % 500 < 300
    print(f"4 writers x 300 rows: {len(rows)} of 500 stored, 0 lost, 0 duplicated, {elapsed:.1f} s")


def _kill_during_writes(url: str, tmp_path: Path, rng: random.Random) -> tuple[int, int]:
    """kill -9 a process that writes batches of 200 rows, at a random moment; returns (committed batches it
    reported, rows found)."""
    (proc,) = _workers(["batches", url, "200"], tmp_path=tmp_path)
    assert proc.stdout is not None
    proc.stdout.readline()  # one batch committed
    time.sleep(rng.uniform(0, 0.3))
    os.kill(proc.pid, signal.SIGKILL)
    reported = 1 + len(proc.stdout.read().split())
    proc.wait()
    cache = _open(url)  # opens (SQLite: and passes its integrity check)
    batches = {}
    for r in cache.rows():
        batch, _ = r[3][1:].split("-")
        batches[int(batch)] = batches.get(int(batch), 0) + 1
    assert set(batches.values()) == {200}  # no batch half-written
    assert sorted(batches) == list(range(len(batches))) and len(batches) >= reported  # every committed one
    return reported, len(cache)


def test_kill_9_during_a_write_loses_no_committed_row(url, tmp_path):
    reported, found = _kill_during_writes(url, tmp_path, random.Random())
    print(f"killed after {reported} committed batches: {found} rows found")


@pytest.mark.slow
def test_kill_9_at_ten_random_moments_loses_nothing(url, tmp_path):
    rng = random.Random(0)
    for _ in range(10):
        _kill_during_writes(url, tmp_path, rng)


def _garbage(path: Path) -> None:
    path.write_bytes(random.Random(0).randbytes(8192))


def _garbage_after_the_header(path: Path) -> None:
    path.write_bytes(b"SQLite format 3\x00" + random.Random(0).randbytes(8192))


def _truncated(size: Callable[[int], int]) -> Callable[[Path], None]:
    def damage(path: Path) -> None:
        cache = SqliteCache(path)
        cache.put_rows([row(f"arch-{i:05d}" * 10, float(i), "cpu") for i in range(3000)])
        cache.close()  # the last connection checkpoints the WAL into the file
        with path.open("r+b") as handle:
            handle.truncate(size(path.stat().st_size))

    return damage


DAMAGE = {
    "garbage": _garbage,
    "garbage after the header": _garbage_after_the_header,
    "truncated to half": _truncated(lambda n: n // 2),
    "truncated to 100 bytes": _truncated(lambda n: 100),
}


@pytest.mark.parametrize("damage", DAMAGE, ids=list(DAMAGE))
def test_a_corrupt_database_file_is_one_clear_error(tmp_path, capsys, damage):
    path = tmp_path / "scores.sqlite"
    DAMAGE[damage](path)
    with pytest.raises(StateFileError) as info:
        open_cache(str(path), None)
    message = str(info.value)
    assert str(path) in message and "\n" not in message
    assert "delete it" in message and "point score_cache elsewhere" in message and "recomputed" in message
    assert main(["export", str(tmp_path / "out.csv"), f"score_cache={path}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: the score database") and err.count("\n") == 1


def test_the_cli_on_a_corrupt_database_exits_2_with_one_error_line(tmp_path, nb201_csv):
    path = tmp_path / "scores.sqlite"
    _garbage(path)
    args = ["task=rank", "estimator=params", "n_archs=3", f"score_cache={path}", "threads=1", "progress=false"]
    proc = subprocess.run(
        [sys.executable, "-m", "harness", *args, f"results_dir={tmp_path / 'results'}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"error: the score database {path} is corrupt"), proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


# ---------------------------------------------------------------------------------------------- settings, errors


def test_score_cache_urls(tmp_path, monkeypatch):
    cache = open_cache(f"sqlite:///{tmp_path}/a/b.sqlite", None)
    assert isinstance(cache, SqliteCache) and cache.path == tmp_path / "a" / "b.sqlite"
    monkeypatch.chdir(tmp_path)
    assert open_cache("sqlite:///rel.sqlite", None).path == Path("rel.sqlite")  # type: ignore[union-attr]
    assert open_cache("off", None) is None
    assert open_cache("auto", str(tmp_path / "c")).path == tmp_path / "c" / "scores.sqlite"  # type: ignore[union-attr]
    for bad in ("mysql://u@h/db", "sqlite://", "sqlite://host/x"):
        with pytest.raises(ConfigError, match="is not a score database; valid: auto, off"):
            open_cache(bad, None)


def test_a_missing_postgres_driver_or_server_is_one_clear_error(monkeypatch, tmp_path):
    url = f"postgresql://me@/scores?host={tmp_path}"  # no server listens there
    with pytest.raises(ConfigError) as info:
        open_cache(url, None)
    message = str(info.value)
    assert message.startswith("cannot use the score database postgresql://me@/scores") and "\n" not in message
    monkeypatch.setitem(sys.modules, "psycopg", None)  # as if not installed
    with pytest.raises(ConfigError, match=r"needs the PostgreSQL driver psycopg.*pip install \.\[postgres\]"):
        open_cache(url, None)


def test_sqlite_on_a_network_filesystem_warns(tmp_path, monkeypatch, caplog):
    mounts = tmp_path / "mounts"
    mounts.write_text(
        "/dev/sda1 / ext4 rw 0 0\nserver:/home /home nfs4 rw 0 0\n/dev/sdb1 /home/local xfs rw 0 0\n"
        "me@host:/x /mnt/my\\040share fuse.sshfs rw 0 0\n"
    )
    assert network_filesystem(Path("/home/me/scores.sqlite"), mounts) == "nfs4"
    assert network_filesystem(Path("/home/local/scores.sqlite"), mounts) is None
    assert network_filesystem(Path("/mnt/my share/x"), mounts) == "sshfs"
    assert network_filesystem(Path("/tmp/x"), mounts) is None
    assert network_filesystem(Path("/tmp/x"), tmp_path / "none") is None
    monkeypatch.setattr("harness.cache.backends.network_filesystem", lambda path: "lustre")
    SqliteCache(tmp_path / "s.sqlite")
    (warning,) = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert "network filesystem (lustre)" in warning and "not safe" in warning
    assert "score_cache=postgresql://" in warning


SECRET = "s3cretPW"


@pytest.mark.parametrize(
    ("mode", "url"),
    [
        ([], f"postgresql://me:{SECRET}@/scores?host=/nowhere"),
        (["-m", "seed=0,1"], f"postgresql://me@/scores?host=/nowhere&password={SECRET}"),
    ],
)
def test_a_password_in_the_cache_url_is_refused_before_anything_is_written(tmp_path, mode, url):
    results = tmp_path / "results"
    args = [*mode, "task=rank", "estimator=params", "n_archs=5", f"score_cache='{url}'", f"results_dir={results}"]
    proc = subprocess.run(
        [sys.executable, "-m", "harness", *args], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2 and proc.stdout == "", proc.stderr
    (line,) = proc.stderr.splitlines()
    assert line.startswith("error: score_cache=") and "holds a password" in line and "PGPASSWORD" in line
    assert SECRET not in proc.stderr and "***" in line
    assert not results.exists()  # nothing written: no .hydra/*.yaml, no log, no summary


def test_a_password_in_an_experiment_file_is_refused_before_hydra_writes_its_config(tmp_path):
    """A URL in the user's own config file: refused before Hydra copies the config into .hydra/config.yaml."""
    (tmp_path / "conf" / "experiment").mkdir(parents=True)
    url = f"postgresql://me:{SECRET}@/scores?host=/nowhere"
    (tmp_path / "conf" / "experiment" / "mine.yaml").write_text(f"# @package _global_\nscore_cache: '{url}'\n")
    results = tmp_path / "results"
    args = ["--config-dir", str(tmp_path / "conf"), "+experiment=mine", "task=rank", f"results_dir={results}"]
    proc = subprocess.run(
        [sys.executable, "-m", "harness", *args], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2 and proc.stdout == "", proc.stderr
    (line,) = proc.stderr.splitlines()
    assert line.startswith("error: score_cache=") and "holds a password" in line and SECRET not in line
    assert not results.exists()


def test_a_password_from_a_config_is_refused_before_the_run_writes(tmp_path, capsys):
    # a URL that reaches the job another way (a config file, an interpolation): refused where the cache opens,
    # before a run folder is written
    url = f"postgresql://me:{SECRET}@/scores?host=/nowhere"
    cfg = compose_cfg(["task=rank", "estimator=params", "n_archs=5", f"score_cache='{url}'"], tmp_path)
    with pytest.raises(ConfigError, match="holds a password") as info:
        run_job(cfg, tmp_path / "results" / "run")
    assert SECRET not in str(info.value) and not (tmp_path / "results").exists()
    assert main(["export", str(tmp_path / "x.csv"), f"score_cache='{url}'"]) == 2
    err = capsys.readouterr().err
    assert "holds a password" in err and SECRET not in err and not (tmp_path / "x.csv").exists()
