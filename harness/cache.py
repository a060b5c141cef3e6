"""A persistent score cache for live estimators: one SQLite file, safe for parallel workers.

A score is stored under (estimator key, benchmark, dataset, architecture, estimator seed) together with what it
cost; the key (:func:`estimator_key`) covers everything the score depends on. A hit returns the recorded cost, so
the cost clock charges the same whether or not the score was cached. Failed evaluations are not stored: they are
recomputed next time.

Scores travel between machines as CSV files::

    python -m harness.cache export FILE [overrides]   # every score, or only those of e.g. estimator=rmi_paper
    python -m harness.cache import FILE [overrides]   # refused, whole, if a key is not this checkout's
"""

from __future__ import annotations

import ast
import functools
import hashlib
import json
import math
import sqlite3
import time
from pathlib import Path
from typing import Any

from harness import paths
from harness.interfaces import Estimator, EstimatorContext, EstimatorTags, SearchSpace
from harness.types import Arch, Estimate

_SCHEMA = """
CREATE TABLE IF NOT EXISTS scores (
    estimator TEXT NOT NULL,      -- canonical JSON of the estimator's parameters and code version
    benchmark TEXT NOT NULL,
    dataset   TEXT NOT NULL,
    arch      TEXT NOT NULL,
    seed      INTEGER NOT NULL,
    score     REAL NOT NULL,
    cost_s    REAL NOT NULL,
    device    TEXT NOT NULL,
    created   REAL NOT NULL,
    PRIMARY KEY (estimator, benchmark, dataset, arch, seed)
)
"""


#: the project's packages: an estimator's code is its module plus the modules of these it imports, transitively
_PACKAGES = ("harness", "estimators", "searchers")


def _module_file(name: str) -> Path | None:
    """The source file of project module ``name`` (a package's ``__init__.py``), found without importing it."""
    base = paths.PROJECT_ROOT.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imports(tree: ast.Module, module: str, is_package: bool) -> set[str]:
    """The project modules that a module's code imports anywhere (function-level imports included). A package's
    ``__init__`` counts only when a name is taken from it (``from harness.networks import build_network``), not
    when it is passed through to reach a submodule (``from harness.spaces.nb201 import OPS``)."""
    found: set[str] = set()
    for node in ast.walk(tree):
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


def _normalised(tree: ast.Module) -> str:
    """The code of a module without its docstrings and comments: editing prose does not change what it computes."""
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
            if isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]  # type: ignore[attr-defined]
    return ast.dump(tree)


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
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()[:16]


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


_INSERT = f"INSERT OR IGNORE INTO scores ({', '.join(EXPORT_COLUMNS)}) VALUES ({', '.join('?' * len(EXPORT_COLUMNS))})"


class ScoreCache:
    """Scores in an SQLite file (WAL mode; concurrent writers wait up to ``timeout_s``; the first write wins).

    Args:
        path: the database file (created with its folder).
        timeout_s: how long a writer waits for a lock held by another process.
    """

    def __init__(self, path: str | Path, timeout_s: float = 60.0) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, timeout=timeout_s, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(_SCHEMA)

    def get(self, estimator: str, benchmark: str, dataset: str, arch: str, seed: int) -> Estimate | None:
        row = self._db.execute(
            "SELECT score, cost_s, device FROM scores WHERE estimator=? AND benchmark=? AND dataset=? AND arch=? "
            "AND seed=?",
            (estimator, benchmark, dataset, arch, seed),
        ).fetchone()
        return None if row is None else Estimate(float(row[0]), float(row[1]), str(row[2]))

    def put(self, estimator: str, benchmark: str, dataset: str, arch: str, seed: int, estimate: Estimate) -> None:
        """Store a score; a NaN or infinite one is a failed evaluation and is not stored (it is recomputed)."""
        if not math.isfinite(estimate.score):
            return
        self._db.execute(
            _INSERT,
            (estimator, benchmark, dataset, arch, seed, estimate.score, estimate.cost_s, estimate.device, time.time()),
        )

    def rows(self, estimator: str | None = None) -> list[tuple[Any, ...]]:
        """Every stored row (of one estimator key), in :data:`EXPORT_COLUMNS` order."""
        query = f"SELECT {', '.join(EXPORT_COLUMNS)} FROM scores"
        args: tuple[str, ...] = ()
        if estimator is not None:
            query, args = query + " WHERE estimator=?", (estimator,)
        return self._db.execute(query + " ORDER BY estimator, benchmark, dataset, seed, created", args).fetchall()

    def put_rows(self, rows: list[tuple[Any, ...]]) -> int:
        """Store rows in :data:`EXPORT_COLUMNS` order in one transaction (all or none); returns how many were new."""
        before = len(self)
        with self._db:  # BEGIN ... COMMIT, or ROLLBACK on any error
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany(_INSERT, rows)
        return len(self) - before

    def __len__(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM scores").fetchone()[0])

    def close(self) -> None:
        self._db.close()


def open_cache(setting: str, cache_dir: str | None) -> ScoreCache | None:
    """The score cache a job's ``score_cache`` setting names: ``auto`` = ``<cache_dir>/scores.sqlite``, ``off`` =
    none, else an SQLite file's path."""
    if setting == "off":
        return None
    return ScoreCache(paths.cache_dir(cache_dir) / "scores.sqlite" if setting == "auto" else Path(setting))


def cache_slot(context: EstimatorContext, tags: EstimatorTags) -> tuple[str, str, int]:
    """(benchmark, dataset, seed) under which an estimator's scores are stored; dataset ``*`` when they do not
    depend on it."""
    return context.benchmark, "*" if tags.dataset_free else context.dataset, context.seed


class CachedEstimator(Estimator):
    """Wraps a live estimator: answers from the cache when it can, stores every successful new score.

    ``fit`` still runs (and is charged) once per run; caching one-time work is the estimator's own business.

    Args:
        inner: the estimator to wrap.
        cache: the score store.
        key: :func:`estimator_key` of ``inner``'s configuration.
    """

    def __init__(self, inner: Estimator, cache: ScoreCache, key: str) -> None:
        self.inner = inner
        self.cache = cache
        self.key = key
        self.tags = inner.tags
        self.hits = 0

    def fit(self, context: EstimatorContext) -> float:
        self._where = cache_slot(context, self.tags)
        self._format = context.space.format
        return self.inner.fit(context)

    def estimate(self, arch: Arch) -> Estimate:
        benchmark, dataset, seed = self._where
        text = self._format(arch)
        hit = self.cache.get(self.key, benchmark, dataset, text, seed)
        if hit is not None:
            self.hits += 1
            return hit
        est = self.inner.estimate(arch)
        self.cache.put(self.key, benchmark, dataset, text, seed, est)
        return est


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
        print(f"imported {new} new scores ({len(rows) - new} already present) from {args.file} into {cache.path}")
        return 0
    except HarnessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
