"""Searchers: one algorithm per file, each a :class:`harness.interfaces.Searcher` (ask/tell)."""

from searchers.random_search import RandomSearch
from searchers.regularized_evolution import RegularizedEvolution
from searchers.reinforce import Reinforce

__all__ = ["RandomSearch", "RegularizedEvolution", "Reinforce"]
