"""MeCo (estimators/meco.py): the minimum eigenvalue of a hand-computed correlation matrix, which modules add,
and the estimator's inputs (the paper's one CIFAR-10 image; the public code's 64x64 Gaussian) on real NB201
networks."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from estimators.meco import MeCo, min_eig_correlation
from harness.errors import ConfigError
from harness.spaces.nb201 import NB201Space
from tests.conftest import tableless_context

NB201 = NB201Space()
ALL_NONE = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
SMALL = "|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|avg_pool_3x3~0|none~1|nor_conv_3x3~2|"


def test_min_eigenvalue_of_a_hand_computed_correlation():
    """(1, 2, 3) and (1, 3, 2): deviations (-1, 0, 1) and (-1, 1, 0), r = 1 / 2; eigenvalues of [[1, r], [r, 1]]
    are 1 -+ r: 0.5."""
    assert min_eig_correlation(torch.tensor([[1.0, 2.0, 3.0], [1.0, 3.0, 2.0]])) == pytest.approx(0.5, rel=1e-12)


def test_constant_channel_and_single_position_give_zero():
    """A constant row has no correlation: its entries are 0, so 0 is an eigenvalue; one observation: 0."""
    assert min_eig_correlation(torch.tensor([[1.0, 2.0, 3.0], [4.0, 4.0, 4.0]])) == pytest.approx(0.0, abs=1e-15)
    assert min_eig_correlation(torch.tensor([[1.0], [2.0]])) == 0.0


def tiny_net() -> nn.Sequential:
    """A 1x1 convolution mapping channels (a, b) to (a, a + b)."""
    conv = nn.Conv2d(2, 2, kernel_size=1, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([[1.0, 0.0], [1.0, 1.0]]).reshape(2, 2, 1, 1))
    return nn.Sequential(conv)


# one image, 2 channels at 3 positions: a = (1, 2, 3), b = (0, 1, -1), so the convolution outputs (1, 2, 3) and
# (1, 3, 2), whose correlation matrix has lambda_min 0.5 (the first test)
IMAGE = torch.tensor([[1.0, 2.0, 3.0], [0.0, 1.0, -1.0]]).reshape(1, 2, 1, 3)


def test_hooked_modules():
    """modules=all hooks the Sequential too (the same output: 2 x 0.5), conv the Conv2d only (0.5)."""
    batch = [(IMAGE, torch.tensor([0]))]
    assert MeCo().score(tiny_net(), batch) == pytest.approx(1.0, rel=1e-12)
    assert MeCo(modules="conv").score(tiny_net(), batch) == pytest.approx(0.5, rel=1e-12)


def test_only_the_first_image_is_read():
    """A second image in the batch changes nothing (no BatchNorm here): the correlation is the first image's."""
    other = torch.tensor([[5.0, -1.0, 2.0], [3.0, 3.0, 0.0]]).reshape(1, 2, 1, 3)
    batch = [(torch.cat([IMAGE, other]), torch.tensor([0, 1]))]
    assert MeCo().score(tiny_net(), batch) == pytest.approx(1.0, rel=1e-12)


def test_outputs_without_positions_add_nothing():
    """Pooled features and logits (one position per channel) add 0: in conv + pool + flatten + linear only the conv
    adds (0.5); the Sequential's own output is the logits."""
    net = nn.Sequential(tiny_net()[0], nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2, 3))
    assert MeCo().score(net, [(IMAGE, torch.tensor([0]))]) == pytest.approx(0.5, rel=1e-12)


@pytest.mark.parametrize(
    ("settings", "message"),
    [({"modules": "relu"}, "modules"), ({"n_batches": 2}, "n_batches must be 1"), ({"resolution": 0}, "resolution")],
)
def test_bad_settings_are_refused(settings, message):
    with pytest.raises(ConfigError, match=message):
        MeCo(**settings).fit(None)  # type: ignore[arg-type]  # refused before the context is read


def fitted(**settings: object) -> MeCo:
    est = MeCo(**settings)  # type: ignore[arg-type]
    est.fit(tableless_context())
    return est


@pytest.mark.usefixtures("cifar10_images")
def test_inputs_paper_and_public_settings():
    """Default: one CIFAR-10 image at 32x32; inputs=gaussian resolution=64 (the public measure): one standard normal
    image at 64x64; a resized image keeps its content's range."""
    ((x, _),) = fitted()._batches
    assert x.shape == (1, 3, 32, 32)
    ((g, _),) = fitted(inputs="gaussian", resolution=64)._batches
    assert g.shape == (1, 3, 64, 64) and abs(float(g.mean())) < 0.1 and abs(float(g.std()) - 1.0) < 0.1
    ((big, _),) = fitted(resolution=64)._batches
    assert big.shape == (1, 3, 64, 64)
    assert float(big.min()) >= float(x.min()) - 1e-5 and float(big.max()) <= float(x.max()) + 1e-5


@pytest.mark.usefixtures("cifar10_images")
def test_on_nb201_networks():
    """Real NB201 networks: the zero cell still scores (its stem's modules add), less than a cell with
    convolutions; scores repeat on a second fit."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        ests = [fitted(), fitted()]
        runs = [[est.estimate(NB201.parse(t)).score for t in (ALL_NONE, SMALL)] for est in ests]
    finally:
        torch.set_num_threads(threads)
    assert runs[0] == runs[1]
    zero, small = runs[0]
    assert math.isfinite(zero) and zero > 0 and small > zero
