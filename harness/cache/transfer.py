"""Scores between machines: ``python -m harness.cache export|import FILE`` (CSV files, refused whole when a key
is not this checkout's)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from harness import paths
from harness.cache.backends import EXPORT_COLUMNS, ScoreCache, open_cache
from harness.cache.keys import estimator_key
from harness.errors import ConfigError


def export_scores(cache: ScoreCache, path: Path, estimator: str | None = None) -> int:
    """Write the cache's rows (of one estimator key) to a CSV file, atomically; returns the number of rows."""
    import csv
    import io

    rows = cache.rows(estimator)
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(EXPORT_COLUMNS)
    writer.writerows((*row[:5], repr(row[5]), repr(row[6]), row[7], repr(row[8])) for row in rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    paths.write_atomic(path, lambda f: f.write(text.getvalue().encode()))
    return len(rows)


def read_scores(path: Path) -> list[tuple[Any, ...]]:
    """The rows of an exported score file, checked: a :class:`~harness.errors.DataFileError` naming the file and
    the first bad line for a missing column, a malformed value or a non-finite score."""
    import csv

    from harness.errors import DataFileError

    try:
        with path.open(newline="") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            lines = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataFileError(f"cannot read score file {path} ({type(exc).__name__}: {exc})") from exc
    if header is None or tuple(header) != EXPORT_COLUMNS:
        raise DataFileError(
            f"score file {path} must start with the header {','.join(EXPORT_COLUMNS)} "
            f"(written by `python -m harness.cache export`), got {header}"
        )
    rows = []
    for number, line in enumerate(lines, start=2):
        try:
            if len(line) != len(EXPORT_COLUMNS):
                raise ValueError(f"{len(line)} fields, expected {len(EXPORT_COLUMNS)}")
            estimator, benchmark, dataset, arch, seed, score, cost, device, created = line
            json.loads(estimator)
            row = (estimator, benchmark, dataset, arch, int(seed), float(score), float(cost), device, float(created))
            if not (math.isfinite(row[5]) and math.isfinite(row[6]) and row[6] >= 0 and all(row[1:4])):
                raise ValueError("a non-finite score, a negative or non-finite cost, or an empty field")
        except ValueError as exc:
            raise DataFileError(f"score file {path}, line {number}: {exc}; nothing was imported") from exc
        rows.append(row)
    return rows


def check_key(key: str, benchmark: str, data_dir: str | None) -> None:
    """Raise :class:`~harness.errors.ConfigError` unless this checkout computes the scores of ``key`` on
    ``benchmark`` with the same code, torch and data files (the key would then be the same)."""
    from hydra.utils import instantiate

    from harness.config import compose
    from harness.experiment import build

    stored = json.loads(key)
    params = {k: v for k, v in stored.items() if k not in ("code", "torch", "device", "data")}
    try:
        estimator = instantiate(params)
        _, make_benchmark = build(compose([f"benchmark={benchmark}"]).benchmark)
    except Exception as exc:  # noqa: BLE001 - an unknown target or benchmark is a file from another version
        raise ConfigError(f"scores of an estimator this checkout cannot build ({type(exc).__name__}: {exc})") from exc
    mine = json.loads(
        estimator_key(
            params, estimator, space=make_benchmark().space, device=stored.get("device", "cpu"), data_dir=data_dir
        )
    )
    differ = sorted(k for k in mine.keys() | stored.keys() if mine.get(k) != stored.get(k))
    if differ:
        detail = "; ".join(f"{k}: file {stored.get(k)!r}, this checkout {mine.get(k)!r}" for k in differ)
        raise ConfigError(
            f"scores of {params.get('_target_')} were computed with another version of what they depend on ({detail}); "
            "they would never be used here: recompute them, or import them in the checkout that wrote them"
        )


def main(argv: list[str] | None = None) -> int:
    """``python -m harness.cache export|import FILE [overrides]``."""
    import argparse
    import sys

    from harness.config import compose
    from harness.errors import HarnessError
    from harness.experiment import build, score_key

    parser = argparse.ArgumentParser(
        prog="python -m harness.cache", description="Move live estimators' scores between machines."
    )
    parser.add_argument("command", choices=("export", "import"))
    parser.add_argument("file", type=Path, help="the CSV score file")
    parser.add_argument(
        "overrides", nargs="*", help="harness overrides: cache_dir=..., estimator=NAME (export: only its scores)"
    )
    args = parser.parse_args(argv)
    try:
        cfg = compose(args.overrides)
        cache = open_cache(cfg.score_cache, cfg.cache_dir)
        if cache is None:
            raise ConfigError("score_cache=off: name the score cache to export from or import into")
        if args.command == "export":
            key = None
            if any(o.startswith("estimator") for o in args.overrides):
                _, make_estimator = build(cfg.estimator)
                _, make_benchmark = build(cfg.benchmark)
                key = score_key(cfg, make_estimator(), make_benchmark().space)
            n = export_scores(cache, args.file, key)
            print(f"exported {n} scores to {args.file}")
            return 0
        rows = read_scores(args.file)
        for key, benchmark in sorted({(r[0], r[1]) for r in rows}):
            check_key(key, benchmark, cfg.data_dir)
        new = cache.put_rows(rows)
        print(f"imported {new} new scores ({len(rows) - new} already present) from {args.file} into {cache.where}")
        return 0
    except HarnessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
