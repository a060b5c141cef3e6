"""RMI's training loop against a straightforward one, side by side in one session (``make bench``).

The straightforward loop is written as the reference code has it: the teacher's stage features and their Gram
matrices recomputed at every step, the loss moved to the CPU (``.item()``) at every step. Both train the same
seeded network on the same batch, so their scores must be identical. Three NB201 cells (a light one, a typical
one, the heaviest: every edge a 3x3 convolution), ``STEPS`` steps, the paper's batch of 32; medians of
``ROUNDS`` rounds, and the achieved GFLOP/s (forward + backward FLOPs of one step counted by torch's
``FlopCounterMode``, times steps, over the measured time).
"""

from __future__ import annotations

import statistics
import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from estimators.rmi import RMI, centered_gram, linear_cka
from estimators.rmi_teachers import load_teacher
from harness import seeding
from harness.benchmarks import NB201
from harness.interfaces import EstimatorContext
from harness.networks import build_network

pytestmark = pytest.mark.bench
STEPS = 30
ROUNDS = 3
CELLS = {
    "light": "|avg_pool_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|none~0|skip_connect~1|nor_conv_1x1~2|",
    "typical": "|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|avg_pool_3x3~0|nor_conv_3x3~1|skip_connect~2|",
    "heaviest": "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|",
}


@pytest.fixture(scope="module")
def rmi(nb201_csv):
    bench = NB201("cifar10").load()
    est = RMI(steps=STEPS)
    est.fit(EstimatorContext(bench.space, "nb201", "cifar10", bench.query, seeding.rng(0, "estimator"), seed=0))
    return est


def reference_score(est: RMI, arch, teacher) -> float:
    """The loop as the reference code writes it (same network, batch, loss and optimiser as ``est``)."""
    ctx = est.context
    seeding.seed_torch(seeding.rng(ctx.seed, "init:" + ctx.space.format(arch)))
    net = build_network("nb201", arch.ops).train()
    opt = torch.optim.SGD(net.parameters(), lr=est.lr, momentum=est.momentum, weight_decay=est.weight_decay)
    last = float("nan")
    for _ in range(est.steps):
        with torch.no_grad():
            targets, _ = teacher.forward_stages(est.batches[0].x)
        stages, logits = net.forward_stages(est.batches[0].x)
        gaps = []
        for s, t in zip(stages, targets, strict=True):
            lc = centered_gram(t)
            gaps.append(1 - linear_cka(centered_gram(s), lc, lc.norm()))
        ce = F.cross_entropy(logits, est.batches[0].y)
        loss = est.beta * sum(w * g for w, g in zip(est.stage_weights, gaps, strict=True)) + (1 - est.beta) * ce
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        last = loss.item()
    return -last


def step_flops(est: RMI, arch) -> int:
    net = build_network("nb201", arch.ops).train()
    with FlopCounterMode(display=False) as counter:
        stages, logits = net.forward_stages(est.batches[0].x)
        F.cross_entropy(logits, est.batches[0].y).backward()
    return counter.get_total_flops()


def test_rmi_loop_against_the_straightforward_one(rmi):
    teacher = load_teacher("resnet20")
    rows = []
    for name, text in CELLS.items():
        arch = rmi.context.space.parse(text)
        times: dict[str, list[float]] = {"harness": [], "reference": []}
        scores: dict[str, float] = {}
        for _ in range(ROUNDS):  # interleaved rounds
            for impl in times:
                t0 = time.perf_counter()
                score = rmi.estimate(arch).score if impl == "harness" else reference_score(rmi, arch, teacher)
                times[impl].append(time.perf_counter() - t0)
                assert scores.setdefault(impl, score) == score  # deterministic
        assert scores["harness"] == scores["reference"], scores
        gflop = step_flops(rmi, arch) * STEPS / 1e9
        ours, ref = statistics.median(times["harness"]), statistics.median(times["reference"])
        rows.append((name, ours, ref, gflop))
    print(f"\nRMI, {STEPS} steps, batch 32, {torch.get_num_threads()} torch threads; medians of {ROUNDS}")
    print(f"{'cell':<10}{'harness s':>11}{'reference s':>13}{'ref/harness':>13}{'GFLOP':>8}{'GFLOP/s':>9}")
    for name, ours, ref, gflop in rows:
        print(f"{name:<10}{ours:>11.2f}{ref:>13.2f}{ref / ours:>13.2f}{gflop:>8.1f}{gflop / ours:>9.1f}")
    print(f"per step, 150-step run of the heaviest cell: {rows[-1][1] / STEPS * 150:.1f} s")
    assert all(ours <= ref * 1.05 for _, ours, ref, _ in rows)
    assert np.isfinite([r[1] for r in rows]).all()
