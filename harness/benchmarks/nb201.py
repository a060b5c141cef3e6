"""NAS-Bench-201 (NATS-Bench topology space) as one table: ``<data_dir>/nb201/nb201.csv``."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from harness import paths
from harness.benchmarks.table import TableBenchmark
from harness.data.convert import read_manifest
from harness.errors import ArchParseError, DataFileError
from harness.spaces.nb201 import NB201Space

log = logging.getLogger("harness")

_SOURCE = "NAS-Bench-201 v1.1 / NATS-Bench tss results, rebuilt as ../shared/data/nb201/nb201.csv (see its README)"
_COLUMNS = ("arch", "dataset", "valid_acc", "test_acc", "valid_acc_12ep", "train_time_s", "train_time_12ep_s")


class NB201(TableBenchmark):
    """NAS-Bench-201 results on ``cifar10``, ``cifar100`` or ``ImageNet16-120``.

    Fidelities: ``"200ep"`` (validation accuracy after 200 epochs, seed mean; cost ``train_time_s``) and
    ``"12ep"`` (after the 12-epoch schedule; cost ``train_time_12ep_s``). For cifar10 the validation numbers come
    from the ``cifar10-valid`` runs (trained on 25k images) and the test accuracy from the train+valid runs.

    A table whose manifest (``nb201.manifest.json``, from ``python -m harness.data convert --allow-partial``) says
    it is partial is refused unless ``allow_partial``; then it loads with a warning, and the architectures it lacks
    are out of the table (no accuracy, as in a closed set).
    """

    name = "nb201"
    datasets = ("cifar10", "cifar100", "ImageNet16-120")
    fidelity_columns = {"200ep": ("valid_acc", "train_time_s"), "12ep": ("valid_acc_12ep", "train_time_12ep_s")}
    space = NB201Space()

    def __init__(
        self, dataset: str, data_dir: str | None = None, cache_dir: str | None = None, allow_partial: bool = False
    ) -> None:
        super().__init__(dataset, data_dir, cache_dir)
        self.allow_partial = allow_partial

    def source_path(self) -> Path:
        path = paths.require_file(
            paths.data_dir(self.data_dir) / "nb201" / "nb201.csv",
            contains=f"one row per (architecture, dataset) with columns {', '.join(_COLUMNS)}",
            source=_SOURCE,
        )
        manifest = read_manifest(path)
        if manifest is not None and manifest["partial"]:
            what = f"{path} is a partial table: {manifest['architectures']:,} of {self.space.size:,} architectures"
            if not self.allow_partial:
                raise DataFileError(
                    f"{what} (its manifest says so); convert the whole release with python -m harness.data convert, "
                    "or set +benchmark.allow_partial=true to search it with the others out of the table"
                )
            log.warning("%s (benchmark.allow_partial=true): the others are out of the table", what)
        return path

    def _read_source(self, path: Path) -> dict[str, dict[str, np.ndarray]]:
        import pandas as pd

        try:
            df = pd.read_csv(path)
        except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
            raise DataFileError(f"{path} is not a readable CSV file ({exc}); it comes from {_SOURCE}") from exc
        missing = [c for c in _COLUMNS if c not in df.columns]
        if missing:
            raise DataFileError(f"{path} lacks the columns {', '.join(missing)}; it comes from {_SOURCE}")
        space = self.space
        try:
            index = np.array([space.index(space.parse(a)) for a in df["arch"]])
        except ArchParseError as exc:
            raise DataFileError(f"{path}: {exc}") from exc
        out: dict[str, dict[str, np.ndarray]] = {}
        for ds in self.datasets:
            sel = (df["dataset"] == ds).to_numpy()
            rows = index[sel]
            complete = len(rows) == space.size or self.allow_partial
            if not complete or len(np.unique(rows)) != len(rows):
                raise DataFileError(
                    f"{path}: dataset {ds!r} must have exactly one row for each of the {space.size} "
                    f"architectures, found {len(rows)} rows ({len(np.unique(rows))} distinct)"
                )
            cols: dict[str, np.ndarray] = {}
            for col in _COLUMNS[2:]:
                values = df.loc[sel, col].to_numpy(dtype=np.float64)
                if not np.isfinite(values).all():
                    raise DataFileError(f"{path}: column {col!r} has missing values for dataset {ds!r}")
                arr = np.full(space.size, np.nan)  # a partial table's missing architectures stay NaN
                arr[rows] = values
                cols[col] = arr
            out[ds] = cols
        return out
