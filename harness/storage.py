"""Flat files for results: ``records.csv`` (one row per evaluation) and ``summary.json`` per run. No pickles.

A run folder is complete when its ``summary.json`` exists: it is written last, atomically. While a run is in
progress, ``started.json`` holds its config and every finished evaluation is appended to ``records.csv`` and
flushed (:class:`RecordLog`), so an interrupted run keeps them and the next one resumes from them.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from harness import paths
from harness.errors import ConfigError, StateFileError
from harness.types import RECORD_COLUMNS, EvalRecord, RunResult

RECORDS = "records.csv"
SUMMARY = "summary.json"
STARTED = "started.json"


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
    rows = [RECORD_COLUMNS, *(record_row(r) for r in result.records)]
    paths.write_atomic(out / RECORDS, lambda f: f.write(_csv_lines(rows).encode()))
    text = json.dumps(_json_safe(result.summary), indent=2, sort_keys=True) + "\n"
    paths.write_atomic(out / SUMMARY, lambda f: f.write(text.encode()))
    (out / STARTED).unlink(missing_ok=True)
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
    """The ``summary.json`` of a run folder; a :class:`StateFileError` naming it when it is unreadable, truncated
    or not a JSON object."""
    return _read_json(Path(folder) / SUMMARY)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        with open(path) as fh:
            data = json.load(fh)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise StateFileError(
            f"{path} is unreadable or truncated ({type(exc).__name__}: {exc}); delete its folder to run it again"
        ) from exc
    if not isinstance(data, dict):
        raise StateFileError(
            f"{path} holds {type(data).__name__}, not a JSON object; delete its folder to run it again"
        )
    return data


# ------------------------------------------------------------------------------------------- runs in progress


def start_run(folder: Path, config: dict[str, Any]) -> tuple[list[EvalRecord], str | None]:
    """Prepare ``folder`` for a run of ``config``: the evaluations an interrupted run of the same config left in
    ``records.csv`` (complete lines only) and the time it started, or nothing for a fresh start. A run of another
    config in progress there is a :class:`ConfigError`; unreadable state files a :class:`StateFileError`."""
    folder.mkdir(parents=True, exist_ok=True)
    started = folder / STARTED
    if not started.is_file():
        text = json.dumps(_json_safe({"config": config, "started_utc": _now()}), indent=2, sort_keys=True)
        paths.write_atomic(started, lambda f: f.write(text.encode() + b"\n"))
        (folder / RECORDS).unlink(missing_ok=True)  # records without started.json: from before; start afresh
        return [], None
    previous = _read_json(started)
    if previous.get("config") != _json_safe(config):
        raise ConfigError(
            f"{folder} holds an unfinished run of another config ({started}); choose another experiment_name or "
            "results_dir, or delete that folder"
        )
    return read_partial_records(folder / RECORDS), previous.get("started_utc")


def read_partial_records(path: Path) -> list[EvalRecord]:
    """The complete rows of a ``records.csv`` being written (a last line cut by a kill is dropped)."""
    if not path.is_file():
        return []
    text = path.read_text(errors="replace")
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines = lines[:-1]
    rows = list(csv.reader(lines))
    if not rows:
        return []
    header = tuple(rows[0])
    if header != RECORD_COLUMNS[: len(header)] or len(header) < RECORD_COLUMNS.index("test_acc") + 1:
        raise StateFileError(f"{path} has no records.csv header; delete its folder to run it again")
    records = []
    for number, row in enumerate(rows[1:], start=2):
        try:
            records.append(_record(dict(zip(header, row, strict=True))))
        except (ValueError, KeyError) as exc:
            raise StateFileError(
                f"{path}, line {number}, is not a record ({type(exc).__name__}: {exc}); delete its folder to run it "
                "again"
            ) from exc
    return records


def _record(row: dict[str, str]) -> EvalRecord:
    floats = {k: float(row[k]) for k in ("score", "cost_s", "clock_s", "wall_s", "test_acc")}
    extra = {"answer": row.get("answer", ""), "answer_test_acc": float(row.get("answer_test_acc", "nan"))}
    return EvalRecord(
        int(row["step"]),
        row["arch"],
        device=row["device"],
        status=row["status"],
        reason=row["reason"],
        **floats,
        **extra,
    )


class RecordLog:
    """The ``records.csv`` of a run in progress: starts with the ``kept`` records, then every record appended and
    flushed as it comes (``log(record)``), so that a killed process loses no finished evaluation."""

    def __init__(self, folder: Path, kept: list[EvalRecord]) -> None:
        path = folder / RECORDS
        rows = [RECORD_COLUMNS, *(record_row(r) for r in kept)]
        paths.write_atomic(path, lambda f: f.write(_csv_lines(rows).encode()))
        self._handle = open(path, "a", newline="")  # noqa: SIM115 - closed by close()

    def __call__(self, record: EvalRecord) -> None:
        self._handle.write(_csv_lines([record_row(record)]))  # one write per row: a signal never splits it
        self._handle.flush()

    def close(self) -> None:
        self._handle.close()


def _csv_lines(rows: list[tuple[Any, ...]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue()


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


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
        except StateFileError as exc:
            problems.append(str(exc))
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
