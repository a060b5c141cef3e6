"""What load does to the cost a live estimator charges (``make bench``): one RMI evaluation (the default proxy
network, 1 thread), timed alone and while 3 busy loops share the 2 cores, medians of 5 side by side. The charged
cost (process CPU seconds) should move little; wall seconds show the load."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from harness.benchmarks import NB201
from harness.config import compose
from harness.plugins import build, estimator_context

pytestmark = pytest.mark.bench
ARCH = "|nor_conv_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_3x3~0|avg_pool_3x3~1|nor_conv_3x3~2|"


def _measure(est, arch, rounds: int = 5) -> tuple[float, float]:
    cpu, wall = [], []
    for _ in range(rounds):
        t0 = time.perf_counter()
        cpu.append(est.estimate(arch).cost_s)
        wall.append(time.perf_counter() - t0)
    return statistics.median(cpu), statistics.median(wall)


def test_cpu_seconds_do_not_grow_with_the_load_as_wall_seconds_do(nb201_csv):
    torch.set_num_threads(1)
    cfg = compose(["estimator=rmi", "device=cpu"])
    _, make = build(cfg.estimator)
    bench = NB201("cifar10").load()
    est = make()
    est.fit(estimator_context(cfg, "nb201", bench, 0, live=True))
    arch = bench.space.parse(ARCH)
    idle = _measure(est, arch)
    burn = "import time\nt = time.monotonic() + 300\nwhile time.monotonic() < t: pass"
    load = [subprocess.Popen([sys.executable, "-c", burn]) for _ in range(3)]
    try:
        time.sleep(1)
        busy = _measure(est, arch)
    finally:
        for proc in load:
            proc.kill()
    ratios = np.array(busy) / np.array(idle)
    print(
        f"\nRMI, one evaluation, medians of 5: idle {idle[0]:.2f} CPU s / {idle[1]:.2f} wall s; "
        f"3 busy loops on 2 cores {busy[0]:.2f} CPU s / {busy[1]:.2f} wall s; "
        f"busy/idle: CPU {ratios[0]:.2f}x, wall {ratios[1]:.2f}x"
    )
    assert ratios[0] < ratios[1]
