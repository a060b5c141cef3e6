"""``python -m harness.aggregate RESULTS_DIR``: mean +- std per group over every finished run below a folder.

A group is one experiment's runs of one defining config (:mod:`harness.identity`): every setting that can change
results but the seed. Two configs are never averaged into one row; each row is labelled by what differs between the
groups (``population_size=5``) and the config's id, which names its folder. Search runs report the test accuracy
of the final architecture, rank runs Kendall tau against test accuracy, or any numeric summary field (``--metric``).
Runs written before the id existed are grouped by the config their ``summary.json`` holds, the same way.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from harness import identity, storage
from harness.errors import ConfigError
from harness.metrics import mean_std
from harness.summaries import RankSummary, SearchSummary, interval_key, summary_key

_SEARCH_KEYS = ("experiment", "benchmark", "dataset", "searcher", "estimator")
_RANK_KEYS = ("experiment", "benchmark", "dataset", "estimator")
#: the headline metric of each task (a field of its summary record), and the cost and its unit (of both)
HEADLINE = {"search": summary_key("incumbent_test_acc", SearchSummary), "rank": interval_key("kendall_tau_test")}
_COST, _UNIT = (summary_key(k, SearchSummary, RankSummary) for k in ("total_cost_s", "cost_unit"))


def _settings(summary: Mapping[str, Any]) -> dict[str, Any]:
    """The defining config of a run without its seed, as (dotted key -> value)."""
    return {k: v for k, v in identity.flat(identity.defining(summary.get("config", {}))) if k != "seed"}


def group_labels(configs: Mapping[str, dict[str, Any]]) -> dict[str, str]:
    """For each config id, the settings in which its config (dotted key -> value) differs from another one of the
    same task, as ``key=value,...`` (a plug-in's keys compared only between configs of the same plug-in; the keys
    that name the plug-ins, task and benchmark left out, as the table shows them)."""
    labels = {}
    for cid, mine in configs.items():
        parts = []
        for key, value in mine.items():
            node = key.split(".")[0]
            if key in identity.IN_PATH:
                continue
            for other in configs.values():
                same_kind = other.get("task") == mine.get("task") and (
                    node not in identity.PLUGINS or other.get(f"{node}.name") == mine.get(f"{node}.name")
                )
                if same_kind and other.get(key, identity.MISSING) != value:
                    short = key.split(".", 1)[1] if node in (*identity.PLUGINS, "budget") else key
                    parts.append(f"{short}={identity.text(value)}")
                    break
        labels[cid] = ",".join(parts)
    return labels


def check_metric(summaries: Sequence[Mapping[str, Any]], metric: str) -> None:
    """A :class:`ConfigError` unless some run's summary holds ``metric`` and every summary that holds it holds a
    number there (or null, for a value it could not compute); it says how many runs lack it and which fields hold
    numbers. Runs that lack it (a search metric among rank runs) are left out by :func:`aggregate`."""
    lacking = [s for s in summaries if metric not in s]
    wrong = [s[metric] for s in summaries if metric in s and not _number_or_null(s[metric])]
    if len(lacking) < len(summaries) and not wrong:
        return
    numeric = sorted(k for k in set.intersection(*(set(s) for s in summaries)) if _numeric(summaries, k))
    hint = f"; fields that hold a number in every run: {', '.join(numeric)}" if numeric else ""
    if not wrong:
        raise ConfigError(f"--metric {metric}: all {len(summaries)} runs lack it{hint}")
    raise ConfigError(
        f"--metric {metric} is not a number in {len(wrong)} of {len(summaries)} runs (e.g. {wrong[0]!r}){hint}"
    )


def _number_or_null(value: Any) -> bool:
    return value is None or (isinstance(value, int | float) and not isinstance(value, bool))


def _numeric(summaries: Sequence[Mapping[str, Any]], key: str) -> bool:
    return all(_number_or_null(s[key]) for s in summaries) and any(s[key] is not None for s in summaries)


def aggregate(summaries: Iterable[dict[str, Any]], metric: str | None = None) -> list[dict[str, Any]]:
    """One row per group of run summaries (an experiment's runs of one defining config): its names, the config's
    id and label (:func:`group_labels`), n, and mean/std of the headline metric, or of the summary field ``metric``
    over the runs that hold it (checked by :func:`check_metric`; ``incumbent_valid_acc`` chooses settings without
    looking at test accuracy), and of the cost."""
    summaries = list(summaries)
    if metric is not None and summaries:
        check_metric(summaries, metric)
        summaries = [s for s in summaries if metric in s]
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
    configs: dict[str, dict[str, Any]] = {}
    for s in summaries:
        keys = _SEARCH_KEYS if s["task"] == "search" else _RANK_KEYS
        cid = identity.config_id(s.get("config", {}))
        configs.setdefault(cid, _settings(s))
        groups[(s["task"], *(s[k] for k in keys), cid)].append(s)
    labels = group_labels(configs)
    rows = []
    for key, runs in sorted(groups.items(), key=lambda kv: (*map(str, kv[0][:-1]), labels[kv[0][-1]], kv[0][-1])):
        task, cid = key[0], key[-1]
        field = metric or HEADLINE[task]
        mean, std, n = mean_std([r[field] if r.get(field) is not None else float("nan") for r in runs])
        cost_mean, cost_std, _ = mean_std([r[_COST] for r in runs])
        names = dict(zip(_SEARCH_KEYS if task == "search" else _RANK_KEYS, key[1:-1], strict=True))
        rows.append(
            {
                "task": task,
                **names,
                "config_id": cid,
                "config": labels[cid],
                "metric": field,
                "n": n,
                "mean": mean,
                "std": std,
                "cost_mean_s": cost_mean,
                "cost_std_s": cost_std,
                "cost_unit": runs[0].get(_UNIT, ""),
            }
        )
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    """Plain-text table of :func:`aggregate` rows, each column as wide as its longest entry; the last column is the
    config: its id, then its label."""
    names = ("task", "experiment", "benchmark", "dataset", "searcher", "estimator", "metric")
    header = [*names, "n", "mean +- std", "cost mean (s)", "cost unit", "config"]
    table = [header] + [
        [
            *(str(r.get(name, "-")) for name in names),
            str(r["n"]),
            f"{r['mean']:.3f} +- {r['std']:.3f}",
            f"{r['cost_mean_s']:.1f}",
            str(r["cost_unit"]),
            f"{r['config_id']} {r['config']}",
        ]
        for r in rows
    ]
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    right = {"n", "cost mean (s)"}
    return "\n".join(
        "  ".join(
            c.rjust(w) if h in right else c.ljust(w) for h, c, w in zip(header, line, widths, strict=True)
        ).rstrip()
        for line in table
    )


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
    lacking = sum(args.metric not in s for _, s in runs) if args.metric else 0
    if lacking and lacking < len(runs):
        print(f"note: {lacking} of {len(runs)} runs lack {args.metric} and are left out", file=sys.stderr)
    try:
        rows = aggregate((s for _, s in runs), args.metric)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not rows:
        print(f"error: no finished runs (summary.json) under {args.results_dir}", file=sys.stderr)
        return 2
    print(format_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
