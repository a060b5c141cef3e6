"""Flat files for results: ``records.csv`` (one row per evaluation) and ``summary.json`` per run. No pickles.

A run folder is complete when its ``summary.json`` exists: it is written last, atomically. While a run is in
progress, ``started.json`` holds its config (from its first evaluation on) and every finished evaluation is
appended to ``records.csv`` and flushed (:class:`RecordLog`), so an interrupted run keeps them and the next one
resumes from them. While a process runs a folder it holds the folder's lock (:func:`hold_run`), so a second live
process never writes there.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import fcntl
import io
import json
import math
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from harness import paths
from harness.errors import ConfigError, RunFolderBusy, StateFileError
from harness.summaries import RankSummary, RunInfo, SearchSummary, summary_key
from harness.types import RECORD_COLUMNS, EvalRecord, RunResult

RECORDS = "records.csv"
SUMMARY = "summary.json"
STARTED = "started.json"
LOCK = "run.lock"


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


def start_run(folder: Path, config: dict[str, Any], score_key: str = "") -> tuple[list[EvalRecord], str | None]:
    """What ``folder`` holds for a run of ``config``: the evaluations an interrupted run of the same config left in
    ``records.csv`` (complete lines only) and the time it started, or ``([], None)`` for a fresh start, which
    writes nothing (:func:`mark_started` does, once the run is under way). A run of another config in progress
    there is a :class:`ConfigError`, and so is one whose live estimator computed its scores with another
    ``score_key`` (another code, torch, CPU kernel set, thread count or data: a resume would mix two kinds of
    score in one run); unreadable state files a :class:`StateFileError`."""
    started = folder / STARTED
    if not started.is_file():
        (folder / RECORDS).unlink(missing_ok=True)  # records without started.json: from before; start afresh
        return [], None
    previous = _read_json(started)
    if previous.get("config") != _json_safe(config):
        raise ConfigError(
            f"{folder} holds an unfinished run of another config ({started}); choose another experiment_name or "
            "results_dir, or delete that folder"
        )
    before = previous.get("score_key", "")
    if before != score_key:
        old, new = (json.loads(k) if k else {} for k in (before, score_key))
        differ = ", ".join(
            f"{k} {old.get(k)!r} -> {new.get(k)!r}" for k in sorted(old.keys() | new.keys()) if old.get(k) != new.get(k)
        )
        raise ConfigError(
            f"{folder} holds an unfinished run whose scores were computed otherwise ({differ}); resume it as it "
            "started (e.g. the same threads= on the same kind of machine), or delete that folder to start afresh"
        )
    return read_partial_records(folder / RECORDS), previous.get("started_utc")


def mark_started(folder: Path, config: dict[str, Any], started_utc: str, score_key: str = "") -> None:
    """Write ``started.json`` (``config``, ``started_utc`` and a live estimator's ``score_key``) into ``folder``
    unless it is there: from now on its ``records.csv`` is resumed by a run of ``config`` and ``score_key`` and
    refused by any other. Called once the run is under way (its plug-ins built and fitted), so a start that fails
    leaves nothing that stops the corrected command."""
    path = folder / STARTED
    if not path.is_file():
        state = {"config": config, "started_utc": started_utc, "score_key": score_key}
        text = json.dumps(_json_safe(state), indent=2, sort_keys=True)
        paths.write_atomic(path, lambda f: f.write(text.encode() + b"\n"))


def read_partial_records(path: Path) -> list[EvalRecord]:
    """The complete rows of a ``records.csv`` being written, one per step (a last line cut by a kill is dropped, and
    so is a repeated row of a step that earlier versions appended again on resume)."""
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
    records: list[EvalRecord] = []
    for number, row in enumerate(rows[1:], start=2):
        try:
            record = _record(dict(zip(header, row, strict=True)))
        except (ValueError, KeyError) as exc:
            raise StateFileError(
                f"{path}, line {number}, is not a record ({type(exc).__name__}: {exc}); delete its folder to run it "
                "again"
            ) from exc
        if record.step < len(records) and record.arch == records[record.step].arch:
            continue  # a replayed row that earlier versions appended again on resume
        if record.step != len(records):
            raise StateFileError(
                f"{path}, line {number}, records step {record.step} after step {len(records) - 1}; delete its "
                "folder to run it again"
            )
        records.append(record)
    return records


def _record(row: dict[str, str]) -> EvalRecord:
    return EvalRecord(
        step=int(row["step"]),
        arch=row["arch"],
        score=float(row["score"]),
        cost_s=float(row["cost_s"]),
        clock_s=float(row["clock_s"]),
        wall_s=float(row["wall_s"]),
        device=row["device"],
        status=row["status"],
        reason=row["reason"],
        test_acc=float(row["test_acc"]),
        answer=row.get("answer", ""),
        answer_test_acc=float(row.get("answer_test_acc", "nan")),
    )


class RecordLog:
    """The ``records.csv`` of a run in progress: starts with the ``kept`` records (steps 0..n-1), then every record
    of a later step appended and flushed as it comes (``log(record)``), so that a killed process loses no finished
    evaluation. A record of a step the file holds (a resumed run replaying its kept records) is not written again:
    a run interrupted any number of times, replay included, holds each step once."""

    def __init__(self, folder: Path, kept: list[EvalRecord]) -> None:
        path = folder / RECORDS
        rows = [RECORD_COLUMNS, *(record_row(r) for r in kept)]
        paths.write_atomic(path, lambda f: f.write(_csv_lines(rows).encode()))
        self.held = len(kept)
        self._handle = open(path, "a", newline="")  # noqa: SIM115 - closed by close()

    def __call__(self, record: EvalRecord) -> None:
        if record.step < self.held:
            return  # replayed: already in the file
        self._handle.write(_csv_lines([record_row(record)]))  # one write per row: a signal never splits it
        self._handle.flush()
        self.held = record.step + 1

    def close(self) -> None:
        self._handle.close()


@contextlib.contextmanager
def hold_run(folder: Path) -> Iterator[None]:
    """Hold the exclusive lock of run folder ``folder`` (created) while the block runs.

    The lock is an advisory ``flock`` on ``folder/run.lock``, which holds the holder's pid, host and start time.
    It is the open file that locks, not the file's existence: the lock ends with the block, on an exception or a
    signal too, and with the process whatever kills it, so a dead process never leaves a folder locked. If another
    process holds it, :class:`RunFolderBusy` names that process and nothing is written.
    """
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK
    fd = _lock(path)
    try:
        yield
    finally:
        try:
            if _same_file(fd, path):  # removed while still held, so a waiting process cannot lock a removed file
                path.unlink()
        finally:
            os.close(fd)


def _lock(path: Path) -> int:
    """An open descriptor of ``path`` holding its lock, with this process's line written into it."""
    for _ in range(100):
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if _same_file(fd, path):
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"{os.getpid()} {socket.gethostname()} {_now()}\n".encode(), 0)
                return fd
        except BlockingIOError:
            try:
                holder = os.pread(fd, 512, 0).decode(errors="replace").split()
            finally:
                os.close(fd)
            raise RunFolderBusy(_busy(path, holder)) from None
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)  # its holder removed it as it finished: lock the file now at that path
    raise StateFileError(f"{path} keeps being replaced by other processes; run this command again")


def _busy(path: Path, holder: list[str]) -> str:
    pid, host, since = (*holder, "?", "?", "?")[:3]  # "?" while the holder is still writing its line
    return (
        f"{path.parent} is being run by another process (pid {pid} on {host}, since {since}; see {path}); this "
        f"process leaves it alone: wait for that one to finish, or end it (kill {pid}) and run this command again "
        "to resume it"
    )


def _same_file(fd: int, path: Path) -> bool:
    try:
        here, held = os.stat(path), os.fstat(fd)
    except FileNotFoundError:
        return False
    return (here.st_dev, here.st_ino) == (held.st_dev, held.st_ino)


def _csv_lines(rows: list[tuple[Any, ...]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue()


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


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


#: keys every summary.json has (what ran, fields of :class:`~harness.summaries.RunInfo`, then the loop's cost, a
#: field of both summary records), and the extra ones of each task
_REQUIRED = (
    *(summary_key(k, RunInfo) for k in ("task", "experiment", "benchmark", "dataset", "estimator", "seed")),
    *(summary_key(k, SearchSummary, RankSummary) for k in ("total_cost_s", "cost_unit")),
)
_REQUIRED_BY_TASK = {
    "search": (
        summary_key("searcher", RunInfo),
        *(summary_key(k, SearchSummary) for k in ("incumbent_test_acc", "optimum_test_acc")),
    ),
    "rank": (summary_key("n_archs", RankSummary),),
}


def load_runs(root: str | os.PathLike[str]) -> tuple[list[tuple[Path, dict[str, Any]]], list[str]]:
    """Every finished run under ``root`` as (folder, summary), and one message per ``summary.json`` that is
    unreadable, truncated or not a harness summary, or a second copy of a run already found (the same experiment,
    plug-ins, defining config and seed, as a folder of the layout before run ids and its rerun now): those are
    skipped, never fatal, so no run counts twice."""
    from harness.identity import config_id  # here: it imports Hydra, which reading a file does not need

    runs: list[tuple[Path, dict[str, Any]]] = []
    problems: list[str] = []
    seen: dict[tuple[Any, ...], Path] = {}
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
        names = tuple(summary.get(k) for k in ("experiment", "task", "benchmark", "dataset", "searcher", "estimator"))
        key = (*names, config_id(summary.get("config", {})), summary["seed"])
        if key in seen:
            problems.append(f"{folder}: the same run (config {key[-2]}, seed {key[-1]}) as {seen[key]}, counted once")
            continue
        seen[key] = folder
        runs.append((folder, summary))
    return runs, problems


def describe_problems(problems: list[str], show: int = 5) -> str:
    """A short report of skipped files: the first ``show`` by name, then a count."""
    lines = [f"skipped {p}" for p in problems[:show]]
    if len(problems) > show:
        lines.append(f"... and {len(problems) - show} more skipped summary files")
    return "\n".join(lines)
