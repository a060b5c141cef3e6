"""How AZ-NAS's ranking of NB201 CIFAR-10 cells depends on its reference pool, and which component carries it.

    python -m studies.az_nas_pool components OUT.csv [--n-archs 1000] [--pool 300] [--seed 0] [--sample-seed 0]
    python -m studies.az_nas_pool report OUT.csv [--pools 10,30,100,300]

``components`` computes the four raw components (:mod:`estimators.az_nas`, default settings, one torch thread) of
the sample ``task=rank n_archs=N sample_seed=S`` scores and of the first ``pool`` architectures of the reference
pool of estimator seed ``seed``, with that seed's batch, and appends them to OUT.csv (so it resumes where it
stopped). Its rows are exactly what ``estimator=az_nas`` computes for the same architectures.

``report`` prints Kendall tau and Spearman rho against test accuracy, each with a 95% bootstrap interval: of every
component alone; of the aggregate ranked within the sample itself (the paper's protocol: m = the sample's size);
of the estimator's score (ranks among the first k pool architectures plus itself, m = k + 1) for each pool size k,
which is what ``task=rank estimator=az_nas estimator.pool=k`` reports; and of the pool's architectures ranked
within the pool against their own test accuracy: uniform draws from all cells, isomorphic copies kept, the
population of the paper's protocol (all 15,625 cells), where the rank sample has no two isomorphic cells.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from estimators.az_nas import AZNAS, COMPONENTS, aggregate
from harness import EstimatorContext, metrics, sampling, seeding
from harness.benchmarks import NB201


def compute(out: Path, n_archs: int, pool: int, seed: int, sample_seed: int) -> None:
    torch.set_num_threads(1)
    bench = NB201("cifar10").load()
    space = bench.space
    est = AZNAS(pool=1)
    ctx = EstimatorContext(space, "nb201", "cifar10", bench.query, seeding.rng(seed, "estimator"), seed=seed)
    est.fit(ctx)
    sample, _ = sampling.sample_distinct(space, n_archs, seeding.rng(sample_seed, "rank-sample"))
    pool_rng = seeding.rng(seed, "az_nas:pool")
    todo = [("pool", i, space.sample(pool_rng)) for i in range(pool)] + [("sample", i, a) for i, a in enumerate(sample)]
    done = set()
    if out.exists():
        old = pd.read_csv(out)
        done = set(zip(old.role, old["index"], strict=True))
    out.parent.mkdir(parents=True, exist_ok=True)
    for role, i, arch in todo:
        if (role, i) in done:
            continue
        start = time.process_time()
        values = est.components(arch)
        row = {"role": role, "index": i, "arch": space.format(arch), **dict(zip(COMPONENTS, values, strict=True))}
        row["cpu_s"] = time.process_time() - start
        pd.DataFrame([row]).to_csv(out, mode="a", header=not out.exists(), index=False)


def report(path: Path, pools: list[int]) -> None:
    rows = pd.read_csv(path)
    sample = rows[rows.role == "sample"].sort_values("index")
    pool = rows[rows.role == "pool"].sort_values("index")[list(COMPONENTS)].to_numpy()
    bench = NB201("cifar10").load()
    test = np.array([bench.test_accuracy(bench.space.parse(a)) for a in sample.arch])
    values = sample[list(COMPONENTS)].to_numpy()
    rng = np.random.default_rng(0)

    def line(label: str, scores: np.ndarray, truth: np.ndarray = test) -> None:
        tau = metrics.kendall_tau(scores, truth)
        lo, hi = metrics.tau_ci(scores, truth, rng)
        rho = metrics.spearman_rho(scores, truth)
        rlo, rhi = metrics.bootstrap_ci(lambda i: metrics.spearman_rho(scores[i], truth[i]), len(truth), rng)
        print(f"{label:34s} tau {tau:.3f} [{lo:.3f}, {hi:.3f}]  rho {rho:.3f} [{rlo:.3f}, {rhi:.3f}]")

    print(
        f"{len(sample)} sample architectures, {len(pool)} pool architectures; CPU s per architecture: median "
        f"{rows.cpu_s.median():.2f}, mean {rows.cpu_s.mean():.2f}"
    )
    for i, name in enumerate(COMPONENTS):
        line(f"{name} alone", values[:, i])
    line("within the sample (m = n)", np.array([aggregate(v, np.delete(values, j, 0)) for j, v in enumerate(values)]))
    for k in pools:
        if k <= len(pool):
            line(f"pool {k}", np.array([aggregate(v, pool[:k]) for v in values]))
    # the paper's population: uniform draws from all cells, isomorphic copies kept (the sample has none)
    pool_rows = rows[rows.role == "pool"].sort_values("index")
    pool_test = np.array([bench.test_accuracy(bench.space.parse(a)) for a in pool_rows.arch])
    within = np.array([aggregate(v, np.delete(pool, j, 0)) for j, v in enumerate(pool)])
    line("pool ranked within itself", within, pool_test)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    comp = sub.add_parser("components")
    comp.add_argument("out", type=Path)
    comp.add_argument("--n-archs", type=int, default=1000)
    comp.add_argument("--pool", type=int, default=300)
    comp.add_argument("--seed", type=int, default=0)
    comp.add_argument("--sample-seed", type=int, default=0)
    rep = sub.add_parser("report")
    rep.add_argument("path", type=Path)
    rep.add_argument("--pools", default="10,30,100,300")
    args = parser.parse_args(argv)
    if args.command == "components":
        compute(args.out, args.n_archs, args.pool, args.seed, args.sample_seed)
    else:
        report(args.path, [int(k) for k in args.pools.split(",")])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
