"""NAS-Bench-Macro: ``<data_dir>/nbmacro/nas-bench-macro_cifar10.json`` (6,561 strings, 3 runs each; 3,969 networks)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from harness import paths
from harness.benchmarks.table import TableBenchmark
from harness.errors import ArchParseError, DataFileError
from harness.spaces.nbmacro import MacroSpace

_SOURCE = "the NAS-Bench-Macro release (GitHub MAC-AutoML/XNAS), see ../shared/data/README.md"
_CONTAINS = '{"<8 digits>": {"test_acc": [3 accuracies], "mean_acc", "std", "params", "flops"}, ...}'


class NBMacro(TableBenchmark):
    """NAS-Bench-Macro on CIFAR-10.

    The release has no validation split: each architecture was trained 3 times and scored on the test set. To
    keep search and report independent, the search signal ("validation") is run 1 and the reported test accuracy
    is the mean of runs 2 and 3. No training time is recorded, so a cost budget cannot use the table estimators.
    """

    name = "nbmacro"
    datasets = ("cifar10",)
    fidelity_columns = {"full": ("valid_acc", None)}
    space = MacroSpace()

    def source_path(self) -> Path:
        return paths.require_file(
            paths.data_dir(self.data_dir) / "nbmacro" / "nas-bench-macro_cifar10.json",
            contains=_CONTAINS,
            source=_SOURCE,
        )

    def _read_source(self, path: Path) -> dict[str, dict[str, np.ndarray]]:
        try:
            table = json.loads(path.read_text())
        except (ValueError, UnicodeDecodeError) as exc:
            raise DataFileError(f"{path} is not valid JSON ({exc}); it must contain {_CONTAINS}") from exc
        space = self.space
        if not isinstance(table, dict) or len(table) != space.size:
            raise DataFileError(f"{path} must map each of the {space.size} architectures to its results: {_CONTAINS}")
        valid = np.full(space.size, np.nan)
        test = np.full(space.size, np.nan)
        for key, entry in table.items():
            try:
                row = space.index(space.parse(key))
                runs = [float(v) for v in entry["test_acc"]]
            except (ArchParseError, KeyError, TypeError, ValueError) as exc:
                raise DataFileError(f"{path}: bad entry {key!r} ({exc}); each must look like {_CONTAINS}") from exc
            if len(runs) != 3:
                raise DataFileError(f"{path}: entry {key!r} has {len(runs)} runs in test_acc, expected 3")
            valid[row], test[row] = runs[0], (runs[1] + runs[2]) / 2
        return {"cifar10": {"valid_acc": valid, "test_acc": test}}
