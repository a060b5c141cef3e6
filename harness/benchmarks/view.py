"""What plug-ins may look up about a benchmark: its validation numbers, copied out of it.

An estimator gets :meth:`ValidationView.query` in its :class:`~harness.interfaces.EstimatorContext`. The view holds
no reference to the benchmark, so neither ``query.__self__``, a closure, an attribute nor a garbage-collector
referent leads from a plug-in to a test accuracy (``tests/test_honesty.py`` walks them all).
"""

from __future__ import annotations

from harness.errors import OutOfDomainError
from harness.interfaces import Benchmark
from harness.types import Arch, Observation


class ValidationView:
    """Every architecture's observation at every fidelity of ``benchmark``, copied when the view is made (a few
    tens of milliseconds for NAS-Bench-201's 15,625 cells x 2 fidelities). Free to query.

    Args:
        benchmark: a loaded benchmark whose space can be enumerated (tables, closed sets).
    """

    __slots__ = ("_fidelities", "_name", "_observations")

    def __init__(self, benchmark: Benchmark) -> None:
        self._name = benchmark.name
        self._fidelities = tuple(benchmark.fidelities)
        self._observations = {
            (arch.ops, fidelity): benchmark.query(arch, fidelity=fidelity)
            for arch in benchmark.space.enumerate()
            for fidelity in self._fidelities
        }

    def query(self, arch: Arch, *, fidelity: str | None = None) -> Observation:
        """Validation accuracy and recorded training cost of ``arch`` at ``fidelity`` (default: the full one)."""
        fid = fidelity or self._fidelities[0]
        try:
            return self._observations[arch.ops, fid]
        except KeyError:
            if fid not in self._fidelities:
                valid = ", ".join(self._fidelities)
                raise OutOfDomainError(f"{self._name} has no fidelity {fid!r}; valid: {valid}") from None
            raise OutOfDomainError(f"{arch.ops} is not an architecture of {self._name}") from None
