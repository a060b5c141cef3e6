"""What plug-ins may look up about a benchmark: its validation numbers, answered on demand.

A benchmark's :meth:`~harness.interfaces.Benchmark.validation` gives the ``query`` an estimator gets in its
:class:`~harness.interfaces.EstimatorContext`. For a table it is a :class:`ValidationView`: copies of the table's
row index and validation columns, and nothing else. The view holds no reference to the benchmark, so neither
``query.__self__``, a closure, an attribute nor a garbage-collector referent leads from a plug-in to a test
accuracy (``tests/test_honesty.py`` walks them all). It never enumerates the space: a benchmark whose space is too
large to enumerate (a surrogate) gives its own validation-only look-up instead.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from harness.errors import OutOfDomainError
from harness.types import Arch, Observation


class ValidationView:
    """A table's validation numbers: ``rows`` maps an architecture's ops to its row, ``columns`` each fidelity (the
    first is the full one) to its validation accuracies and recorded training seconds by row (``None``: no cost
    recorded). Both are copied (tuples: a plug-in cannot change them). Free to query.
    """

    __slots__ = ("_columns", "_name", "_rows")

    def __init__(
        self,
        name: str,
        rows: Mapping[tuple[int, ...], int],
        columns: Mapping[str, tuple[Sequence[float], Sequence[float] | None]],
    ) -> None:
        self._name = name
        self._rows = dict(rows)
        self._columns = {
            fid: (tuple(valid), None if cost is None else tuple(cost)) for fid, (valid, cost) in columns.items()
        }

    def query(self, arch: Arch, *, fidelity: str | None = None) -> Observation:
        """Validation accuracy and recorded training cost of ``arch`` at ``fidelity`` (default: the full one)."""
        fid = fidelity or next(iter(self._columns))
        try:
            valid, cost = self._columns[fid]
        except KeyError:
            raise OutOfDomainError(f"{self._name} has no fidelity {fid!r}; valid: {', '.join(self._columns)}") from None
        try:
            row = self._rows[arch.ops]
        except KeyError:
            raise OutOfDomainError(f"{arch.ops} is not an architecture of {self._name} with results") from None
        return Observation(valid[row], math.nan if cost is None else cost[row], fid)
