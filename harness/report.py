"""``python -m harness.report RESULTS_DIR [--out DIR]``: tables and figures from stored runs only.

Writes into ``--out`` (default ``RESULTS_DIR/report``): ``summary.csv`` (one row per run), ``aggregate.csv`` (mean,
std, n per group), ``rank.md`` (rank runs: tau and the top-of-space metrics with their intervals, and the cost),
and ``fig1a``, ``fig1b``, ``regret`` as PNG and PDF (each only when there are runs for it).
Runs are grouped by their defining config, as :mod:`harness.aggregate` groups them: in the tables and figures an
estimator of a config that differs from another's is named with how it differs (``train12 [population_size=5]``).
Unreadable or foreign files are named and skipped; the report goes on.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from harness import identity, plots, storage
from harness.aggregate import aggregate, format_table


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


#: the columns of ``rank.md``: (summary key, header, format of the value and of its interval)
RANK_COLUMNS = (
    ("kendall_tau_test", "tau (test)", "{:.3f}"),
    ("top5_precision_test", "precision@5% (test)", "{:.2f}"),
    ("top10_precision_test", "precision@10% (test)", "{:.2f}"),
    ("top1_regret_test", "top-1 regret (test)", "{:.2f}"),
    ("vote_answer_valid_acc", "vote answer: valid acc.", "{:.2f}"),
    ("vote_answer_test_acc", "vote answer: test acc.", "{:.2f}"),
)


def rank_table(rank: pd.DataFrame) -> str:
    """A markdown table, one row per rank run (best tau first within a benchmark and dataset): each metric of
    :data:`RANK_COLUMNS` as ``value [95% interval]``, then the cost of scoring the sample and its unit."""
    header = ["benchmark", "dataset", "estimator", "seed", "n", *(h for _, h, _ in RANK_COLUMNS), "cost (s)", "unit"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    order = rank.sort_values(["benchmark", "dataset", "kendall_tau_test"], ascending=[True, True, False])
    for _, r in order.iterrows():
        cells = [r["benchmark"], r["dataset"], r["estimator"], str(r["seed"]), str(int(r["n_scored"]))]
        for key, _, fmt in RANK_COLUMNS:
            ci = r.get(f"{key}_ci95")
            value = r.get(key)
            if value is None or not isinstance(ci, list) or pd.isna(value):
                cells.append("")
                continue
            cells.append(f"{fmt.format(value)} [{fmt.format(ci[0])}, {fmt.format(ci[1])}]")
        cells += [f"{r['total_cost_s']:,.0f}", str(r["cost_unit"])]
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
            clock, reg = plots.incumbent_regret(records, float(s["optimum_test_acc"]))
        except (OSError, ValueError, KeyError) as exc:
            problems.append(f"{folder / storage.RECORDS}: unreadable ({type(exc).__name__}: {exc})")
            continue
        if len(clock):
            label = (labels or {}).get(identity.config_id(s.get("config", {})), "")
            rows.append(
                {k: s[k] for k in ("benchmark", "dataset", "searcher", "cost_unit")}
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
    if len(rank) and "kendall_tau_test" in rank:
        scored = rank.dropna(subset=["kendall_tau_test"])
        (out / "rank.md").write_text(rank_table(scored))
        written += [out / "rank.md", *_save(plots.fig1a(scored), out, "fig1a")]
    if len(search):
        written += _save(plots.fig1b(search.dropna(subset=["incumbent_test_acc"])), out, "fig1b")
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
