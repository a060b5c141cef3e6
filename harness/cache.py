"""A persistent score cache for live estimators, shared by parallel workers: an SQLite file or a PostgreSQL server.

A score is stored under (estimator key, benchmark, dataset, architecture, estimator seed) together with what it
cost; the key (:func:`estimator_key`) covers everything the score depends on. A hit returns the recorded cost, so
the cost clock charges the same whether or not the score was cached. The first write of a score wins; failed
evaluations (non-finite scores) are never stored: they are recomputed next time. Workers that want the same
missing score compute it once: the first claims it (a lease row, :class:`CachedEstimator`), the others wait.

Where the scores live is the ``score_cache`` setting (:func:`open_cache`):

* an SQLite file (``auto`` = ``<cache_dir>/scores.sqlite``, a path, or ``sqlite:///PATH``), the embedded default,
  in WAL mode: safe for the workers of one machine, **not on a network filesystem** (NFS, Lustre, GPFS, ...),
  where a SLURM sweep's folders usually are: WAL needs memory shared by every process that opens the database,
  so they must all run on one host (https://www.sqlite.org/wal.html, https://www.sqlite.org/useovernet.html);
* a PostgreSQL server, ``postgresql://user@host:port/db`` (in the style of optuna's RDB storage; needs
  ``pip install .[postgres]``), which the workers of a cluster share over the network.

Scores travel between machines as CSV files::

    python -m harness.cache export FILE [overrides]   # every score, or only those of e.g. estimator=rmi_paper
    python -m harness.cache import FILE [overrides]   # refused, whole, if a key is not this checkout's
"""

from __future__ import annotations

import abc
import ast
import contextlib
import functools
import hashlib
import json
import logging
import math
import os
import secrets
import socket
import sqlite3
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness import paths
from harness.errors import ConfigError, StateFileError
from harness.interfaces import Estimator, EstimatorContext, EstimatorTags, SearchSpace
from harness.types import Arch, Estimate

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
    owner     TEXT NOT NULL,              -- host:pid:random of the worker computing this score
    expires   DOUBLE PRECISION NOT NULL,  -- the database's clock, Unix seconds; later, another worker may take over
    PRIMARY KEY (estimator, benchmark, dataset, arch, seed)
)
""",
)


#: the project's packages: an estimator's code is its module plus the modules of these it imports, transitively
_PACKAGES = ("harness", "estimators", "searchers")


def _module_file(name: str) -> Path | None:
    """The source file of project module ``name`` (a package's ``__init__.py``), found without importing it."""
    base = paths.PROJECT_ROOT.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _is_type_checking(node: ast.AST) -> bool:
    """``if TYPE_CHECKING:`` (or ``typing.TYPE_CHECKING``): a block that only the type checker runs."""
    if not isinstance(node, ast.If):
        return False
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.Module, module: str, is_package: bool) -> set[str]:
    """The project modules that a module's code imports anywhere (function-level imports included, imports for the
    type checker only left out). A package's ``__init__`` counts only when a name is taken from it
    (``from harness.networks import build_network``), not when it is passed through to reach a submodule
    (``from harness.spaces.nb201 import OPS``)."""
    found: set[str] = set()
    for node in ast.walk(_RunCode().visit(tree)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                parts = module.split(".")
                package = parts[: len(parts) - node.level + is_package]
                base = ".".join([*package, *([base] if base else [])])
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                found.add(submodule if _module_file(submodule) is not None else base)
    return {name for name in found if name.split(".")[0] in _PACKAGES and _module_file(name) is not None}


class _RunCode(ast.NodeTransformer):
    """Strips what does not change what a module computes: docstrings, type annotations and ``if TYPE_CHECKING:``
    blocks (comments are already gone in the tree). Typing a module or editing its prose keeps its scores' keys."""

    def generic_visit(self, node: ast.AST) -> ast.AST:
        super().generic_visit(node)
        body = getattr(node, "body", None)
        if isinstance(body, list):
            body = [b for b in body if not _is_type_checking(b)]
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                if isinstance(body[0].value.value, str):
                    body = body[1:]
            node.body = body or [ast.Pass()]  # type: ignore[attr-defined]  # a node with a list body (checked above)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            node.returns = None
        elif isinstance(node, ast.arg):
            node.annotation = None
        elif isinstance(node, ast.AnnAssign):  # a dataclass field keeps its name and default, not its type
            node.annotation = ast.Name(id="_", ctx=ast.Load())
        return node


def _normalised(tree: ast.Module) -> str:
    """The code of a module as it runs (:class:`_RunCode`): editing prose or types does not change its hash."""
    return ast.dump(_RunCode().visit(tree))


@functools.cache
def code_hash(*modules: str) -> str:
    """A hash of the code that project modules ``modules`` run: their own source and that of every project module
    they import, transitively, docstrings and comments left out. A conservative superset of what a score depends
    on; editing prose or an unrelated module leaves it unchanged."""
    todo, seen = list(modules), set()
    while todo:
        name = todo.pop()
        path = _module_file(name)
        if name in seen or path is None:
            continue
        seen.add(name)
        todo.extend(_imports(ast.parse(path.read_text(), filename=str(path)), name, path.name == "__init__.py"))
    digest = hashlib.sha1()
    for name in sorted(seen):
        path = _module_file(name)
        assert path is not None
        digest.update(f"{name}\n{_normalised(ast.parse(path.read_text()))}\n".encode())
    return digest.hexdigest()[:12]


def file_hash(path: Path) -> str:
    """A short content hash of a data file (``missing`` if there is none: the estimator's fit then says so)."""
    if not path.is_file():
        return "missing"
    digest = hashlib.sha256()  # hashlib.file_digest would need Python 3.11
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


#: columns of the score table and of an exported score file
EXPORT_COLUMNS = ("estimator", "benchmark", "dataset", "arch", "seed", "score", "cost_s", "device", "created")


def estimator_key(
    params: dict[str, Any],
    estimator: Estimator | None = None,
    *,
    space: SearchSpace | None = None,
    device: str = "cpu",
    data_dir: str | None = None,
) -> str:
    """Canonical id of what an estimator computes: every parameter of its config (``_target_`` included, its
    cosmetic ``name`` not) and, given the ``estimator`` object, everything else its scores depend on: the
    :func:`code_hash` of its module, of the ``space``'s module and of that space's network module
    (``harness/networks/<space>.py``, which :func:`harness.networks.build_network` loads by name), and for a live
    estimator the torch version, the device type and the content of the data files it reads
    (:meth:`~harness.interfaces.Estimator.data_files`). A changed implementation, data file, device or torch never
    serves old scores."""
    key: dict[str, Any] = {k: v for k, v in params.items() if k != "name"}
    if estimator is not None:
        modules = [type(estimator).__module__]
        if space is not None:
            modules += [type(space).__module__, f"harness.networks.{space.name}"]
        key["code"] = code_hash(*modules)
        if estimator.tags.live:
            from importlib.metadata import version

            key["torch"] = version("torch")
            key["device"] = device.split(":")[0]
            root = paths.data_dir(data_dir)
            key["data"] = {f.relative_to(root).as_posix(): file_hash(f) for f in estimator.data_files(root)}
    return json.dumps(key, sort_keys=True, separators=(",", ":"))


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


class ScoreCache(abc.ABC):
    """The score store, with what its two backends share: every query, first write wins, non-finite scores never
    stored. A backend (:class:`SqliteCache`, :class:`PostgresCache`) opens the connection and gives the SQL
    dialect's details; :func:`open_cache` picks one from the ``score_cache`` setting.

    Attributes:
        where: the database, for messages: a file path or a URL without its password.
    """

    where: str
    _db: Any  # a DB-API connection in autocommit mode
    #: SQL for the database's clock in Unix seconds (claims expire by it, whichever machine asks)
    _now: str
    #: statements run at the start of the transaction that creates the tables
    _schema_lock: tuple[str, ...] = ()

    def _execute(self, sql: str, args: Sequence[Any] = ()) -> Any:
        """Run one statement (``?`` placeholders); returns the cursor."""
        return self._db.execute(sql, args)

    def _execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        """Run one statement per row; returns the number of rows changed."""
        cursor = self._db.cursor()
        cursor.executemany(sql, rows)
        return int(cursor.rowcount)

    @abc.abstractmethod
    def _transaction(self) -> contextlib.AbstractContextManager[Any]:
        """A transaction: committed at the end of the block, rolled back on any error."""

    def _create_tables(self) -> None:
        with self._transaction():
            for statement in (*self._schema_lock, *_SCHEMA):
                self._execute(statement)

    def get(self, estimator: str, benchmark: str, dataset: str, arch: str, seed: int) -> Estimate | None:
        row = self._execute(
            f"SELECT score, cost_s, device FROM scores WHERE {_SLOT}", (estimator, benchmark, dataset, arch, seed)
        ).fetchone()
        return None if row is None else Estimate(float(row[0]), float(row[1]), str(row[2]))

    def put(self, estimator: str, benchmark: str, dataset: str, arch: str, seed: int, estimate: Estimate) -> None:
        """Store a score; a NaN or infinite one is a failed evaluation and is not stored (it is recomputed)."""
        if not math.isfinite(estimate.score):
            return
        self._execute(
            _INSERT,
            (estimator, benchmark, dataset, arch, seed, estimate.score, estimate.cost_s, estimate.device, time.time()),
        )

    def claim(
        self, estimator: str, benchmark: str, dataset: str, arch: str, seed: int, owner: str, lease_s: float
    ) -> bool:
        """Claim the right to compute a score for ``lease_s`` seconds; False while another owner's claim is live.
        An expired claim (its worker was killed, or is slower than its lease) is taken over."""
        sql = _CLAIM.format(now=self._now)
        cursor = self._execute(sql, (estimator, benchmark, dataset, arch, seed, owner, float(lease_s)))
        return int(cursor.rowcount) == 1

    def release(self, estimator: str, benchmark: str, dataset: str, arch: str, seed: int, owner: str) -> None:
        """Drop ``owner``'s claim (none if another worker has taken it over)."""
        self._execute(
            f"DELETE FROM claims WHERE {_SLOT} AND owner=?", (estimator, benchmark, dataset, arch, seed, owner)
        )

    def rows(self, estimator: str | None = None) -> list[tuple[Any, ...]]:
        """Every stored row (of one estimator key), in :data:`EXPORT_COLUMNS` order."""
        query = f"SELECT {', '.join(EXPORT_COLUMNS)} FROM scores"
        args: tuple[str, ...] = ()
        if estimator is not None:
            query, args = query + " WHERE estimator=?", (estimator,)
        order = " ORDER BY estimator, benchmark, dataset, seed, created"
        return [tuple(row) for row in self._execute(query + order, args).fetchall()]

    def put_rows(self, rows: Sequence[Sequence[Any]]) -> int:
        """Store rows in :data:`EXPORT_COLUMNS` order in one transaction (all or none); returns how many were new.
        Rows with a non-finite score are left out, as :meth:`put` does."""
        finite = [tuple(row) for row in rows if math.isfinite(row[5])]
        if not finite:
            return 0
        with self._transaction():
            return self._execute_many(_INSERT, finite)

    def __len__(self) -> int:
        return int(self._execute("SELECT COUNT(*) FROM scores").fetchone()[0])

    def close(self) -> None:
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
        fs = network_filesystem(self.path.parent)
        if fs is not None:
            log.warning(
                "the score database %s is on a network filesystem (%s): SQLite in WAL mode is not safe there when "
                "workers on several machines share it (https://www.sqlite.org/wal.html); use a PostgreSQL server, "
                "score_cache=postgresql://user@host:port/db (pip install .[postgres]), or a local disk",
                self.path,
                fs,
            )
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=timeout_s, isolation_level=None)
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
            return self._db.execute(sql, args)
        except sqlite3.DatabaseError as exc:
            name = getattr(exc, "sqlite_errorname", "")  # Python >= 3.11
            if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")) or "malformed" in str(exc):
                raise self._corrupt(exc) from exc
            raise

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        with self._db:  # COMMIT at the end, ROLLBACK on any error
            self._execute("BEGIN IMMEDIATE")  # the write lock now: no other writer between our reads and writes
            yield


def _locked(exc: sqlite3.Error) -> bool:
    """Whether ``exc`` says another connection holds a lock (SQLITE_BUSY, SQLITE_LOCKED), not that the file is bad."""
    return "locked" in str(exc) or getattr(exc, "sqlite_errorname", "").startswith(("SQLITE_BUSY", "SQLITE_LOCKED"))


def _redacted(url: str) -> str:
    """``url`` without its password."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


class PostgresCache(ScoreCache):
    """Scores on a PostgreSQL server: the cache of a cluster, whose workers on several machines share it (an
    SQLite file on a network filesystem is not safe for that). Needs the driver: ``pip install .[postgres]``.

    Args:
        url: a libpq connection URI, ``postgresql://user[:password]@host[:port]/database`` (a Unix socket:
            ``postgresql://user@/database?host=/run/postgresql``); the database must exist, the tables are created.
        timeout_s: how long to wait for the server to answer a connection.
    """

    _db: psycopg.Connection[tuple[Any, ...]]
    _now = "CAST(EXTRACT(EPOCH FROM clock_timestamp()) AS DOUBLE PRECISION)"
    #: CREATE TABLE IF NOT EXISTS races with itself in PostgreSQL: workers that start together take turns
    _schema_lock = ("SELECT pg_advisory_xact_lock(7020512)",)

    def __init__(self, url: str, timeout_s: float = 60.0) -> None:
        self.where = _redacted(url)
        try:
            import psycopg
        except ImportError as exc:
            raise ConfigError(
                f"score_cache={self.where} needs the PostgreSQL driver psycopg, which is not installed: "
                "pip install .[postgres]"
            ) from exc
        try:
            self._db = psycopg.connect(url, autocommit=True, connect_timeout=max(2, round(timeout_s)))
            self._create_tables()
        except psycopg.Error as exc:
            raise ConfigError(f"cannot use the score database {self.where}: {_one_line(exc)}") from exc

    def _execute(self, sql: str, args: Sequence[Any] = ()) -> Any:
        return self._db.execute(sql.replace("?", "%s"), args)

    def _execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        return super()._execute_many(sql.replace("?", "%s"), rows)

    def _transaction(self) -> contextlib.AbstractContextManager[Any]:
        return self._db.transaction()


def open_cache(setting: str, cache_dir: str | None) -> ScoreCache | None:
    """The score cache a job's ``score_cache`` setting names: ``auto`` = ``<cache_dir>/scores.sqlite``, ``off`` =
    none, ``postgresql://user@host:port/db`` = a PostgreSQL server (for workers on several machines), else an
    SQLite file: a path, or ``sqlite:///PATH`` (for the workers of one machine, on a local disk)."""
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
            f"score_cache={_redacted(setting)!r} is not a score database; valid: auto, off, an SQLite file's path, "
            "sqlite:///PATH, postgresql://user@host:port/db"
        )
    return SqliteCache(Path(setting))


def cache_slot(context: EstimatorContext, tags: EstimatorTags) -> tuple[str, str, int]:
    """(benchmark, dataset, seed) under which an estimator's scores are stored; dataset ``*`` when they do not
    depend on it."""
    return context.benchmark, "*" if tags.dataset_free else context.dataset, context.seed


class CachedEstimator(Estimator):
    """Wraps a live estimator: answers from the cache when it can, stores every successful new score.

    Parallel workers that miss the same score compute it once: the first claims it for ``lease_s`` seconds; the
    others poll for its score (a hit), and take the claim over when it expires (its worker was killed, or is slower
    than the lease). A worker that has waited ``wait_s`` computes the score itself. ``fit`` still runs (and is
    charged) once per run; caching one-time work is the estimator's own business.

    Args:
        inner: the estimator to wrap.
        cache: the score store.
        key: :func:`estimator_key` of ``inner``'s configuration.
        lease_s: how long a claim lasts; longer than one estimate takes, shorter than a killed worker may stall
            the others.
        wait_s: the longest wait for another worker's score (default ``lease_s``).
        poll_s: the longest pause between two looks at another worker's progress.
    """

    def __init__(
        self,
        inner: Estimator,
        cache: ScoreCache,
        key: str,
        *,
        lease_s: float = 600.0,
        wait_s: float | None = None,
        poll_s: float = 1.0,
    ) -> None:
        self.inner = inner
        self.cache = cache
        self.key = key
        self.tags = inner.tags
        self.lease_s = lease_s
        self.wait_s = lease_s if wait_s is None else wait_s
        self.poll_s = poll_s
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self.hits = 0

    def fit(self, context: EstimatorContext) -> float:
        self._where = cache_slot(context, self.tags)
        self._format = context.space.format
        return self.inner.fit(context)

    def estimate(self, arch: Arch) -> Estimate:
        benchmark, dataset, seed = self._where
        slot = (self.key, benchmark, dataset, self._format(arch), seed)
        hit = self._stored_or_claimed(slot)
        if hit is not None:
            self.hits += 1
            return hit
        try:
            est = self.inner.estimate(arch)
            self.cache.put(*slot, est)
        finally:
            self.cache.release(*slot, self.owner)
        return est

    def _stored_or_claimed(self, slot: tuple[str, str, str, str, int]) -> Estimate | None:
        """The stored score of ``slot``; else None, once this worker holds its claim (or has waited ``wait_s``)."""
        deadline, pause = time.monotonic() + self.wait_s, 0.02
        while True:
            hit = self.cache.get(*slot)
            if hit is not None:
                return hit
            if self.cache.claim(*slot, self.owner, self.lease_s):
                hit = self.cache.get(*slot)  # stored by a worker that released its claim since our first look
                if hit is not None:
                    self.cache.release(*slot, self.owner)
                return hit
            if time.monotonic() >= deadline:
                log.warning("waited %.0f s for another worker's score of %s; computing it here", self.wait_s, slot[3])
                return None
            time.sleep(pause)
            pause = min(2 * pause, self.poll_s)


# ---------------------------------------------------------------------------------------------- export / import


def export_scores(cache: ScoreCache, path: Path, estimator: str | None = None) -> int:
    """Write the cache's rows (of one estimator key) to a CSV file, atomically; returns the number of rows."""
    import csv
    import io

    rows = cache.rows(estimator)
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(EXPORT_COLUMNS)
    writer.writerows((*row[:5], repr(row[5]), repr(row[6]), row[7], repr(row[8])) for row in rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    paths.write_atomic(path, lambda f: f.write(text.getvalue().encode()))
    return len(rows)


def read_scores(path: Path) -> list[tuple[Any, ...]]:
    """The rows of an exported score file, checked: a :class:`~harness.errors.DataFileError` naming the file and
    the first bad line for a missing column, a malformed value or a non-finite score."""
    import csv

    from harness.errors import DataFileError

    try:
        with path.open(newline="") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            lines = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataFileError(f"cannot read score file {path} ({type(exc).__name__}: {exc})") from exc
    if header is None or tuple(header) != EXPORT_COLUMNS:
        raise DataFileError(
            f"score file {path} must start with the header {','.join(EXPORT_COLUMNS)} "
            f"(written by `python -m harness.cache export`), got {header}"
        )
    rows = []
    for number, line in enumerate(lines, start=2):
        try:
            if len(line) != len(EXPORT_COLUMNS):
                raise ValueError(f"{len(line)} fields, expected {len(EXPORT_COLUMNS)}")
            estimator, benchmark, dataset, arch, seed, score, cost, device, created = line
            json.loads(estimator)
            row = (estimator, benchmark, dataset, arch, int(seed), float(score), float(cost), device, float(created))
            if not (math.isfinite(row[5]) and math.isfinite(row[6]) and row[6] >= 0 and all(row[1:4])):
                raise ValueError("a non-finite score, a negative or non-finite cost, or an empty field")
        except ValueError as exc:
            raise DataFileError(f"score file {path}, line {number}: {exc}; nothing was imported") from exc
        rows.append(row)
    return rows


def check_key(key: str, benchmark: str, data_dir: str | None) -> None:
    """Raise :class:`~harness.errors.ConfigError` unless this checkout computes the scores of ``key`` on
    ``benchmark`` with the same code, torch and data files (the key would then be the same)."""
    from hydra.utils import instantiate

    from harness.config import compose
    from harness.errors import ConfigError
    from harness.experiment import build

    stored = json.loads(key)
    params = {k: v for k, v in stored.items() if k not in ("code", "torch", "device", "data")}
    try:
        estimator = instantiate(params)
        _, make_benchmark = build(compose([f"benchmark={benchmark}"]).benchmark)
    except Exception as exc:  # noqa: BLE001 - an unknown target or benchmark is a file from another version
        raise ConfigError(f"scores of an estimator this checkout cannot build ({type(exc).__name__}: {exc})") from exc
    mine = json.loads(
        estimator_key(
            params, estimator, space=make_benchmark().space, device=stored.get("device", "cpu"), data_dir=data_dir
        )
    )
    differ = sorted(k for k in mine.keys() | stored.keys() if mine.get(k) != stored.get(k))
    if differ:
        detail = "; ".join(f"{k}: file {stored.get(k)!r}, this checkout {mine.get(k)!r}" for k in differ)
        raise ConfigError(
            f"scores of {params.get('_target_')} were computed with another version of what they depend on ({detail}); "
            "they would never be used here: recompute them, or import them in the checkout that wrote them"
        )


def main(argv: list[str] | None = None) -> int:
    """``python -m harness.cache export|import FILE [overrides]``."""
    import argparse
    import sys

    from harness.config import compose
    from harness.errors import ConfigError, HarnessError
    from harness.experiment import build, score_key

    parser = argparse.ArgumentParser(
        prog="python -m harness.cache", description="Move live estimators' scores between machines."
    )
    parser.add_argument("command", choices=("export", "import"))
    parser.add_argument("file", type=Path, help="the CSV score file")
    parser.add_argument(
        "overrides", nargs="*", help="harness overrides: cache_dir=..., estimator=NAME (export: only its scores)"
    )
    args = parser.parse_args(argv)
    try:
        cfg = compose(args.overrides)
        cache = open_cache(cfg.score_cache, cfg.cache_dir)
        if cache is None:
            raise ConfigError("score_cache=off: name the score cache to export from or import into")
        if args.command == "export":
            key = None
            if any(o.startswith("estimator") for o in args.overrides):
                _, make_estimator = build(cfg.estimator)
                _, make_benchmark = build(cfg.benchmark)
                key = score_key(cfg, make_estimator(), make_benchmark().space)
            n = export_scores(cache, args.file, key)
            print(f"exported {n} scores to {args.file}")
            return 0
        rows = read_scores(args.file)
        for key, benchmark in sorted({(r[0], r[1]) for r in rows}):
            check_key(key, benchmark, cfg.data_dir)
        new = cache.put_rows(rows)
        print(f"imported {new} new scores ({len(rows) - new} already present) from {args.file} into {cache.where}")
        return 0
    except HarnessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
