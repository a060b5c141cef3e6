"""Which RMI read-out ranks best per second? Chosen on the ``select`` half of a sample, confirmed on ``report``.

    python -m studies.rmi_analysis TRAJECTORIES.csv [--baselines RESULTS_DIR] [--out TABLE.csv]

Reads what :mod:`studies.rmi_trajectories` recorded and, for every step k of a set of checkpoints, scores each
architecture by a read-out of the same training run: ``loss`` (the paper's, = ``estimator.steps=k``), one stage's
``1 - CKA`` (``gap1..3``), the cross-entropy ``ce``, the mean loss over steps 1..k (``auc``: how fast the candidate
learns), each of those averaged in rank with parameter count (``+params``), and the loss divided by a power w of
the parameter count (``/params^w``: ``estimator.size_prior=w``, a per-architecture score). Cost = measured
seconds up to step k. Baselines (zero-cost proxies, the table's 12-epoch accuracy, ...) come from the stored
``task=rank`` runs under ``RESULTS_DIR`` that scored the same architectures (seed 0), alone and averaged in rank
with parameter count (the fair comparison for an RMI read-out ``+params``). Kendall tau is against NB201 test
accuracy, with 95% bootstrap intervals; ``vs_params`` and ``vs_best`` are the paired bootstrap intervals of
tau(read-out) - tau(params) and of tau(read-out) - tau(best zero-cost proxy on the select half, or on the whole
file if it has none) on the same architectures. Selection uses only the ``select`` half; the
``report`` half is looked at once, for the chosen rows.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from estimators.rmi import size_prior_score
from harness import metrics, seeding, storage
from harness.benchmarks import NB201

CHECKPOINTS = (1, 5, 10, 25, 50, 100, 150)
READOUTS = ("loss", "gap1", "gap2", "gap3", "ce", "auc")
PRIOR_WEIGHTS = (0.1, 0.2, 0.3, 0.5, 1.0)
# not candidates for vs_best: params has its own column, flops orders NB201 exactly as params, the rest is training
NOT_BEST = ("params", "flops", "train12", "full_train")


def rank01(x: np.ndarray) -> np.ndarray:
    """Ranks scaled to [0, 1] (average ranks for ties; NaN stays NaN)."""
    return pd.Series(x).rank().to_numpy() / len(x)


def readouts(traj: pd.DataFrame, params: np.ndarray | None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(score, seconds) per architecture of each read-out at each checkpoint."""
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    wide = {c: traj.pivot(index="index", columns="step", values=c) for c in ("loss", *READOUTS[1:5], "seconds")}
    for k in (k for k in CHECKPOINTS if k in wide["loss"].columns):
        cost = wide["seconds"][k].to_numpy()
        for name in READOUTS:
            value = wide["loss"].loc[:, :k].mean(axis=1) if name == "auc" else wide[name][k]
            score = -value.to_numpy()
            out[f"{name}@{k}"] = (score, cost)
            if params is not None:
                out[f"{name}@{k}+params"] = ((rank01(score) + rank01(params)) / 2, cost)
        if params is not None:
            for w in PRIOR_WEIGHTS:
                out[f"loss@{k}/params^{w}"] = (size_prior_score(wide["loss"][k].to_numpy(), params, w), cost)
    return out


def successive_halving(
    traj: pd.DataFrame, halves: list[np.ndarray], rungs: tuple[int, ...], eta: int
) -> tuple[np.ndarray, np.ndarray]:
    """(score, seconds) per architecture of successive halving over the recorded runs: every candidate trains
    ``rungs[0]`` steps, the best 1/``eta`` by loss continue to ``rungs[1]``, and so on. Exact, not simulated: a run
    continued to k steps is the recorded run's first k steps. Candidates compete within their half only; the
    score orders by the rung reached, then by the loss there."""
    loss = traj.pivot(index="index", columns="step", values="loss").to_numpy()
    seconds = traj.pivot(index="index", columns="step", values="seconds").to_numpy()
    score, cost = np.empty(len(loss)), np.empty(len(loss))
    for members in halves:
        alive = np.flatnonzero(members)
        for r, k in enumerate(rungs):
            score[alive] = 1000 * r - loss[alive, k - 1]
            cost[alive] = seconds[alive, k - 1]
            keep = max(1, len(alive) // eta)
            alive = alive[np.argsort(loss[alive, k - 1], kind="stable")[:keep]]
    return score, cost


def baselines(results: Path, archs: list[str]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Scores (NaN where the run failed) of the stored seed-0 rank runs that scored every architecture in
    ``archs``; RMI's own runs are left out (they are read-outs above)."""
    runs, _ = storage.load_runs(results)
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for folder, summary in runs:
        name = summary["estimator"]
        if summary.get("task") != "rank" or summary.get("seed") != 0 or name in out or name.startswith("rmi"):
            continue
        records = storage.read_records(folder).set_index("arch")
        if set(archs) <= set(records.index):
            rows = records.loc[archs]
            score = np.where(rows.status == "ok", rows.score.to_numpy(float), np.nan)
            out[name] = (score, rows.cost_s.to_numpy(float))
    return out


def tau_table(
    scores: dict[str, tuple[np.ndarray, np.ndarray]],
    test: np.ndarray,
    mask: np.ndarray,
    references: dict[str, np.ndarray],
) -> pd.DataFrame:
    """Kendall tau against ``test`` on the architectures of ``mask``, its 95% interval, the mean seconds per
    architecture and the paired interval of the difference to each of the ``references``' scores."""
    rows = []
    for name, (score, cost) in scores.items():
        ok = mask & np.isfinite(score)
        s, t = score[ok], test[ok]
        lo, hi = metrics.tau_ci(s, t, seeding.rng(0, "bootstrap"))
        row = {"scorer": name, "tau": metrics.kendall_tau(s, t), "ci_lo": lo, "ci_hi": hi}
        row["s_per_arch"] = float(np.mean(cost[mask]))
        for label, reference in references.items():
            row[f"vs_{label}_lo"], row[f"vs_{label}_hi"] = paired_diff_ci(s, reference[ok], t)
        rows.append(row)
    return pd.DataFrame(rows).set_index("scorer")


def paired_diff_ci(a: np.ndarray, b: np.ndarray, y: np.ndarray, n_boot: int = 1000) -> tuple[float, float]:
    """95% bootstrap interval of tau(a, y) - tau(b, y), resampling architectures jointly."""

    def diff(i: np.ndarray) -> float:
        return metrics.kendall_tau(a[i], y[i]) - metrics.kendall_tau(b[i], y[i])

    return metrics.bootstrap_ci(diff, len(y), seeding.rng(0, "paired-bootstrap"), n_boot=n_boot)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("trajectories", type=Path)
    parser.add_argument("--baselines", type=Path, default=None, help="results folder with rank runs to compare")
    parser.add_argument("--top", type=int, default=12, help="rows of the selection table to confirm")
    parser.add_argument("--out", type=Path, default=None, help="write the full table (both halves) as CSV")
    parser.add_argument("--show", nargs="*", default=[], help="read-outs to show when there is no select half")
    parser.add_argument("--versus", default=None, help="cheap baseline of vs_best (default: the best on select)")
    args = parser.parse_args(argv)

    traj = pd.read_csv(args.trajectories)
    first = traj[traj.step == 1].sort_values("index")
    archs = first.arch.tolist()
    bench = NB201("cifar10").load()
    test = np.array([bench.test_accuracy(bench.space.parse(a)) for a in archs])
    select = (first.split == "select").to_numpy()
    base = baselines(args.baselines, archs) if args.baselines else {}
    params = base["params"][0] if "params" in base else None
    scores = {**readouts(traj, params), **base}
    if params is not None:  # the fair comparison for "RMI + params": every other scorer + params
        for name, (score, cost) in base.items():
            if name != "params":
                scores[f"{name}+params"] = ((rank01(score) + rank01(params)) / 2, cost)
    last = int(traj.step.max())
    for rungs, eta in (((10, 50, last), 3), ((25, last), 4), ((10, 25, 50, last), 2), ((5, 25, last), 5)):
        if last > rungs[-2]:
            scores[f"halving{'-'.join(map(str, rungs))}/{eta}"] = successive_halving(
                traj, [select, ~select], rungs, eta
            )
    rmi = [name for name in scores if "@" in name]
    on_select = {name: metrics.kendall_tau(scores[name][0][select], test[select]) for name in rmi}
    chosen = sorted(on_select, key=lambda name: -np.nan_to_num(on_select[name], nan=-2.0))[: args.top]
    if not select.any():  # a report-only file: show the read-outs chosen elsewhere
        chosen = [name for name in args.show if name in scores]
    paper = [f"loss@{k}" for k in CHECKPOINTS if f"loss@{k}" in scores]
    combined = [f"{name}+params" for name in base if f"{name}+params" in scores]
    shown = list(dict.fromkeys([*chosen, *paper, *(n for n in scores if n.startswith("halving")), *base, *combined]))
    halves = {"select": select, "report": ~select, "all": np.ones_like(select)}
    halves = {half: mask for half, mask in halves.items() if mask.sum() >= 3}
    cheap = [n for n in base if n not in NOT_BEST]

    def select_tau(score: np.ndarray) -> float:  # a report-only file: the best there (the strictest comparison)
        ok = (select if select.any() else np.ones_like(select)) & np.isfinite(score)
        return metrics.kendall_tau(score[ok], test[ok]) if ok.sum() >= 3 else -2.0

    versus = args.versus or max(cheap, key=lambda n: select_tau(base[n][0]), default=None)
    references = {label: base[n][0] for label, n in (("params", "params"), ("best", versus)) if n in base}
    if versus:
        print(f"best zero-cost proxy (vs_best): {versus}")
    tables = {half: tau_table({n: scores[n] for n in shown}, test, mask, references) for half, mask in halves.items()}
    if args.out:
        pd.concat(tables, axis=1).to_csv(args.out, float_format="%.4f")

    fmt = {"float_format": "%.3f"}
    print(f"{len(archs)} architectures: {select.sum()} select, {(~select).sum()} report; tau vs test accuracy\n")
    titles = {
        "select": f"The {args.top} best of {len(rmi)} RMI read-outs on the select half, the paper's, the baselines:",
        "report": "The same rows on the report half (looked at once):",
        "all": "All architectures:",
    }
    for half, table in tables.items():
        print(f"{titles[half]}\n{table.to_string(**fmt)}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
