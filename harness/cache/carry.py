"""Scores kept across a change of code that leaves them as they were: ``python -m harness.cache carry
estimator=NAME [--verify N]``.

A score's key names a hash of the code that computes it (:func:`~harness.cache.keys.code_hash`), so any edit of that
code re-keys every stored score: a refactor, or a speed-up that leaves every float as it was, would throw away
days of computing. A carry takes each stored key of the estimator that differs from this checkout's key in its
code alone, recomputes ``verify`` of its scores with this checkout's code (drawn at random, on the key's own
device and threads), and only if every one equals its stored score bit for bit stores all of that key's scores
again under this checkout's key, with their recorded costs. The old rows stay. If one differs, nothing of that key
is carried, and the message names the architecture and both scores: the change changed what is computed.

What a sample shows: a short training such as RMI's is chaotic in the last bits of its floats, so a change of the
arithmetic every evaluation runs (another op, another order of a sum, another random draw) changes every score,
and one recomputation sees it. A change that touches only some architectures (say, only cells with a dead node)
is seen only when the sample holds one of them: raise ``--verify`` for such a change, or recompute.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig

from harness import seeding
from harness.cache.backends import ScoreCache
from harness.cache.transfer import checkout_key, differences, params_of, refuse_conflicts
from harness.errors import ConfigError
from harness.plugins import estimator_context, plain


@dataclass(frozen=True)
class Carried:
    """What a carry did with one stored key.

    Attributes:
        benchmark: the benchmark its scores are of.
        old: the stored key's code hash. new: this checkout's.
        n: how many scores it holds. stored: how many were new under this checkout's key (0 if refused).
        checked: (architecture, stored score, recomputed score) of each recomputed score.
        refused: why it was not carried ('' if it was).
    """

    benchmark: str
    old: str
    new: str
    n: int
    stored: int
    checked: tuple[tuple[str, float, float], ...]
    refused: str = ""


def _recompute(
    cfg: DictConfig,
    key: str,
    benchmark: str,
    rows: list[tuple[Any, ...]],
    make_estimator: Callable[..., Any],
    make_benchmark: Callable[..., Any],
) -> list[float]:
    """The scores of ``rows`` (one key, one benchmark) recomputed with this checkout's code (the factories
    :func:`checkout_key` gave), on the key's device and threads, each (dataset, estimator seed) fitted once."""
    import torch

    stored = json.loads(key)
    if isinstance(stored.get("threads"), int):
        torch.set_num_threads(stored["threads"])
    cfg = cfg.copy()
    cfg.device = stored.get("device", "cpu")
    scores: dict[int, float] = {}
    groups: dict[tuple[str, int], list[int]] = defaultdict(list)
    for i, row in enumerate(rows):
        groups[(row[2], row[4])].append(i)
    for (dataset, seed), members in sorted(groups.items()):
        bench = make_benchmark() if dataset == "*" else make_benchmark(dataset=dataset)
        estimator = make_estimator()
        estimator.fit(estimator_context(cfg, benchmark, bench, seed, estimator.tags.live))
        for i in members:
            scores[i] = float(estimator.estimate(bench.space.parse(rows[i][3])).score)
    return [scores[i] for i in range(len(rows))]


def carry_scores(cache: ScoreCache, cfg: DictConfig, verify: int = 5, seed: int = 0) -> list[Carried]:
    """Carry the scores of estimator ``cfg.estimator`` stored under an older code's key to this checkout's key,
    each key only if ``verify`` of its scores, drawn with ``seed``, recompute bit for bit (module docstring)."""
    if verify < 1:
        raise ConfigError(f"--verify must be >= 1 (scores recomputed per key before it is carried), got {verify}")
    params = {k: v for k, v in plain(cfg.estimator).items() if k != "name"}
    keys: dict[tuple[str, str], list[tuple[Any, ...]]] = defaultdict(list)
    for row in cache.rows():
        if params_of(row[0]) == params:
            keys[(row[0], row[1])].append(row)
    done = []
    for (key, benchmark), rows in sorted(keys.items()):
        mine, make_estimator, make_benchmark = checkout_key(key, benchmark, cfg.data_dir)
        differ = differences(key, mine)
        old, new = json.loads(key).get("code", "?"), json.loads(mine).get("code", "?")
        if not differ:
            continue  # already this checkout's
        if differ != ["code"]:
            why = f"it differs in {', '.join(d for d in differ if d != 'code')} too: recompute them on that machine"
            done.append(Carried(benchmark, old, new, len(rows), 0, (), why))
            continue
        present = {tuple(r[:5]): r[5] for r in cache.rows(mine)}
        if all((mine, *row[1:5]) in present for row in rows):
            continue  # carried before (or recomputed since): nothing to verify
        picked = sorted(seeding.rng(seed, "carry").choice(len(rows), min(verify, len(rows)), replace=False))
        sample = [rows[i] for i in picked]
        checked = tuple(
            (row[3], float(row[5]), score)
            for row, score in zip(
                sample, _recompute(cfg, key, benchmark, sample, make_estimator, make_benchmark), strict=True
            )
        )
        wrong = [c for c in checked if c[1] != c[2]]
        if wrong:
            arch, was, now = wrong[0]
            why = f"{len(wrong)} of {len(checked)} recomputed scores differ (first: {arch} stored {was!r}, now {now!r})"
            done.append(Carried(benchmark, old, new, len(rows), 0, checked, why))
            continue
        moved = [(mine, *row[1:]) for row in rows]
        refuse_conflicts(cache.where, moved, present)
        done.append(Carried(benchmark, old, new, len(rows), cache.put_rows(moved), checked))
    return done
