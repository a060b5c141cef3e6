"""How well does an estimator order the top of the space, where a search reads its answer? A fixed pool of NB201's
best architectures, scored by each variant.

    python -m studies.top_of_space rmi rmi50=rmi:steps=50 paper=rmi_paper [--pool 100] [--quantile 0.1] [--seeds 0,1]

A search answers from its best-scored architectures, so an estimator for search is judged where they are; tau over
a random sample says little about it. The pool: ``--pool`` pairwise non-isomorphic architectures drawn (seed 0)
from the ``select`` half of NB201 CIFAR-10 (:func:`harness.sampling.split_of`) among those whose validation accuracy
is in the space's top ``--quantile``. Each variant (``LABEL=NAME:KEY=VALUE:...``, or a config name) scores the pool
with each estimator seed of ``--seeds`` through the score cache (:func:`harness.rank`: a search with the same
estimator re-uses the scores, an interrupted study resumes). Per variant and seed: Kendall tau against validation
accuracy with a 95% bootstrap interval, the mean validation accuracy of the ``--top`` best-scored architectures and
of the best-scored one, and the median seconds charged per architecture; with several seeds, the tau between the
seeds' scores (how much of the order is noise).

Only validation accuracy (``cifar10-valid``) is read: the study chooses an estimator, a search's test accuracy on the
report seeds reports it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from itertools import combinations

import numpy as np
import pandas as pd
import yaml

import harness
from harness import Arch, Benchmark, ConfigError, metrics
from harness.sampling import split_of


def pool(bench: Benchmark, n: int, quantile: float, seed: int = 0) -> list[Arch]:
    """``n`` pairwise non-isomorphic architectures of the ``select`` half whose validation accuracy is in the top
    ``quantile`` of the whole space, drawn in the order of a permutation seeded with ``seed``."""
    archs = list(bench.space.enumerate())
    acc = np.array([bench.query(a).valid_acc for a in archs])
    floor = float(np.quantile(acc, 1 - quantile))
    seen: set[str] = set()
    chosen: list[Arch] = []
    for i in np.random.default_rng(seed).permutation(len(archs)):
        arch = archs[i]
        if acc[i] < floor or split_of(bench.space, arch) != "select":
            continue
        key = bench.space.iso_key(arch)
        if key not in seen:
            seen.add(key)
            chosen.append(arch)
            if len(chosen) == n:
                return chosen
    raise ConfigError(
        f"the select half has only {len(chosen)} non-isomorphic architectures with validation accuracy >= {floor:.2f} "
        f"(the top {quantile:g}); ask for a smaller --pool or a larger --quantile"
    )


def variant(spec: str) -> tuple[str, harness.Plugin]:
    """``LABEL=NAME:KEY=VALUE:...`` (values in YAML: ``steps=50``, ``channels=null``) or ``NAME``, as a label and
    an estimator."""
    label, sep, rest = spec.partition("=")
    if not sep:
        rest = spec
    elif ":" in label:
        raise ConfigError(f"{spec!r}: a variant with overrides needs a label first, e.g. rmi50=rmi:steps=50")
    name, *pairs = rest.split(":")
    overrides = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ConfigError(f"{spec!r}: {pair!r} is not KEY=VALUE; write e.g. rmi50=rmi:steps=50")
        overrides[key] = yaml.safe_load(value)
    return label, harness.estimator(name, **overrides)


def score(
    specs: Sequence[str], archs: Sequence[Arch], bench: Benchmark, seeds: Sequence[int], threads: int
) -> pd.DataFrame:
    """One row per (variant, seed, architecture): the score and the seconds charged for it."""
    names = [bench.space.format(a) for a in archs]
    rows = []
    for spec in specs:
        label, estimator = variant(spec)
        for seed in seeds:
            run = harness.rank(bench.name, estimator, names, seed=seed, threads=threads, progress=True)
            failed = [r for r in run.records if r.status != "ok"]
            if failed:
                raise ConfigError(f"{label} seed {seed}: {len(failed)} architectures failed, first: {failed[0].reason}")
            rows += [
                {"variant": label, "seed": seed, "arch": r.arch, "score": r.score, "cost_s": r.cost_s}
                for r in run.records
            ]
    return pd.DataFrame(rows)


def table(rows: pd.DataFrame, valid_acc: dict[str, float], top: int) -> pd.DataFrame:
    """Per variant and seed: tau against validation accuracy (95% interval), the validation accuracy of the ``top``
    best-scored and of the best, seconds per architecture; ``seed_tau``: the mean tau between its seeds' scores."""
    out = []
    for (label, seed), group in rows.groupby(["variant", "seed"], sort=False):
        scores = group.score.to_numpy()
        acc = np.array([valid_acc[a] for a in group.arch])
        lo, hi = metrics.tau_ci(scores, acc, np.random.default_rng(0))
        best = np.argsort(-scores, kind="stable")
        out.append(
            {
                "variant": label,
                "seed": seed,
                "tau": metrics.kendall_tau(scores, acc),
                "tau_lo": lo,
                "tau_hi": hi,
                f"top{top}_valid": acc[best[:top]].mean(),
                "best_valid": acc[best[0]],
                "s_per_arch": group.cost_s.median(),
            }
        )
    stats = pd.DataFrame(out)
    wide = rows.pivot_table(index="arch", columns=["variant", "seed"], values="score")
    agreement = {
        label: np.mean([metrics.kendall_tau(wide[(label, a)], wide[(label, b)]) for a, b in combinations(seeds, 2)])
        for label, seeds in stats.groupby("variant", sort=False)["seed"]
        if len(seeds) > 1
    }
    stats["seed_tau"] = stats.variant.map(agreement)
    return stats


def _ints(text: str) -> list[int]:
    return [int(part) for part in text.split(",")]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m studies.top_of_space", description=__doc__.split("\n\n")[0])
    parser.add_argument("variants", nargs="+", help="LABEL=NAME:KEY=VALUE:... or NAME, e.g. rmi rmi50=rmi:steps=50")
    parser.add_argument("--pool", type=int, default=100, help="architectures in the pool")
    parser.add_argument("--quantile", type=float, default=0.1, help="the top part of the space drawn from")
    parser.add_argument("--top", type=int, default=10, help="best-scored architectures whose accuracy is averaged")
    parser.add_argument("--seeds", type=_ints, default=[0], help="estimator seeds, comma-separated")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", help="write the per-architecture scores to this CSV")
    args = parser.parse_args(argv)
    try:
        bench = harness.benchmark("nb201").make()
        archs = pool(bench, args.pool, args.quantile)
        rows = score(args.variants, archs, bench, args.seeds, args.threads)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    valid = {bench.space.format(a): bench.query(a).valid_acc for a in archs}
    if args.out:
        rows.assign(valid_acc=rows.arch.map(valid)).to_csv(args.out, index=False)
    ceiling = np.sort(list(valid.values()))[::-1]
    print(
        f"pool: {len(archs)} architectures, validation accuracy {ceiling[-1]:.2f}-{ceiling[0]:.2f}; "
        f"the best {args.top} average {ceiling[: args.top].mean():.2f}, the pool {ceiling.mean():.2f}"
    )
    print(table(rows, valid, args.top).to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
