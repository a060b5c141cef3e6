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

Modules: :mod:`~harness.cache.keys` (what a score depends on), :mod:`~harness.cache.backends` (the two stores),
:mod:`~harness.cache.estimator` (an estimator answered from the cache), :mod:`~harness.cache.transfer` (CSV files),
:mod:`~harness.cache.carry` (a code change that leaves the scores), :mod:`~harness.cache.cli` (the commands).
Scores travel between machines as CSV files, and across a code change that leaves them (:mod:`~harness.cache.carry`)::

    python -m harness.cache export FILE [overrides]   # every score, or only those of e.g. estimator=rmi_paper
    python -m harness.cache import FILE [overrides]   # refused, whole, if a key is not this checkout's
    python -m harness.cache carry estimator=NAME      # re-key scores that a sample recomputes bit for bit
"""

from harness.cache.backends import (
    EXPORT_COLUMNS,
    PostgresCache,
    ScoreCache,
    SqliteCache,
    network_filesystem,
    open_cache,
)
from harness.cache.cli import main
from harness.cache.estimator import CachedEstimator, cache_slot
from harness.cache.keys import code_hash, estimator_key, file_hash, score_key
from harness.cache.transfer import check_key, export_scores, read_scores

__all__ = [
    "EXPORT_COLUMNS",
    "CachedEstimator",
    "PostgresCache",
    "ScoreCache",
    "SqliteCache",
    "cache_slot",
    "check_key",
    "code_hash",
    "estimator_key",
    "export_scores",
    "file_hash",
    "main",
    "network_filesystem",
    "open_cache",
    "read_scores",
    "score_key",
]
