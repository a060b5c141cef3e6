"""Samples of architectures for ranking: pairwise non-isomorphic draws, from the whole space or one fixed half.

The halves (:func:`split_of`, a hash of the isomorphism class) let a study choose an estimator's settings on one
half (``select``) and measure them on architectures it never saw (``report``).
"""

from __future__ import annotations

import functools
import hashlib

import numpy as np

from harness import seeding
from harness.errors import ConfigError
from harness.interfaces import SearchSpace
from harness.types import Arch

#: The parts of a space a sample may come from (not the image splits of :data:`harness.cifar10.IMAGE_SPLITS`).
ARCH_SPLITS = ("all", "select", "report")


def split_of(space: SearchSpace, arch: Arch) -> str:
    """The fixed half of the space ``arch`` belongs to, ``select`` or ``report`` (a hash of its isomorphism
    class, so isomorphic architectures share a half and every sample of one half is disjoint from the other)."""
    digest = hashlib.sha1(space.iso_key(arch).encode()).digest()
    return "select" if digest[0] % 2 == 0 else "report"


@functools.cache
def _distinct(space: SearchSpace, split: str) -> int:
    """How many isomorphism classes ``space`` (or its half ``split``) has, counted by enumerating it."""
    return len({space.iso_key(a) for a in space.enumerate() if split == "all" or split_of(space, a) == split})


def sample_distinct(space: SearchSpace, n: int, rng: np.random.Generator, split: str = "all") -> tuple[list[Arch], int]:
    """``n`` random architectures that are pairwise non-isomorphic, from the half ``split`` of the space (see
    :func:`split_of`; ``all``: anywhere), and the number of draws it took. The ``split`` sample of a seed is the
    sequence of that half's members in the ``all`` sample of the same seed."""
    if split not in ARCH_SPLITS:
        raise ConfigError(f"split={split!r} is not one of {', '.join(ARCH_SPLITS)}")
    if n > space.size or (n > space.size // 10 and n > _distinct(space, split)):
        raise ConfigError(
            f"n_archs={n} is more than the {_distinct(space, split)} non-isomorphic architectures of {space.name}"
            f"{'' if split == 'all' else f' in its {split} half'}; ask for fewer"
        )
    seen: set[str] = set()
    archs: list[Arch] = []
    draws = 0
    while len(archs) < n:
        draws += 1
        if draws > 100 * n + 10_000:
            raise ConfigError(f"could not find {n} non-isomorphic architectures in {space.name}; ask for fewer")
        arch = space.sample(rng)
        key = space.iso_key(arch)
        if key not in seen and (split == "all" or split_of(space, arch) == split):
            seen.add(key)
            archs.append(arch)
    return archs, draws


def parse_distinct(space: SearchSpace, texts: list[str]) -> list[Arch]:
    """The architectures ``texts`` name (a rank task's ``archs``); a :class:`ConfigError` naming any two that are
    the same or isomorphic (:meth:`~harness.interfaces.SearchSpace.iso_key`), as a ranking compares distinct
    networks (a random sample is pairwise non-isomorphic too)."""
    archs = [space.parse(text) for text in texts]
    first: dict[str, int] = {}
    for i, arch in enumerate(archs):
        j = first.setdefault(space.iso_key(arch), i)
        if j != i:
            same = "the same as" if archs[j] == arch else "isomorphic to (computes the same function as)"
            raise ConfigError(
                f"archs[{i}] {texts[i]!r} is {same} archs[{j}] {texts[j]!r}; a ranking needs distinct architectures: "
                "remove one"
            )
    return archs


def rank_sample(
    space: SearchSpace, archs: list[str] | None, n_archs: int, sample_seed: int, split: str = "all"
) -> tuple[list[Arch], int]:
    """The architectures a rank job scores: ``archs`` (strings) when given, else the ``split`` sample of ``n_archs``
    drawn with ``sample_seed``'s own stream; and the number of draws that took."""
    if archs is not None:
        if not archs:
            raise ConfigError("archs=[] names no architecture; give at least one, or archs=null for a random sample")
        return parse_distinct(space, list(archs)), len(archs)
    if n_archs < 2 or sample_seed < 0:
        raise ConfigError(
            f"n_archs must be >= 2 (a ranking needs two) and sample_seed >= 0, got n_archs={n_archs}, "
            f"sample_seed={sample_seed}"
        )
    return sample_distinct(space, n_archs, seeding.rng(sample_seed, "rank-sample"), split)
