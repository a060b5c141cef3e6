"""The RMI estimator on tiny settings (a few steps, a few images): CKA, batch choice, determinism, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from estimators.rmi import RMI, TRAJECTORY_COLUMNS, centered_gram, linear_cka
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
        ({"steps": 0}, "cifar10", "steps and repeats must be >= 1"),
        ({"repeats": 0}, "cifar10", "steps and repeats must be >= 1"),
        ({"teacher_bn": "train"}, "cifar10", "teacher_bn='train' is not one of eval, batch"),
        ({"last_feature": "logits"}, "cifar10", "last_feature='logits' is not one of"),
        ({"readout": "best"}, "cifar10", "readout='best' is not one of"),
        ({"batch_size": 4096, "pool_factor": 16}, "cifar10", "exceeds the 50000 training images"),
        ({"selection": "best"}, "cifar10", "selection='best' is not one of"),
        ({"beta": 1.5}, "cifar10", "beta must be in"),
        ({"teacher": "vgg"}, "cifar10", "teacher='vgg'"),
        ({"size_prior": -0.1}, "cifar10", "size_prior must be >= 0"),
        ({"channels": 0}, "cifar10", "channels and cells must be >= 1"),
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
    assert est.batches[0].x.shape == (n, 3, 32, 32) and len(est.batches[0].indices) == n
    if selection == "class_balanced":
        assert np.bincount(est.batches[0].y.numpy(), minlength=10).tolist() == [2] * 10
    again = RMI(**{**TINY, "batch_size": 20, "pool_factor": 3, "selection": selection})
    again.fit(ctx(bench))
    assert np.array_equal(again.batches[0].indices, est.batches[0].indices)  # fixed by the estimator seed


def test_teacher_stays_in_eval_mode(bench):
    est = RMI(**TINY)
    est.fit(ctx(bench))
    from estimators.rmi_teachers import load_teacher

    fresh = load_teacher("resnet20")
    stages, _ = fresh.forward_stages(est.batches[0].x)
    assert all(
        torch.allclose(centered_gram(s), lc, rtol=1e-4, atol=1e-3)
        for s, (lc, _) in zip(stages, est.batches[0].teacher, strict=True)
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


def test_trajectory_row_k_is_what_steps_k_scores(bench):
    arch = bench.space.parse(
        "|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|skip_connect~0|avg_pool_3x3~1|nor_conv_3x3~2|"
    )
    est = RMI(**{**TINY, "steps": 6})
    est.fit(ctx(bench))
    rows = est.trajectory(arch)
    assert rows.shape == (6, len(TRAJECTORY_COLUMNS)) and np.all(np.diff(rows[:, -1]) > 0)
    assert est.estimate(arch).score == -rows[-1, 0]
    short = RMI(**{**TINY, "steps": 3})
    short.fit(ctx(bench))
    assert short.estimate(arch).score == -rows[2, 0]
    loss, gaps, ce = rows[:, 0], rows[:, 1:4], rows[:, 4]
    np.testing.assert_allclose(loss, est.beta * gaps.sum(1) + (1 - est.beta) * ce, rtol=1e-5)


@pytest.mark.parametrize("readout", ["last_step", "after_update"])
def test_trajectory_study_fills_the_cache_that_rank_jobs_read(nb201_csv, tmp_path, readout):
    from harness.experiment import run_job
    from harness.storage import read_summary
    from studies import rmi_trajectories
    from tests.conftest import compose_cfg

    overrides = ["n_archs=3", "estimator.steps=4", "estimator.batch_size=8", "estimator.pool_factor=2"]
    overrides += [f"estimator.readout={readout}", f"score_cache={tmp_path / 'scores.sqlite'}"]
    overrides += ["threads=1"]  # scores are keyed by their thread count: the study's and the rank jobs' are one
    extra = readout == "after_update"  # one more row: the loss after the last update
    out = tmp_path / "traj.csv"
    out.touch()  # as a run stopped before its first row leaves it
    assert rmi_trajectories.main([str(out), "--cache-steps", "2", *overrides]) == 0
    assert rmi_trajectories.main([str(out), *overrides]) == 0  # resumed: nothing left to do, nothing appended
    rows = np.genfromtxt(out, delimiter=",", names=True, dtype=None, encoding=None)
    assert len(rows) == 3 * (4 + extra) and sorted(set(rows["step"])) == list(range(1, 5 + extra))
    for steps in (2, 4):
        cfg = compose_cfg(["task=rank", "estimator=rmi", *overrides, f"estimator.steps={steps}"], tmp_path / str(steps))
        (folder,) = run_job(cfg, tmp_path / str(steps) / "run")
        summary = read_summary(folder)
        assert summary["n_cache_hits"] == 3
        at = rows[rows["step"] == steps + extra]  # the row its readout reads
        assert summary["total_cost_s"] - summary["fit_cost_s"] == pytest.approx(at["seconds"].sum())


def test_rank_jobs_on_other_datasets_reuse_the_cached_scores(nb201_csv, tmp_path):
    from harness.experiment import run_job
    from harness.storage import read_records, read_summary
    from tests.conftest import compose_cfg

    overrides = ["task=rank", "estimator=rmi", "n_archs=3", "estimator.steps=2", "estimator.batch_size=8"]
    overrides += ["estimator.pool_factor=2", f"score_cache={tmp_path / 'scores.sqlite'}"]
    runs = []
    for dataset in ("cifar10", "cifar100"):
        cfg = compose_cfg([*overrides, f"benchmark.dataset={dataset}"], tmp_path / dataset)
        (folder,) = run_job(cfg, tmp_path / dataset / "run")
        runs.append((read_summary(folder), read_records(folder)))
    assert [summary["n_cache_hits"] for summary, _ in runs] == [0, 3]
    assert runs[0][1].score.tolist() == runs[1][1].score.tolist()
    assert runs[0][1].test_acc.tolist() != runs[1][1].test_acc.tolist()


def test_a_reduced_proxy_network_trains_fewer_parameters_on_the_same_batch(bench):
    arch = bench.space.parse("|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|none~0|avg_pool_3x3~1|nor_conv_3x3~2|")
    full, small = RMI(**TINY), RMI(**TINY, channels=8, cells=1)
    full.fit(ctx(bench))
    small.fit(ctx(bench))
    assert torch.equal(full.batches[0].x, small.batches[0].x)
    a, b = full.estimate(arch), small.estimate(arch)
    assert np.isfinite(b.score) and a.score != b.score
    from harness.networks import build_network, n_params

    sizes = [n_params(build_network("nb201", arch.ops, **kw)) for kw in ({}, {"channels": 8, "cells": 1})]
    assert sizes[1] < sizes[0] / 10


def test_size_prior_divides_the_loss_by_a_power_of_the_parameter_count(bench):
    from harness.networks import build_network, n_params

    arch = bench.space.parse("|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|none~0|avg_pool_3x3~1|nor_conv_3x3~2|")
    plain, prior = RMI(**TINY), RMI(**TINY, size_prior=0.3)
    plain.fit(ctx(bench))
    prior.fit(ctx(bench))
    loss = -plain.estimate(arch).score
    n = n_params(build_network("nb201", arch.ops))
    assert prior.estimate(arch).score == pytest.approx(-np.log(loss) + 0.3 * np.log(n))


def test_other_datasets_score_the_cifar10_behaviour(bench):
    arch = bench.space.parse("|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|none~0|avg_pool_3x3~1|nor_conv_3x3~2|")
    scores = []
    for dataset in ("cifar10", "cifar100", "ImageNet16-120"):
        est = RMI(**TINY)
        est.fit(ctx(bench, dataset=dataset))
        scores.append(est.estimate(arch).score)
    assert scores[0] == scores[1] == scores[2]


def test_a_teacher_with_other_stages_fails_at_fit(bench, monkeypatch):
    from estimators import rmi_teachers as teachers

    real = teachers.load_teacher

    class TwoStages(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x):
            return self.net(x)

        def forward_stages(self, x):
            stages, logits = self.net.forward_stages(x)
            return stages[:2], logits

    monkeypatch.setattr(teachers, "load_teacher", lambda *a, **kw: TwoStages(real(*a, **kw)))
    with pytest.raises(ConfigError, match="teacher .resnet20. has 2 stages, nb201 networks 3: each candidate stage"):
        RMI(**TINY).fit(ctx(bench))


ARCH = "|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|skip_connect~0|avg_pool_3x3~1|nor_conv_3x3~2|"


def test_teacher_bn_batch_uses_the_statistics_of_the_batch(bench):
    from estimators.rmi_teachers import load_teacher

    est = RMI(**TINY, teacher_bn="batch")
    est.fit(ctx(bench))
    batch = est.batches[0]
    teacher = load_teacher("resnet20").train()
    with torch.no_grad():
        stages, _ = teacher.forward_stages(batch.x)
        frozen, _ = load_teacher("resnet20").forward_stages(batch.x)
    for s, f, (lc, _) in zip(stages, frozen, batch.teacher, strict=True):
        assert torch.allclose(centered_gram(s), lc, rtol=1e-4, atol=1e-3)
        assert not torch.allclose(centered_gram(f), lc, rtol=1e-2, atol=1e-2)  # running statistics differ


def test_lastact_compares_the_last_stage_after_the_final_bn_relu(bench):
    plain, lastact = RMI(**TINY), RMI(**TINY, last_feature="lastact")
    plain.fit(ctx(bench))
    lastact.fit(ctx(bench))
    arch = bench.space.parse(ARCH)
    a, b = plain.trajectory(arch), lastact.trajectory(arch)
    np.testing.assert_array_equal(a[0, 1:3], b[0, 1:3])  # first step: stages 1 and 2 are the same tensors
    assert a[0, 3] != b[0, 3]
    macro = RMI(**TINY, last_feature="lastact")
    with pytest.raises(ConfigError, match="last_feature=lastact needs a network with a final BN"):
        from harness.spaces.nbmacro import MacroSpace

        macro.fit(EstimatorContext(MacroSpace(), "nbmacro", "cifar10", bench.query, np.random.default_rng(0)))


def test_pool_augment_flips_and_crops_the_pool_once(bench):
    plain, augmented = RMI(**{**TINY, "selection": "all"}), RMI(**{**TINY, "selection": "all"}, pool_augment=True)
    plain.fit(ctx(bench))
    augmented.fit(ctx(bench))
    a, b = plain.batches[0], augmented.batches[0]
    assert np.array_equal(a.indices, b.indices)  # the same images, drawn first ...
    assert not torch.equal(a.x, b.x)  # ... then augmented
    again = RMI(**{**TINY, "selection": "all"}, pool_augment=True)
    again.fit(ctx(bench))
    assert torch.equal(again.batches[0].x, b.x)  # the augmentation is drawn from the estimator's generator


def test_readout_after_update_reads_one_forward_pass_later(bench):
    arch = bench.space.parse(ARCH)
    scores = []
    for steps, readout in ((4, "last_step"), (3, "after_update")):
        est = RMI(**{**TINY, "steps": steps}, readout=readout)
        est.fit(ctx(bench))
        scores.append(est.estimate(arch).score)
        assert est.readout_row(steps) == 3 and len(est.trajectory(arch)) == 4
    assert scores[0] == scores[1]  # the loss of forward pass 4 comes after 3 updates


def test_repeats_average_the_losses_of_independent_runs(bench):
    arch = bench.space.parse(ARCH)
    one, two = RMI(**TINY), RMI(**TINY, repeats=2)
    one.fit(ctx(bench))
    two.fit(ctx(bench))
    assert np.array_equal(one.batches[0].indices, two.batches[0].indices)  # the first run is repeats=1's
    assert not np.array_equal(two.batches[0].indices, two.batches[1].indices)
    losses = [float(list(two._train(arch, run))[-1][0]) for run in (0, 1)]
    assert one.estimate(arch).score == -losses[0]
    assert two.estimate(arch).score == pytest.approx(-np.mean(losses))
    np.testing.assert_allclose(two.trajectory(arch)[-1, 0], np.mean(losses), rtol=1e-6)
