"""VKDNW_agg (Tybl & Neumann, CVPR 2025, Table 1: "VKDNW_agg"): a rank-sum over the ranked sample of five proxies,
computed from the ``records.csv`` of rank runs of one sample (nothing is scored again).

    python -m studies.vkdnw_agg RESULTS [--scores NAME=FILE ...] [--out OUT.csv]

RESULTS holds finished ``task=rank`` runs of one sample, one per estimator of :data:`COMPONENTS` (``vkdnw``,
``az_nas_expressivity``, ``az_nas_trainability``, ``flops``, ``jacov``), e.g. those of
``python -m harness -m task=rank n_archs=300 threads=1 estimator=vkdnw,az_nas_expressivity,...``. A component may
instead come from a score file that ``python -m harness.cache export FILE estimator=NAME`` wrote
(``--scores NAME=FILE``): its rows of the runs' benchmark, dataset and seed, whatever code version computed them,
refused when two rows of one architecture disagree; the architectures are those of the rank runs.

The definition, from the official code (GitHub ondratybl/VKDNW, read, not copied: GPL-3.0): the notebook
``NB201/paper_preparation.ipynb`` (at commit 2b67433^, the commit before "prepare") says that Table 1's VKDNW_single
and VKDNW_agg come from its section "Ablation: add components", whose row "flops_expressivity_trainability_jacov_vkdnw_"
scores each architecture by

    log rank(FLOPs) + log rank(expressivity) + log rank(trainability) + log rank(jacov) + log rank(VKDNW_single)

(the same sum is ``vkdnw_comb_rank`` of ``NB201/tss_utils.py`` ``get_scores``). Each rank is ascending among the
architectures evaluated together (the benchmark's cells there, the rank sample here), ties sharing their mean rank
(pandas ``rank()``), except VKDNW_single's, a dense rank of (number of parameter tensors, entropy). A missing jacov
counts as the smallest jacov there; here any missing or NaN score counts as ``-inf`` (below every other). Unlike
AZ-NAS's own aggregate, progressivity is not in the sum, and the ranks are not divided by the sample size (a
constant, the order is the same). The components are this harness's estimators: ``vkdnw`` (VKDNW_single's order),
the AZ-NAS components of :mod:`estimators.az_nas`, ``flops`` and ``jacov`` (:mod:`estimators.zero_cost`).

Why a study and not an estimator: the aggregate is a function of the sample it is computed on, exactly as the paper
computes it, and each component is already a cached rank run; an estimator would have to re-score four proxies per
architecture, or rank against a reference pool as ``az_nas`` does, which is not the paper's protocol.

Prints Kendall tau, Spearman rho and nDCG (:func:`harness.metrics.ndcg`, the report's cut-off) against test
accuracy for the aggregate and each component, each with a 95 % bootstrap interval (the report's
``paired bootstrap`` resamples), and the paired interval of tau(VKDNW_agg) - tau(each component).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from harness import metrics, seeding, storage
from harness.types import OK

#: the estimators summed, the first ranked densely (VKDNW_single's rank of (aleph, entropy), which the ``vkdnw``
#: score aleph + entropy / (2 ln 9) orders the same)
COMPONENTS = ("vkdnw", "az_nas_expressivity", "az_nas_trainability", "flops", "jacov")
DENSE = ("vkdnw",)


def log_rank_sum(scores: Mapping[str, np.ndarray], dense: Sequence[str] = ()) -> np.ndarray:
    """The sum over ``scores``' columns of log(ascending rank of each member within its column): ties share their
    mean rank, except in the columns named in ``dense`` (dense ranks 1, 2, ... over the distinct values); NaN
    ranks as ``-inf``, below every other value. Higher is predicted better."""
    total = np.zeros(len(next(iter(scores.values()))))
    for name, column in scores.items():
        values = np.where(np.isnan(column), -np.inf, np.asarray(column, dtype=float))
        total += np.log(rankdata(values, method="dense" if name in dense else "average"))
    return total


def exported_scores(path: Path, benchmark: str, dataset: str, seed: int) -> pd.Series:
    """The scores of a ``python -m harness.cache export`` file for ``benchmark``, ``dataset`` and ``seed``, by
    architecture; :class:`ValueError` when two of its rows of one architecture differ (a code version that
    changed the score)."""
    rows = pd.read_csv(path)
    rows = rows[(rows["benchmark"] == benchmark) & (rows["dataset"] == dataset) & (rows["seed"] == seed)]
    distinct = rows.groupby("arch")["score"].nunique()
    if (distinct > 1).any():
        raise ValueError(f"{path}: {int((distinct > 1).sum())} architectures have different scores in different rows")
    return rows.groupby("arch")["score"].first()


def read_components(
    results: Path, components: Sequence[str] = COMPONENTS, exported: Mapping[str, Path] | None = None
) -> pd.DataFrame:
    """One row per architecture that every component's rank run recorded: each component's score (NaN where that
    run failed on it) and the test accuracy; a component named in ``exported`` from that score file instead
    (:func:`exported_scores`, NaN where it has none). :class:`ValueError` unless RESULTS holds exactly one rank
    run of each other component, all of one benchmark, dataset and seed."""
    exported = dict(exported or {})
    runs, _problems = storage.load_runs(results)
    folders: dict[str, list[Path]] = {name: [] for name in components if name not in exported}
    where: set[tuple[str, str, int]] = set()
    for folder, summary in runs:
        if summary["task"] == "rank" and summary["estimator"] in folders:
            folders[summary["estimator"]].append(folder)
            where.add((summary["benchmark"], summary["dataset"], summary["seed"]))
    wrong = {name: len(found) for name, found in folders.items() if len(found) != 1}
    if wrong or not folders:
        raise ValueError(f"{results}: need exactly one rank run of each of {', '.join(folders)}; found {wrong}")
    if len(where) != 1:
        raise ValueError(f"{results}: the rank runs are of different benchmarks, datasets or seeds: {sorted(where)}")
    frame: pd.DataFrame | None = None
    for name, (folder,) in folders.items():
        records = storage.read_records(folder).drop_duplicates("arch", keep="last").set_index("arch")
        score = records["score"].where(records["status"] == OK)
        part = pd.DataFrame({name: score, "test_acc": records["test_acc"]})
        frame = part if frame is None else frame.join(part[[name]], how="inner")
    assert frame is not None
    ((benchmark, dataset, seed),) = where
    for name, path in exported.items():
        frame[name] = exported_scores(path, benchmark, dataset, seed).reindex(frame.index)
    return frame[[*components, "test_acc"]].sort_index()


def _line(label: str, scores: np.ndarray, truth: np.ndarray) -> tuple[str, np.ndarray]:
    rng = seeding.rng(0, "paired bootstrap")
    taus = metrics.bootstrap_values(lambda i: metrics.kendall_tau(scores[i], truth[i]), len(truth), rng)
    rng = seeding.rng(0, "paired bootstrap")
    k = metrics.ndcg_cutoff(len(truth))
    ndcgs = metrics.bootstrap_values(lambda i: metrics.ndcg(scores[i], truth[i], k), len(truth), rng)
    tau, rho, ndcg = (
        metrics.kendall_tau(scores, truth),
        metrics.spearman_rho(scores, truth),
        metrics.ndcg(scores, truth, k),
    )
    (tl, th), (nl, nh) = metrics.percentile_interval(taus), metrics.percentile_interval(ndcgs)
    text = f"| {label} | {tau:.3f} [{tl:.3f}, {th:.3f}] | {rho:.3f} | {ndcg:.3f} [{nl:.3f}, {nh:.3f}] |"
    return text, taus


def report(frame: pd.DataFrame) -> str:
    """The markdown table of the module docstring for the rows of :func:`read_components`."""
    truth = frame["test_acc"].to_numpy(float)
    agg = log_rank_sum({c: frame[c].to_numpy(float) for c in COMPONENTS}, DENSE)
    ties = len(frame) - len(np.unique(frame["vkdnw"].dropna()))
    missing = ", ".join(f"{c} {n}" for c, n in frame[list(COMPONENTS)].isna().sum().items() if n) or "none"
    lines = [
        f"{len(frame)} architectures; {ties} tied vkdnw scores; missing scores: {missing}; nDCG cut-off "
        f"{metrics.ndcg_cutoff(len(truth))}",
        "",
        "| scorer | tau [95 %] | rho | nDCG [95 %] | tau(VKDNW_agg) - tau(scorer) [95 % paired] |",
        "|---|---|---|---|---|",
    ]
    text, agg_taus = _line("VKDNW_agg", agg, truth)
    lines.append(text + " |")
    for c in COMPONENTS:
        scores = frame[c].to_numpy(float)
        text, taus = _line(c, np.where(np.isnan(scores), -np.inf, scores), truth)
        diff = metrics.kendall_tau(agg, truth) - metrics.kendall_tau(np.where(np.isnan(scores), -np.inf, scores), truth)
        lo, hi = metrics.percentile_interval(agg_taus - taus)
        lines.append(f"{text} {diff:+.3f} [{lo:+.3f}, {hi:+.3f}] |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m studies.vkdnw_agg", description=__doc__.split("\n\n")[0])
    parser.add_argument("results", type=Path, help="a folder holding one rank run of each component")
    parser.add_argument(
        "--scores", action="append", default=[], metavar="NAME=FILE", help="a component from an exported score file"
    )
    parser.add_argument("--out", type=Path, help="write each architecture's components and VKDNW_agg to this CSV")
    args = parser.parse_args(argv)
    try:
        exported = {name: Path(file) for name, _, file in (s.partition("=") for s in args.scores)}
        unknown = set(exported) - set(COMPONENTS)
        if unknown:
            raise ValueError(f"--scores: not a component: {', '.join(sorted(unknown))}")
        frame = read_components(args.results, exported=exported)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(report(frame))
    if args.out:
        agg = log_rank_sum({c: frame[c].to_numpy(float) for c in COMPONENTS}, DENSE)
        frame.assign(vkdnw_agg=agg).to_csv(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
