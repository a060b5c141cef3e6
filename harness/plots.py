"""Figures from stored results only (summaries and records); each function returns a matplotlib Figure.

* :func:`fig1a`: cost of evaluating a fixed sample of architectures against Kendall tau, and against the test
  accuracy of the vote of its best-scored 5% (what a search needs), one point per estimator.
* :func:`fig1b`: final test accuracy against search cost, mean +- std over seeds per searcher x estimator.
* :func:`regret`: optimum minus the test accuracy of the search's answer against simulated time, median and
  quartiles.

A benchmark that records no training time (NAS-Bench-Macro, NB301) gives table estimators a cost of 0: a search
panel where some search cost 0 is drawn against evaluations instead, and says so on its axis.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from harness import metrics
from harness.budget import CostUnit
from harness.summaries import RankMetrics, RankSummary, SearchSummary, interval_key, summary_key

_MARKERS = {"rs": "o", "rea": "s", "rl": "^", "rminas": "D"}
_UNIT_MARKERS = {"recorded": "o", "measured": "^"}


def _figure(ncols: int, width: float = 6.4, height: float = 4.6) -> tuple[Any, list[Any]]:
    # a bare Figure (no pyplot): no global state, no GUI backend, safe in scripts, tests and notebooks
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * ncols, height), layout="constrained")
    axes = fig.subplots(1, ncols, squeeze=False)
    return fig, list(axes[0])


def _panels(frame: pd.DataFrame) -> list[tuple[str, str]]:
    """The (benchmark, dataset) pairs in ``frame``, sorted: one panel each."""
    pairs = frame[["benchmark", "dataset"]].dropna().drop_duplicates()
    return sorted(zip(pairs["benchmark"].astype(str), pairs["dataset"].astype(str), strict=True))


#: the x axis of a search panel where some search cost 0 s (:func:`_free`)
_EVALS_LABEL = "evaluations ({scale}some searches here cost 0 s: the benchmark records no training time)"


def _free(costs: Any) -> bool:
    """Whether a panel's costs include a 0 (no recorded training time): no cost axis can show those runs."""
    return bool(len(costs)) and float(np.min(np.asarray(costs, dtype=float))) <= 0


#: the summary keys the figures read besides their metrics: the cost, its unit, the sample's size and best
_COST, _UNIT = (summary_key(k, RankSummary, SearchSummary) for k in ("total_cost_s", "cost_unit"))
_N_SCORED = summary_key("n_scored", RankSummary)
_SAMPLE_BEST = summary_key("sample_best_test_acc", RankMetrics)
_ANSWER, _OPTIMUM, _N_EVALS = (
    summary_key(k, SearchSummary) for k in ("incumbent_test_acc", "optimum_test_acc", "n_evals")
)


def _unit_kind(cost_unit: str) -> str:
    """``"recorded"`` (a table estimator's benchmark seconds) or ``"measured"`` (a live estimator's), for a marker."""
    return "measured" if CostUnit.of(cost_unit).measured else "recorded"


def _unit_label(cost_unit: str) -> str:
    """A legend's name of a written ``cost_unit``: a measured one as written (it names its device)."""
    if CostUnit.of(cost_unit) is CostUnit.RECORDED:
        return "recorded GPU training seconds of the benchmark"
    return cost_unit


#: the two panels of Figure 1a: (summary column, y label, title); the second is what a search needs
FIG1A_PANELS = (
    (interval_key("kendall_tau_test"), "Kendall tau vs. test accuracy (95% bootstrap CI)", "Ranking quality vs. cost"),
    (
        interval_key("vote_answer_test_acc"),
        "test acc. of the vote of the best-scored 5% (%, 95% CI)",
        "Top of the space: what RMI-NAS's vote would answer",
    ),
)


def fig1a(rank: pd.DataFrame) -> Any:
    """Per (benchmark, dataset), two panels against the cost of scoring the sample, one labelled point per
    estimator: (a) Kendall tau against test accuracy; (b) the test accuracy of the vote answer (the per-decision
    vote of the best-scored 5%, see :func:`harness.loop.rank_metrics`), with the sample's best as a line.

    ``rank``: one row per rank run (columns of ``summary.json``: estimator, the metric and its ``_ci95``,
    total_cost_s, cost_unit, n_scored, benchmark, dataset). Several seeds of an estimator are drawn as their mean
    with the spread of the seeds' intervals. Runs written before a metric existed are left out of its panel.
    """
    panels = _panels(rank)
    fig, axes = _figure(2 * len(panels))
    for p, (bench, dataset) in enumerate(panels):
        df = rank[(rank["benchmark"] == bench) & (rank["dataset"] == dataset)]
        n = int(df[_N_SCORED].max()) if len(df) else 0
        for ax, (metric, ylabel, title) in zip(axes[2 * p : 2 * p + 2], FIG1A_PANELS, strict=True):
            have = df.dropna(subset=[metric]) if metric in df else df.iloc[:0]
            _estimator_points(ax, have, metric)
            if metric == FIG1A_PANELS[1][0] and len(have):
                best = have[_SAMPLE_BEST].max()
                ax.axhline(best, ls="--", color="black", lw=1, label=f"best test acc. in the sample {best:.2f}")
            else:
                ax.axhline(0, color="grey", lw=0.8)
            if _free(have[_COST]):  # a log axis cannot show 0: linear up to 1 s
                ax.set_xscale("symlog", linthresh=1.0)
                ax.set_xlim(-0.5, max(10.0, 3 * float(have[_COST].max())))
                ax.set_xlabel(f"seconds to score the {n} architectures (log scale; 0: no recorded training time)")
            else:
                ax.set_xscale("log")
                ax.set_xlabel(f"seconds to score the {n} architectures (log scale)")
            ax.set_ylabel(ylabel)
            ax.set_title(f"{title}: {bench} {dataset}", fontsize=10)
            ax.grid(alpha=0.3, which="both")
            for kind, color in (("recorded", "C0"), ("measured", "C3")):
                units = [u for u in have[_UNIT].unique() if _unit_kind(u) == kind]
                if units:
                    ax.plot([], [], _UNIT_MARKERS[kind], color=color, label=_unit_label(units[0]))
            if have.size:
                ax.legend(loc="lower right", fontsize=8, title="cost is in", title_fontsize=8)
    return fig


def _estimator_points(ax: Any, df: pd.DataFrame, metric: str) -> None:
    """One point per estimator at (mean cost, mean ``metric``) with the seeds' interval; labels never overlap."""
    placed: list[tuple[float, float]] = []  # label positions (log10 seconds, y in axis fractions) drawn so far
    values = df[metric].astype(float)
    span = float(values.max() - values.min()) if len(values) > 1 else 1.0
    step = 0.045 * (span or 1.0) / 0.6  # one label height, as on the tau axis
    for estimator, g in sorted(df.groupby("estimator"), key=lambda kv: -kv[1][metric].mean()):
        y = g[metric].mean()
        lo = min(ci[0] for ci in g[f"{metric}_ci95"])
        hi = max(ci[1] for ci in g[f"{metric}_ci95"])
        cost = g[_COST].mean()
        kind = _unit_kind(g[_UNIT].iloc[0])
        ax.errorbar(
            cost,
            y,
            yerr=[[max(y - lo, 0)], [max(hi - y, 0)]],
            fmt=_UNIT_MARKERS[kind],
            ms=7,
            capsize=3,
            color="C0" if kind == "recorded" else "C3",
        )
        x, label_y = float(np.log10(max(cost, 1e-3))), y
        while any(abs(x - px) < 0.7 and abs(label_y - py) < step for px, py in placed):
            label_y -= step
        placed.append((x, label_y))
        ax.annotate(
            str(estimator),
            (cost, y),
            xytext=(cost * 1.3 if cost > 0 else 0.3, label_y),
            fontsize=9,
            va="center",
            arrowprops={"arrowstyle": "-", "lw": 0.5, "color": "grey"} if label_y != y else None,
        )


def fig1b(search: pd.DataFrame) -> Any:
    """Final test accuracy against search cost; mean +- std over seeds per searcher x estimator.

    One marker shape per searcher, filled when the estimator is RMI and hollow otherwise (the paper's "with /
    without RMI"), one colour per estimator; a dashed line at the benchmark's best test accuracy.
    """
    panels = _panels(search)
    fig, axes = _figure(len(panels))
    estimators = sorted(search["estimator"].unique())
    colors = {e: f"C{i}" for i, e in enumerate(estimators)}
    for ax, (bench, dataset) in zip(axes, panels, strict=True):
        df = search[(search["benchmark"] == bench) & (search["dataset"] == dataset)]
        by_evals = _free(df[_COST])
        x_key = _N_EVALS if by_evals else _COST
        for (searcher, estimator), g in df.groupby(["searcher", "estimator"]):
            acc, cost = g[_ANSWER], g[x_key]
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
                label=f"{searcher} + {estimator} (n={len(g)}, {_unit_label(g[_UNIT].iloc[0])})",
            )
        optimum = df[_OPTIMUM].max()
        ax.axhline(optimum, ls="--", color="black", lw=1, label=f"benchmark optimum {optimum:.2f}")
        wide = df[x_key].max() > 10 * df[x_key].min()
        ax.set_xscale("log" if wide else "linear")
        ax.set_xlabel(
            _EVALS_LABEL.format(scale="log scale; " if wide else "")
            if by_evals
            else f"search cost (simulated seconds{', log scale' if wide else ''}; unit per entry in the legend)"
        )
        ax.set_ylabel("test accuracy of the final architecture (%)")
        over = "evaluations" if by_evals else "cost"
        ax.set_title(f"Search result vs. {over}: {bench} {dataset} (mean ± std over seeds)")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7, loc="best")
    return fig


def incumbent_regret(records: pd.DataFrame, optimum: float) -> tuple[np.ndarray, np.ndarray]:
    """(clock, regret) after each evaluation: optimum minus the test accuracy of what the search would answer if
    it stopped there (the ``answer_test_acc`` column: the searcher's own answer, such as RMI-NAS's vote, else the
    best-scored evaluation so far). Records written before that column existed: the best-scored evaluation so far
    (failed evaluations never become it). NaN until there is an answer."""
    if "answer_test_acc" in records:
        answer = records["answer_test_acc"].to_numpy(dtype=float)
        return records["clock_s"].to_numpy(dtype=float), optimum - answer
    ok = (records["status"] == "ok").to_numpy()
    best_idx = metrics.argmax_so_far(np.where(ok, records["score"].to_numpy(dtype=float), np.nan))
    test = records["test_acc"].to_numpy(dtype=float)
    regret = np.where(best_idx >= 0, optimum - test[np.maximum(best_idx, 0)], np.nan)
    return records["clock_s"].to_numpy(dtype=float), regret


def regret(curves: pd.DataFrame) -> Any:
    """Regret against simulated time (against evaluations in a panel where some search cost 0 s): median and
    interquartile band over seeds per searcher x estimator.

    ``curves``: one row per run with columns benchmark, dataset, searcher, estimator, cost_unit, clock (array),
    regret (array) as made by :func:`incumbent_regret`.
    """
    panels = _panels(curves)
    fig, axes = _figure(len(panels))
    for ax, (bench, dataset) in zip(axes, panels, strict=True):
        df = curves[(curves["benchmark"] == bench) & (curves["dataset"] == dataset)]
        by_evals = _free([c[-1] for c in df["clock"]])
        for i, ((searcher, estimator), g) in enumerate(df.groupby(["searcher", "estimator"])):
            xs = [np.arange(1.0, len(c) + 1) if by_evals else c for c in g["clock"]]
            hi_t = max(x[-1] for x in xs)
            grid = np.arange(1.0, hi_t + 1) if by_evals else np.geomspace(max(min(x[0] for x in xs), 1e-3), hi_t, 200)
            rows = []
            for x, reg in zip(xs, g["regret"], strict=True):
                pos = np.searchsorted(x, grid, side="right") - 1  # last evaluation finished by then
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
        units = sorted({_unit_label(u) for u in df[_UNIT]})
        x_label = _EVALS_LABEL.format(scale="log scale; ") if by_evals else "simulated search time (s, log scale)"
        ax.set_xlabel(x_label + "\n" + "; ".join(units), fontsize=9)
        ax.set_ylabel("regret: optimum − test acc. of the answer (%)")
        over = "evaluations" if by_evals else "time"
        ax.set_title(f"Regret over {over}: {bench} {dataset} (median, 25–75% band)")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    return fig
