"""The score store on its two backends, SQLite (one machine) and PostgreSQL (a cluster), and the
``score_cache`` setting that picks one (:func:`open_cache`).

Over 300 lines for a reason: the shared base and both backends read side by side, as they differ only in a few
details of their SQL dialect and connection.
"""

from __future__ import annotations

import abc
import contextlib
import functools
import logging
import math
import os
import secrets
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

from harness import paths
from harness.errors import ConfigError, ServiceUnavailable, StateFileError, redacted, refuse_password
from harness.types import Estimate

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger("harness")


#: both backends' tables; DOUBLE PRECISION is SQLite's REAL (an 8-byte float) and PostgreSQL's float8
_SCHEMA = (
    """
CREATE TABLE IF NOT EXISTS scores (
    estimator TEXT NOT NULL,      -- canonical JSON of the estimator's parameters and code version
    benchmark TEXT NOT NULL,
    dataset   TEXT NOT NULL,
    arch      TEXT NOT NULL,
    seed      INTEGER NOT NULL,
    score     DOUBLE PRECISION NOT NULL,
    cost_s    DOUBLE PRECISION NOT NULL,
    device    TEXT NOT NULL,
    created   DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (estimator, benchmark, dataset, arch, seed)
)
""",
    """
CREATE TABLE IF NOT EXISTS claims (
    estimator TEXT NOT NULL,
    benchmark TEXT NOT NULL,
    dataset   TEXT NOT NULL,
    arch      TEXT NOT NULL,
    seed      INTEGER NOT NULL,
    owner     TEXT NOT NULL,              -- host:pid:start:random of the worker computing it (claim_owner)
    expires   DOUBLE PRECISION NOT NULL,  -- the database's clock, Unix seconds; later, another worker may take over
    PRIMARY KEY (estimator, benchmark, dataset, arch, seed)
)
""",
)


#: columns of the score table and of an exported score file
EXPORT_COLUMNS = ("estimator", "benchmark", "dataset", "arch", "seed", "score", "cost_s", "device", "created")

_SLOT = "estimator=? AND benchmark=? AND dataset=? AND arch=? AND seed=?"
_INSERT = (
    f"INSERT INTO scores ({', '.join(EXPORT_COLUMNS)}) VALUES ({', '.join('?' * len(EXPORT_COLUMNS))}) "
    "ON CONFLICT DO NOTHING"
)
#: claim a slot: a new claim, one whose lease has run out ({now}: the database's clock), or renew one's own
_CLAIM = (
    "INSERT INTO claims (estimator, benchmark, dataset, arch, seed, owner, expires) "
    "VALUES (?, ?, ?, ?, ?, ?, {now} + ?) "
    "ON CONFLICT (estimator, benchmark, dataset, arch, seed) DO UPDATE SET owner = excluded.owner, "
    "expires = excluded.expires WHERE claims.expires < {now} OR claims.owner = excluded.owner"
)
#: take over the claim of a worker that is gone, or extend one's own: (owner, lease_s, *slot, previous owner)
_TAKE = f"UPDATE claims SET owner=?, expires={{now}} + ? WHERE {_SLOT} AND owner=?"


def _start_time(pid: int) -> str | None:
    """When process ``pid`` started (clock ticks since boot, ``/proc/<pid>/stat`` field 22), ``""`` where there is
    no ``/proc`` (the pid alone then tells), None when no such process runs."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        if Path("/proc/self/stat").exists():
            return None
    except OSError:
        return ""
    else:
        return stat.rpartition(")")[2].split()[19]
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return ""


def claim_owner() -> str:
    """This process's name in the claims table, ``host:pid:start:random``: the pid with its start time, so that
    a later process given the same pid is not taken for it."""
    return f"{socket.gethostname()}:{os.getpid()}:{_start_time(os.getpid())}:{secrets.token_hex(4)}"


def owner_gone(owner: str) -> bool:
    """True if ``owner`` (:func:`claim_owner`) is a process of this host that no longer runs. A process of another
    host is never known gone: its claim ends with its lease, which it renews while it works."""
    host, pid, start, _ = (owner.rsplit(":", 3) + ["", "", ""])[:4]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    now = _start_time(int(pid))
    return now is None or (bool(start) and bool(now) and now != start)


_P = ParamSpec("_P")
_T = TypeVar("_T")
_C = TypeVar("_C", bound="ScoreCache")


def _retried(method: Callable[Concatenate[_C, _P], _T]) -> Callable[Concatenate[_C, _P], _T]:
    """``method`` run by :meth:`ScoreCache._retrying`: reconnected and retried while the database is away."""

    def retried(self: _C, /, *args: _P.args, **kwargs: _P.kwargs) -> _T:
        return self._retrying(lambda: method(self, *args, **kwargs))

    functools.update_wrapper(retried, method)
    return retried


class ScoreCache(abc.ABC):
    """The score store, with what its two backends share: every query, first write wins, non-finite scores never
    stored, and faults of the database's machinery (a lost connection, a server restart, an I/O error, a full
    disk) reconnected and retried for up to ``retry_s`` seconds, then a
    :class:`~harness.errors.ServiceUnavailable`. A backend (:class:`SqliteCache`, :class:`PostgresCache`) opens
    the connection and gives the SQL dialect's details; :func:`open_cache` picks one from the ``score_cache``
    setting.

    Attributes:
        where: the database, for messages: a file path or a URL without its password.
    """

    where: str
    #: how long one operation goes on reconnecting to a database that went away, with a growing pause
    retry_s: float = 60.0
    _db: Any  # a DB-API connection in autocommit mode (None after a fault), shared with a claim's heartbeat thread
    _lock: threading.RLock
    #: SQL for the database's clock in Unix seconds (claims expire by it, whichever machine asks)
    _now: str
    #: statements run at the start of the transaction that creates the tables
    _schema_lock: tuple[str, ...] = ()

    def _execute(self, sql: str, args: Sequence[Any] = ()) -> Any:
        """Run one statement (``?`` placeholders); returns the cursor."""
        with self._lock:
            return self._db.execute(sql, args)

    def _execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        """Run one statement per row; returns the number of rows changed."""
        with self._lock:
            cursor = self._db.cursor()
            cursor.executemany(sql, rows)
            return int(cursor.rowcount)

    @abc.abstractmethod
    def _transaction(self) -> contextlib.AbstractContextManager[Any]:
        """A transaction: committed at the end of the block, rolled back on any error."""

    @abc.abstractmethod
    def _connect(self) -> Any:
        """A new connection to the database (its tables exist)."""

    @abc.abstractmethod
    def _fault(self, exc: Exception) -> bool:
        """Whether ``exc`` is a fault of the database's machinery (worth a new connection and another try), not
        of the request."""

    def _retrying(self, operation: Callable[[], _T]) -> _T:
        """``operation`` on a live connection; after a fault, on a new one, with a pause that doubles up to 5 s,
        for up to ``retry_s`` seconds (logged once); then :class:`~harness.errors.ServiceUnavailable`."""
        deadline, pause = 0.0, 0.1
        while True:
            try:
                with self._lock:
                    if self._db is None:
                        self._db = self._connect()
                    result = operation()
                if deadline:
                    log.warning("the score database %s answers again", self.where)
                return result
            except Exception as exc:
                if not self._fault(exc):
                    raise
                with self._lock:
                    if self._db is not None:
                        with contextlib.suppress(Exception):
                            self._db.close()
                        self._db = None
                now = time.monotonic()
                if not deadline:
                    deadline = now + self.retry_s
                    log.warning(
                        "the score database %s failed (%s); reconnecting for up to %g s",
                        self.where,
                        _one_line(exc),
                        self.retry_s,
                    )
                if now >= deadline:
                    raise ServiceUnavailable(
                        f"the score database {self.where} is unreachable ({_one_line(exc)}; retried for "
                        f"{self.retry_s:g} s): the run stopped, every finished evaluation is kept in its records.csv; "
                        "run the same command again to resume once the database is back"
                    ) from exc
                time.sleep(min(pause, deadline - now))
                pause = min(2 * pause, 5.0)

    def _create_tables(self) -> None:
        with self._transaction():
            for statement in (*self._schema_lock, *_SCHEMA):
                self._execute(statement)

    @_retried
    def get(self, estimator: str, benchmark: str, dataset: str, arch: str, seed: int) -> Estimate | None:
        row = self._execute(
            f"SELECT score, cost_s, device FROM scores WHERE {_SLOT}", (estimator, benchmark, dataset, arch, seed)
        ).fetchone()
        return None if row is None else Estimate(float(row[0]), float(row[1]), str(row[2]))

    @_retried
    def put(self, estimator: str, benchmark: str, dataset: str, arch: str, seed: int, estimate: Estimate) -> None:
        """Store a score; a NaN or infinite one is a failed evaluation and is not stored (it is recomputed)."""
        if not math.isfinite(estimate.score):
            return
        self._execute(
            _INSERT,
            (estimator, benchmark, dataset, arch, seed, estimate.score, estimate.cost_s, estimate.device, time.time()),
        )

    @_retried
    def claim(
        self, estimator: str, benchmark: str, dataset: str, arch: str, seed: int, owner: str, lease_s: float
    ) -> bool:
        """Claim the right to compute a score for ``lease_s`` seconds; False while another owner's claim is live.
        A claim whose lease ran out (its worker, on any host, stopped renewing it) is taken over, and so is at once
        one whose worker was a process of this host that is gone (:func:`owner_gone`)."""
        slot = (estimator, benchmark, dataset, arch, seed)
        if int(self._execute(_CLAIM.format(now=self._now), (*slot, owner, float(lease_s))).rowcount) == 1:
            return True
        row = self._execute(f"SELECT owner FROM claims WHERE {_SLOT}", slot).fetchone()
        if row is None or not owner_gone(str(row[0])):
            return False
        log.info("took over the claim on %s of %s, a process of this host that is gone", arch, row[0])
        return self._take(slot, str(row[0]), owner, lease_s)

    def renew(
        self, estimator: str, benchmark: str, dataset: str, arch: str, seed: int, owner: str, lease_s: float
    ) -> bool:
        """Extend ``owner``'s claim to ``lease_s`` seconds from now; False if it holds none (released, or taken
        over after its lease ran out). Never creates a claim."""
        return self._take((estimator, benchmark, dataset, arch, seed), owner, owner, lease_s)

    def _take(self, slot: tuple[str, str, str, str, int], previous: str, owner: str, lease_s: float) -> bool:
        cursor = self._execute(_TAKE.format(now=self._now), (owner, float(lease_s), *slot, previous))
        return int(cursor.rowcount) == 1

    @_retried
    def release(self, estimator: str, benchmark: str, dataset: str, arch: str, seed: int, owner: str) -> None:
        """Drop ``owner``'s claim (none if another worker has taken it over)."""
        self._execute(
            f"DELETE FROM claims WHERE {_SLOT} AND owner=?", (estimator, benchmark, dataset, arch, seed, owner)
        )

    @_retried
    def rows(self, estimator: str | None = None) -> list[tuple[Any, ...]]:
        """Every stored row (of one estimator key), in :data:`EXPORT_COLUMNS` order."""
        query = f"SELECT {', '.join(EXPORT_COLUMNS)} FROM scores"
        args: tuple[str, ...] = ()
        if estimator is not None:
            query, args = query + " WHERE estimator=?", (estimator,)
        order = " ORDER BY estimator, benchmark, dataset, seed, created"
        return [tuple(row) for row in self._execute(query + order, args).fetchall()]

    @_retried
    def put_rows(self, rows: Sequence[Sequence[Any]]) -> int:
        """Store rows in :data:`EXPORT_COLUMNS` order in one transaction (all or none); returns how many were new.
        Rows with a non-finite score are left out, as :meth:`put` does."""
        finite = [tuple(row) for row in rows if math.isfinite(row[5])]
        if not finite:
            return 0
        with self._transaction():
            return self._execute_many(_INSERT, finite)

    @_retried
    def __len__(self) -> int:
        return int(self._execute("SELECT COUNT(*) FROM scores").fetchone()[0])

    def close(self) -> None:
        if self._db is not None:
            self._db.close()


#: filesystem types (``/proc/mounts``; ``fuse.X`` counts as ``X``) on which SQLite's WAL mode is not safe
NETWORK_FILESYSTEMS = frozenset(
    "nfs nfs4 cifs smb3 smbfs lustre gpfs beegfs ceph cephfs glusterfs sshfs 9p afs panfs wekafs juicefs s3fs gcsfuse "
    "davfs".split()
)


def network_filesystem(path: Path, mounts: Path = Path("/proc/mounts")) -> str | None:
    """The type of the network filesystem that holds ``path`` (``nfs4``, ``lustre``, ...), or None: a local disk,
    or a system without ``mounts`` (Linux's ``/proc/mounts``)."""
    try:
        lines = mounts.read_text().splitlines()
    except OSError:
        return None
    target, depth, kind = path.resolve(), -1, ""
    for line in lines:
        fields = line.split()
        if len(fields) < 3:
            continue
        point = Path(fields[1].replace("\\040", " "))
        if (point == target or point in target.parents) and len(point.parts) > depth:
            depth, kind = len(point.parts), fields[2]
    kind = kind.removeprefix("fuse.")
    return kind if kind in NETWORK_FILESYSTEMS else None


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


class SqliteCache(ScoreCache):
    """Scores in an SQLite file, in WAL mode: concurrent writers of one machine wait up to ``timeout_s`` for each
    other. Not for a network filesystem: WAL mode needs the processes that open the file to share memory, so to
    run on one host (https://www.sqlite.org/wal.html); a cluster's workers share a :class:`PostgresCache`.

    A file that is not an SQLite database, or a corrupt or truncated one, is a
    :class:`~harness.errors.StateFileError` naming it.

    Args:
        path: the database file (created with its folder).
        timeout_s: how long a writer waits for a lock held by another process.
    """

    _now = "((julianday('now') - 2440587.5) * 86400.0)"

    def __init__(self, path: str | Path, timeout_s: float = 60.0) -> None:
        self.path = Path(path)
        self.where = str(self.path)
        self._lock = threading.RLock()
        fs = network_filesystem(self.path.parent)
        if fs is not None:
            log.warning(
                "the score database %s is on a network filesystem (%s): SQLite in WAL mode is not safe there when "
                "workers on several machines share it (https://www.sqlite.org/wal.html); use a PostgreSQL server, "
                "score_cache=postgresql://user@host:port/db (pip install .[postgres]), or a local disk",
                self.path,
                fs,
            )
        self.timeout_s = timeout_s
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = self._connect()
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(
                f"cannot open the score database {self.path} ({_one_line(exc)}): point score_cache at a writable "
                "file, or set score_cache=off"
            ) from exc
        try:
            self._enter_wal(timeout_s)
            check = self._execute("PRAGMA quick_check").fetchall()
            if check != [("ok",)]:
                raise sqlite3.DatabaseError("database disk image is malformed: " + "; ".join(r[0] for r in check[:3]))
            self._create_tables()
        except sqlite3.OperationalError as exc:
            self._db.close()
            if not _locked(exc):
                raise self._corrupt(exc) from exc
            raise StateFileError(
                f"the score database {self.path} stayed locked by another process for {timeout_s:g} s "
                f"({_one_line(exc)}): wait for it, or point score_cache elsewhere"
            ) from exc
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise self._corrupt(exc) from exc

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=self.timeout_s, isolation_level=None, check_same_thread=False)

    def _fault(self, exc: Exception) -> bool:
        """An I/O error, a full disk, a file that cannot be opened, a lock held longer than ``timeout_s``."""
        name = getattr(exc, "sqlite_errorname", "")
        return isinstance(exc, sqlite3.OperationalError) and (
            name.startswith(("SQLITE_IOERR", "SQLITE_FULL", "SQLITE_CANTOPEN", "SQLITE_BUSY", "SQLITE_LOCKED"))
            or _locked(exc)
        )

    def _enter_wal(self, timeout_s: float) -> None:
        """Switch to WAL mode. SQLite answers "database is locked" at once, without its busy wait, while another
        process opens the same new file, so this waits here, up to ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                self._execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if not _locked(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def _corrupt(self, exc: sqlite3.DatabaseError) -> StateFileError:
        return StateFileError(
            f"the score database {self.path} is corrupt or not an SQLite file ({_one_line(exc)}): delete it (and "
            f"its -wal and -shm files) or point score_cache elsewhere; it only holds cached scores, which are "
            "recomputed"
        )

    def _execute(self, sql: str, args: Sequence[Any] = ()) -> Any:
        try:
            return super()._execute(sql, args)
        except sqlite3.DatabaseError as exc:
            name = getattr(exc, "sqlite_errorname", "")  # Python >= 3.11
            if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")) or "malformed" in str(exc):
                raise self._corrupt(exc) from exc
            raise

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        with self._lock, self._db:  # COMMIT at the end, ROLLBACK on any error
            self._execute("BEGIN IMMEDIATE")  # the write lock now: no other writer between our reads and writes
            yield


def _locked(exc: sqlite3.Error) -> bool:
    """Whether ``exc`` says another connection holds a lock (SQLITE_BUSY, SQLITE_LOCKED), not that the file is bad."""
    return "locked" in str(exc) or getattr(exc, "sqlite_errorname", "").startswith(("SQLITE_BUSY", "SQLITE_LOCKED"))


class PostgresCache(ScoreCache):
    """Scores on a PostgreSQL server: the cache of a cluster, whose workers on several machines share it (an
    SQLite file on a network filesystem is not safe for that). Needs the driver: ``pip install .[postgres]``.

    Args:
        url: a libpq connection URI, ``postgresql://user@host[:port]/database`` (a Unix socket:
            ``postgresql://user@/database?host=/run/postgresql``); the database must exist, the tables are created.
            A password goes in ``PGPASSWORD`` or ``~/.pgpass``: :func:`open_cache` refuses one in the URL.
        timeout_s: how long to wait for the server to answer a connection.
    """

    _db: psycopg.Connection[tuple[Any, ...]]
    _now = "CAST(EXTRACT(EPOCH FROM clock_timestamp()) AS DOUBLE PRECISION)"
    #: CREATE TABLE IF NOT EXISTS races with itself in PostgreSQL: workers that start together take turns
    _schema_lock = ("SELECT pg_advisory_xact_lock(7020512)",)

    def __init__(self, url: str, timeout_s: float = 60.0) -> None:
        self.where = redacted(url)
        self._lock = threading.RLock()
        try:
            import psycopg
        except ImportError as exc:
            raise ConfigError(
                f"score_cache={self.where} needs the PostgreSQL driver psycopg, which is not installed: "
                "pip install .[postgres]"
            ) from exc
        self._url, self._timeout_s = url, timeout_s
        try:
            self._db = self._connect()
            self._create_tables()
        except psycopg.Error as exc:
            raise ConfigError(f"cannot use the score database {self.where}: {_one_line(exc)}") from exc

    def _connect(self) -> psycopg.Connection[tuple[Any, ...]]:
        import psycopg

        return psycopg.connect(self._url, autocommit=True, connect_timeout=max(2, round(self._timeout_s)))

    def _fault(self, exc: Exception) -> bool:
        """A lost or refused connection, a server shutting down or restarting (``OperationalError``)."""
        import psycopg

        return isinstance(exc, psycopg.OperationalError)

    def _execute(self, sql: str, args: Sequence[Any] = ()) -> Any:
        return super()._execute(sql.replace("?", "%s"), args)

    def _execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        return super()._execute_many(sql.replace("?", "%s"), rows)

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        with self._lock, self._db.transaction():
            yield


def open_cache(setting: str, cache_dir: str | None) -> ScoreCache | None:
    """The score cache a job's ``score_cache`` setting names: ``auto`` = ``<cache_dir>/scores.sqlite``, ``off`` =
    none, ``postgresql://user@host:port/db`` = a PostgreSQL server (for workers on several machines), else an
    SQLite file: a path, or ``sqlite:///PATH`` (for the workers of one machine, on a local disk)."""
    refuse_password(setting)
    if setting == "off":
        return None
    if setting == "auto":
        return SqliteCache(paths.cache_dir(cache_dir) / "scores.sqlite")
    scheme = setting.partition("://")[0] if "://" in setting else ""
    if scheme in ("postgresql", "postgres"):
        return PostgresCache(setting)
    if scheme == "sqlite" and setting.startswith("sqlite:///") and len(setting) > len("sqlite:///"):
        return SqliteCache(Path(setting.removeprefix("sqlite:///")))
    if scheme:
        raise ConfigError(
            f"score_cache={redacted(setting)!r} is not a score database; valid: auto, off, an SQLite file's path, "
            "sqlite:///PATH, postgresql://user@host:port/db"
        )
    return SqliteCache(Path(setting))
