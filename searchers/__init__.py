"""Searchers: one algorithm per file, each a :class:`harness.interfaces.Searcher` (ask/tell)."""

from searchers.random_search import RandomSearch
from searchers.regularized_evolution import RegularizedEvolution
from searchers.reinforce import Reinforce
from searchers.rminas import RMINAS

__all__ = ["RMINAS", "RandomSearch", "RegularizedEvolution", "Reinforce"]
