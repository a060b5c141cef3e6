"""Flat files for results: ``records.csv`` (one row per evaluation) and ``summary.json`` per run. No pickles.

A run folder is complete when its ``summary.json`` exists: it is written last, atomically.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from harness import paths
from harness.types import RECORD_COLUMNS, EvalRecord, RunResult

RECORDS = "records.csv"
SUMMARY = "summary.json"


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def write_run(folder: str | os.PathLike[str], result: RunResult) -> Path:
    """Write ``records.csv`` then ``summary.json`` into ``folder`` (created); returns the folder."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / RECORDS, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(RECORD_COLUMNS)
        writer.writerows(record_row(r) for r in result.records)
    text = json.dumps(_json_safe(result.summary), indent=2, sort_keys=True) + "\n"
    paths.write_atomic(out / SUMMARY, lambda f: f.write(text.encode()))
    return out


def record_row(r: EvalRecord) -> tuple[Any, ...]:
    """One ``records.csv`` row in :data:`~harness.types.RECORD_COLUMNS` order; floats written exactly (``repr``)."""
    return (
        r.step,
        r.arch,
        repr(r.score),
        repr(r.cost_s),
        repr(r.clock_s),
        f"{r.wall_s:.3f}",
        r.device,
        r.status,
        r.reason,
        repr(r.test_acc),
        r.answer,
        repr(r.answer_test_acc),
    )


def read_summary(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``summary.json`` of a run folder."""
    with open(Path(folder) / SUMMARY) as fh:
        data: dict[str, Any] = json.load(fh)
    return data


def read_records(folder: str | os.PathLike[str]) -> Any:
    """The ``records.csv`` of a run folder as a pandas DataFrame."""
    import pandas as pd

    return pd.read_csv(Path(folder) / RECORDS, keep_default_na=False, na_values=["nan"])


def is_complete(folder: str | os.PathLike[str]) -> bool:
    """True when the run in ``folder`` finished (its ``summary.json`` exists)."""
    return (Path(folder) / SUMMARY).is_file()


def find_runs(root: str | os.PathLike[str]) -> Iterator[Path]:
    """Every complete run folder under ``root`` (recursively), in sorted order."""
    for path in sorted(Path(root).rglob(SUMMARY)):
        yield path.parent


#: keys every summary.json has, and the extra ones of each task
_REQUIRED = ("task", "experiment", "benchmark", "dataset", "estimator", "seed", "total_cost_s", "cost_unit")
_REQUIRED_BY_TASK = {"search": ("searcher", "incumbent_test_acc", "optimum_test_acc"), "rank": ("n_archs",)}


def load_runs(root: str | os.PathLike[str]) -> tuple[list[tuple[Path, dict[str, Any]]], list[str]]:
    """Every finished run under ``root`` as (folder, summary), and one message per ``summary.json`` that is
    unreadable, truncated or not a harness summary (those are skipped, never fatal)."""
    runs: list[tuple[Path, dict[str, Any]]] = []
    problems: list[str] = []
    for folder in find_runs(root):
        try:
            summary = read_summary(folder)
        except (OSError, ValueError) as exc:
            problems.append(f"{folder / SUMMARY}: unreadable ({type(exc).__name__}: {exc})")
            continue
        if not isinstance(summary, dict):
            problems.append(f"{folder / SUMMARY}: not a run summary (a JSON object is expected)")
            continue
        task = summary.get("task")
        missing = [k for k in (*_REQUIRED, *_REQUIRED_BY_TASK.get(str(task), ())) if k not in summary]
        if task not in _REQUIRED_BY_TASK or missing:
            problems.append(f"{folder / SUMMARY}: not a harness run summary (missing {', '.join(missing) or 'task'})")
            continue
        runs.append((folder, summary))
    return runs, problems


def describe_problems(problems: list[str], show: int = 5) -> str:
    """A short report of skipped files: the first ``show`` by name, then a count."""
    lines = [f"skipped {p}" for p in problems[:show]]
    if len(problems) > show:
        lines.append(f"... and {len(problems) - show} more skipped summary files")
    return "\n".join(lines)
