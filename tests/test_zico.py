"""ZiCo (estimators/zico.py): the score hand-computed on a one-layer network, the rules for a zero spread, and the
estimator on real NB201 networks and CIFAR-10 images."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from estimators.zico import ZiCo
from harness.errors import ConfigError
from harness.spaces.nb201 import NB201Space
from tests.conftest import tableless_context

NB201 = NB201Space()
ALL_NONE = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
SMALL = "|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|avg_pool_3x3~0|none~1|nor_conv_3x3~2|"


def linear(weight: list[list[float]]) -> nn.Linear:
    layer = nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(weight))
    return layer


def batch(x: list[float], y: int) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.tensor([x]), torch.tensor([y])


# W = 0: softmax (1/2, 1/2), so dL/dW = (p - onehot(y)) x^T.
# batch 1, x = (1, 2), y = 0: p - e = (-1/2, 1/2): G1 = [[-0.5, -1], [0.5, 1]]
# batch 2, x = (3, -1), y = 1: p - e = (1/2, -1/2): G2 = [[1.5, -0.5], [-1.5, 0.5]]
BATCHES = [batch([1.0, 2.0], 0), batch([3.0, -1.0], 1)]


def test_hand_computed_signed_spread():
    """Per weight, mean |g| / population std g: w11 (-0.5, 1.5) 1/1, w12 (-1, -0.5) 0.75/0.25, w21 1, w22 3:
    log(1 + 3 + 1 + 3)."""
    net = nn.Sequential(linear([[0.0, 0.0], [0.0, 0.0]]))
    assert ZiCo().score(net, BATCHES) == pytest.approx(math.log(8.0), rel=1e-12)


def test_hand_computed_abs_spread():
    """spread=abs takes the std of |g|: w11 (0.5, 1.5) 1/0.5, w12 3, w21 2, w22 3: log(10)."""
    net = nn.Sequential(linear([[0.0, 0.0], [0.0, 0.0]]))
    assert ZiCo(spread="abs").score(net, BATCHES) == pytest.approx(math.log(10.0), rel=1e-12)


def test_weights_with_zero_spread_are_left_out():
    """x2 = 0 in both batches: w12 and w22 get gradient 0 twice (std 0) and drop out; w11 and w21 give 1 each."""
    net = nn.Sequential(linear([[0.0, 0.0], [0.0, 0.0]]))
    assert ZiCo().score(net, [batch([1.0, 0.0], 0), batch([3.0, 0.0], 1)]) == pytest.approx(math.log(2.0))


def test_a_layer_with_no_spread_adds_nothing():
    """Two identical batches: every std is 0, no layer adds a term, the score is 0 (the official code's rule)."""
    net = nn.Sequential(linear([[0.3, -0.2], [0.1, 0.4]]), nn.ReLU(), linear([[1.0, 0.5], [-0.5, 1.0]]))
    assert ZiCo().score(net, [BATCHES[0], BATCHES[0]]) == 0.0


def test_layers_add():
    """The layers' logs add, and a layer whose gradient is 0 on both batches adds nothing: the first layer is the
    identity, so the second sees x itself."""
    net = nn.Sequential(linear([[1.0, 0.0], [0.0, 1.0]]), linear([[0.0, 0.0], [0.0, 0.0]]))
    x_pos = [batch([1.0, 2.0], 0), batch([3.0, 1.0], 1)]
    # layer 2 as in BATCHES' comment with x = (1, 2), (3, 1): w11 (-0.5, 1.5) 1, w12 (-1, 0.5) 0.75/0.75 = 1,
    # w21 1, w22 1: log 4. Layer 1: its gradient is W2^T (p - e) x^T = 0 (W2 = 0): no term.
    assert ZiCo().score(net, x_pos) == pytest.approx(math.log(4.0))


@pytest.mark.parametrize(
    ("settings", "message"), [({"spread": "square"}, "spread"), ({"n_batches": 1}, "n_batches >= 2")]
)
def test_bad_settings_are_refused(settings, message):
    with pytest.raises(ConfigError, match=message):
        ZiCo(**settings).fit(None)  # type: ignore[arg-type]  # refused before the context is read


@pytest.mark.usefixtures("cifar10_images", "one_thread")
def test_on_nb201_networks():
    """Real NB201 networks, 2 batches of 8 CIFAR-10 images: the zero cell scores 0 (no layer gets a gradient that
    varies), a small cell a positive finite number, the same on a second fit."""
    scores = []
    for _ in range(2):
        est = ZiCo(batch_size=8)
        est.fit(tableless_context())
        assert [tuple(x.shape) for x, _ in est._batches] == [(8, 3, 32, 32)] * 2
        scores.append([est.estimate(NB201.parse(text)).score for text in (ALL_NONE, SMALL)])
    assert scores[0] == scores[1]
    zero, small = scores[0]
    assert zero == 0.0 and math.isfinite(small) and small > 0
