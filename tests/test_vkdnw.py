"""VKDNW (estimators/vkdnw.py): the Fisher of a tiny linear model by hand, per-image Jacobians against plain
autograd image by image, the decile entropy, the choice of weights (the official code's 128 tensors on every NB201
cell), and the estimator's aleph-first order on real NB201 networks."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from estimators.training_free import initialise
from estimators.vkdnw import (
    VKDNW,
    choose_weights,
    decile_entropy,
    fisher_information,
    forward_order,
    n_tensors,
    per_image_jacobian,
)
from harness import seeding
from harness.errors import ConfigError
from harness.networks import build_network
from harness.spaces.nb201 import NB201Space
from tests.conftest import tableless_context as context

NB201 = NB201Space()
pytestmark = pytest.mark.usefixtures("one_thread")


def entropy_of(values: list[float]) -> float:
    total = sum(values)
    return -sum(v / total * math.log(v / total) for v in values if v > 0)


def test_fisher_of_a_linear_model_by_hand():
    """z = W x + b with W = 0, b = 0: p = (1/2, 1/2) (smoothing keeps it), Cov = [[1, -1], [-1, 1]] / 4.
    Weights W[0, 0] and b[1]: J_b = [[x_b0, 0], [0, 1]], so J^T Cov J = [[x^2, -x], [-x, 1]] / 4; images with
    x_0 = 1 and 3 average to [[10, -4], [-4, 2]] / 8."""
    net = nn.Linear(2, 2)
    with torch.no_grad():
        net.weight.zero_()
        net.bias.zero_()
    x = torch.tensor([[1.0, 5.0], [3.0, -2.0]])
    chosen = [("weight", torch.tensor([0])), ("bias", torch.tensor([1]))]
    fisher = fisher_information(net.eval(), x, chosen, smoothing=0.05)
    assert torch.allclose(fisher, torch.tensor([[1.25, -0.5], [-0.5, 0.25]], dtype=torch.float64))
    # the two eigenvalues (3 -+ sqrt(8)) / 4 and their nine deciles, linearly interpolated
    low, high = (1.5 - math.sqrt(2)) / 2, (1.5 + math.sqrt(2)) / 2
    deciles = [low + k / 10 * (high - low) for k in range(1, 10)]
    assert decile_entropy(fisher) == pytest.approx(entropy_of(deciles), rel=1e-9)


def test_smoothing_enters_the_covariance():
    """Logits (0, log 3): softmax (1/4, 3/4); smoothed by 0.2: (0.3, 0.7), so the Fisher of b[1] is 0.3 * 0.7."""
    net = nn.Linear(1, 2)
    with torch.no_grad():
        net.weight.zero_()
        net.bias.copy_(torch.tensor([0.0, math.log(3.0)]))
    fisher = fisher_information(net.eval(), torch.ones(3, 1), [("bias", torch.tensor([1]))], smoothing=0.2)
    assert fisher.item() == pytest.approx(0.21)


def test_decile_entropy_is_log_9_for_a_flat_spectrum_and_0_for_a_mostly_zero_one():
    assert decile_entropy(torch.eye(20, dtype=torch.float64)) == pytest.approx(math.log(9))
    assert decile_entropy(torch.diag(torch.tensor([0.0] * 19 + [5.0], dtype=torch.float64))) == 0.0
    assert math.isnan(decile_entropy(torch.full((3, 3), math.nan, dtype=torch.float64)))
    spectrum = torch.diag(torch.arange(11, dtype=torch.float64))  # eigenvalues 0..10: decile k is k
    assert decile_entropy(spectrum) == pytest.approx(entropy_of([float(k) for k in range(1, 10)]))


def test_per_image_jacobian_matches_autograd_image_by_image():
    seeding.seed_torch(seeding.rng(0, "test"))
    net = build_network("nb201", (3, 1, 4, 2, 0, 3), channels=4, cells=1)
    initialise(net, "kaiming_normal")
    net.eval()
    x = torch.randn(3, 3, 32, 32)
    chosen = choose_weights(net, x, 40, 2)
    jac = per_image_jacobian(net, x, chosen)
    params = dict(net.named_parameters())
    assert jac.shape == (3, 10, sum(len(idx) for _, idx in chosen))
    for b in range(3):
        logits = net(x[b : b + 1])[0]
        for c in range(10):
            grads = torch.autograd.grad(logits[c], [params[name] for name, _ in chosen], retain_graph=True)
            expected = torch.cat([g.flatten()[idx] for g, (_, idx) in zip(grads, chosen, strict=True)])
            assert torch.allclose(jac[b, c], expected, atol=1e-5, rtol=1e-4)


def test_weights_are_chosen_evenly_from_tensors_in_forward_order():
    class Backwards(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.late = nn.Linear(5, 2)  # registered first, called second
            self.early = nn.Linear(3, 5, bias=False)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out: torch.Tensor = self.late(self.early(x))
            return out

    net = Backwards()
    assert forward_order(net, torch.ones(1, 3)) == ["early.weight", "late.weight", "late.bias"]
    chosen = choose_weights(net, torch.ones(1, 3), max_tensors=2, per_tensor=3)
    assert [(name, idx.tolist()) for name, idx in chosen] == [("early.weight", [0, 7, 14]), ("late.weight", [0, 4, 9])]
    assert choose_weights(net, torch.ones(1, 3), 3, 5)[2][1].tolist() == [0, 1]  # all of a smaller tensor
    assert n_tensors(net) == 3


@pytest.mark.parametrize("convs", range(7))
def test_the_official_128_tensors_on_every_nb201_cell(convs):
    """The official network registers each reduction block (conv_a, conv_b, downsample) between its stages, where
    the forward order puts it too (downsample first); the harness's registers them after all cells. Forward
    order takes the official code's 128 tensors on a cell of any number of convolutions (a permutation of them,
    which leaves the Fisher's eigenvalues unchanged)."""
    ops = (3,) * convs + (1,) * (6 - convs)
    net = build_network("nb201", ops).eval()
    names = [name for name, _ in net.named_parameters()]

    def part(prefix: str) -> list[str]:
        return [n for n in names if n.startswith(prefix)]

    def block(i: int) -> list[str]:
        return sum((part(f"reductions.{i}.{m}") for m in ("conv_a", "conv_b", "downsample")), [])

    official = part("stem") + part("stages.0") + block(0) + part("stages.1") + block(1) + part("stages.2")
    official += part("lastact") + part("classifier")
    assert sorted(official) == sorted(names) and len(names) == n_tensors(net) == 21 + 45 * convs
    assert set(forward_order(net, torch.zeros(1, 3, 32, 32))[:128]) == set(official[:128])


def test_the_score_orders_by_aleph_then_entropy(cifar10_images):
    """Score = aleph + entropy / (2 ln 9): its integer part is aleph (21 + 45 per convolution in the cell), its
    fraction the entropy, which ``layers_first=false`` returns alone; Gaussian inputs, as the official code."""
    one_conv = NB201.parse("|nor_conv_1x1~0|+|skip_connect~0|avg_pool_3x3~1|+|none~0|skip_connect~1|skip_connect~2|")
    two_convs = NB201.parse("|nor_conv_1x1~0|+|skip_connect~0|avg_pool_3x3~1|+|none~0|nor_conv_1x1~1|none~2|")
    ranked, alone = VKDNW(batch_size=4), VKDNW(batch_size=4, layers_first=False)
    ranked.fit(context())
    alone.fit(context())
    assert ranked._batches[0][0].std().item() == pytest.approx(1.0, abs=0.05)
    for arch, aleph in ((one_conv, 66), (two_convs, 111)):
        score, entropy = ranked.estimate(arch).score, alone.estimate(arch).score
        assert 0 < entropy < math.log(9)
        assert score == pytest.approx(aleph + entropy / (2 * math.log(9)))


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"bn": "train"}, "bn must be eval"),
        ({"smoothing": 1.0}, "smoothing"),
        ({"max_tensors": 0}, "max_tensors"),
        ({"per_tensor": 1.5}, "per_tensor"),
        ({"inputs": "noise"}, "inputs must be one of"),
    ],
)
def test_bad_settings_are_config_errors(settings, message, cifar10_images):
    with pytest.raises(ConfigError, match=message):
        VKDNW(**settings).fit(context())
