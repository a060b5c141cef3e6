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
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Scorer:
    """One way to score the architectures of a trajectories file; :attr:`label` names it in the tables and in
    ``--show``.

    Attributes:
        source: an RMI read-out (one of ``READOUTS``), a baseline estimator's name, or ``"halving"``.
        step: the checkpoint of an RMI read-out; ``None`` for the others.
        size_prior: w of the loss divided by ``params^w``; ``None`` = no prior.
        plus_params: averaged in rank with the parameter count.
        rungs: successive halving's step count per rung (empty for the others); eta: its reduction factor.
    """

    source: str
    step: int | None = None
    size_prior: float | None = None
    plus_params: bool = False
    rungs: tuple[int, ...] = ()
    eta: int = 0

    @property
    def rmi(self) -> bool:
        """An RMI read-out at a checkpoint: the candidates the select half chooses from."""
        return self.step is not None

    @property
    def label(self) -> str:
        """``loss@25/params^0.3``, ``gap2@10+params``, ``synflow``, ``halving10-50-150/3``, ..."""
        if self.rungs:
            return f"halving{'-'.join(map(str, self.rungs))}/{self.eta}"
        text = self.source if self.step is None else f"{self.source}@{self.step}"
        if self.size_prior is not None:
            text += f"/params^{self.size_prior}"
        return f"{text}+params" if self.plus_params else text


Scores = dict[Scorer, tuple[np.ndarray, np.ndarray]]


def rank01(x: np.ndarray) -> np.ndarray:
    """Ranks scaled to [0, 1] (average ranks for ties; NaN stays NaN)."""
    return pd.Series(x).rank().to_numpy() / len(x)


def readouts(traj: pd.DataFrame, params: np.ndarray | None) -> Scores:
    """(score, seconds) per architecture of each read-out at each checkpoint."""
    out: Scores = {}
    wide = {c: traj.pivot(index="index", columns="step", values=c) for c in ("loss", *READOUTS[1:5], "seconds")}
    for k in (k for k in CHECKPOINTS if k in wide["loss"].columns):
        cost = wide["seconds"][k].to_numpy()
        for name in READOUTS:
            value = wide["loss"].loc[:, :k].mean(axis=1) if name == "auc" else wide[name][k]
            score = -value.to_numpy()
            out[Scorer(name, k)] = (score, cost)
            if params is not None:
                out[Scorer(name, k, plus_params=True)] = ((rank01(score) + rank01(params)) / 2, cost)
        if params is not None:
            for w in PRIOR_WEIGHTS:
                prior = np.asarray(size_prior_score(wide["loss"][k].to_numpy(), params, w))
                out[Scorer("loss", k, size_prior=w)] = (prior, cost)
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
    scores: Scores,
    test: np.ndarray,
    mask: np.ndarray,
    references: dict[str, np.ndarray],
) -> pd.DataFrame:
    """Kendall tau against ``test`` on the architectures of ``mask``, its 95% interval, the mean seconds per
    architecture and the paired interval of the difference to each of the ``references``' scores."""
    rows = []
    for scorer, (score, cost) in scores.items():
        ok = mask & np.isfinite(score)
        s, t = score[ok], test[ok]
        lo, hi = metrics.tau_ci(s, t, seeding.rng(0, "bootstrap"))
        row = {"scorer": scorer.label, "tau": metrics.kendall_tau(s, t), "ci_lo": lo, "ci_hi": hi}
        row["s_per_arch"] = float(np.mean(cost[mask]))
        for label, reference in references.items():
            diff = metrics.tau_diff_ci(s, reference[ok], t, seeding.rng(0, "paired-bootstrap"))
            row[f"vs_{label}_lo"], row[f"vs_{label}_hi"] = diff
        rows.append(row)
    return pd.DataFrame(rows).set_index("scorer")


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
    scores = {**readouts(traj, params), **{Scorer(name): value for name, value in base.items()}}
    if params is not None:  # the fair comparison for "RMI + params": every other scorer + params
        for name, (score, cost) in base.items():
            if name != "params":
                scores[Scorer(name, plus_params=True)] = ((rank01(score) + rank01(params)) / 2, cost)
    last = int(traj.step.max())
    for rungs, eta in (((10, 50, last), 3), ((25, last), 4), ((10, 25, 50, last), 2), ((5, 25, last), 5)):
        if last > rungs[-2]:
            scorer = Scorer("halving", rungs=rungs, eta=eta)
            scores[scorer] = successive_halving(traj, [select, ~select], rungs, eta)
    rmi = [scorer for scorer in scores if scorer.rmi]
    on_select = {scorer: metrics.kendall_tau(scores[scorer][0][select], test[select]) for scorer in rmi}
    chosen = sorted(on_select, key=lambda scorer: -np.nan_to_num(on_select[scorer], nan=-2.0))[: args.top]
    if not select.any():  # a report-only file: show the read-outs chosen elsewhere
        by_label = {scorer.label: scorer for scorer in scores}
        chosen = [by_label[label] for label in args.show if label in by_label]
    paper = [Scorer("loss", k) for k in CHECKPOINTS if Scorer("loss", k) in scores]
    combined = [Scorer(name, plus_params=True) for name in base if Scorer(name, plus_params=True) in scores]
    halving = [scorer for scorer in scores if scorer.rungs]
    shown = list(dict.fromkeys([*chosen, *paper, *halving, *(Scorer(name) for name in base), *combined]))
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

    print(f"{len(archs)} architectures: {select.sum()} select, {(~select).sum()} report; tau vs test accuracy\n")
    titles = {
        "select": f"The {args.top} best of {len(rmi)} RMI read-outs on the select half, the paper's, the baselines:",
        "report": "The same rows on the report half (looked at once):",
        "all": "All architectures:",
    }
    for half, table in tables.items():
        print(f"{titles[half]}\n{table.to_string(float_format='%.3f')}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
