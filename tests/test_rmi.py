"""The RMI estimator on tiny settings (a few steps, a few images): CKA, batch choice, determinism, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from estimators.rmi import RMI, centered_gram, linear_cka
from harness.benchmarks import NB201
from harness.errors import ConfigError, EstimatorError
from harness.interfaces import EstimatorContext

TINY = {"steps": 2, "batch_size": 8, "pool_factor": 2}


@pytest.fixture(scope="module")
def bench(nb201_csv, tmp_path_factory):
    return NB201("cifar10", cache_dir=str(tmp_path_factory.mktemp("c"))).load()


def ctx(bench: NB201, seed: int = 0, dataset: str = "cifar10") -> EstimatorContext:
    return EstimatorContext(bench.space, "nb201", dataset, bench.query, np.random.default_rng(seed), seed=seed)


def cka(a: torch.Tensor, b: torch.Tensor) -> float:
    lc = centered_gram(b)
    return float(linear_cka(centered_gram(a), lc, lc.norm()))


def test_linear_cka_properties():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(20, 7, generator=g, dtype=torch.float64)
    q, _ = torch.linalg.qr(torch.randn(7, 7, generator=g, dtype=torch.float64))
    assert cka(x, x) == pytest.approx(1.0)
    assert cka(x, 3.0 * x @ q + 1.0) == pytest.approx(1.0)  # invariant to scale, rotation, offset
    assert cka(x, torch.randn(20, 7, generator=g, dtype=torch.float64)) < 0.6
    # by hand: 1-d features a = (1, 0, -1), b = (1, -1, 0) -> centred Grams a a^T and b b^T,
    # <a a^T, b b^T> = (a.b)^2 = 1, ||a a^T|| = 2, ||b b^T|| = 2 -> CKA = 1/4
    a = torch.tensor([[1.0], [0.0], [-1.0]], dtype=torch.float64)
    b = torch.tensor([[1.0], [-1.0], [0.0]], dtype=torch.float64)
    assert cka(a, b) == pytest.approx(0.25)
    assert cka(torch.zeros(20, 7, dtype=torch.float64), x) == 0.0  # a constant representation: no information


@pytest.mark.parametrize(
    ("params", "dataset", "match"),
    [
        ({"steps": 0}, "cifar10", "steps must be >= 1"),
        ({"batch_size": 4096, "pool_factor": 16}, "cifar10", "exceeds the 50000 training images"),
        ({"selection": "best"}, "cifar10", "selection='best' is not one of"),
        ({"beta": 1.5}, "cifar10", "beta must be in"),
        ({"teacher": "vgg"}, "cifar10", "teacher='vgg'"),
        ({}, "cifar100", "only CIFAR-10"),
    ],
)
def test_bad_settings_fail_before_any_work(bench, params, dataset, match):
    with pytest.raises(ConfigError, match=match):
        RMI(**params).fit(ctx(bench, dataset=dataset))


@pytest.mark.parametrize("selection", ["lowest_ce", "class_balanced", "all"])
def test_batch_selection(bench, selection):
    est = RMI(**{**TINY, "batch_size": 20, "pool_factor": 3, "selection": selection})
    est.fit(ctx(bench))
    n = 60 if selection == "all" else 20
    assert est.x.shape == (n, 3, 32, 32) and len(est.batch_indices) == n
    if selection == "class_balanced":
        assert np.bincount(est.y.numpy(), minlength=10).tolist() == [2] * 10
    again = RMI(**{**TINY, "batch_size": 20, "pool_factor": 3, "selection": selection})
    again.fit(ctx(bench))
    assert np.array_equal(again.batch_indices, est.batch_indices)  # fixed by the estimator seed


def test_teacher_stays_in_eval_mode(bench):
    est = RMI(**TINY)
    est.fit(ctx(bench))
    from harness.teachers import load_teacher

    fresh = load_teacher("resnet20")
    stages, _ = fresh.forward_stages(est.x)
    assert all(
        torch.allclose(centered_gram(s), lc, rtol=1e-4, atol=1e-3)
        for s, (lc, _) in zip(stages, est._teacher, strict=True)
    )


def test_scores_do_not_depend_on_evaluation_order(bench):
    rng = np.random.default_rng(5)
    archs = [bench.space.sample(rng) for _ in range(3)]
    a, b = RMI(**TINY), RMI(**TINY)
    a.fit(ctx(bench))
    b.fit(ctx(bench))
    forward = [a.estimate(x).score for x in archs]
    backward = [b.estimate(x).score for x in reversed(archs)][::-1]
    assert forward == backward
    assert all(np.isfinite(forward)) and len(set(forward)) == 3


def test_more_steps_lower_loss(bench):
    arch = bench.space.parse(
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
    )
    scores = []
    for steps in (1, 8):
        est = RMI(**{**TINY, "steps": steps})
        est.fit(ctx(bench))
        scores.append(est.estimate(arch).score)
    assert scores[1] > scores[0]  # score = -loss: training on the batch reduces the loss


def test_a_dead_cell_gets_the_worst_score_not_nan(bench):
    est = RMI(**TINY)
    est.fit(ctx(bench))
    dead = est.estimate(bench.space.parse("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|none~0|none~1|none~2|"))
    alive = est.estimate(
        bench.space.parse("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|none~0|none~1|nor_conv_3x3~2|")
    )
    assert np.isfinite(dead.score) and dead.score < alive.score


def test_divergence_is_an_estimator_error(bench):
    est = RMI(**{**TINY, "steps": 5, "lr": 1e12, "weight_decay": 0.0})
    est.fit(ctx(bench))
    with pytest.raises(EstimatorError, match="diverged"):
        est.estimate(
            bench.space.parse("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|none~0|none~1|nor_conv_3x3~2|")
        )
