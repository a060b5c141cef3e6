"""Rank samples: distinct architectures, and the select/report halves of a space (harness.sampling)."""

from __future__ import annotations

import numpy as np
import pytest

from harness import sampling
from harness.errors import ConfigError
from harness.spaces.nb201 import NB201Space


def test_sample_distinct_refuses_the_impossible(toy):
    with pytest.raises(ConfigError, match="ask for fewer"):
        sampling.sample_distinct(toy.space, 65, np.random.default_rng(0))


def test_select_and_report_samples_are_disjoint_halves_of_the_all_sample():
    space = NB201Space()
    every, _ = sampling.sample_distinct(space, 300, np.random.default_rng(3))
    select, _ = sampling.sample_distinct(space, 60, np.random.default_rng(3), "select")
    report, _ = sampling.sample_distinct(space, 60, np.random.default_rng(3), "report")
    other, _ = sampling.sample_distinct(space, 60, np.random.default_rng(4), "report")
    assert {space.iso_key(a) for a in select}.isdisjoint(space.iso_key(a) for a in report + other)
    assert select == [a for a in every if sampling.split_of(space, a) == "select"][:60]
    assert report == [a for a in every if sampling.split_of(space, a) == "report"][:60]
    with pytest.raises(ConfigError, match="split='train' is not one of all, select, report"):
        sampling.sample_distinct(space, 5, np.random.default_rng(0), "train")
