"""Table look-up estimators: the benchmark's recorded validation accuracy at one training fidelity."""

from __future__ import annotations

import math

from harness.interfaces import Estimator, EstimatorContext, EstimatorTags
from harness.types import Arch, Estimate


class TableEstimator(Estimator):
    """Score = the benchmark's validation accuracy after training at ``fidelity``; cost = its recorded training
    seconds (0 where the benchmark records none). Never sees test accuracy.

    Args:
        fidelity: a fidelity of the benchmark (``"200ep"`` or ``"12ep"`` for NB201); ``None`` = the full schedule.
    """

    tags = EstimatorTags(live=False, deterministic=True)

    def __init__(self, fidelity: str | None = None) -> None:
        self.fidelity = fidelity

    def fit(self, context: EstimatorContext) -> float:
        self._query = context.query
        probe = next(context.space.enumerate())  # a member even of a closed set (NB301's sample)
        context.query(probe, fidelity=self.fidelity)  # fail now on a bad fidelity
        return 0.0

    def estimate(self, arch: Arch) -> Estimate:
        obs = self._query(arch, fidelity=self.fidelity)
        return Estimate(obs.valid_acc, 0.0 if math.isnan(obs.train_cost_s) else obs.train_cost_s, "table")
