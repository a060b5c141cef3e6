"""A search space restricted to a known set of architectures of a larger one (a closed-set benchmark's members)."""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence

import numpy as np

from harness.errors import ConfigError, OutOfDomainError
from harness.interfaces import SearchSpace
from harness.types import Arch


class SubsetSpace(SearchSpace):
    """The members of ``base`` listed in ``members``: searchers that use only ``sample``, ``mutate``, ``enumerate``
    and ``size`` stay among them.

    It keeps the base space's ``name``, ``choices``, strings, ``encode`` and ``iso_key``, so networks, one-hot
    features and result folders are those of the base space. What changes:

    * :meth:`sample` draws a member uniformly;
    * :meth:`mutate` applies the base space's mutation (one decision changed) and moves to the member *nearest*
      that mutant: the smallest Hamming distance over the decisions, ``arch`` itself excluded, ties drawn
      uniformly with ``rng``;
    * :meth:`enumerate` lists the members in the given order, :attr:`size` counts them, :meth:`index` is the
      position in that order;
    * :meth:`parse` refuses a valid string of the base space that is not a member
      (:class:`~harness.errors.OutOfDomainError`), and :meth:`is_valid` is membership.

    Args:
        base: the full space.
        members: distinct architectures of ``base`` (at least 2).
        what: how messages name the set (e.g. ``"the 1,218 architectures of the NB301 sample"``).
    """

    def __init__(self, base: SearchSpace, members: Sequence[Arch], *, what: str = "the subset") -> None:
        self.base = base
        self.name = base.name
        self.choices = tuple(base.choices)
        self.what = what
        self.members: tuple[Arch, ...] = tuple(members)
        self._position = {arch: i for i, arch in enumerate(self.members)}
        if len(self._position) != len(self.members):
            raise ConfigError(f"{what}: the members of a subset must be distinct")
        if len(self.members) < 2:
            raise ConfigError(f"{what}: a subset space needs at least 2 members, got {len(self.members)}")
        bad = next((a for a in self.members if not base.is_valid(a)), None)
        if bad is not None:
            raise ConfigError(f"{what}: {bad} is not an architecture of the {base.name} space")

    @property
    def size(self) -> int:
        """Number of members."""
        return len(self.members)

    @functools.cached_property
    def _matrix(self) -> np.ndarray:
        return np.array([a.ops for a in self.members], dtype=np.int16)

    def __contains__(self, arch: object) -> bool:
        return arch in self._position

    def sample(self, rng: np.random.Generator) -> Arch:
        """A uniformly random member."""
        return self.members[int(rng.integers(len(self.members)))]

    def nearest(self, arch: Arch, rng: np.random.Generator, *, exclude: Arch | None = None) -> Arch:
        """The member at the smallest Hamming distance (over the decisions) from ``arch``, other than ``exclude``;
        ties uniformly at random. ``arch`` itself when it is a member (and not excluded). Free."""
        dist = (self._matrix != np.asarray(arch.ops, dtype=np.int16)).sum(axis=1)
        if exclude is not None and exclude in self._position:
            dist[self._position[exclude]] = len(self.choices) + 1
        ties = np.flatnonzero(dist == dist.min())
        return self.members[int(ties[rng.integers(len(ties))]) if len(ties) > 1 else int(ties[0])]

    def mutate(self, arch: Arch, rng: np.random.Generator) -> Arch:
        """The member nearest a one-decision mutation of ``arch`` (``arch`` excluded); see the class docstring."""
        return self.nearest(self.base.mutate(arch, rng), rng, exclude=arch)

    def is_valid(self, arch: Arch) -> bool:
        """True for a member."""
        return arch in self._position

    def enumerate(self) -> Iterator[Arch]:
        """The members, in the order given."""
        return iter(self.members)

    def index(self, arch: Arch) -> int:
        """Position of a member in :meth:`enumerate` order."""
        try:
            return self._position[arch]
        except KeyError:
            raise OutOfDomainError(self._outside(self.format(arch))) from None

    def parse(self, text: str) -> Arch:
        """The member a string names: the base space's parse (its errors name the bad token), then membership."""
        arch = self.base.parse(text)
        if arch not in self._position:
            raise OutOfDomainError(self._outside(text))
        return arch

    def format(self, arch: Arch) -> str:
        return self.base.format(arch)

    def iso_key(self, arch: Arch) -> str:
        return self.base.iso_key(arch)

    def _outside(self, text: str) -> str:
        short = text if len(text) <= 90 else text[:87] + "..."
        return f"{short} is a valid {self.base.name} architecture but not one of {self.what}"
