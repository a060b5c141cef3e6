"""Scores between machines: ``python -m harness.cache export|import FILE`` (CSV files, refused whole when a key
is not this checkout's)."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness import paths
from harness.cache.backends import EXPORT_COLUMNS, ScoreCache
from harness.cache.keys import estimator_key
from harness.errors import ConfigError
from harness.plugins import DEVICE, build, plain

#: the parts of a score key that are not the estimator's parameters (see :func:`estimator_key`)
_DERIVED = ("code", "torch", "device", "cpu", "threads", "gpu", "data")


def params_of(key: str) -> dict[str, Any]:
    """The estimator parameters in score key ``key`` (its config, ``_target_`` included)."""
    return {k: v for k, v in json.loads(key).items() if k not in _DERIVED}


def export_scores(
    cache: ScoreCache,
    path: Path,
    estimator: str | None = None,
    *,
    params: dict[str, Any] | None = None,
    data_dir: str | None = None,
) -> tuple[int, int]:
    """Write the cache's rows to a CSV file, atomically; returns (rows written, rows left out). ``estimator``: only
    the rows of that key; ``params``: only those of an estimator with these parameters and this checkout's code
    (whatever its torch, device, kernels, threads and data files, :func:`params_of`): scores of an older code are
    left out, as an import here would refuse them (``carry`` keeps them when the code change left them); a
    :class:`ConfigError`, and no file written, when that leaves none."""
    import csv
    import io

    rows = cache.rows(estimator)
    left_out = 0
    if params is not None:
        rows = [row for row in rows if params_of(row[0]) == params]
        current = {
            (key, benchmark): "code" not in differences(key, checkout_key(key, benchmark, data_dir)[0])
            for key, benchmark in {(row[0], row[1]) for row in rows}
        }
        kept = [row for row in rows if current[row[0], row[1]]]
        rows, left_out = kept, len(rows) - len(kept)
        if left_out and not rows:  # a file of nothing would replace a good one (a committed score file, say)
            raise ConfigError(
                f"all {left_out} scores of this estimator were computed by an older code; nothing was written to "
                f"{path}: `python -m harness.cache carry` them if the change left them, or recompute them"
            )
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(EXPORT_COLUMNS)
    writer.writerows((*row[:5], repr(row[5]), repr(row[6]), row[7], repr(row[8])) for row in rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    paths.write_atomic(path, lambda f: f.write(text.getvalue().encode()))
    return len(rows), left_out


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
            if not DEVICE.fullmatch(device) or device == "auto":
                raise ValueError(f"unknown device {device!r} (cpu, cuda, cuda:N or mps)")
        except ValueError as exc:
            raise DataFileError(f"score file {path}, line {number}: {exc}; nothing was imported") from exc
        rows.append(row)
    return rows


def _names_code(value: Any) -> bool:
    """True if ``value`` holds a ``_target_`` (or Hydra's other instantiation keys) anywhere: an object to build."""
    if isinstance(value, dict):
        return any(str(k).startswith("_") or _names_code(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_names_code(v) for v in value)
    return False


def known_estimator(params: dict[str, Any]) -> Any:
    """The config node of an estimator this checkout knows by name (``conf/estimator/NAME.yaml``) with the same
    ``_target_`` and the same parameter names as ``params``, with ``params``' values; a :class:`ConfigError` when
    there is none. Nothing a file names is imported: the target is this checkout's own."""
    from omegaconf import OmegaConf

    from harness.config import compose
    from harness.schema import CONF

    target = params.get("_target_")
    names = set(params) - {"_target_"}
    for yaml in sorted((CONF / "estimator").glob("*.yaml")):
        node = compose([f"estimator={yaml.stem}"]).estimator
        known = plain(node)
        if known["_target_"] == target and set(known) - {"_target_", "name"} == names:
            return OmegaConf.merge(node, params)
    raise ConfigError(
        f"scores of an estimator this checkout does not know ({target!r} with parameters {sorted(names)}): "
        "no conf/estimator/*.yaml has that _target_ and those parameters; import them in a checkout that has it"
    )


def checkout_key(key: str, benchmark: str, data_dir: str | None) -> tuple[str, Callable[..., Any], Callable[..., Any]]:
    """The key this checkout computes for the estimator, device and threads of stored key ``key`` on ``benchmark``
    (an estimator it knows by name, :func:`known_estimator`), with factories of that estimator and benchmark. A
    :class:`~harness.errors.ConfigError` for a key that names an unknown estimator, an object to build or an unknown
    device, or an unknown benchmark. The stored key is data: it is parsed and compared, never instantiated."""
    from harness.config import compose

    stored = json.loads(key)
    if not isinstance(stored, dict):
        raise ConfigError(f"a score key must be a JSON object, got {key[:80]!r}")
    params = params_of(key)
    if any(_names_code(v) for v in params.values()) or any(k.startswith("_") and k != "_target_" for k in params):
        raise ConfigError(
            f"a score key of {params.get('_target_')!r} names an object to build in its parameters; score files "
            "carry data only: nothing was imported"
        )
    device = stored.get("device", "cpu")
    if not isinstance(device, str) or not DEVICE.fullmatch(device) or device == "auto":
        raise ConfigError(f"a score key names an unknown device {device!r} (cpu, cuda or mps): nothing was imported")
    node = known_estimator(params)
    try:
        _, make_benchmark = build(compose([f"benchmark={benchmark}"]).benchmark)
    except Exception as exc:  # noqa: BLE001 - any failure to compose is an unknown benchmark name
        raise ConfigError(
            f"scores of an unknown benchmark {benchmark!r} ({type(exc).__name__}): nothing imported"
        ) from exc
    _, make_estimator = build(node)
    mine = estimator_key(
        params,
        make_estimator(),
        space=make_benchmark().space,
        device=device,
        data_dir=data_dir,
        threads=stored["threads"] if isinstance(stored.get("threads"), int) else None,
    )
    return mine, make_estimator, make_benchmark


def differences(key: str, mine: str) -> list[str]:
    """The parts in which stored key ``key`` and this checkout's ``mine`` differ (``code``, ``torch``, ...)."""
    a, b = json.loads(key), json.loads(mine)
    return sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))


def check_key(key: str, benchmark: str, data_dir: str | None) -> None:
    """Raise :class:`~harness.errors.ConfigError` unless ``key`` is the key this checkout computes for an estimator
    it knows by name (:func:`known_estimator`) on ``benchmark``: the same parameters, code, torch and data files."""
    mine, _, _ = checkout_key(key, benchmark, data_dir)
    differ = differences(key, mine)
    if differ:
        stored, ours = json.loads(key), json.loads(mine)
        detail = "; ".join(f"{k}: file {stored.get(k)!r}, this checkout {ours.get(k)!r}" for k in differ)
        raise ConfigError(
            f"scores of {stored.get('_target_')} were computed with another version of what they depend on "
            f"({detail}); they would never be used here: recompute them, or import them in the checkout that wrote "
            "them (a change of code that leaves every score as it was: `python -m harness.cache carry`)"
        )


def refuse_conflicts(path: Path | str, rows: list[tuple[Any, ...]], stored: dict[tuple[Any, ...], float]) -> None:
    """Raise a :class:`~harness.errors.DataFileError` if ``rows`` of score file ``path`` give two scores for one
    slot (key, benchmark, dataset, arch, seed), among themselves or against the ``stored`` scores. Scores equal up
    to float32 rounding (the last bits that a thread count can change) do not conflict."""
    from harness.errors import DataFileError

    seen, found = dict(stored), []
    for row in rows:
        slot, score = tuple(row[:5]), row[5]
        other = seen.setdefault(slot, score)
        if not math.isclose(other, score, rel_tol=1e-6, abs_tol=1e-9):
            found.append(f"{slot[3]} (seed {slot[4]}, {slot[1]}/{slot[2]}): {score!r} against {other!r}")
    if found:
        raise DataFileError(
            f"score file {path} gives {len(found)} scores that differ from another score of the same key "
            f"(first: {found[0]}); nothing was imported: a key names one computation, so one of them is not what "
            "it claims"
        )


def import_scores(cache: ScoreCache, path: Path, rows: list[tuple[Any, ...]]) -> int:
    """Store ``rows`` of score file ``path`` in ``cache`` in one transaction, unless one conflicts with another or
    with a stored score (:func:`refuse_conflicts`: nothing imported); returns how many were new."""
    refuse_conflicts(path, rows, {tuple(r[:5]): r[5] for key in {r[0] for r in rows} for r in cache.rows(key)})
    return cache.put_rows(rows)
