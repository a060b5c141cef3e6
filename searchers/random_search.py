"""Random search: uniform samples from the space."""

from __future__ import annotations

from harness.interfaces import Searcher
from harness.types import Arch


class RandomSearch(Searcher):
    """Ask uniformly random architectures; ignore scores (the loop keeps the best).

    Args:
        space: the search space.
        rng: the searcher's generator.
        unique: never ask an architecture twice.
    """

    def propose(self) -> Arch:
        return self.space.sample(self.rng)

    def tell(self, arch: Arch, score: float) -> None:
        pass

    def likely_score(self, arch: Arch) -> float:
        return 0.0  # scores are ignored: every guess is right
