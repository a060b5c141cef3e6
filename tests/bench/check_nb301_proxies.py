"""Check our zero-cost proxies on DARTS networks against NAS-Bench-Suite-Zero's scores in the NB301 sample.

    python -m tests.bench.check_nb301_proxies [--proxies nwot synflow ...] [--rows all|nwot] [--limit N]
                                              [--batch-size 32] [--threads 1] [--out scores.csv] [--resume]

Reads ``<data_dir>/nb301/nb301_sample.csv`` (1,218 DARTS genotypes; NASLib's proxy scores and times, ``nwot``
for 718 of them; ``val_accuracy`` = one NB301 surrogate draw). Each proxy is computed through
:class:`estimators.zero_cost.ZeroCost` on :mod:`harness.networks.darts` (estimator seed 0: one fixed batch of
CIFAR-10 training images, one initialisation per architecture). The batch is 32 images by default, as NASLib's
NB301 runs (``configs/correlation/*/nasbench301-9000/cifar10/config_9000.yaml``: ``batch_size: 32``; our nwot at
batch 64 comes out twice NASLib's, at 32 it matches). Per proxy it prints:

* ``n``, ``nonfin``: architectures scored and how many of our scores were not finite;
* ``spearman``: Spearman between our score and NASLib's, on the rows where NASLib has one;
* ``tau ours``, ``tau NASL``, ``diff``: Kendall tau against ``val_accuracy`` on those same rows;
* ``tau all``: Kendall tau of our score against ``val_accuracy`` on every row scored;
* ``s ours``, ``s NASL``: median seconds per architecture, ours (this machine: build + proxy, the estimator's
  charged cost) and NASLib's recorded time (GPU; present for 718 rows).

``--rows nwot`` keeps the 718 rows where NASLib has ``nwot`` (``--limit N``: the first N of the chosen rows).
``--out`` appends one line per architecture as it is scored and ``--resume`` skips what the file holds, so a run
stopped at any point continues where it was. Use ``--threads 1`` (and ``nohup``) on a shared machine.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from estimators.zero_cost import PROXIES, ZeroCost
from harness import paths, seeding
from harness.benchmarks import NB301
from harness.interfaces import EstimatorContext
from harness.metrics import kendall_tau, spearman_rho

HEADER = (
    f"{'proxy':<10}{'n':>6}{'nonfin':>8}{'spearman':>10}{'tau ours':>10}{'tau NASL':>10}{'diff':>8}{'tau all':>9}"
    f"{'s ours':>9}{'s NASL':>9}"
)


def load_reference(data_dir: Path, rows: str) -> pd.DataFrame:
    """The sample (row number ``row``), with its rows restricted to those that have NASLib's nwot for ``nwot``."""
    ref = pd.read_csv(data_dir / "nb301" / "nb301_sample.csv").reset_index(names="row")
    return ref[ref["nwot"].notna()].reset_index(drop=True) if rows == "nwot" else ref


def summary_line(name: str, ours: np.ndarray, theirs: np.ndarray, acc: np.ndarray, t_ours: np.ndarray,
                 t_theirs: np.ndarray) -> str:  # fmt: skip
    """One row of the table (see the module docstring); ``ours`` is NaN where not scored yet."""
    scored = ~np.isnan(t_ours)
    n_bad = int((scored & ~np.isfinite(ours)).sum())
    ok = scored & np.isfinite(ours) & np.isfinite(theirs)
    mine = scored & np.isfinite(ours)
    tau_all = kendall_tau(ours[mine], acc[mine]) if mine.sum() >= 3 else float("nan")
    times = t_theirs[ok & np.isfinite(t_theirs)]
    if ok.sum() < 3:
        return f"{name:<10}{int(scored.sum()):>6}{n_bad:>8}{'':>46}{tau_all:>9.3f}{np.median(t_ours[scored]):>9.3f}"
    rho = spearman_rho(ours[ok], theirs[ok])
    tau_o, tau_t = kendall_tau(ours[ok], acc[ok]), kendall_tau(theirs[ok], acc[ok])
    return (
        f"{name:<10}{int(scored.sum()):>6}{n_bad:>8}{rho:>10.3f}{tau_o:>10.3f}{tau_t:>10.3f}{tau_o - tau_t:>+8.3f}"
        f"{tau_all:>9.3f}{np.median(t_ours[scored]):>9.3f}{np.median(times) if len(times) else float('nan'):>9.3f}"
    )


def previous_scores(path: Path, proxies: list[str]) -> dict[tuple[int, str], tuple[float, float]]:
    """(score, seconds) per (sample row, proxy) already in an ``--out`` file (a cell counts once its time is)."""
    if not path.is_file():
        return {}
    old = pd.read_csv(path)
    done = {}
    for proxy in proxies:
        if f"{proxy}_time_s" in old:
            for row, score, cost in zip(old["row"], old[proxy], old[f"{proxy}_time_s"], strict=True):
                if np.isfinite(cost):
                    done[int(row), proxy] = (float(score), float(cost))
    return done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--proxies", nargs="+", default=["nwot", "synflow"], choices=list(PROXIES))
    parser.add_argument("--rows", choices=("all", "nwot"), default="all", help="nwot: the 718 rows with NASLib nwot")
    parser.add_argument("--limit", type=int, default=None, help="only the first N of the chosen rows")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0, help="estimator seed")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--out", type=Path, default=None, help="append per-architecture scores to this CSV")
    parser.add_argument("--every", type=int, default=50, help="print the table every N archs (0: never)")
    parser.add_argument("--resume", action="store_true", help="keep the scores in --out, compute the rest")
    args = parser.parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)

    bench = NB301().load()
    ref = load_reference(paths.data_dir(), args.rows)
    if args.limit:
        ref = ref.iloc[: args.limit]
    estimators = {}
    for proxy in args.proxies:
        est = ZeroCost(proxy=proxy, batch_size=args.batch_size)
        rng = seeding.rng(args.seed, "estimator")
        est.fit(EstimatorContext(bench.space, "nb301", "cifar10", bench.query, rng, seed=args.seed, device=args.device))
        estimators[proxy] = est
    scores = {p: np.full(len(ref), np.nan) for p in args.proxies}
    costs = {p: np.full(len(ref), np.nan) for p in args.proxies}
    print(
        f"{len(ref)} NB301-sample architectures ({args.rows} rows); proxies {', '.join(args.proxies)}; "
        f"batch {args.batch_size}; estimator seed {args.seed}; device {args.device}",
        flush=True,
    )
    done = previous_scores(args.out, args.proxies) if args.resume and args.out else {}
    handle = writer = None
    if args.out:
        fresh = not (args.resume and args.out.is_file())
        header = ["row", *(c for p in args.proxies for c in (p, f"{p}_time_s"))]
        if not fresh and next(csv.reader(args.out.open()), []) != header:
            raise SystemExit(
                f"{args.out} holds other proxies; resume with --proxies {' '.join(args.proxies)} as before"
            )
        handle = args.out.open("w" if fresh else "a", newline="")
        writer = csv.writer(handle)
        if fresh:
            writer.writerow(header)
    start = time.perf_counter()
    acc = ref["val_accuracy"].to_numpy()

    def report(n: int) -> None:
        print(f"\n[{n} architectures, {time.perf_counter() - start:.0f} s]\n{HEADER}")
        for p in args.proxies:
            theirs = ref[p].to_numpy()[:n]
            print(summary_line(p, scores[p][:n], theirs, acc[:n], costs[p][:n], ref[f"{p}_time_s"].to_numpy()[:n]))
        sys.stdout.flush()

    for i, (row, genotype) in enumerate(zip(ref["row"], ref["genotype"], strict=True)):
        arch = bench.space.parse(genotype)
        new = False
        for p, est in estimators.items():
            if (int(row), p) in done:
                scores[p][i], costs[p][i] = done[int(row), p]
            else:
                e = est.estimate(arch)
                scores[p][i], costs[p][i] = e.score, e.cost_s
                new = True
        if writer and handle and new:
            writer.writerow([int(row), *(v for p in args.proxies for v in (scores[p][i], costs[p][i]))])
            handle.flush()
        if args.every and (i + 1) % args.every == 0 and i + 1 < len(ref):
            report(i + 1)
    if handle:
        handle.close()
    report(len(ref))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
