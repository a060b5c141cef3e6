"""Official NB201 / NATS-Bench records -> the harness's table ``nb201.csv`` and its manifest.

The column mapping (the data README's), per dataset of the table: the validation numbers come from the
*validation key* (``cifar10-valid`` for cifar10: trained on 25k images; the dataset itself otherwise) at its
``x-valid`` set; the test numbers from the *test key* (``cifar10``: trained on train+valid, scored on ``ori-test``;
``x-test`` otherwise). The cifar10-valid run's ``ori-test`` is never used. Each accuracy is the last epoch's
(``eval_acc1es["<set>@<epochs-1>"]``), averaged over the seeds the record lists; the 200-epoch columns read the
``"200"`` schedule and the ``_12ep`` ones the ``"12"`` schedule. Costs are the validation key's at each
schedule: ``train_time`` = seed mean of the summed per-epoch training times, ``params`` (seed 888's where the
seeds disagree, as ``nats_bench`` fixes a legacy issue), ``latency`` = mean over the positive recorded latencies.
Numbers are written with 6 significant digits (``%g``), a seed that was not run as an empty cell.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from harness import paths
from harness.data.official import N_ARCHS, ArchRecord, Source
from harness.errors import DataFileError
from harness.paths import file_digest

#: bump when the table this writes would change for the same source
CONVERTER_VERSION = 1
COLUMNS = (
    "index", "arch", "dataset", "valid_acc", "test_acc", "valid_acc_12ep", "test_acc_12ep", "train_time_s",
    "train_time_12ep_s", "params_mb", "latency_s", "n_seeds", "valid_acc_seed0", "valid_acc_seed1", "valid_acc_seed2",
)  # fmt: skip
#: table dataset -> (validation key, its set, test key, its set)
SPLITS = {
    "cifar10": ("cifar10-valid", "x-valid", "cifar10", "ori-test"),
    "cifar100": ("cifar100", "x-valid", "cifar100", "x-test"),
    "ImageNet16-120": ("ImageNet16-120", "x-valid", "ImageNet16-120", "x-test"),
}
#: the seeds of valid_acc_seed0..2
SEEDS = (777, 888, 999)


def manifest_path(table: Path) -> Path:
    """The manifest beside a table: ``nb201.csv`` -> ``nb201.manifest.json``."""
    return table.with_name(f"{table.stem}.manifest.json")


def read_manifest(table: Path) -> dict[str, Any] | None:
    """The manifest of ``table`` (parsed and checked), or None when it has none (a table not made here)."""
    path = manifest_path(table)
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise DataFileError(f"{path} is not JSON ({exc}); convert the table again") from exc
    fields = {"partial": bool, "architectures": int, "table_sha256": str}
    if not isinstance(manifest, dict) or any(not isinstance(manifest.get(k), t) for k, t in fields.items()):
        raise DataFileError(f"{path} lacks {', '.join(fields)}; convert the table again")
    return manifest


def rows(record: ArchRecord) -> dict[str, list[str]]:
    """The table's row of ``record`` for each dataset, as CSV cells in :data:`COLUMNS` order."""
    try:
        return {dataset: _row(record, dataset) for dataset in SPLITS}
    except (KeyError, TypeError, ValueError, IndexError, ZeroDivisionError) as exc:
        raise DataFileError(
            f"{record.origin}: the record of architecture {record.index} lacks {type(exc).__name__}: {exc} "
            "(not the official layout: each schedule has all_results[(dataset, seed)] with eval_acc1es, train_times, "
            "params and latency for the seeds dataset_seed lists)"
        ) from exc


def _row(record: ArchRecord, dataset: str) -> list[str]:
    valid_key, valid_set, test_key, test_set = SPLITS[dataset]
    full, short = record.schedules["200"], record.schedules["12"]
    valid_runs = _runs(full, valid_key)
    per_seed = {
        seed: _final(run, valid_set) for seed, run in zip(full["dataset_seed"][valid_key], valid_runs, strict=True)
    }
    values: list[float] = [
        _mean([_final(r, valid_set) for r in valid_runs]),
        _mean([_final(r, test_set) for r in _runs(full, test_key)]),
        _mean([_final(r, valid_set) for r in _runs(short, valid_key)]),
        _mean([_final(r, test_set) for r in _runs(short, test_key)]),
        _mean([sum(r["train_times"].values()) for r in valid_runs]),
        _mean([sum(r["train_times"].values()) for r in _runs(short, valid_key)]),
        _params(valid_runs, full["dataset_seed"][valid_key]),
        _latency(valid_runs),
    ]
    seeds = [_cell(per_seed.get(seed, math.nan)) for seed in SEEDS]
    return [str(record.index), record.arch, dataset, *map(_cell, values), str(len(valid_runs)), *seeds]


def _runs(schedule: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    """The results of ``key``'s runs, in the order of the seeds the schedule lists."""
    return [schedule["all_results"][(key, seed)] for seed in schedule["dataset_seed"][key]]


def _final(run: Mapping[str, Any], eval_set: str) -> float:
    """Top-1 accuracy on ``eval_set`` after the run's last epoch."""
    return float(run["eval_acc1es"][f"{eval_set}@{int(run['epochs']) - 1}"])


def _mean(values: Sequence[float]) -> float:
    return float(sum(values) / len(values))


def _params(runs: Sequence[Mapping[str, Any]], seeds: Sequence[int]) -> float:
    values = [float(r["params"]) for r in runs]
    if len({f"{v:.5f}" for v in values}) > 1:  # the runs disagree: nats_bench takes seed 888's
        return values[list(seeds).index(888)]
    return _mean(values)


def _latency(runs: Sequence[Mapping[str, Any]]) -> float:
    per_run = [_mean([float(x) for x in r["latency"]]) for r in runs if r.get("latency")]
    positive = [x for x in per_run if x > 0]
    return _mean(positive) if positive else math.nan


def _cell(value: float) -> str:
    return "" if math.isnan(value) else f"{value:g}"


def convert(source: Source, out: Path, *, allow_partial: bool = False) -> dict[str, Any]:
    """Write the table of ``source`` to ``out`` and its manifest beside it; return the manifest.

    Records are read one at a time; the table's rows (dataset by dataset, each in index order) are kept as CSV text.
    A source missing architectures is refused unless ``allow_partial`` (a directory's before its records are read,
    a single file's once they are); the manifest then says ``partial``.
    """
    if source.present is not None:
        _refuse_partial(source, allow_partial)
    lines: dict[str, list[tuple[int, str]]] = {d: [] for d in SPLITS}  # dataset -> (index, CSV line)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    for record in source.records():
        for dataset, row in rows(record).items():
            buffer.seek(0)
            buffer.truncate()
            writer.writerow(row)
            lines[dataset].append((record.index, buffer.getvalue()))
    missing = _refuse_partial(source, allow_partial)
    buffer.seek(0)
    buffer.truncate()
    writer.writerow(COLUMNS)
    data = "".join([buffer.getvalue(), *(line for d in SPLITS for _, line in sorted(lines[d]))]).encode()
    out.parent.mkdir(parents=True, exist_ok=True)
    paths.write_atomic(out, lambda fh: fh.write(data))
    n_archs = N_ARCHS - len(missing)
    manifest = {
        "table": out.name,
        "table_sha256": file_digest(out),
        "rows": n_archs * len(SPLITS),
        "architectures": n_archs,
        "of": N_ARCHS,
        "partial": bool(missing),
        "source": {"name": source.path.name, "layout": source.layout, **source.checksum()},
        "converter": "harness.data.convert",
        "converter_version": CONVERTER_VERSION,
    }
    body = (json.dumps(manifest, indent=1) + "\n").encode()
    paths.write_atomic(manifest_path(out), lambda fh: fh.write(body))
    return manifest


def _refuse_partial(source: Source, allow_partial: bool) -> list[int]:
    """The indexes ``source`` lacks; a :class:`DataFileError` if it lacks any and that is not allowed."""
    missing = source.missing()
    if missing and not allow_partial:
        raise DataFileError(
            f"{source.path} holds the records of {N_ARCHS - len(missing):,} of the {N_ARCHS:,} architectures "
            f"(missing: {source.record_name(missing[0])}{f' and {len(missing) - 1:,} more' if len(missing) > 1 else ''}"
            "); use the whole release, or pass --allow-partial for a table the harness refuses unless "
            "benchmark.allow_partial=true"
        )
    return missing
