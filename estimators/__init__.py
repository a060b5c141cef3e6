"""Estimators: one per file, each a :class:`harness.interfaces.Estimator` (higher score = predicted better)."""

from estimators.table import TableEstimator

__all__ = ["TableEstimator"]
