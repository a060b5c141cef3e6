"""AZ-NAS (estimators/az_nas.py): the rank aggregation by hand, scores that do not depend on the order of calls,
and each component on tensors and tiny networks whose value is known."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.stats import rankdata

from estimators.az_nas import (
    AZNAS,
    COMPONENTS,
    aggregate,
    block_features,
    components,
    eigen_entropy,
    pair_trainability,
    primary_blocks,
)
from estimators.zero_cost import flops
from harness import seeding
from harness.benchmarks import NB201
from harness.errors import ConfigError
from harness.interfaces import EstimatorContext
from harness.networks import build_network

BEST = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
#: a cell that passes its input through: node 3 = skip(node 0), the rest none
IDENTITY = "|none~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|"
#: a cell whose output is zero
ZERO = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"


def test_aggregate_by_hand():
    pool = np.array([[1.0, 1, 1, 1], [2, 2, 2, 2], [3, 3, 3, 3]])
    values = np.array([2.5, 0.0, 3.0, -np.inf])
    # ranks among the pool and itself (m = 4): 3 (two below), 1, 3.5 (tied with 3: ranks 3 and 4), 1
    expected = math.log(3 / 4) + math.log(1 / 4) + math.log(3.5 / 4) + math.log(1 / 4)
    assert aggregate(values, pool) == pytest.approx(expected, abs=1e-12)
    by_scipy = sum(math.log(rankdata(np.append(pool[:, i], values[i]))[-1] / 4) for i in range(4))
    assert aggregate(values, pool) == pytest.approx(by_scipy, abs=1e-12)


def test_aggregate_ties_minus_inf_and_tops_at_zero():
    pool = np.array([[-np.inf, 0.0, 0, 0], [1, 1, 1, 1]])
    # -inf ties with the pool's -inf: ranks 1 and 2 of 3, mean 1.5
    assert aggregate(np.array([-np.inf, 5, 5, 5]), pool) == pytest.approx(math.log(1.5 / 3))
    assert aggregate(np.array([9.0, 9, 9, 9]), pool) == 0.0


def test_eigen_entropy_of_known_covariance():
    """Two uncorrelated channels of variances 1 and 3 (over 2 images x 2 positions): eigenvalues in ratio 1:3."""
    c0 = torch.tensor([1.0, -1, 1, -1])
    c1 = 3**0.5 * torch.tensor([1.0, 1, -1, -1])
    feature = torch.stack([c0, c1]).reshape(2, 2, 2, 1).permute(1, 0, 2, 3)  # (N=2, C=2, H=2, W=1)
    expected = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))
    assert eigen_entropy(feature) == pytest.approx(expected, abs=1e-7)
    assert math.isnan(eigen_entropy(torch.zeros(2, 3, 4, 4)))


def test_pair_trainability_of_known_jacobians():
    torch.manual_seed(0)
    x = torch.randn(2, 1, 4, 4, requires_grad=True)
    # y = 2x, one channel: the estimate is 2 * mean(g^2) = 2 exactly, and the pair scores 2 - 2 - 1/2
    assert pair_trainability(x, 2 * x) == pytest.approx(-1 / (2 + 1e-6), abs=1e-12)
    # 2x2 average pool: each input position gets g/4; folded into 4 channels, sigma = |(1/4, 1/4, 1/4, 1/4)| = 1/2
    assert pair_trainability(x, F.avg_pool2d(x, 2)) == pytest.approx(2 - 0.5 - 1 / (0.5 + 1e-6), abs=1e-6)
    assert pair_trainability(x, x) == -math.inf  # the identity
    assert pair_trainability(x, x * 1.0) == -math.inf
    assert pair_trainability(x, torch.zeros_like(x)) == pytest.approx(2 - 1e6)  # no dependence: sigma = 0


def _tiny_nb201(cell: str) -> torch.nn.Module:
    from harness.spaces.nb201 import NB201Space

    return build_network("nb201", NB201Space().parse(cell).ops, channels=4, cells=1).train()


def test_components_on_a_tiny_nb201_network():
    torch.manual_seed(0)
    net = _tiny_nb201(BEST)
    x = torch.randn(8, 3, 8, 8)
    feats = block_features(net, x)
    # stem, cell, reduction, cell, reduction, cell
    assert [tuple(f.shape[1:]) for f in feats] == [(4, 8, 8), (4, 8, 8), (8, 4, 4), (8, 4, 4), (16, 2, 2), (16, 2, 2)]
    assert torch.equal(feats[0], net.stem(x))
    entropies = np.array([eigen_entropy(f) for f in feats])
    values = components(net, x, torch.zeros(8, dtype=torch.long))
    assert values[0] == pytest.approx(entropies.sum())
    assert values[1] == pytest.approx(np.diff(entropies).min())
    assert -1e6 < values[2] <= 0  # a pair scores at most 0 (sigma = 1)
    assert values[3] == flops(net, x, x)


def test_degenerate_cells():
    """The identity cell has an identity Jacobian (trainability -inf, progressivity 0: the entropy does not grow
    through it); the zero cell's output has no covariance (expressivity NaN, counted -inf)."""
    torch.manual_seed(0)
    x, y = torch.randn(8, 3, 8, 8), torch.zeros(8, dtype=torch.long)
    identity = components(_tiny_nb201(IDENTITY), x, y)
    assert identity[2] == -math.inf and identity[1] == 0.0 and math.isfinite(identity[0])
    zero = components(_tiny_nb201(ZERO), x, y)
    assert zero[0] == -math.inf and zero[1] == -math.inf


def test_nbmacro_identity_layers_are_no_blocks():
    """A stride-1 identity choice removes the layer; a stride-2 one is a strided 1x1 conv, so it stays."""
    assert len(primary_blocks(build_network("nbmacro", (0,) * 8))) == 1 + 3
    assert len(primary_blocks(build_network("nbmacro", (1,) * 8))) == 1 + 8
    assert len(primary_blocks(build_network("darts", (0,) * 22, channels=4, cells=1))) == 1 + 5


@pytest.fixture(scope="module")
def bench(nb201_csv, tmp_path_factory):
    return NB201("cifar10", cache_dir=str(tmp_path_factory.mktemp("cache"))).load()


def _fitted(bench: NB201, **params: object) -> AZNAS:
    est = AZNAS(**{"pool": 3, "batch_size": 8, **params})  # type: ignore[arg-type]
    est.fit(EstimatorContext(bench.space, "nb201", "cifar10", bench.query, np.random.default_rng(0), seed=5))
    return est


def test_scores_do_not_depend_on_the_order_of_calls(bench):
    archs = [bench.space.parse(BEST), bench.space.parse(IDENTITY), bench.space.sample(np.random.default_rng(2))]
    first = _fitted(bench)
    forward = [first.estimate(a).score for a in archs]
    backward = [_fitted(bench).estimate(a).score for a in reversed(archs)][::-1]
    assert forward == backward
    assert [first.estimate(a).score for a in archs] == forward  # and again, after the others
    # the pool is fixed by the seed: a pool member scores what its row in the pool says
    member = bench.space.sample(seeding.rng(5, "az_nas:pool"))
    assert np.array_equal(first.components(member), first._pool[0])
    assert first.estimate(member).score == aggregate(first._pool[0], first._pool)


def test_a_component_alone_is_its_raw_value(bench):
    arch = bench.space.parse(BEST)
    full = _fitted(bench).components(arch)
    for i, name in enumerate(COMPONENTS):
        est = _fitted(bench, proxy=name)
        assert len(est._pool) == 0  # no pool is drawn for a raw component
        assert est.estimate(arch).score == full[i]


@pytest.mark.parametrize(
    ("params", "message"),
    [({"pool": 0}, "pool"), ({"pool": 2.5}, "pool"), ({"proxy": "zico"}, "proxy"), ({"init": "xavier"}, "init")],
)
def test_bad_settings_are_config_errors(bench, params, message):
    with pytest.raises(ConfigError, match=message):
        _fitted(bench, **params)
