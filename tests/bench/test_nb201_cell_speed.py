"""RMI with NB201 cells that skip work against cells computing every node, side by side in one session
(``make bench``).

Four cells, each one estimator evaluation per architecture in turn (interleaved, so that load hits them alike):
``every node`` (every node computed, torch's ``avg_pool2d``: the cell as it was), ``skip`` (dead nodes and the
skips and pools of zero nodes left out), ``pool`` (the 3x3 average pool as shifted additions) and ``both`` (the
cell as it is). The estimator is the default ``estimator=rmi`` of the real config on ``N_ARCHS`` architectures
drawn with a fixed seed, one torch thread, timed in CPU seconds of this process (which one thread
spends: robust to other jobs on a shared machine). Every cell must give every architecture the same score, bit for bit;
prints the median CPU seconds per evaluation and the median per-architecture speed-up over ``every node``.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from harness.benchmarks import NB201
from harness.config import compose
from harness.networks.nb201 import AvgPool3x3, InferCell
from harness.plugins import build, estimator_context
from tests.test_networks import every_node

pytestmark = pytest.mark.bench
N_ARCHS = 20


def native_pool(self: AvgPool3x3, x: Tensor) -> Tensor:
    return F.avg_pool2d(x, 3, 1, 1, count_include_pad=False)


def pooled_every_node(cell: InferCell, x: Tensor) -> Tensor:
    """Every node computed, the pool by :class:`AvgPool3x3`."""
    nodes = [x]
    for k in range(1, 4):
        terms = [cell.edges[i](nodes[j]) for i, j in cell.plan[k]]
        nodes.append(sum(terms[1:], terms[0]) if terms else torch.zeros_like(x))
    return nodes[3]


CELLS: dict[str, dict[str, Callable[..., Tensor]]] = {
    "every node": {"forward": every_node},
    "skip": {"pool": native_pool},
    "pool": {"forward": pooled_every_node},
    "both": {},
}


def skips_work(ops: tuple[int, ...]) -> bool:
    """Whether the cell of ``ops`` leaves out a dead node or an edge out of a zero node."""
    c = InferCell(ops, 1)
    return c.compute != c.plan


@contextmanager
def cell(name: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    with monkeypatch.context() as m:
        if "forward" in CELLS[name]:
            m.setattr(InferCell, "forward", CELLS[name]["forward"])
        if "pool" in CELLS[name]:
            m.setattr(AvgPool3x3, "forward", CELLS[name]["pool"])
        yield


@pytest.mark.timeout(3600)
def test_rmi_with_cells_that_skip_work(nb201_csv, monkeypatch):
    torch.set_num_threads(1)
    cfg = compose(["estimator=rmi"])
    _, make = build(cfg.estimator)
    est = make()
    bench = NB201("cifar10").load()
    est.fit(estimator_context(cfg, "nb201", bench, 0, True))
    rng = np.random.default_rng(2024)
    archs = [bench.space.sample(rng) for _ in range(N_ARCHS)]
    est.estimate(archs[0])  # warm-up: the first evaluation of a process pays one-time costs
    times: dict[str, list[float]] = {name: [] for name in CELLS}
    for arch in archs:
        scores = {}
        for name in CELLS:
            with cell(name, monkeypatch):
                t0 = time.process_time()
                scores[name] = est.estimate(arch).score
                times[name].append(time.process_time() - t0)
        assert len(set(scores.values())) == 1, (bench.space.format(arch), scores)
        print(bench.space.format(arch), *(f"{name} {ts[-1]:.3f}" for name, ts in times.items()), flush=True)
    skipping = sum(skips_work(arch.ops) for arch in archs)
    print(f"\nRMI (estimator=rmi), {N_ARCHS} NB201 architectures ({skipping} with dead or zero nodes), 1 torch thread")
    print(f"{'cell':<12}{'median CPU s':>14}{'speed-up':>10}")
    for name, ts in times.items():
        ratio = statistics.median(a / b for a, b in zip(times["every node"], ts, strict=True))
        print(f"{name:<12}{statistics.median(ts):>14.3f}{ratio:>10.2f}")
