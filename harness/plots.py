"""Figures from stored results only (summaries and records); each function returns a matplotlib Figure.

* :func:`fig1a`: cost of evaluating a fixed sample of architectures against Kendall tau, one point per estimator.
* :func:`fig1b`: final test accuracy against search cost, mean +- std over seeds per searcher x estimator.
* :func:`regret`: optimum minus the test accuracy of the incumbent against simulated time, median and quartiles.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

_MARKERS = {"rs": "o", "rea": "s", "rl": "^", "rminas": "D"}
_UNIT_MARKERS = {"recorded": "o", "measured": "^"}


def _figure(ncols: int, width: float = 6.4, height: float = 4.6) -> tuple[Any, list[Any]]:
    # a bare Figure (no pyplot): no global state, no GUI backend, safe in scripts, tests and notebooks
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * ncols, height), layout="constrained")
    axes = fig.subplots(1, ncols, squeeze=False)
    return fig, list(axes[0])


def _unit_kind(cost_unit: str) -> str:
    return "recorded" if cost_unit.startswith("recorded") else "measured"


def _unit_label(cost_unit: str) -> str:
    if cost_unit.startswith("recorded"):
        return "recorded GPU training seconds of the benchmark"
    return cost_unit.replace("measured wall seconds on", "measured wall seconds,")


def fig1a(rank: pd.DataFrame) -> Any:
    """Kendall tau (test accuracy) against the cost of scoring the sample, one labelled point per estimator.

    ``rank``: one row per rank run (columns of ``summary.json``: estimator, kendall_tau_test,
    kendall_tau_test_ci95, total_cost_s, cost_unit, n_scored, benchmark, dataset). Several seeds of an estimator
    are drawn as their mean with the spread of the seeds' intervals.
    """
    panels = sorted(rank.groupby(["benchmark", "dataset"]).groups)
    fig, axes = _figure(len(panels))
    for ax, (bench, dataset) in zip(axes, panels, strict=True):
        df = rank[(rank["benchmark"] == bench) & (rank["dataset"] == dataset)]
        placed: list[tuple[float, float]] = []  # label positions (log10 seconds, tau) drawn so far
        groups = df.groupby("estimator")
        for estimator, g in sorted(groups, key=lambda kv: -kv[1]["kendall_tau_test"].mean()):
            tau = g["kendall_tau_test"].mean()
            lo = min(ci[0] for ci in g["kendall_tau_test_ci95"])
            hi = max(ci[1] for ci in g["kendall_tau_test_ci95"])
            cost = g["total_cost_s"].mean()
            kind = _unit_kind(g["cost_unit"].iloc[0])
            ax.errorbar(
                cost,
                tau,
                yerr=[[tau - lo], [hi - tau]],
                fmt=_UNIT_MARKERS[kind],
                ms=7,
                capsize=3,
                color="C0" if kind == "recorded" else "C3",
            )
            # labels never overlap: move a label down until it clears those drawn before, with a leader line
            x, label_y = float(np.log10(cost)), tau
            while any(abs(x - px) < 0.7 and abs(label_y - py) < 0.045 for px, py in placed):
                label_y -= 0.045
            placed.append((x, label_y))
            ax.annotate(
                str(estimator),
                (cost, tau),
                xytext=(cost * 1.3, label_y),
                fontsize=9,
                va="center",
                arrowprops={"arrowstyle": "-", "lw": 0.5, "color": "grey"} if label_y != tau else None,
            )
        n = int(df["n_scored"].max()) if len(df) else 0
        ax.set_xscale("log")
        ax.set_xlabel(f"seconds to score the {n} architectures (log scale)")
        ax.set_ylabel("Kendall tau vs. test accuracy (95% bootstrap CI)")
        ax.set_title(f"Ranking quality vs. cost: {bench} {dataset}")
        ax.axhline(0, color="grey", lw=0.8)
        ax.grid(alpha=0.3, which="both")
        for kind, color in (("recorded", "C0"), ("measured", "C3")):
            units = [u for u in df["cost_unit"].unique() if _unit_kind(u) == kind]
            if units:
                ax.plot([], [], _UNIT_MARKERS[kind], color=color, label=_unit_label(units[0]))
        ax.legend(loc="upper left", fontsize=8, title="cost is in", title_fontsize=8)
    return fig


def fig1b(search: pd.DataFrame) -> Any:
    """Final test accuracy against search cost; mean +- std over seeds per searcher x estimator.

    One marker shape per searcher, filled when the estimator is RMI and hollow otherwise (the paper's "with /
    without RMI"), one colour per estimator; a dashed line at the benchmark's best test accuracy.
    """
    panels = sorted(search.groupby(["benchmark", "dataset"]).groups)
    fig, axes = _figure(len(panels))
    estimators = sorted(search["estimator"].unique())
    colors = {e: f"C{i}" for i, e in enumerate(estimators)}
    for ax, (bench, dataset) in zip(axes, panels, strict=True):
        df = search[(search["benchmark"] == bench) & (search["dataset"] == dataset)]
        for (searcher, estimator), g in df.groupby(["searcher", "estimator"]):
            acc, cost = g["incumbent_test_acc"], g["total_cost_s"]
            rmi = str(estimator).startswith("rmi")
            ax.errorbar(
                cost.mean(),
                acc.mean(),
                xerr=cost.std(ddof=1) if len(g) > 1 else None,
                yerr=acc.std(ddof=1) if len(g) > 1 else None,
                fmt=_MARKERS.get(str(searcher), "P"),
                ms=8,
                capsize=3,
                color=colors[estimator],
                mfc=colors[estimator] if rmi else "white",
                label=f"{searcher} + {estimator} (n={len(g)}, {_unit_label(g['cost_unit'].iloc[0])})",
            )
        optimum = df["optimum_test_acc"].max()
        ax.axhline(optimum, ls="--", color="black", lw=1, label=f"benchmark optimum {optimum:.2f}")
        wide = df["total_cost_s"].max() > 10 * df["total_cost_s"].min()
        ax.set_xscale("log" if wide else "linear")
        ax.set_xlabel(f"search cost (simulated seconds{', log scale' if wide else ''}; unit per entry in the legend)")
        ax.set_ylabel("test accuracy of the final architecture (%)")
        ax.set_title(f"Search result vs. cost: {bench} {dataset} (mean ± std over seeds)")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7, loc="best")
    return fig


def incumbent_regret(records: pd.DataFrame, optimum: float) -> tuple[np.ndarray, np.ndarray]:
    """(clock, regret) after each evaluation: optimum minus the test accuracy of the best-scored architecture so
    far (failed evaluations never become the incumbent). NaN until the first successful evaluation."""
    score = records["score"].to_numpy(dtype=float)
    ok = np.isfinite(score) & (records["status"] == "ok").to_numpy()
    best_idx = np.full(len(score), -1)
    best, idx = -np.inf, -1
    for i, (s, good) in enumerate(zip(score, ok, strict=True)):
        if good and s > best:
            best, idx = s, i
        best_idx[i] = idx
    test = records["test_acc"].to_numpy(dtype=float)
    regret = np.where(best_idx >= 0, optimum - test[np.maximum(best_idx, 0)], np.nan)
    return records["clock_s"].to_numpy(dtype=float), regret


def regret(curves: pd.DataFrame) -> Any:
    """Regret against simulated time: median and interquartile band over seeds per searcher x estimator.

    ``curves``: one row per run with columns benchmark, dataset, searcher, estimator, cost_unit, clock (array),
    regret (array) as made by :func:`incumbent_regret`.
    """
    panels = sorted(curves.groupby(["benchmark", "dataset"]).groups)
    fig, axes = _figure(len(panels))
    for ax, (bench, dataset) in zip(axes, panels, strict=True):
        df = curves[(curves["benchmark"] == bench) & (curves["dataset"] == dataset)]
        for i, ((searcher, estimator), g) in enumerate(df.groupby(["searcher", "estimator"])):
            lo_t = max(min(c[0] for c in g["clock"]), 1e-3)
            hi_t = max(c[-1] for c in g["clock"])
            grid = np.geomspace(lo_t, hi_t, 200)
            rows = []
            for clock, reg in zip(g["clock"], g["regret"], strict=True):
                pos = np.searchsorted(clock, grid, side="right") - 1  # last evaluation finished by then
                rows.append(np.where(pos >= 0, reg[np.maximum(pos, 0)], np.nan))
            q25, q50, q75 = np.nanpercentile(np.array(rows), [25, 50, 75], axis=0)
            color = f"C{i}"
            ax.step(
                grid,
                q50,
                where="post",
                color=color,
                ls="-" if str(estimator).startswith("rmi") else "--",
                label=f"{searcher} + {estimator} (n={len(g)})",
            )
            ax.fill_between(grid, q25, q75, step="post", color=color, alpha=0.15)
        ax.set_xscale("log")
        ax.set_yscale("symlog", linthresh=0.1)
        ax.set_ylim(bottom=0)
        units = sorted({_unit_label(u) for u in df["cost_unit"]})
        ax.set_xlabel("simulated search time (s, log scale)\n" + "; ".join(units), fontsize=9)
        ax.set_ylabel("regret: optimum − test acc. of incumbent (%)")
        ax.set_title(f"Regret over time: {bench} {dataset} (median, 25–75% band)")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    return fig
