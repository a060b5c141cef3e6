"""n_layers (estimators/n_layers.py): VKDNW's count of trainable layers, i.e. of parameter tensors, by hand."""

from __future__ import annotations

import pytest
from torch import nn

from estimators.n_layers import NLayers
from harness.networks import build_network
from harness.spaces.nb201 import NB201Space

NB201 = NB201Space()


def test_counts_parameter_tensors():
    """Conv2d without bias 1, BatchNorm 2, Linear 2, ReLU 0; a frozen tensor is not trainable; a shared one counts
    once."""
    shared = nn.Linear(4, 4)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, bias=False), nn.BatchNorm2d(4), nn.ReLU(), shared, shared, nn.Linear(4, 2))
    assert NLayers().score(net, []) == 7.0
    net[5].bias.requires_grad_(False)
    assert NLayers().score(net, []) == 6.0


@pytest.mark.parametrize("k", range(7))
def test_nb201_is_21_plus_45_per_convolution(k):
    """NB201: stem conv + BN (3), two reduction blocks (2 ReLUConvBN + shortcut conv: 7 each), lastact BN (2),
    classifier (2) = 21, plus 3 per convolution edge (conv + affine BN) in each of the 15 cells."""
    ops = (3,) * k + (1,) * (6 - k)  # k nor_conv_3x3 edges, the others skip_connect
    net = build_network("nb201", ops)
    assert NLayers().score(net, []) == 21 + 45 * k
