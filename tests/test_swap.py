"""SWAP (estimators/swap.py): hand-counted patterns on tiny networks, the 2^batch cap (which NB201's biggest cells
nearly reach at the official batch of 16), SWAP-reg's factor, and the estimator on real NB201 networks."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from estimators.swap import SWAP, activation_patterns, count_distinct, pattern_codes, size_factor, swap_score
from estimators.training_free import initialise
from harness import seeding
from harness.errors import ConfigError
from harness.networks import build_network
from harness.spaces.nb201 import NB201Space
from harness.types import Arch
from tests.conftest import tableless_context as context

NB201 = NB201Space()
pytestmark = pytest.mark.usefixtures("one_thread")
BIGGEST = Arch((3,) * 6)  # every edge nor_conv_3x3
ALL_NONE = Arch((0,) * 6)


def images(*rows: list[float]) -> torch.Tensor:
    """A batch of one-channel 1xW images, one per row."""
    return torch.tensor(rows, dtype=torch.float32).view(len(rows), 1, 1, -1)


def test_patterns_are_counted_per_unit_over_the_batch():
    """Units 0-3 of a bare ReLU see (+,+), (+,-), (-,+), (-,-) over the two images: four patterns; units 4 and 5
    repeat units 0 and 3, and a zero input is inactive, like a negative one."""
    x = images([1, 2, -1, -3, 5, 0], [4, -1, 2, -2, 7, -1])
    assert swap_score(nn.ReLU(), x) == 4
    assert swap_score(nn.ReLU(), x[:, :, :, :2]) == 2
    assert swap_score(nn.ReLU(), x[:, :, :, [0, 4]]) == 1


def test_a_relu_called_twice_adds_no_pattern_but_a_second_layer_can():
    relu = nn.ReLU()
    twice = nn.Sequential(relu, relu)  # the same module: the second call repeats the first one's patterns
    x = images([1, -1], [1, 1])  # patterns (1,1) and (0,1)
    assert swap_score(twice, x) == 2
    flip = nn.Conv2d(1, 1, 1, bias=False)
    with torch.no_grad():
        flip.weight.fill_(-1.0)
    # after -ReLU(x) the second ReLU sees (-1, -1) on unit 0 and (0, -1) on unit 1: both inactive, pattern (0,0)
    assert swap_score(nn.Sequential(nn.ReLU(), flip, nn.ReLU()), x) == 3


def test_relus_on_vectors_are_not_hooked():
    net = nn.Sequential(nn.Flatten(), nn.ReLU())
    assert activation_patterns(net, images([1, -1], [1, 1])).shape[0] == 0


def test_the_count_is_capped_by_two_to_the_batch():
    """All 2^B patterns of B images appear once each, however many units repeat them."""
    for batch in (1, 2, 5):
        codes = torch.arange(2**batch).repeat(7)
        active = ((codes.unsqueeze(0) >> torch.arange(batch).unsqueeze(1)) & 1).bool()  # (B, units)
        x = active.float().mul(2).sub(1).view(batch, 1, 1, -1)
        assert swap_score(nn.ReLU(), x) == 2**batch
        assert swap_score(nn.ReLU(), torch.randn(batch, 3, 8, 8)) <= 2**batch


def test_patterns_longer_than_one_code_word():
    """70 images need two 63-bit words: units that differ on image 65 only are distinct."""
    active = torch.zeros((70, 3), dtype=torch.bool)
    active[65, 1] = True
    active[:, 2] = True
    assert pattern_codes(active).shape == (3, 2)
    assert count_distinct(pattern_codes(active)) == 3
    torch.manual_seed(0)
    active = torch.rand(70, 4000) > 0.97
    assert count_distinct(pattern_codes(active)) == torch.unique(active.t(), dim=0).shape[0]


def test_nb201s_biggest_cell_nearly_reaches_the_cap_of_the_official_batch():
    """The trap: at 16 images the count cannot exceed 65,536, and NB201's biggest network (901,120 ReLU units)
    gets within 1 % of it, so SWAP cannot tell the biggest cells apart. 32 images lift the cap far above."""
    seeding.seed_torch(seeding.rng(0, "test"))
    net = build_network("nb201", BIGGEST.ops)
    initialise(net, "gaussian")
    x = torch.randn(32, 3, 32, 32)
    assert activation_patterns(net, x[:16]).shape[0] == 901_120
    at16 = swap_score(net, x[:16])
    assert 0.99 * 2**16 < at16 <= 2**16
    assert swap_score(net, x) > 3 * 2**16


def test_a_cell_with_no_path_has_one_pattern():
    """The all-none cell: every ReLU after it sees zeros on every image (train-mode BatchNorm of a constant is
    0), so every unit has the all-inactive pattern."""
    seeding.seed_torch(seeding.rng(0, "test"))
    net = build_network("nb201", ALL_NONE.ops)
    initialise(net, "gaussian")
    assert swap_score(net, torch.randn(8, 3, 32, 32)) == 1


def test_size_factor_by_hand():
    net = nn.Linear(99, 10)  # 990 + 10 = 1,000 parameters: P = 1 (thousand)
    assert size_factor(net, 1.0, 2.0) == 1.0
    assert size_factor(net, 3.0, 2.0) == pytest.approx(math.exp(-2.0))


def test_estimate_is_the_mean_over_repeats_times_the_size_factor(cifar10_images):
    """The estimator's score, rebuilt by hand: the network of (seed, architecture), re-drawn before the second
    repeat, on the batch drawn at fit; SWAP-reg multiplies the mean by the factor."""
    arch = NB201.parse("|skip_connect~0|+|skip_connect~0|avg_pool_3x3~1|+|none~0|avg_pool_3x3~1|skip_connect~2|")
    est = SWAP(repeats=2)
    est.fit(context())
    seeding.seed_torch(seeding.rng(0, "init:" + NB201.format(arch)))
    net = build_network("nb201", arch.ops)
    initialise(net, "gaussian")
    x = est._batches[0][0]
    first = swap_score(net, x)
    initialise(net, "gaussian")
    second = swap_score(net, x)
    assert first != second and 0 < first < 2**16
    assert est.estimate(arch).score == (first + second) / 2
    reg = SWAP(repeats=2, mu=200.0, sigma=5e4)
    reg.fit(context())
    assert reg.estimate(arch).score == pytest.approx((first + second) / 2 * size_factor(net, 200.0, 5e4))


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"mu": 100.0}, "both mu and sigma"),
        ({"mu": 100.0, "sigma": 0}, "sigma"),
        ({"repeats": 0}, "repeats"),
        ({"init": "xavier"}, "init must be one of"),
    ],
)
def test_bad_settings_are_config_errors(settings, message, cifar10_images):
    with pytest.raises(ConfigError, match=message):
        SWAP(**settings).fit(context())
