"""Rank samples: distinct architectures, and the select/report halves of a space (harness.sampling)."""

from __future__ import annotations

import numpy as np
import pytest

from harness import sampling
from harness.errors import ConfigError
from harness.spaces.nb201 import NB201Space
from harness.spaces.nbmacro import MacroSpace


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


def test_an_nbmacro_sample_holds_each_network_once():
    """NAS-Bench-Macro's 6,561 strings are 3,969 networks: a sample of all of them draws each once, one more is
    refused, and a half's sample is that half of the whole sample."""
    space = MacroSpace()
    every, _ = sampling.sample_distinct(space, 3969, np.random.default_rng(0))
    assert len({space.iso_key(a) for a in every}) == 3969
    with pytest.raises(ConfigError, match="n_archs=3970 is more than the 3969 non-isomorphic architectures of nbmacro"):
        sampling.sample_distinct(space, 3970, np.random.default_rng(0))
    n = sum(sampling.split_of(space, a) == "report" for a in every)
    report, _ = sampling.sample_distinct(space, n, np.random.default_rng(0), "report")
    assert report == [a for a in every if sampling.split_of(space, a) == "report"]
    with pytest.raises(ConfigError, match=f"more than the {n} non-isomorphic architectures of nbmacro in its report"):
        sampling.sample_distinct(space, n + 1, np.random.default_rng(0), "report")
    same = [space.parse("00011110"), space.parse("00011101")]
    with pytest.raises(ConfigError, match="archs\\[1\\] '00011101' is isomorphic to"):
        sampling.parse_distinct(space, [space.format(a) for a in same])
