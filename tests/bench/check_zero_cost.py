"""Check our zero-cost proxies against the published NAS-Bench-Suite-Zero scores on NB201 / CIFAR-10.

    python -m tests.bench.check_zero_cost [--proxies synflow nwot ...] [--limit N] [--batch-size 64]
                                          [--second-seed S] [--threads T] [--out scores.csv]

Reads ``<data_dir>/nb201/proxies_naslib.csv`` (NASLib ``zerocost`` branch: one row per (architecture
``index``, ``dataset``), a column per proxy plus ``<proxy>_time_s``), keeps the CIFAR-10 rows and joins them
on ``index`` to ``<data_dir>/nb201/nb201.csv`` for ``arch`` and ``valid_acc``. Each proxy is computed through
:class:`estimators.zero_cost.ZeroCost` (estimator seed 0 by default: one fixed batch of CIFAR-10 training
images, one initialisation per architecture) and the script prints, per proxy:

* ``n``, ``nonfin``: architectures scored, and how many of our scores were not finite;
* ``spearman``: Spearman rank correlation between our score and NASLib's;
* ``tau ours``, ``tau NASL``, ``diff``: Kendall tau against ``valid_acc`` of our score and of NASLib's, on the
  same architectures, and their difference;
* ``s ours``, ``s NASL``: median seconds per architecture, ours (this machine, build + proxy) and NASLib's
  recorded time column;
* with ``--second-seed S``: ``self``, the Spearman between our scores with seeds ``--seed`` and ``S`` (another
  batch and other initial weights), the agreement to expect from a re-implementation that is exactly right.

Correlations use the architectures where both scores are finite. Slow on a CPU (about a second per
architecture and gradient proxy): use ``--limit`` for quick looks and ``nohup`` for the full run. On a shared
machine, ``--threads 1`` avoids the large slow-downs of oversubscribed OpenMP threads. ``--resume`` continues
an interrupted run from its ``--out`` file.
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
from harness.interfaces import EstimatorContext
from harness.metrics import kendall_tau, spearman_rho
from harness.spaces.nb201 import NB201Space
from harness.types import Arch, Observation

SPACE = NB201Space()
HEADER = (
    f"{'proxy':<10}{'n':>5}{'nonfin':>8}{'spearman':>10}{'tau ours':>10}{'tau NASL':>10}{'diff':>8}"
    f"{'s ours':>9}{'s NASL':>9}"
)


def load_reference(data_dir: Path) -> pd.DataFrame:
    """NASLib's CIFAR-10 rows joined to the NB201 table: NASLib's columns plus ``arch`` and ``valid_acc``."""
    ref = pd.read_csv(data_dir / "nb201" / "proxies_naslib.csv")
    ref = ref[ref["dataset"] == "cifar10"].drop(columns=["dataset"])
    table = pd.read_csv(data_dir / "nb201" / "nb201.csv", usecols=["index", "arch", "dataset", "valid_acc"])
    table = table[table["dataset"] == "cifar10"].drop(columns=["dataset"])
    merged = ref.merge(table, on="index", suffixes=("_naslib", ""), validate="one_to_one")
    mismatch = merged["arch"] != merged["arch_naslib"]
    if mismatch.any():
        raise SystemExit(f"{int(mismatch.sum())} rows of proxies_naslib.csv name another arch than nb201.csv")
    return merged.reset_index(drop=True)


def _no_table(arch: Arch, *, fidelity: str | None = None) -> Observation:
    raise RuntimeError("zero-cost proxies never look at the benchmark table")


def fitted(proxy: str, batch_size: int, seed: int, device: str) -> ZeroCost:
    est = ZeroCost(proxy=proxy, batch_size=batch_size)
    est.fit(
        EstimatorContext(SPACE, "nb201", "cifar10", _no_table, seeding.rng(seed, "estimator"), seed=seed, device=device)
    )
    return est


def summary_line(
    name: str,
    ours: np.ndarray,
    theirs: np.ndarray,
    acc: np.ndarray,
    t_ours: np.ndarray,
    t_theirs: np.ndarray,
    other_seed: np.ndarray | None,
) -> str:
    """One row of the table (see the module docstring)."""
    ok = np.isfinite(ours) & np.isfinite(theirs)
    n_bad = int((~np.isfinite(ours)).sum())
    if ok.sum() < 3:
        return f"{name:<10}{len(ours):>5}{n_bad:>8}   (too few finite scores)"
    rho = spearman_rho(ours[ok], theirs[ok])
    tau_o, tau_t = kendall_tau(ours[ok], acc[ok]), kendall_tau(theirs[ok], acc[ok])
    line = (
        f"{name:<10}{len(ours):>5}{n_bad:>8}{rho:>10.3f}{tau_o:>10.3f}{tau_t:>10.3f}{tau_o - tau_t:>+8.3f}"
        f"{np.median(t_ours):>9.3f}{np.median(t_theirs):>9.3f}"
    )
    if other_seed is not None:
        both = np.isfinite(ours) & np.isfinite(other_seed)
        line += f"{spearman_rho(ours[both], other_seed[both]):>8.3f}"
    return line


Done = dict[tuple[int, tuple[str, int]], tuple[float, float]]


def previous_scores(path: Path, keys: list[tuple[str, int]]) -> Done:
    """(score, seconds) per (architecture index, (proxy, seed)) already in an ``--out`` file; a cell counts as
    computed when its time is there (a NaN score can be a result)."""
    if not path.is_file():
        return {}
    old = pd.read_csv(path)
    done: Done = {}
    for proxy, seed in keys:
        col = f"{proxy}_seed{seed}"
        if f"{col}_time_s" in old:
            for idx, score, cost in zip(old["index"], old[col], old[f"{col}_time_s"], strict=True):
                if np.isfinite(cost):
                    done[int(idx), (proxy, seed)] = (float(score), float(cost))
    return done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--proxies", nargs="+", default=list(PROXIES), choices=list(PROXIES))
    parser.add_argument("--limit", type=int, default=None, help="only the first N architectures of the file")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0, help="estimator seed")
    parser.add_argument("--second-seed", type=int, default=None, help="also score with this seed ('self')")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--out", type=Path, default=None, help="write per-architecture scores to this CSV")
    parser.add_argument("--every", type=int, default=50, help="print the table every N archs (0: never)")
    parser.add_argument(
        "--resume", action="store_true", help="keep the scores in --out (same settings), compute the rest"
    )
    args = parser.parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)

    ref = load_reference(paths.data_dir())
    if args.limit:
        ref = ref.iloc[: args.limit]
    seeds = [args.seed] + ([args.second_seed] if args.second_seed is not None else [])
    estimators = {(p, s): fitted(p, args.batch_size, s, args.device) for p in args.proxies for s in seeds}
    scores = {key: np.full(len(ref), np.nan) for key in estimators}
    costs = {key: np.full(len(ref), np.nan) for key in estimators}
    print(
        f"{len(ref)} NB201 CIFAR-10 architectures; proxies {', '.join(args.proxies)}; "
        f"batch {args.batch_size}; estimator seed(s) {', '.join(map(str, seeds))}; device {args.device}",
        flush=True,
    )
    done = previous_scores(args.out, list(estimators)) if args.resume and args.out else {}
    handle = args.out.open("w", newline="") if args.out else None
    writer = csv.writer(handle) if handle else None
    if writer:
        columns = [f"{p}_seed{s}{c}" for p, s in estimators for c in ("", "_time_s")]
        writer.writerow(["index", "arch", *columns])
    start = time.perf_counter()

    def report(n: int) -> None:
        print(
            f"\n[{n} architectures, {time.perf_counter() - start:.0f} s]\n{HEADER}"
            + (f"{'self':>8}" if len(seeds) > 1 else "")
        )
        acc = ref["valid_acc"].to_numpy()[:n]
        for p in args.proxies:
            other = scores[p, seeds[1]][:n] if len(seeds) > 1 else None
            print(
                summary_line(
                    p,
                    scores[p, seeds[0]][:n],
                    ref[p].to_numpy()[:n],
                    acc,
                    costs[p, seeds[0]][:n],
                    ref[f"{p}_time_s"].to_numpy()[:n],
                    other,
                )
            )
        sys.stdout.flush()

    for i, row in enumerate(ref.itertuples(index=False)):
        arch = SPACE.parse(row.arch)
        for key, est in estimators.items():
            if (row.index, key) in done:
                scores[key][i], costs[key][i] = done[row.index, key]
            else:
                e = est.estimate(arch)
                scores[key][i], costs[key][i] = e.score, e.cost_s
        if writer and handle:
            values = [v for key in estimators for v in (scores[key][i], costs[key][i])]
            writer.writerow([row.index, row.arch, *values])
            handle.flush()
        if args.every and (i + 1) % args.every == 0 and i + 1 < len(ref):
            report(i + 1)
    if handle:
        handle.close()
    report(len(ref))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
