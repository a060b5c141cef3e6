from __future__ import annotations

import collections

import numpy as np
import pandas as pd
import pytest

from harness.errors import ArchParseError
from harness.spaces import MacroSpace, NB201Space, ToySpace
from harness.types import Arch

SPACES = [NB201Space(), MacroSpace(), ToySpace()]
BEST = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"


@pytest.mark.parametrize("space", SPACES, ids=lambda s: s.name)
def test_enumerate_parse_format_round_trip(space):
    archs = list(space.enumerate())
    assert len(archs) == space.size == int(np.prod(space.choices))
    assert len(set(archs)) == space.size
    for arch in archs[:: max(1, space.size // 500)]:
        assert space.is_valid(arch)
        assert space.parse(space.format(arch)) == arch
    assert [space.index(a) for a in archs[:50]] == list(range(50))


@pytest.mark.parametrize("space", SPACES, ids=lambda s: s.name)
def test_mutate_changes_exactly_one_decision(space):
    rng = np.random.default_rng(1)
    for _ in range(300):
        arch = space.sample(rng)
        child = space.mutate(arch, rng)
        assert space.is_valid(child)
        assert sum(a != b for a, b in zip(arch.ops, child.ops, strict=True)) == 1


@pytest.mark.parametrize("space", SPACES, ids=lambda s: s.name)
def test_sample_is_uniform_per_decision(space):
    rng = np.random.default_rng(2)
    ops = np.array([space.sample(rng).ops for _ in range(4000)])
    for i, c in enumerate(space.choices):
        freq = np.bincount(ops[:, i], minlength=c) / len(ops)
        assert np.allclose(freq, 1 / c, atol=0.04)


@pytest.mark.parametrize("space", SPACES, ids=lambda s: s.name)
def test_encode_is_one_hot(space):
    arch = space.sample(np.random.default_rng(3))
    x = space.encode(arch)
    assert x.shape == (sum(space.choices),) and x.dtype == np.float32
    assert x.sum() == len(space.choices)
    start = 0
    for op, c in zip(arch.ops, space.choices, strict=True):
        assert x[start + op] == 1
        start += c


def test_nb201_string_order_and_known_architecture():
    space = NB201Space()
    arch = space.parse(BEST)
    assert arch == Arch((3, 3, 3, 1, 3, 3))  # edges 1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2
    assert space.format(arch) == BEST


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("|nor_conv_3x3~0|+|conv5~0|nor_conv_3x3~1|+|skip_connect~0|none~1|none~2|", "'conv5'"),
        ("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|", "3 nodes"),
        ("|nor_conv_3x3~0|+|nor_conv_3x3~1|nor_conv_3x3~1|+|none~0|none~1|none~2|", "'nor_conv_3x3~1'"),
        ("|nor_conv_3x3~0|+|none~0|+|none~0|none~1|none~2|", "needs 2 edges"),
    ],
)
def test_nb201_parse_errors_name_the_bad_token(text, names):
    with pytest.raises(ArchParseError, match=names):
        NB201Space().parse(text)


def test_macro_parse_errors_name_the_bad_token():
    with pytest.raises(ArchParseError, match="'3' at layer 2"):
        MacroSpace().parse("02312100")
    with pytest.raises(ArchParseError, match="8 digits"):
        MacroSpace().parse("0201")


def test_nb201_iso_key_reproduces_nats_bench_unique_strings(data_dir):
    path = data_dir / "nb201" / "raw" / "nats_bench_test200.csv"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    df = pd.read_csv(path, usecols=["ArchitectureString", "UniqueString"])
    space = NB201Space()
    keys = [space.iso_key(space.parse(a)) for a in df["ArchitectureString"]]
    assert len(set(keys)) == 6466
    assert keys == df["UniqueString"].tolist()


def test_iso_key_examples():
    space = NB201Space()
    # a cell whose output node receives nothing is all-zero, whatever else it computes
    dead = space.parse("|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|none~0|none~1|none~2|")
    dead2 = space.parse("|skip_connect~0|+|none~0|none~1|+|none~0|none~1|none~2|")
    assert space.iso_key(dead) == space.iso_key(dead2)
    # an op on an edge out of a dead node does not matter; an op on a live edge does
    a = space.parse("|none~0|+|nor_conv_3x3~0|nor_conv_1x1~1|+|none~0|avg_pool_3x3~1|skip_connect~2|")
    b = space.parse("|none~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|none~0|nor_conv_3x3~1|skip_connect~2|")
    c = space.parse("|none~0|+|nor_conv_1x1~0|nor_conv_1x1~1|+|none~0|avg_pool_3x3~1|skip_connect~2|")
    assert space.iso_key(a) == space.iso_key(b) != space.iso_key(c)


def test_nbmacro_iso_key_is_the_release_rule():
    """The release's rule (xiusu/NAS-Bench-Macro @61a2bfc, train/collect_benchmark.py:9-24, get_real_arch): in each
    stage the first layer stays, the identities among the others move to the stage's end. That the classes are
    exactly those of identical results in the released table is checked on the data in test_benchmarks.py."""
    space = MacroSpace()
    keys = {space.format(a): space.iso_key(a) for a in space.enumerate()}
    assert len(set(keys.values())) == 3969
    assert collections.Counter(collections.Counter(keys.values()).values()) == {1: 2025, 2: 1620, 4: 324}
    # an identity inside a stage may sit anywhere in it; the first (stride-2) layer of a stage is another network
    assert keys["00011110"] == keys["00011101"] == "00011110"
    assert keys["00010100"] == keys["00001100"] != keys["00100100"]
    assert keys["01000000"] == "01000000" != keys["10000000"]


def test_nbmacro_stages_are_the_networks():
    from harness.networks.nbmacro import NBMacroConfig
    from harness.spaces.nbmacro import STAGES

    assert STAGES == NBMacroConfig().stages
