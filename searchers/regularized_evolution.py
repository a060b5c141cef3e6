"""Regularized (aging) evolution, Real et al. 2019, "Regularized Evolution for Image Classifier Architecture
Search", Algorithm 1; defaults of the NAS-Bench-201 baselines (population 10, tournament sample 3)."""

from __future__ import annotations

import math
from collections import deque

import numpy as np

from harness.interfaces import Searcher, SearchSpace, check_count
from harness.types import Arch


class RegularizedEvolution(Searcher):
    """Aging evolution: fill a population with random architectures, then repeatedly mutate the best of a random
    tournament and let the oldest member die.

    Args:
        space: the search space.
        rng: the searcher's generator.
        population_size: members kept alive.
        sample_size: tournament size, drawn with replacement from the population.
        unique: never ask an architecture twice.
    """

    def __init__(
        self,
        space: SearchSpace,
        rng: np.random.Generator,
        *,
        population_size: int = 10,
        sample_size: int = 3,
        unique: bool = False,
    ) -> None:
        super().__init__(space, rng, unique=unique)
        check_count("regularized evolution: population_size", population_size)
        check_count("regularized evolution: sample_size", sample_size)
        self.population_size = population_size
        self.sample_size = sample_size
        self._population: deque[tuple[Arch, float]] = deque()

    def propose(self) -> Arch:
        if len(self._population) < self.population_size:
            return self.space.sample(self.rng)
        picks = self.rng.integers(len(self._population), size=self.sample_size)
        parent = max((self._population[int(i)] for i in picks), key=lambda member: member[1])[0]
        return self.space.mutate(parent, self.rng)

    def tell(self, arch: Arch, score: float) -> None:
        self._population.append((arch, score))
        if len(self._population) > self.population_size:
            self._population.popleft()

    def likely_score(self, arch: Arch) -> float:
        """The worst score: ``arch`` then never wins a tournament."""
        return -math.inf
