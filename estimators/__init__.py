"""Estimators: one per file, each a :class:`harness.interfaces.Estimator` (higher score = predicted better).

An estimator is found by its config (``conf/estimator/<name>.yaml`` names its class), never by a list here: import
one from its module (``from estimators.rmi import RMI``) or build it by name (``harness.estimator("rmi")``).
"""
