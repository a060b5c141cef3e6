"""NAS-Bench-301 on the DARTS space, as a closed set: ``<data_dir>/nb301/nb301_sample.csv``.

NAS-Bench-301 (Siems et al., 2020) is a *surrogate* benchmark: its numbers are predictions of a model fitted to
~60k trained DARTS networks, not training runs. The surrogate's model files are not available here, so this
benchmark is the table of what NAS-Bench-Suite-Zero queried from it (GitHub automl/NASLib, ``zerocost`` branch
@6639fd15 and @22280f71): 1,218 DARTS genotypes, each with one draw of the NB301 v1.0 XGB surrogate's validation
accuracy (a draw includes the surrogate's noise: repeated draws differ by about 0.1 points).

What that means for the harness:

* **Validation** (``query``) is that surrogate draw. No training time is recorded (``has_train_cost`` is False),
  so a cost budget needs a live estimator.
* **There is no test split** (``has_test_split`` is False): :meth:`NB301.test_accuracy` returns the same
  validation number, so "test" columns of a run on nb301 repeat the validation ones.
* **It is a closed set**: :attr:`NB301.space` is a :class:`~harness.spaces.subset.SubsetSpace` of the sample,
  so ``rs``, ``rea`` and ``rminas`` draw and mutate only members; any other genotype is an
  :class:`~harness.errors.OutOfDomainError`. A search over it ranks 1,218 fixed architectures; it says nothing
  about the other ~1e18 of the space.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable
from pathlib import Path

from harness import paths
from harness.benchmarks.table import check_dataset
from harness.benchmarks.view import ValidationView
from harness.errors import ArchParseError, DataFileError, OutOfDomainError
from harness.spaces.darts import DartsSpace
from harness.spaces.subset import SubsetSpace
from harness.types import Arch, Observation

_SOURCE = (
    "NAS-Bench-Suite-Zero's NB301 queries (GitHub automl/NASLib zerocost branch), rebuilt as "
    "../shared/data/nb301/nb301_sample.csv (see its README)"
)
_COLUMNS = ("genotype", "dataset", "val_accuracy")
#: the fidelity of every observation: one draw of the NB301 v1.0 XGB surrogate (100-epoch validation accuracy)
SURROGATE = "surrogate"


class NB301:
    """The NAS-Bench-301 sample on CIFAR-10 (module docstring: a surrogate, no test split, a closed set).

    Args:
        dataset: ``cifar10`` (the only dataset NB301 covers).
        data_dir: shared data folder (default: ``$HARNESS_DATA_DIR`` or ``../shared/data``).
        cache_dir: accepted for symmetry with the other benchmarks; nothing is cached (loading takes ~0.3 s).
    """

    name = "nb301"
    datasets = ("cifar10",)
    fidelities = (SURROGATE,)
    has_train_cost = False
    #: False: ``test_accuracy`` is the validation number again (NB301 predicts validation accuracy only)
    has_test_split = False
    #: one line a report can show next to nb301's numbers
    note = (
        "NAS-Bench-301 sample: 1,218 DARTS genotypes with one NB301 v1.0 surrogate draw each (noise ~0.1); "
        "no test split (test = validation), no recorded training cost, a closed set"
    )

    def __init__(self, dataset: str = "cifar10", data_dir: str | None = None, cache_dir: str | None = None) -> None:
        self.dataset = dataset
        self.data_dir = data_dir
        self.cache_dir = cache_dir
        self._space: SubsetSpace | None = None
        self._valid: dict[Arch, float] = {}

    def source_path(self) -> Path:
        return paths.require_file(
            paths.data_dir(self.data_dir) / "nb301" / "nb301_sample.csv",
            contains=f"one row per DARTS genotype with at least the columns {', '.join(_COLUMNS)}",
            source=_SOURCE,
        )

    def load(self) -> NB301:
        """Check the dataset, then read and validate the sample (idempotent). Free."""
        if self._space is not None:
            return self
        check_dataset(self, " (NAS-Bench-301 covers CIFAR-10 only)")
        path = self.source_path()
        valid = self._read(path)
        what = f"the {len(valid):,} architectures of the NB301 sample ({path.name}), a closed set: no surrogate here"
        self._space = SubsetSpace(DartsSpace(), list(valid), what=what)
        self._valid = valid
        return self

    def _read(self, path: Path) -> dict[Arch, float]:
        space = DartsSpace()
        valid: dict[Arch, float] = {}
        try:
            with path.open(newline="") as handle:
                reader = csv.DictReader(handle)
                missing = [c for c in _COLUMNS if c not in (reader.fieldnames or ())]
                if missing:
                    raise DataFileError(f"{path} lacks the columns {', '.join(missing)}; it comes from {_SOURCE}")
                for line, row in enumerate(reader, start=2):
                    where = f"{path}, line {line}"
                    if row["dataset"] != "cifar10":
                        raise DataFileError(f"{where}: dataset {row['dataset']!r}; the NB301 sample is cifar10 only")
                    try:
                        arch = space.parse(row["genotype"])
                        acc = float(row["val_accuracy"])
                    except (ArchParseError, TypeError, ValueError) as exc:
                        raise DataFileError(f"{where}: {exc}") from exc
                    if not math.isfinite(acc):
                        raise DataFileError(f"{where}: val_accuracy {row['val_accuracy']!r} is not a number")
                    if arch in valid:
                        raise DataFileError(f"{where}: genotype {row['genotype'][:60]}... appears twice")
                    valid[arch] = acc
        except (UnicodeDecodeError, csv.Error) as exc:
            raise DataFileError(f"{path} is not a readable CSV file ({exc}); it comes from {_SOURCE}") from exc
        if len(valid) < 2:
            raise DataFileError(f"{path} has {len(valid)} genotypes; it comes from {_SOURCE}")
        return valid

    @property
    def space(self) -> SubsetSpace:
        """The sample as a :class:`~harness.spaces.subset.SubsetSpace` of the DARTS space (loads the table)."""
        self.load()
        assert self._space is not None
        return self._space

    def _value(self, arch: Arch) -> float:
        space = self.space
        try:
            return self._valid[arch]
        except KeyError:
            text = space.format(arch) if space.base.is_valid(arch) else repr(arch.ops)
            raise OutOfDomainError(
                f"{text[:90]}{'...' if len(text) > 90 else ''} is not one of {space.what}; only searchers that "
                "draw through the space (rs, rea, rminas's candidates) stay in it"
            ) from None

    def query(self, arch: Arch, *, fidelity: str | None = None) -> Observation:
        """The surrogate's validation accuracy (%); ``train_cost_s`` is NaN (none recorded). Free."""
        if fidelity not in (None, *self.fidelities):
            raise OutOfDomainError(f"nb301 has no fidelity {fidelity!r}; valid: {', '.join(self.fidelities)}")
        return Observation(self._value(arch), math.nan, SURROGATE)

    def validation(self) -> Callable[..., Observation]:
        """The sample's surrogate draws, copied into a :class:`ValidationView` (no recorded cost)."""
        self.load()
        return ValidationView(
            self.name, {a.ops: i for i, a in enumerate(self._valid)}, {SURROGATE: (list(self._valid.values()), None)}
        ).query

    def test_accuracy(self, arch: Arch) -> float:
        """NB301 has no test split: the same surrogate validation accuracy as :meth:`query` (``has_test_split``)."""
        return self._value(arch)

    def optimum(self) -> tuple[float, float]:
        """(best validation accuracy, the same again as "test") over the sample. Free."""
        self.load()
        best = max(self._valid.values())
        return best, best
