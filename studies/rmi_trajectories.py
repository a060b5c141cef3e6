"""Record RMI's training trajectories on a rank sample, and cache what every shorter run would have scored.

    python -m studies.rmi_trajectories OUT.csv [--cache-steps 10,25,50,100] [--only select] [harness overrides ...]
    python -m studies.rmi_trajectories results/seed0.csv --cache-steps 10,25,50,100 n_archs=200 estimator=rmi_paper

Runs the rank job of ``task=rank estimator=rmi OVERRIDES`` (or of the RMI config OVERRIDES name: same sample,
same estimator seed, same batch as
``python -m harness`` would use), but with :meth:`estimators.rmi.RMI.trajectory`: one row per (architecture, step)
with the loss, each stage's ``1 - CKA``, the cross-entropy and the wall seconds since the start. The first k steps
of a run do not depend on how many follow, so row k is exactly what ``estimator.steps=k`` scores and costs; each
finished architecture's scores for ``steps`` and every ``--cache-steps`` value go to the shared score cache, and a
later ``python -m harness -m task=rank estimator=rmi estimator.steps=10,25,... `` re-uses them, charged what they
cost here. Resumable: architectures already in OUT.csv are skipped.
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from estimators.rmi import RMI, TRAJECTORY_COLUMNS
from harness import ConfigError, Estimate, paths

# Below the public API, from the modules a rank run itself uses: harness.rank scores each architecture once per
# config, this study trains it once and reads every shorter run from the trajectory. So it takes the CLI's override
# strings (the API takes keywords), builds the plug-ins from the config they compose (the benchmark's data_dir and
# cache_dir resolved against them), draws the rank sample, fits the estimator in a rank run's context and threads,
# and fills the score cache under the keys and slots of configs it never ran.
from harness.cache import cache_slot, open_cache, score_key
from harness.config import compose
from harness.plugins import build, estimator_context, set_torch_threads
from harness.sampling import rank_sample, split_of

HEADER = ("index", "arch", "split", "step", *TRAJECTORY_COLUMNS)


def keep_complete(path: Path, n_rows: int) -> set[str]:
    """The architectures whose whole trajectory (``n_rows`` steps) is in ``path``. Anything else an interrupted run
    left there (a trajectory cut short, a last line cut by a kill) is removed, atomically, so that a resumed run
    never writes a row twice."""
    if not path.exists() or path.stat().st_size == 0:
        paths.write_atomic(path, lambda f: f.write(_lines([HEADER]).encode()))
        return set()
    lines = path.read_text().splitlines(keepends=True)
    if not lines[-1].endswith("\n"):
        lines = lines[:-1]
    rows = list(csv.reader(lines[1:]))
    steps: dict[str, int] = {}
    for row in rows:
        steps[row[1]] = steps.get(row[1], 0) + 1
    done = {arch for arch, n in steps.items() if n == n_rows}
    kept = [row for row in rows if row[1] in done]
    if len(kept) != len(rows) or len(lines) - 1 != len(rows):
        paths.write_atomic(path, lambda f: f.write(_lines([HEADER, *kept]).encode()))
    return done


def _lines(rows: list[Any]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue()


def _with_steps(cfg: DictConfig, steps: int) -> DictConfig:
    """``cfg`` with ``estimator.steps`` set to ``steps``."""
    merged = OmegaConf.merge(cfg, {"estimator": {"steps": steps}})
    assert isinstance(merged, DictConfig)  # a merge into a mapping config is one
    return merged


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="CSV of trajectories (appended to; resumable)")
    parser.add_argument("--cache-steps", default="", help="comma-separated shorter step counts to cache as well")
    parser.add_argument("--only", choices=("select", "report"), help="only the sample's members of this half")
    parser.add_argument("overrides", nargs="*", help="harness overrides, e.g. n_archs=200 seed=1")
    args = parser.parse_intermixed_args(argv)

    chosen = any(o.startswith("estimator=") for o in args.overrides)  # e.g. estimator=rmi_paper
    cfg = compose(["task=rank", *([] if chosen else ["estimator=rmi"]), *args.overrides])
    name, make = build(cfg.estimator)
    estimator = make()
    if not isinstance(estimator, RMI):
        raise ConfigError(f"estimator {name!r} is not RMI")
    steps = sorted({estimator.steps, *(int(k) for k in args.cache_steps.split(",") if k)})
    if steps[0] < 1 or steps[-1] > estimator.steps:
        raise ConfigError(f"--cache-steps must lie in 1..{estimator.steps} (estimator.steps), got {steps}")
    benchmark_name, make_benchmark = build(cfg.benchmark)
    benchmark = make_benchmark().load()
    keys = {k: score_key(_with_steps(cfg, k), estimator, benchmark.space) for k in steps}
    archs, _ = rank_sample(benchmark.space, cfg.archs, cfg.n_archs, cfg.sample_seed, cfg.split)
    if args.only:
        archs = [a for a in archs if split_of(benchmark.space, a) == args.only]
    context = estimator_context(cfg, benchmark_name, benchmark, cfg.seed, live=True)
    cache = open_cache(cfg.score_cache, cfg.cache_dir)
    if cache is None:
        raise ConfigError("the trajectory study fills the score cache: score_cache=off makes no sense here")
    slot_benchmark, slot_dataset, slot_seed = cache_slot(context, estimator.tags)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    done = keep_complete(args.out, estimator.readout_row(estimator.steps) + 1)
    print(f"{len(archs)} architectures, {len(done)} done; fit ...", flush=True)
    set_torch_threads(cfg)
    estimator.fit(context)

    with args.out.open("a", newline="") as handle:
        for index, arch in enumerate(archs):
            text = benchmark.space.format(arch)
            if text in done:
                continue
            rows = estimator.trajectory(arch)
            split = split_of(benchmark.space, arch)
            # one write per architecture: an interrupt never leaves half a trajectory behind a flushed one
            handle.write(_lines([[index, text, split, step, *row] for step, row in enumerate(rows, start=1)]))
            handle.flush()
            for k in steps:  # a non-finite loss is a failed evaluation: the cache does not store it
                row = rows[estimator.readout_row(k)]
                if np.isfinite(row[0]):
                    estimate = Estimate(estimator.score(arch, row[0]), row[-1], context.device)
                    cache.put(keys[k], slot_benchmark, slot_dataset, text, slot_seed, estimate)
            print(f"{index + 1}/{len(archs)} loss {rows[-1, 0]:.4f} {rows[-1, -1]:.1f} s", flush=True)
    cache.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
