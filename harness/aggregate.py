"""``python -m harness.aggregate RESULTS_DIR``: mean +- std per group over every finished run below a folder.

Search runs are grouped by (experiment, benchmark, dataset, searcher, estimator) and report the test accuracy of the
final architecture; rank runs by (experiment, benchmark, dataset, estimator) and report Kendall tau against test
accuracy.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from harness import storage
from harness.metrics import mean_std

_SEARCH_KEYS = ("experiment", "benchmark", "dataset", "searcher", "estimator")
_RANK_KEYS = ("experiment", "benchmark", "dataset", "estimator")


def aggregate(summaries: Iterable[dict[str, Any]], metric: str | None = None) -> list[dict[str, Any]]:
    """One row per group of run summaries: its keys, n, and mean/std of the headline metric (or of the summary
    field ``metric``: ``incumbent_valid_acc`` to choose settings without looking at test accuracy) and of the
    cost."""
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
    for s in summaries:
        keys = _SEARCH_KEYS if s["task"] == "search" else _RANK_KEYS
        groups[(s["task"], *(s[k] for k in keys))].append(s)
    rows = []
    for key, runs in sorted(groups.items(), key=lambda kv: tuple(map(str, kv[0]))):
        task = key[0]
        field = metric or ("incumbent_test_acc" if task == "search" else "kendall_tau_test")
        mean, std, n = mean_std([r[field] if r.get(field) is not None else float("nan") for r in runs])
        cost_mean, cost_std, _ = mean_std([r["total_cost_s"] for r in runs])
        names = dict(zip(_SEARCH_KEYS if task == "search" else _RANK_KEYS, key[1:], strict=True))
        rows.append(
            {
                "task": task,
                **names,
                "metric": field,
                "n": n,
                "mean": mean,
                "std": std,
                "cost_mean_s": cost_mean,
                "cost_std_s": cost_std,
                "cost_unit": runs[0].get("cost_unit", ""),
            }
        )
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    """Plain-text table of :func:`aggregate` rows."""
    lines = [
        f"{'task':<7}{'experiment':<16}{'benchmark':<10}{'dataset':<16}{'searcher':<10}{'estimator':<12}{'metric':<22}"
        f"{'n':>5}  {'mean +- std':<18}{'cost mean (s)':>14}  cost unit"
    ]
    for r in rows:
        lines.append(
            f"{r['task']:<7}{r['experiment']:<16}{r['benchmark']:<10}{r['dataset']:<16}"
            f"{str(r.get('searcher', '-')):<10}"
            f"{r['estimator']:<12}{r['metric']:<22}{r['n']:>5}  {r['mean']:7.3f} +- {r['std']:<7.3f}"
            f"{r['cost_mean_s']:>14.1f}  {r['cost_unit']}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.aggregate", description=__doc__.splitlines()[0])
    parser.add_argument("results_dir", help="folder searched recursively for finished runs (summary.json)")
    parser.add_argument("--metric", help="summary field to average (default: test accuracy of the answer, or tau)")
    args = parser.parse_args(argv)
    if not Path(args.results_dir).is_dir():
        print(f"error: {args.results_dir} is not a folder", file=sys.stderr)
        return 2
    runs, problems = storage.load_runs(args.results_dir)
    if problems:
        print(storage.describe_problems(problems), file=sys.stderr)
    rows = aggregate((s for _, s in runs), args.metric)
    if not rows:
        print(f"error: no finished runs (summary.json) under {args.results_dir}", file=sys.stderr)
        return 2
    print(format_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
