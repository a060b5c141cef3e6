"""A persistent score cache for live estimators: one SQLite file, safe for parallel workers.

A score is stored under (estimator name + parameters, benchmark, dataset, architecture, estimator seed) together
with what it cost. A hit returns the recorded cost, so the cost clock charges the same whether or not the score
was cached. Failed evaluations are not stored: they are recomputed next time.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import math
import sqlite3
import time
from pathlib import Path
from typing import Any

from harness.interfaces import Estimator, EstimatorContext, EstimatorTags
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


def estimator_key(params: dict[str, Any], estimator: object | None = None) -> str:
    """Canonical id of what an estimator computes: every parameter of its config (``_target_`` included, its
    cosmetic ``name`` not) and, given the ``estimator`` object, a hash of the source file that defines it, so that a
    changed implementation never serves old scores."""
    key: dict[str, Any] = {k: v for k, v in params.items() if k != "name"}
    if estimator is not None:
        source = Path(inspect.getfile(type(estimator))).read_bytes()
        key["code"] = hashlib.sha1(source).hexdigest()[:12]
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
