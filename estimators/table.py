"""Table look-up estimators: the benchmark's recorded validation accuracy at one training fidelity."""

from __future__ import annotations

import math

from harness.errors import ConfigError, OutOfDomainError
from harness.interfaces import Estimator, EstimatorContext, EstimatorTags
from harness.types import Arch, Estimate

#: the estimator config (``conf/estimator/<name>.yaml``) of each fidelity, for error messages
CONFIG_NAMES = {"12ep": "train12", None: "full_train"}


class TableEstimator(Estimator):
    """Score = the benchmark's validation accuracy after training at ``fidelity``; cost = its recorded training
    seconds (0 where the benchmark records none). Never sees test accuracy.

    Args:
        fidelity: a fidelity of the benchmark (``"200ep"`` or ``"12ep"`` for NB201); ``None`` = the full schedule,
            which every table has.
    """

    tags = EstimatorTags(live=False, deterministic=True)

    def __init__(self, fidelity: str | None = None) -> None:
        self.fidelity = fidelity

    def fit(self, context: EstimatorContext) -> float:
        """Check that the table has this fidelity: a ConfigError naming the estimator that applies if not."""
        self._query = context.query
        probe = next(context.space.enumerate())  # a member even of a closed set (NB301's sample)
        try:
            context.query(probe, fidelity=self.fidelity)
        except OutOfDomainError as exc:
            if self.fidelity is None:
                raise
            name = CONFIG_NAMES.get(self.fidelity)
            setting = f"estimator={name}" if name else f"estimator.fidelity={self.fidelity}"
            raise ConfigError(
                f"{setting} needs a {self.fidelity} table, which {context.benchmark} has not ({exc}); use "
                f"estimator={CONFIG_NAMES[None]} (the full schedule, in every table) or a live estimator"
            ) from None
        return 0.0

    def estimate(self, arch: Arch) -> Estimate:
        obs = self._query(arch, fidelity=self.fidelity)
        return Estimate(obs.valid_acc, 0.0 if math.isnan(obs.train_cost_s) else obs.train_cost_s, "table")
