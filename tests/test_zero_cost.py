"""Zero-cost proxies (estimators/zero_cost.py): hand-checked definitions on tiny networks, then the estimator
on real NB201 and NAS-Bench-Macro networks with real CIFAR-10 images (small batches, to stay fast)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from estimators import zero_cost as zc
from estimators.zero_cost import PROXIES, ZeroCost
from harness.errors import ConfigError
from harness.networks import build_network
from harness.spaces.nb201 import NB201Space
from harness.spaces.nbmacro import MacroSpace
from harness.types import FAILED, OK, Arch
from tests.conftest import tableless_context

NB201 = NB201Space()
MACRO = MacroSpace()
SMALL = [
    "|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|avg_pool_3x3~0|none~1|nor_conv_3x3~2|",
    "|nor_conv_1x1~0|+|none~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|",
]
ALL_NONE = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
BIGGEST_NB201 = NB201.format(Arch((3,) * 6))  # every edge nor_conv_3x3
NO_CONV = "|avg_pool_3x3~0|+|skip_connect~0|avg_pool_3x3~1|+|skip_connect~0|skip_connect~1|avg_pool_3x3~2|"
SMALL_MACRO = "00000012"  # both inverted-residual kinds, in the last (4x4) stage to stay cheap


pytestmark = pytest.mark.usefixtures("cifar10_images", "one_thread")


def fitted(proxy: str, space=NB201, *, batch_size: int = 8, seed: int = 0) -> ZeroCost:
    est = ZeroCost(proxy=proxy, batch_size=batch_size)
    assert est.fit(tableless_context(space, seed=seed)) >= 0
    return est


# ----------------------------------------------------------------------------------------------------------
# Definitions, checked by hand on tiny networks


def test_synflow_by_hand_float64_abs_weights_no_batchnorm():
    net = nn.Sequential(nn.Linear(2, 2, bias=False), nn.BatchNorm1d(2), nn.Linear(2, 1, bias=False))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[1.0, -2.0], [3.0, 0.5]]))
        net[2].weight.copy_(torch.tensor([[-1.0, 1.0]]))
    before = [p.detach().clone() for p in net.parameters()]
    # |W1| 1 = (3, 3.5); R = 6.5; sum |W2 * dR/dW2| = 3 + 3.5; sum |W1 * dR/dW1| = sum |W1| = 6.5
    # (a batch of one image through train-mode BatchNorm would fail: BatchNorm must be removed)
    assert zc.synflow(net, torch.zeros(5, 2), torch.zeros(5)) == pytest.approx(math.log(13.0), rel=1e-12)
    after = list(net.parameters())
    assert all(torch.equal(a, b) for a, b in zip(before, after, strict=True)), "net must be untouched"
    assert net[0].weight.dtype == torch.float32


def test_snip_is_the_gradient_of_a_mask_of_ones():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 3))
    x, y = torch.randn(6, 5), torch.tensor([0, 1, 2, 0, 1, 2])
    masks = [torch.ones_like(net[i].weight, requires_grad=True) for i in (0, 2)]
    h = F.relu(F.linear(x, net[0].weight * masks[0], net[0].bias))
    loss = F.cross_entropy(F.linear(h, net[2].weight * masks[1], net[2].bias), y)
    expected = sum(float(g.abs().sum()) for g in torch.autograd.grad(loss, masks))
    assert zc.snip(net, x, y) == pytest.approx(expected, rel=1e-6)


def test_grad_norm_sums_per_layer_norms():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 3))
    x, y = torch.randn(6, 5), torch.tensor([0, 1, 2, 0, 1, 2])
    grads = torch.autograd.grad(F.cross_entropy(net(x), y), [net[0].weight, net[2].weight])
    assert zc.grad_norm(net, x, y) == pytest.approx(sum(float(g.norm()) for g in grads), rel=1e-6)


def test_grasp_is_minus_theta_hessian_gradient():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4, bias=False), nn.Tanh(), nn.Linear(4, 2, bias=False)).double()
    x, y = torch.randn(5, 3, dtype=torch.float64), torch.tensor([0, 1, 1, 0, 1])
    w1, w2 = net[0].weight.detach(), net[2].weight.detach()
    theta = torch.cat([w1.flatten(), w2.flatten()])

    def loss(flat: torch.Tensor) -> torch.Tensor:
        a, b = flat[: w1.numel()].view_as(w1), flat[w1.numel() :].view_as(w2)
        return F.cross_entropy(torch.tanh(x @ a.t()) @ b.t(), y)

    g = torch.autograd.functional.jacobian(loss, theta)
    hessian = torch.autograd.functional.hessian(loss, theta)
    assert zc.grasp(net, x, y) == pytest.approx(float(-(theta * (hessian @ g)).sum()), rel=1e-9)


def test_fisher_by_hand_on_one_linear_layer():
    torch.manual_seed(0)
    net = nn.Linear(4, 3)
    x, y = torch.randn(5, 4), torch.tensor([0, 1, 2, 1, 0])
    a = net(x).detach()
    g = (torch.softmax(a, 1) - F.one_hot(y, 3)) / 5  # d mean-cross-entropy / d logits
    expected = float(0.5 * (a * g).pow(2).mean(0).sum()) * 4  # per channel, times the channel's 4 weights
    assert zc.fisher(net, x, y) == pytest.approx(expected, rel=1e-5)


class RunsInAnotherOrder(nn.Module):
    """Two layers of different fan-in, registered in the opposite order to the one they run in (as in NB201's
    reduction block, whose shortcut convolution is registered last and runs first)."""

    def __init__(self) -> None:
        super().__init__()
        self.second = nn.Linear(4, 3)
        self.first = nn.Linear(2, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.second(torch.tanh(self.first(x)))


def test_fisher_pairs_each_output_with_its_own_layer():
    torch.manual_seed(0)
    net = RunsInAnotherOrder()
    x, y = torch.randn(5, 2), torch.tensor([0, 1, 2, 1, 0])
    a1 = net.first(x)
    a2 = net.second(torch.tanh(a1))
    g1, g2 = torch.autograd.grad(F.cross_entropy(a2, y), [a1, a2])
    per_layer = [float(0.5 * (a.detach() * g).pow(2).mean(0).sum()) for a, g in ((a1, g1), (a2, g2))]
    expected = per_layer[0] * 2 + per_layer[1] * 4  # times each layer's own fan-in
    assert zc.fisher(net, x, y) == pytest.approx(expected, rel=1e-5)


def test_jacov_by_hand_identical_jacobians():
    net = nn.Sequential(nn.Flatten(), nn.Linear(6, 2))  # linear: every image has the same input gradient
    x = torch.randn(4, 1, 2, 3, generator=torch.Generator().manual_seed(0))
    k = 1e-5  # correlation matrix = all ones: eigenvalues 4, 0, 0, 0
    expected = -(math.log(4 + k) + 1 / (4 + k)) - 3 * (math.log(k) + 1 / k)
    assert zc.jacov(net, x, torch.zeros(4, dtype=torch.long)) == pytest.approx(expected, rel=1e-6)


class HalfSquaredNorm(nn.Module):
    """f(x) = |x|^2 / 2 per image: its input gradient is the image itself."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * x.pow(2).flatten(1).sum(1, keepdim=True)


def test_epe_nas_by_hand():
    x = torch.tensor([[1.0, 2.0, 3.0], [1.0, 3.0, 2.0], [0.0, 1.0, 5.0]])  # = the Jacobian rows
    y = torch.tensor([4, 4, 7])
    k = 1e-5  # class 4: correlation 0.5 between its two rows; class 7: one row, [[1]]
    expected = abs(2 * math.log(1 + k) + 2 * math.log(0.5 + k)) + abs(math.log(1 + k))
    assert zc.epe_nas(HalfSquaredNorm(), x, y) == pytest.approx(expected, rel=1e-9)


def test_nwot_by_hand():
    net = nn.Sequential(nn.Flatten(), nn.ReLU())
    x = torch.tensor([[1.0, 2.0, -1.0, -3.0], [5.0, -1.0, 2.0, -1.0], [1.0, 1.0, 1.0, 1.0]])
    # codes 1100, 1010, 1111: K = [[4, 2, 2], [2, 4, 2], [2, 2, 4]], det 32
    assert zc.nwot(net, x, torch.zeros(3)) == pytest.approx(math.log(32.0), rel=1e-12)
    assert not net[1]._forward_hooks, "hooks must be removed"


def test_flops_by_hand():
    net = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),  # 4*32*32 outputs x 3*3*3 = 110,592
        nn.Conv2d(4, 8, 3, stride=2, padding=1, groups=2),  # 8*16*16 outputs x (4/2)*3*3 = 36,864
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 10),  # 80
    )
    x = torch.randn(7, 3, 32, 32)
    assert zc.flops(net, x, torch.zeros(7)) == 110_592 + 36_864 + 80
    assert net.training, "flops must restore the mode"


def test_params_counts_trainable_parameters():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Linear(4, 2))
    net[2].bias.requires_grad_(False)
    assert zc.params(net, torch.zeros(1, 3, 8, 8), torch.zeros(1)) == 3 * 4 * 9 + 4 + 2 * 4 + 4 * 2


# ----------------------------------------------------------------------------------------------------------
# The estimator on real networks


def test_constructor_only_stores():
    est = ZeroCost(proxy="no_such_proxy", batch_size=-1)
    assert (est.proxy, est.batch_size, est.class_balanced) == ("no_such_proxy", -1, False)


def test_unknown_proxy_lists_the_valid_names():
    with pytest.raises(ConfigError, match="no_such_proxy") as info:
        ZeroCost(proxy="no_such_proxy").fit(tableless_context())
    assert all(name in str(info.value) for name in PROXIES)


def test_other_datasets_are_a_config_error():
    with pytest.raises(ConfigError, match=r"CIFAR-10.*'cifar100'"):
        ZeroCost().fit(tableless_context(dataset="cifar100"))


@pytest.mark.parametrize("proxy", list(PROXIES))
def test_every_proxy_is_finite_on_nb201_and_macro(proxy):
    for space, texts in ((NB201, SMALL), (MACRO, [SMALL_MACRO])):
        est = fitted(proxy, space)
        for text in texts:
            e = est.estimate(space.parse(text))
            assert math.isfinite(e.score), f"{proxy} on {text}: {e.score}"
            assert e.cost_s > 0 and e.device == "cpu"


def test_score_depends_on_seed_and_arch_only_not_on_order():
    archs = [NB201.parse(s) for s in (*SMALL, NO_CONV)]
    first = fitted("snip")
    forward = [first.estimate(a).score for a in archs]
    again = fitted("snip")
    backward = [again.estimate(a).score for a in reversed(archs)][::-1]
    assert forward == backward
    assert first.estimate(archs[0]).score == forward[0]
    other_seed = fitted("snip", seed=1)
    assert other_seed.estimate(archs[0]).score != forward[0]


def test_synflow_does_not_overflow_on_the_biggest_networks():
    for space, text in ((NB201, BIGGEST_NB201), (MACRO, "22222222")):
        score = fitted("synflow", space).estimate(space.parse(text)).score
        # log of the sum; float32 would overflow above log(3.4e38) = 88.7, float64 above 709.8
        assert math.isfinite(score) and 20 < score < 600, f"{text}: {score}"


def test_synflow_and_params_and_flops_ignore_the_batch():
    arch = NB201.parse(NO_CONV)
    for proxy in ("synflow", "params", "flops"):
        big, small = fitted(proxy, batch_size=8), fitted(proxy, batch_size=3)
        assert big.estimate(arch).score == small.estimate(arch).score


def test_params_match_the_network_and_the_nb201_table(nb201_csv):
    import pandas as pd

    table = pd.read_csv(nb201_csv, usecols=["arch", "dataset", "params_mb"])
    table = table[table["dataset"] == "cifar10"].set_index("arch")["params_mb"]
    for space, text in ((NB201, SMALL[0]), (NB201, BIGGEST_NB201), (MACRO, SMALL_MACRO)):
        arch = space.parse(text)
        net = build_network(space.name, arch.ops)
        score = fitted("params", space).estimate(arch).score
        assert score == sum(p.numel() for p in net.parameters())
        if space is NB201:
            assert score / 1e6 == pytest.approx(table[text], abs=5e-6)  # the table has 5 decimals


EXPECTED_ON_ALL_NONE = {
    # The cell outputs zeros: no path from the input to the output, no gradient reaches a weight but the
    # classifier's (whose input is zero), every ReLU sees zeros.
    "synflow": -math.inf,  # log(0)
    "snip": 0.0,
    "grad_norm": 0.0,
    "grasp": 0.0,
    "jacov": math.nan,  # correlation of all-zero Jacobians: undefined
    "epe_nas": math.nan,
    "nwot": -math.inf,  # all codes identical: K singular
}


def test_all_none_cell_scores_are_exact_and_non_finite_ones_are_not_hidden():
    arch = NB201.parse(ALL_NONE)
    for proxy, expected in EXPECTED_ON_ALL_NONE.items():
        score = fitted(proxy).estimate(arch).score
        if math.isnan(expected):
            assert math.isnan(score), proxy
        else:
            assert score == expected, proxy
    fisher = fitted("fisher").estimate(arch).score  # the classifier's logits still equal its bias
    assert math.isfinite(fisher) and fisher > 0
    assert fitted("params").estimate(arch).score > 0 and fitted("flops").estimate(arch).score > 0


def test_loop_records_non_finite_scores_as_failed(nb201_csv, tmp_path):
    from harness import loop
    from harness.benchmarks import NB201 as NB201Table

    bench = NB201Table("cifar10", cache_dir=str(tmp_path)).load()
    archs = [NB201.parse(SMALL[0]), NB201.parse(ALL_NONE)]
    est = ZeroCost("nwot", batch_size=8)
    result = loop.rank(bench, est, archs, tableless_context(), ci_rng=np.random.default_rng(0))
    assert [r.status for r in result.records] == [OK, FAILED]
    assert "non-finite" in result.records[1].reason and "-inf" in result.records[1].reason
