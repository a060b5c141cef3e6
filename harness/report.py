"""``python -m harness.report RESULTS_DIR [--out DIR]``: tables and figures from stored runs only.

Writes into ``--out`` (default ``RESULTS_DIR/report``): ``summary.csv`` (one row per run), ``aggregate.csv`` (mean,
std, n per group), ``rank.md`` (rank runs: tau, nDCG and the top-of-space metrics with their intervals, and the
cost), ``paired.md`` and ``paired.csv`` (rank runs of one sample: tau and nDCG differences with paired intervals,
:func:`paired_table`), and ``fig1a``, ``fig1b``, ``regret`` as PNG and PDF (each only when there are runs for it).
Runs are grouped by their defining config, as :mod:`harness.aggregate` groups them: in the tables and figures an
estimator of a config that differs from another's is named with how it differs (``train12 [population_size=5]``).
Unreadable or foreign files are named and skipped; the report goes on.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from harness import identity, metrics, plots, seeding, storage
from harness.aggregate import aggregate, format_table
from harness.summaries import RankSummary, SearchSummary, interval_key, summary_key
from harness.types import OK


def summaries_frame(runs: list[tuple[Path, dict[str, Any]]], labels: dict[str, str] | None = None) -> pd.DataFrame:
    """One row per run: every summary field but the config, versions and paths, plus the run folder, its config's
    id and its group's label (``labels``, by config id: what differs between the groups)."""
    rows = []
    for folder, s in runs:
        cid = identity.config_id(s.get("config", {}))
        fields = {k: v for k, v in s.items() if k not in ("config", "versions", "where", "config_label")}
        rows.append({"folder": str(folder), **fields, "config_id": cid, "config": (labels or {}).get(cid, "")})
    return pd.DataFrame(rows)


def named(estimator: str, label: str) -> str:
    """How the figures and ``rank.md`` name an estimator of a group: with its config's label when it has one."""
    return f"{estimator} [{label}]" if label else estimator


#: the columns of ``rank.md``: (summary key, header, format of the value and of its interval), each a statistic of
#: :class:`~harness.summaries.RankMetrics` with its ``_ci95``; the summaries hold more (precision@10%, the vote
#: answer's validation accuracy, Spearman rho): ``summary.csv`` has them all
RANK_COLUMNS = (
    (interval_key("kendall_tau_test"), "tau (test)", "{:.3f}"),
    (interval_key("ndcg_test"), "nDCG (test)", "{:.3f}"),
    (interval_key("top5_precision_test"), "precision@5% (test)", "{:.2f}"),
    (interval_key("top1_regret_test"), "top-1 regret (test)", "{:.2f}"),
    (interval_key("vote_answer_test_acc"), "vote answer: test acc.", "{:.2f}"),
)
#: the key ``rank.md`` is sorted by; the summary keys of a rank run's size and cost, and of both tasks' cost unit
_TAU = RANK_COLUMNS[0][0]
_N, _MEDIAN, _TOTAL = (summary_key(k, RankSummary) for k in ("n_scored", "median_cost_per_arch_s", "total_cost_s"))
_UNIT = summary_key("cost_unit", RankSummary, SearchSummary)
#: the summary keys of a search's answer and of the benchmark's optimum (Figure 1b, regret)
_ANSWER, _OPTIMUM = (summary_key(k, SearchSummary) for k in ("incumbent_test_acc", "optimum_test_acc"))


def _with_interval(value: Any, ci: Any, fmt: str) -> str:
    """``value [low, high]``; empty for a metric the run's summary lacks (written before it existed)."""
    if value is None or not isinstance(ci, list) or pd.isna(value):
        return ""
    return f"{fmt.format(value)} [{fmt.format(ci[0])}, {fmt.format(ci[1])}]"


def _seconds(value: Any) -> str:
    """A cost in seconds, to three significant digits below 100 (a proxy's 0.0123 s) and whole above."""
    if value is None or pd.isna(value):
        return ""
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def rank_table(rank: pd.DataFrame) -> str:
    """A markdown table, one row per rank run (best tau first within a benchmark and dataset): each metric of
    :data:`RANK_COLUMNS` as ``value [95% interval]``, then the median cost per architecture, the cost of scoring
    the sample, and their unit."""
    costs = ["s per arch (median)", "cost (s)", "unit"]
    header = ["benchmark", "dataset", "estimator", "seed", "n", *(h for _, h, _ in RANK_COLUMNS), *costs]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    order = rank.sort_values(["benchmark", "dataset", _TAU], ascending=[True, True, False])
    for _, r in order.iterrows():
        cells = [r["benchmark"], r["dataset"], r["estimator"], str(r["seed"]), str(int(r[_N]))]
        cells += [_with_interval(r.get(name), r.get(f"{name}_ci95"), fmt) for name, _, fmt in RANK_COLUMNS]
        cells += [_seconds(r.get(_MEDIAN)), f"{r[_TOTAL]:,.0f}", str(r[_UNIT])]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


#: the estimators every other is compared with in ``paired.md`` (RMI, the method under study, and FLOPs, the
#: size baseline that beats most proxies), and each estimator with its equal-cost control (the teacher's effect)
REFERENCES = ("rmi", "flops")
CONTROLS = {"rmi": "rmi_ce", "rmi_paper": "rmi_paper_ce"}
#: the settings that fix a rank run's sample, besides its benchmark and dataset; with the seed (the estimator's
#: repeat), the runs of one key are compared
SAMPLE_KEYS = ("n_archs", "sample_seed", "split", "archs")


class _Run(NamedTuple):
    folder: Path
    estimator: str  # the plug-in's name, as REFERENCES and CONTROLS name it
    name: str  # with its config's label, as the tables name it


def _same_sample(
    runs: list[tuple[Path, dict[str, Any]]], labels: dict[str, str]
) -> dict[tuple[str, str, int], list[_Run]]:
    """The rank runs by (benchmark, dataset, seed) and their :data:`SAMPLE_KEYS`: each group scored one sample."""
    groups: dict[tuple[Any, ...], list[_Run]] = {}
    for folder, s in runs:
        if s["task"] == "rank":
            config = s.get("config", {})
            sample = tuple(json.dumps(config.get(k)) for k in SAMPLE_KEYS)
            name = named(s["estimator"], labels.get(identity.config_id(config), ""))
            groups.setdefault((s["benchmark"], s["dataset"], s["seed"], *sample), []).append(
                _Run(folder, s["estimator"], name)
            )
    return {key[:3]: members for key, members in sorted(groups.items(), key=lambda kv: str(kv[0]))}


def _pairs(members: list[_Run]) -> list[tuple[_Run, _Run, str]]:
    """(A, B, what) of one sample: every estimator vs each of :data:`REFERENCES` (a reference only against those
    listed before it, a control only against what it controls), each of :data:`CONTROLS` vs its control, then the
    settings of one estimator (a swept hyper-parameter) with each other."""
    pairs = []
    for i, ref in enumerate(REFERENCES):
        skip = {*REFERENCES[: i + 1], CONTROLS.get(ref)}
        pairs += [
            (a, b, f"vs {ref}") for b in members if b.estimator == ref for a in members if a.estimator not in skip
        ]
    for est, control in CONTROLS.items():
        pairs += [
            (a, b, "teacher's effect") for a in members if a.estimator == est for b in members if b.estimator == control
        ]
    pairs += [
        (a, b, f"settings of {a.estimator}")
        for i, a in enumerate(members)
        for b in members[i + 1 :]
        if a.estimator == b.estimator and a.name != b.name
    ]
    return pairs


def _scored(folder: Path) -> pd.DataFrame:
    """(score, test accuracy) of each architecture a run scored, by architecture (its failures left out)."""
    records: pd.DataFrame = storage.read_records(folder)
    ok = records[(records["status"] == OK) & records["score"].notna()]
    return ok.set_index("arch")[["score", "test_acc"]]


def _ndcg(scores: np.ndarray, truth: np.ndarray) -> float:
    return metrics.ndcg(scores, truth, metrics.ndcg_cutoff(len(truth)))


#: the metrics of ``paired.md``, each a function of (scores, truth) of the architectures both runs scored
PAIRED_METRICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {"tau": metrics.kendall_tau, "ndcg": _ndcg}


def _bootstrapped(
    stat: Callable[[np.ndarray, np.ndarray], float], scores: np.ndarray, truth: np.ndarray
) -> tuple[float, np.ndarray]:
    """``stat`` of ``scores`` and its values over the 1,000 resamples of the ``paired bootstrap`` stream of seed 0
    (:func:`harness.metrics.bootstrap_values`): the same resamples for every run of the same architectures, so that
    the differences of two runs' values are a paired bootstrap."""
    rng = seeding.rng(0, "paired bootstrap")
    return stat(scores, truth), metrics.bootstrap_values(lambda i: stat(scores[i], truth[i]), len(truth), rng)


def paired_comparisons(
    runs: list[tuple[Path, dict[str, Any]]], problems: list[str], labels: dict[str, str] | None = None
) -> pd.DataFrame:
    """For rank runs of the same sample and seed, the pairs of :func:`_pairs`: each of :data:`PAIRED_METRICS`
    against test accuracy for A and B, the difference A - B and its 95 % paired bootstrap interval (the same as
    :func:`harness.metrics.paired_diff_ci`), over the architectures both scored (in the order of their names),
    read from each run's ``records.csv`` (never re-scored). Unreadable records go to ``problems``; estimators are
    named as :func:`named` names them (``labels``, by config id)."""
    scored: dict[Path, pd.DataFrame | None] = {}
    boot: dict[tuple[Path, tuple[str, ...]], dict[str, tuple[float, np.ndarray]]] = {}

    def read(folder: Path) -> pd.DataFrame | None:
        if folder not in scored:
            try:
                scored[folder] = _scored(folder)
            except (OSError, ValueError, KeyError) as exc:
                problems.append(f"{folder / storage.RECORDS}: unreadable ({type(exc).__name__}: {exc})")
                scored[folder] = None
        return scored[folder]

    def stats(folder: Path, records: pd.DataFrame, archs: tuple[str, ...]) -> dict[str, tuple[float, np.ndarray]]:
        if (folder, archs) not in boot:  # each run once per set of architectures, however many pairs it is in
            scores, truth = (records.loc[list(archs), c].to_numpy(float) for c in ("score", "test_acc"))
            boot[folder, archs] = {name: _bootstrapped(stat, scores, truth) for name, stat in PAIRED_METRICS.items()}
        return boot[folder, archs]

    rows = []
    for (benchmark, dataset, seed), members in _same_sample(runs, labels or {}).items():
        for run_a, run_b, what in _pairs(members):
            ra, rb = read(run_a.folder), read(run_b.folder)
            if ra is None or rb is None:
                continue
            archs = tuple(sorted(ra.index.intersection(rb.index)))
            row: dict[str, Any] = {"benchmark": benchmark, "dataset": dataset, "seed": seed, "comparison": what}
            row |= {"a": run_a.name, "b": run_b.name, "n": len(archs), "ndcg_k": metrics.ndcg_cutoff(len(archs))}
            if len(archs) >= 2:
                sa, sb = stats(run_a.folder, ra, archs), stats(run_b.folder, rb, archs)
                for name in PAIRED_METRICS:
                    (a, boot_a), (b, boot_b) = sa[name], sb[name]
                    row |= {f"{name}_a": a, f"{name}_b": b, f"{name}_diff": a - b}
                    row[f"{name}_diff_ci95"] = list(metrics.percentile_interval(boot_a - boot_b))
            rows.append(row)
    return pd.DataFrame(rows)


def paired_table(paired: pd.DataFrame) -> str:
    """``paired.md``: one row per comparison of :func:`paired_comparisons`, each difference as
    ``value [95% interval]``; an interval that excludes 0 says the two estimators are told apart on this sample."""
    header = ["benchmark", "dataset", "seed", "comparison", "A", "B", "n", "tau A", "tau B", "tau A - B", "nDCG A - B"]
    lines = [
        "Paired differences on the same architectures (A - B; 95 % paired bootstrap interval over the architectures "
        "both scored; nDCG at the share of the sample that VKDNW's 1,000 is of NB201's 15,625).",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for _, r in paired.iterrows():
        cells = [r["benchmark"], r["dataset"], str(r["seed"]), r["comparison"], r["a"], r["b"], str(r["n"])]
        cells += [
            "" if pd.isna(r.get("tau_a")) else f"{r['tau_a']:.3f}",
            "" if pd.isna(r.get("tau_b")) else f"{r['tau_b']:.3f}",
            _with_interval(r.get("tau_diff"), r.get("tau_diff_ci95"), "{:+.3f}"),
            _with_interval(r.get("ndcg_diff"), r.get("ndcg_diff_ci95"), "{:+.3f}"),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def regret_curves(
    runs: list[tuple[Path, dict[str, Any]]], problems: list[str], labels: dict[str, str] | None = None
) -> pd.DataFrame:
    """Per search run: its incumbent-regret curve read from ``records.csv`` (bad files go to ``problems``); its
    estimator named with its group's label (``labels``, by config id, as :func:`named`)."""
    rows = []
    for folder, s in runs:
        if s["task"] != "search":
            continue
        try:
            records = storage.read_records(folder)
            clock, reg = plots.incumbent_regret(records, float(s[_OPTIMUM]))
        except (OSError, ValueError, KeyError) as exc:
            problems.append(f"{folder / storage.RECORDS}: unreadable ({type(exc).__name__}: {exc})")
            continue
        if len(clock):
            label = (labels or {}).get(identity.config_id(s.get("config", {})), "")
            rows.append(
                {k: s[k] for k in ("benchmark", "dataset", "searcher", _UNIT)}
                | {"estimator": named(s["estimator"], label), "clock": clock, "regret": reg}
            )
    return pd.DataFrame(rows)


def _save(fig: Any, out: Path, name: str) -> list[Path]:
    paths = [out / f"{name}.png", out / f"{name}.pdf"]
    for path in paths:
        fig.savefig(path, dpi=130)
    return paths


def write_report(results: Path, out: Path) -> tuple[list[Path], list[str], str]:
    """Write the tables and figures; returns (files written, problems, the aggregate table as text)."""
    runs, problems = storage.load_runs(results)
    if not runs:
        return [], problems, ""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    rows = aggregate(s for _, s in runs)
    labels = {r["config_id"]: r["config"] for r in rows}
    table = summaries_frame(runs, labels)
    table.to_csv(out / "summary.csv", index=False)
    pd.DataFrame(rows).to_csv(out / "aggregate.csv", index=False)
    written += [out / "summary.csv", out / "aggregate.csv"]
    if len(table):
        table = table.assign(estimator=[named(e, c) for e, c in zip(table["estimator"], table["config"], strict=True)])
    rank = table[table["task"] == "rank"] if len(table) else table
    search = table[table["task"] == "search"] if len(table) else table
    if len(rank) and _TAU in rank:
        scored = rank.dropna(subset=[_TAU])
        (out / "rank.md").write_text(rank_table(scored))
        written += [out / "rank.md", *_save(plots.fig1a(scored), out, "fig1a")]
        paired = paired_comparisons(runs, problems, labels)
        if len(paired):
            paired.to_csv(out / "paired.csv", index=False)
            (out / "paired.md").write_text(paired_table(paired))
            written += [out / "paired.md", out / "paired.csv"]
    if len(search):
        written += _save(plots.fig1b(search.dropna(subset=[_ANSWER])), out, "fig1b")
        curves = regret_curves(runs, problems, labels)
        if len(curves):
            written += _save(plots.regret(curves), out, "regret")
    return written, problems, format_table(rows) if rows else ""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.report", description=__doc__.splitlines()[0])
    parser.add_argument("results_dir", type=Path, help="folder searched recursively for finished runs")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: RESULTS_DIR/report)")
    args = parser.parse_args(argv)
    if not args.results_dir.is_dir():
        print(f"error: {args.results_dir} is not a folder", file=sys.stderr)
        return 2
    if args.out is not None and args.out.exists() and not args.out.is_dir():
        print(f"error: --out {args.out} is a file, not a folder; name a folder (made if missing)", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    out = args.out or args.results_dir / "report"
    try:
        written, problems, table = write_report(args.results_dir, out)
    except OSError as exc:  # --out inside a file, or not writable
        reason = exc.strerror or exc
        print(f"error: cannot write the report into {out}: {reason}; choose another --out", file=sys.stderr)
        return 2
    if problems:
        print(storage.describe_problems(problems), file=sys.stderr)
    if not table:
        print(f"error: no finished runs (summary.json) under {args.results_dir}", file=sys.stderr)
        return 2
    print(table)
    print(f"wrote {', '.join(str(p) for p in written)} in {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
