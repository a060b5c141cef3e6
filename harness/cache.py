"""A persistent score cache for live estimators: one SQLite file, safe for parallel workers.

A score is stored under (estimator name + parameters, benchmark, dataset, architecture, estimator seed) together
with what it cost. A hit returns the recorded cost, so the cost clock charges the same whether or not the score
was cached. Failed evaluations are not stored: they are recomputed next time.
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
            "INSERT OR IGNORE INTO scores VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (estimator, benchmark, dataset, arch, seed, estimate.score, estimate.cost_s, estimate.device, time.time()),
        )

    def __len__(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM scores").fetchone()[0])

    def close(self) -> None:
        self._db.close()


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
