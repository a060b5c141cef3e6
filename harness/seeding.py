"""Seeds. One integer seed per run is split into independent, named generators.

A child stream depends only on (seed, name), never on the order in which streams are requested, so adding a new
component never changes the randomness of the existing ones. This is the only module that seeds torch.
"""

from __future__ import annotations

import zlib
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch


def _name_key(name: str) -> int:
    return zlib.crc32(name.encode("utf-8"))


def rng(seed: int, name: str) -> np.random.Generator:
    """An independent generator for component ``name`` of a run seeded with ``seed`` (numpy SeedSequence)."""
    if seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed}")
    return np.random.default_rng(np.random.SeedSequence([seed, _name_key(name)]))


def torch_generator(generator: np.random.Generator, device: str = "cpu") -> torch.Generator:
    """A ``torch.Generator`` seeded from a numpy generator (consumes one draw from it)."""
    import torch

    gen = torch.Generator(device=device)
    gen.manual_seed(int(generator.integers(2**63 - 1)))
    return gen


def seed_torch(generator: np.random.Generator) -> None:
    """Seed torch's global RNG (parameter initialisation uses it) from a numpy generator."""
    import torch

    torch.manual_seed(int(generator.integers(2**63 - 1)))
