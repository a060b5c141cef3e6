"""Shared machinery of tabular benchmarks: a compact cached index and O(1) look-ups."""

from __future__ import annotations

import abc
import logging
import math
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from harness import paths
from harness.benchmarks.view import ValidationView
from harness.errors import ConfigError, OutOfDomainError
from harness.interfaces import SearchSpace
from harness.types import Arch, Observation

log = logging.getLogger("harness")

#: Bump when the layout of the cached arrays changes.
_CACHE_VERSION = 1


def check_dataset(benchmark: Any, note: str = "") -> None:
    """Refuse a ``benchmark.dataset`` not in ``benchmark.datasets``, naming the valid ones (and ``note``)."""
    if benchmark.dataset not in benchmark.datasets:
        raise ConfigError(
            f"benchmark.dataset={benchmark.dataset!r} is not a dataset of {benchmark.name}; valid: "
            f"{', '.join(benchmark.datasets)}{note}"
        )


class TableBenchmark(abc.ABC):
    """A table of per-architecture results, one row per architecture of ``space`` in ``space.index`` order.

    Subclasses name their source file and datasets, read the source into columns (:meth:`_read_source`) and map
    each fidelity to a (validation column, cost column) pair. The columns are cached as ``.npz`` under the cache
    folder, keyed by the source file's size and modification time, so later loads take milliseconds.

    Args:
        dataset: which dataset's results to use.
        data_dir: shared data folder (default: ``$HARNESS_DATA_DIR`` or ``../shared/data``).
        cache_dir: folder for the cached index (default: ``$HARNESS_CACHE_DIR`` or ``<project>/.cache``).
    """

    name: ClassVar[str]
    datasets: ClassVar[tuple[str, ...]]
    #: fidelity -> (validation accuracy column, recorded cost column or None)
    fidelity_columns: ClassVar[dict[str, tuple[str, str | None]]]
    test_column: ClassVar[str] = "test_acc"
    #: a table's test column is a split of its own (:attr:`harness.interfaces.Benchmark.has_test_split`)
    has_test_split: ClassVar[bool] = True
    space: SearchSpace

    def __init__(self, dataset: str, data_dir: str | None = None, cache_dir: str | None = None) -> None:
        self.dataset = dataset
        self.data_dir = data_dir
        self.cache_dir = cache_dir
        self._cols: dict[str, list[float]] | None = None
        self._optimum: tuple[float, float] | None = None
        self._rows: dict[tuple[int, ...], int] = {}

    @property
    def fidelities(self) -> tuple[str, ...]:
        return tuple(self.fidelity_columns)

    @property
    def has_train_cost(self) -> bool:
        return self.fidelity_columns[self.fidelities[0]][1] is not None

    @abc.abstractmethod
    def source_path(self) -> Path:
        """The source file in the data folder (checked to exist, with a message saying what it must contain)."""

    @abc.abstractmethod
    def _read_source(self, path: Path) -> dict[str, dict[str, np.ndarray]]:
        """Read the source file: ``{dataset: {column: float64 array in space.index order}}``; validate it."""

    def load(self) -> TableBenchmark:
        """Check the dataset name, then load the table (from the cache when it is fresh). Idempotent."""
        if self._cols is not None:
            return self
        check_dataset(self)
        source = self.source_path()
        arrays = self._cached(source)
        self._cols = {col: arrays[f"{self.dataset}/{col}"].tolist() for col in self._columns()}
        test = self._cols[self.test_column]  # a row without results (a partial table's) is not in the table
        self._rows = {arch.ops: i for i, arch in enumerate(self.space.enumerate()) if not math.isnan(test[i])}
        return self

    def _columns(self) -> list[str]:
        cols = [self.test_column]
        for valid, cost in self.fidelity_columns.values():
            cols += [valid] + ([cost] if cost else [])
        return cols

    def _cached(self, source: Path) -> dict[str, np.ndarray]:
        st = source.stat()
        folder = paths.cache_dir(self.cache_dir) / "tables"
        target = folder / f"{self.name}-v{_CACHE_VERSION}-{st.st_size}-{st.st_mtime_ns}.npz"
        if target.is_file():
            try:
                with np.load(target) as npz:
                    return dict(npz)
            except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:  # derived: rebuild it from the source
                log.warning("rebuilding the unreadable table index %s (%s: %s)", target, type(exc).__name__, exc)
        tables = self._read_source(source)
        flat = {f"{ds}/{col}": np.asarray(arr, dtype=np.float64) for ds, t in tables.items() for col, arr in t.items()}
        folder.mkdir(parents=True, exist_ok=True)
        paths.write_atomic(target, lambda fh: np.savez(fh, **flat))  # type: ignore[arg-type]
        return flat

    def _row(self, arch: Arch) -> int:
        if self._cols is None:
            self.load()
        try:
            return self._rows[arch.ops]
        except KeyError:
            if len(self._rows) < self.space.size:
                raise OutOfDomainError(
                    f"{arch.ops} has no results in {self.name}'s partial table "
                    f"({len(self._rows):,} of {self.space.size:,} architectures)"
                ) from None
            raise OutOfDomainError(
                f"{arch.ops} is not an architecture of {self.name} (choices per decision: {self.space.choices})"
            ) from None

    def query(self, arch: Arch, *, fidelity: str | None = None) -> Observation:
        """Validation accuracy (%) and recorded training seconds at ``fidelity`` (default: full). Free."""
        row = self._row(arch)
        fid = fidelity or self.fidelities[0]
        try:
            valid_col, cost_col = self.fidelity_columns[fid]
        except KeyError:
            raise OutOfDomainError(
                f"{self.name} has no fidelity {fid!r}; valid: {', '.join(self.fidelities)}"
            ) from None
        cols = self._cols
        assert cols is not None
        cost = cols[cost_col][row] if cost_col else math.nan
        return Observation(cols[valid_col][row], cost, fid)

    def validation(self) -> Callable[..., Observation]:
        """The validation columns and row index, copied into a :class:`ValidationView` (no test column)."""
        self.load()
        assert self._cols is not None
        cols = self._cols
        columns = {
            fid: (cols[valid], cols[cost] if cost else None) for fid, (valid, cost) in self.fidelity_columns.items()
        }
        return ValidationView(self.name, self._rows, columns).query

    def test_accuracy(self, arch: Arch) -> float:
        """Test accuracy (%) of the full schedule. For the loop and the tasks only, never for a plug-in."""
        row = self._row(arch)
        assert self._cols is not None
        return self._cols[self.test_column][row]

    def optimum(self) -> tuple[float, float]:
        """(best validation accuracy, best test accuracy) over the whole table, for regret. Free."""
        if self._optimum is None:
            self.load()
            assert self._cols is not None
            valid, test = self._cols[self.fidelity_columns[self.fidelities[0]][0]], self._cols[self.test_column]
            self._optimum = max(valid[i] for i in self._rows.values()), max(test[i] for i in self._rows.values())
        return self._optimum
