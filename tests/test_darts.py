"""The DARTS space (decisions, genotype strings, errors, no enumeration) and the DARTS network (NAS-Bench-Suite-Zero's
NB301 network: shapes, structure, parameter counts equal to the NB301 sample's ``params`` column)."""

from __future__ import annotations

import ast
import random
import time

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from harness import sampling
from harness.errors import ArchParseError, ConfigError
from harness.networks import build_network, n_params
from harness.networks.darts import DartsNetwork, FactorizedReduce, build_darts
from harness.spaces.darts import OPS, PAIRS, DartsSpace, cell_edges, format_genotype, op_decision, pair_decision
from harness.types import Arch
from searchers.rminas import RMINAS

pytestmark = pytest.mark.usefixtures("one_thread")

SPACE = DartsSpace()


#: DARTS' published DARTS_V2 cell (GitHub quark0/darts @f276dd3, cnn/genotypes.py), concat written as range(2, 6)
DARTS_V2 = (
    "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), "
    "('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)], normal_concat=range(2, 6), "
    "reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), "
    "('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], reduce_concat=range(2, 6))"
)


@pytest.fixture(scope="module")
def sample(data_dir) -> pd.DataFrame:
    path = data_dir / "nb301" / "nb301_sample.csv"
    if not path.is_file():
        pytest.skip(f"NB301 sample not found at {path} (set HARNESS_DATA_DIR)")
    return pd.read_csv(path, usecols=["genotype", "params"])


def genotype(normal: list[tuple[str, int]], reduce: list[tuple[str, int]] | None = None, concat: str = "[2, 3, 4, 5]"):
    reduce = normal if reduce is None else reduce
    return f"Genotype(normal={normal!r}, normal_concat={concat}, reduce={reduce!r}, reduce_concat=[2, 3, 4, 5])"


GOOD = [("sep_conv_3x3", 0), ("skip_connect", 1), ("max_pool_3x3", 0), ("dil_conv_5x5", 2)] + [
    ("avg_pool_3x3", 1),
    ("sep_conv_5x5", 3),
    ("dil_conv_3x3", 2),
    ("skip_connect", 4),
]


# ------------------------------------------------------------------------------------------------ the space


def test_decisions_and_size():
    cell = (7,) * 8 + (3, 6, 10)
    assert SPACE.choices == cell * 2
    assert [len(PAIRS[k]) for k in (3, 4, 5)] == [3, 6, 10]
    assert SPACE.size == (7**8 * 3 * 6 * 10) ** 2 == 1_076_746_950_455_072_400  # ~1.08e18
    assert len(SPACE.encode(SPACE.sample(np.random.default_rng(0)))) == 2 * (8 * 7 + 3 + 6 + 10)
    assert (op_decision(1, 0), pair_decision(0, 3), pair_decision(1, 5)) == (11, 8, 21)


def test_darts_v2_and_positional_form_parse_to_the_same_canonical_arch():
    arch = SPACE.parse(DARTS_V2)
    text = SPACE.format(arch)
    assert "normal_concat=[2, 3, 4, 5]" in text and "range" not in text
    positional = DARTS_V2.replace("normal=", "").replace("normal_concat=", "").replace("reduce=", "")
    assert SPACE.parse(positional.replace("reduce_concat=", "")) == arch
    # node 3 reads ('sep_conv_3x3', 1), ('skip_connect', 0): canonical form lists input 0 first
    assert cell_edges(arch, 0)[4:6] == [("skip_connect", 0), ("sep_conv_3x3", 1)]
    assert SPACE.parse(text) == arch


def test_canonical_form_sorts_the_two_edges_of_a_node():
    swapped = GOOD[:]
    for m in range(4):
        swapped[2 * m], swapped[2 * m + 1] = swapped[2 * m + 1], swapped[2 * m]
    a, b = SPACE.parse(genotype(GOOD)), SPACE.parse(genotype(swapped))
    assert a == b and SPACE.iso_key(a) == SPACE.iso_key(b) == SPACE.format(a)
    assert SPACE.format(a) == genotype(sorted(GOOD[:2], key=lambda e: e[1]) + GOOD[2:])
    other = GOOD[:7] + [("sep_conv_3x3", 4)]
    assert SPACE.iso_key(SPACE.parse(genotype(other))) != SPACE.iso_key(a)


def test_round_trip_on_random_and_sample_genotypes(sample):
    rng = np.random.default_rng(0)
    for _ in range(300):
        arch = SPACE.sample(rng)
        assert SPACE.is_valid(arch) and SPACE.parse(SPACE.format(arch)) == arch
        assert format_genotype(arch) == SPACE.format(arch)
    archs = [SPACE.parse(g) for g in sample["genotype"]]
    assert len(set(archs)) == len(sample) == 1218
    for g, arch in zip(sample["genotype"][:100], archs[:100], strict=True):
        text = SPACE.format(arch)
        assert SPACE.parse(text) == arch
        assert _node_edges(text) == _node_edges(g)  # the same two edges per node, listed by increasing input
        assert all(a[1] < b[1] for cell in _cells(text) for a, b in zip(cell[::2], cell[1::2], strict=True))


def _cells(text: str) -> list[list[tuple[str, int]]]:
    kw = {k.arg: k.value for k in ast.parse(text, mode="eval").body.keywords}  # type: ignore[attr-defined]
    return [ast.literal_eval(kw[c]) for c in ("normal", "reduce")]


def _node_edges(text: str) -> list[list[frozenset[tuple[str, int]]]]:
    return [[frozenset(cell[2 * m : 2 * m + 2]) for m in range(4)] for cell in _cells(text)]


@pytest.mark.parametrize(
    ("edges", "concat", "match"),
    [
        (GOOD[:3] + [("none", 1)] + GOOD[4:], "[2, 3, 4, 5]", r"normal edge 3 \('none', 1\): unknown operation 'none'"),
        (GOOD[:5] + [("conv_7x7", 0)] + GOOD[6:], "[2, 3, 4, 5]", "unknown operation 'conv_7x7'"),
        (
            GOOD[:2] + [("sep_conv_3x3", 2), ("skip_connect", 2)] + GOOD[4:],
            "[2, 3, 4, 5]",
            "node 3 reads input 2 twice",
        ),
        (GOOD[:2] + [("sep_conv_3x3", 0), ("skip_connect", 3)] + GOOD[4:], "[2, 3, 4, 5]", r"input 3 is out of range"),
        (GOOD[:1] + [("sep_conv_3x3", -1)] + GOOD[2:], "[2, 3, 4, 5]", r"input -1 is out of range; node 2"),
        (GOOD[:7], "[2, 3, 4, 5]", "normal has 7 edges; a cell needs 8"),
        (GOOD + GOOD[:2], "[2, 3, 4, 5]", "normal has 10 edges"),
        (GOOD, "[2, 3, 4]", r"normal_concat = \[2, 3, 4\]"),
        (GOOD, "range(2, 5)", r"normal_concat = \[2, 3, 4\]"),
        (GOOD[:7] + [("skip_connect",)], "[2, 3, 4, 5]", "normal edge 7 is"),
    ],
)
def test_bad_genotypes_name_the_token(edges, concat, match):
    with pytest.raises(ArchParseError, match=match):
        SPACE.parse(genotype(edges, GOOD, concat))


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|", "not a Genotype"),
        ("Network(normal=[])", "must be written Genotype"),
        (genotype(GOOD).replace("reduce_concat", "reduce_cat"), "unknown field 'reduce_cat'"),
        (genotype(GOOD).replace(", reduce_concat=[2, 3, 4, 5]", ""), "lacks reduce_concat"),
        (
            genotype(GOOD).replace("reduce=[", "reduce=foo + ["),
            "reduce = .foo \\+ \\[\\('sep_conv_3x3', 0\\).*not a literal list",
        ),
        (genotype(GOOD, GOOD[:4] + [("none", 0)] + GOOD[5:]), r"reduce edge 4 \('none', 0\)"),
        (genotype(GOOD).replace("reduce=[", "reduce=3, foo=["), "unknown field 'foo'"),
        (f"Genotype(7, [2, 3, 4, 5], {GOOD!r}, [2, 3, 4, 5])", "normal = 7 is not a list of"),
    ],
)
def test_bad_strings_are_clear(text, match):
    with pytest.raises(ArchParseError, match=match):
        SPACE.parse(text)


def test_mutate_sample_encode():
    rng = np.random.default_rng(1)
    ops = np.array([SPACE.sample(rng).ops for _ in range(3000)])
    for i, c in enumerate(SPACE.choices):
        assert np.allclose(np.bincount(ops[:, i], minlength=c) / len(ops), 1 / c, atol=0.04)
    for row in ops[:200]:
        arch = Arch(tuple(int(v) for v in row))
        child = SPACE.mutate(arch, rng)
        assert SPACE.is_valid(child) and sum(a != b for a, b in zip(arch.ops, child.ops, strict=True)) == 1
        x = SPACE.encode(arch)
        assert x.dtype == np.float32 and x.sum() == 22 and set(np.unique(x)) == {0.0, 1.0}


def test_the_space_is_never_enumerated_and_rank_samples_and_rminas_draw_instead():
    with pytest.raises(ConfigError, match="too many to enumerate; sample it instead"):
        next(SPACE.enumerate())
    t0 = time.perf_counter()
    archs, draws = sampling.sample_distinct(SPACE, 200, np.random.default_rng(0), "select")
    assert len({SPACE.iso_key(a) for a in archs}) == 200 and all(sampling.split_of(SPACE, a) == "select" for a in archs)
    searcher = RMINAS(SPACE, np.random.default_rng(0), n_warmup=10, n_candidates=300, n_positives=3, n_trees=5)
    score = np.random.default_rng(1)
    for _ in range(30):  # warm-up, then forest-guided proposals over 300 unseen candidates each
        arch = searcher.ask()
        if arch is None:
            break
        searcher.tell(arch, float(score.random()))
    assert len(searcher.asked) >= 13
    assert time.perf_counter() - t0 < 30


# ------------------------------------------------------------------------------------------------ the network


def _arch(text: str = DARTS_V2) -> tuple[int, ...]:
    return SPACE.parse(text).ops


@pytest.mark.parametrize(("channels", "cells", "widths"), [(None, None, (32, 8)), (8, 1, (8, 5)), (16, 3, (16, 11))])
def test_shapes_stages_and_reduced_proxies(channels, cells, widths):
    c, layers = widths
    torch.manual_seed(0)
    net = build_network("darts", _arch(), channels=channels, cells=cells)
    assert isinstance(net, DartsNetwork) and len(net.cells) == layers  # 3N + 2
    n = (layers - 2) // 3
    assert net.config.reductions == (n, 2 * n + 1)
    assert [bool(isinstance(cell.preprocess0, FactorizedReduce)) for cell in net.cells] == [
        i - 1 in net.config.reductions for i in range(layers)
    ]
    x = torch.randn(2, 3, 32, 32)
    feats, logits = net.forward_stages(x)
    assert [tuple(f.shape) for f in feats] == [(2, 4 * c, 32, 32), (2, 8 * c, 16, 16), (2, 16 * c, 8, 8)]
    assert logits.shape == (2, 10) and torch.isfinite(logits).all()
    net.eval()
    with torch.no_grad():
        torch.testing.assert_close(net(x), net.forward_stages(x)[1])


def test_structure_follows_naslib():
    net = build_darts(_arch())
    stem_conv, stem_bn = net.stem
    assert (stem_conv.in_channels, stem_conv.out_channels, stem_conv.kernel_size) == (3, 96, (3, 3))
    assert stem_bn.affine
    assert isinstance(net.classifier, nn.Linear) and net.classifier.in_features == 512
    assert [name for name, _ in net.named_children()] == ["stem", "cells", "global_pooling", "classifier"]  # no aux
    reduce = net.cells[2]
    # DARTS_V2 reduce: max_pool from inputs 0 and 1 (stride 2), then skip_connect from node 2 (stride 1)
    assert isinstance(reduce.edges[0][0], nn.MaxPool2d) and reduce.edges[0][0].stride == 2
    assert isinstance(reduce.edges[3], nn.Identity)  # node 3's canonical second edge: skip_connect from node 2
    edges = {name for name, _ in cell_edges(SPACE.parse(DARTS_V2), 1)}
    assert edges == {"max_pool_3x3", "skip_connect"}
    for cell in net.cells:
        for op in cell.edges:  # inside the ops BN has no affine parameters; pools are followed by BN
            assert all(not m.affine for m in op.modules() if isinstance(m, nn.BatchNorm2d))
            if isinstance(op, nn.Sequential) and isinstance(op[0], nn.MaxPool2d | nn.AvgPool2d):
                assert isinstance(op[1], nn.BatchNorm2d)
        for pre in (cell.preprocess0, cell.preprocess1):
            assert all(m.affine for m in pre.modules() if isinstance(m, nn.BatchNorm2d))
    # a stride-2 skip_connect is a FactorizedReduce without affine BN
    arch = SPACE.parse(genotype(GOOD, [("skip_connect", 0), ("skip_connect", 1)] + GOOD[2:]))
    red = build_darts(arch.ops).cells[2]
    assert isinstance(red.edges[0], FactorizedReduce) and not red.edges[0].bn.affine
    assert isinstance(build_darts(arch.ops).cells[0].edges[0], nn.Sequential)  # normal: sep_conv_3x3


def _params_match(rows: pd.DataFrame) -> list[tuple[str, int, float]]:
    bad = []
    for text, params in zip(rows["genotype"], rows["params"], strict=True):
        n = n_params(build_network("darts", _arch(text)))
        if n != round(params * 1e6):
            bad.append((text, n, params))
    return bad


def test_params_equal_the_sample_on_a_subset(sample):
    """``params`` is in millions with 6 decimals, i.e. the exact count."""
    rows = sample.iloc[sorted(random.Random(0).sample(range(len(sample)), 25))]
    assert _params_match(rows) == []


@pytest.mark.slow
@pytest.mark.timeout(3600)  # about 1-2 min on an idle core; far more on a shared one
def test_params_equal_the_sample_on_all_1218(sample):
    assert _params_match(sample) == []


def test_bad_ops_and_config():
    with pytest.raises(ArchParseError, match="needs 22 choice indices"):
        build_darts([0] * 21)
    with pytest.raises(ArchParseError, match="choice 8 is 3, out of range 0..2"):
        build_darts([0] * 8 + [3] + [0] * 13)
    with pytest.raises(ValueError, match="C must be even"):
        build_darts([0] * 22, C=7)
    with torch.no_grad():
        assert torch.isfinite(build_darts(np.zeros(22, dtype=np.int64), C=4, N=1)(torch.randn(1, 3, 8, 8))).all()
    assert OPS[0] == "max_pool_3x3" and "none" not in OPS
