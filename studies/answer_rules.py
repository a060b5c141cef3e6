"""RMI-NAS's answer rules, compared on finished searches: what each rule would have answered from the same records.

    python -m studies.answer_rules results/rminas_tuning [--out rules.csv] [--no-evaluate]

RMI-NAS answers from its positives only, so a rule that reads them needs no new search: each search folder's
``records.csv`` is replayed through a fresh :class:`~searchers.rminas.RMINAS` built from the run's own config (same
threshold, same positives), and every rule of :data:`RULES` answers from that state. A rule that needs a score the
search never computed (``verify_*`` scores the voted cell, ``final_look`` re-scores the last candidates at a higher
fidelity) gets it from the run's own estimator through the score cache (``harness.rank`` with the run's estimator
seed and thread count), so its answer is what the rule would have answered inside the search; ``--no-evaluate``
leaves those rules out.

Only validation accuracy (NB201's ``cifar10-valid`` split) is read: the study is for choosing a rule on the tuning
seeds, and the test accuracy of the chosen rule is reported once, by the search itself, on the report seeds.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import harness
from harness import Arch, Benchmark, ConfigError, metrics, storage
from searchers.rminas import RMINAS

#: positives nearest to a voted cell that failed verification, who vote again (``verify_near``)
NEAR = 10
#: best positives re-scored beside the vote by ``final_look``
LOOK = 4
#: the higher fidelity of ``final_look``: independent runs averaged per candidate (RMI's ``repeats``)
LOOK_REPEATS = 4


@dataclass
class Search:
    """What one finished RMI-NAS search knows at its end, and how to score more (``score``: ``None`` = not allowed)."""

    seed: int
    threshold: float
    positives: list[tuple[Arch, float]]  # distinct, best first
    told: dict[Arch, float]  # mean score of every told architecture
    choices: tuple[int, ...]
    iso_key: Callable[[Arch], str]
    score: Callable[[list[Arch], int], list[float]] | None
    top_k: int = 50
    extra_evals: dict[str, int] = field(default_factory=dict)

    def voters(self, k: int | None = None) -> list[tuple[Arch, float]]:
        return self.positives[: k or self.top_k]

    def is_positive(self, arch: Arch, rule: str) -> bool:
        """Whether ``arch`` scores at least the threshold; scores it (one evaluation, counted for ``rule``) when
        the search never did."""
        if arch not in self.told:
            assert self.score is not None
            self.told[arch] = self.score([arch], 1)[0]
            self.extra_evals[rule] = self.extra_evals.get(rule, 0) + 1
        return self.told[arch] >= self.threshold


def vote(voters: Sequence[tuple[Arch, float]], choices: tuple[int, ...], *, mode: str = "sum") -> Arch:
    ops = np.array([a.ops for a, _ in voters], dtype=np.int64)
    return Arch(metrics.vote(ops, np.array([s for _, s in voters]), choices, mode=mode))


def weighted_vote(voters: Sequence[tuple[Arch, float]], choices: tuple[int, ...]) -> Arch:
    """Per decision, the option with the largest total weight, a voter's weight being its rank from the bottom
    (the best of k voters weighs k, the last 1): scores are losses of different scales, ranks are not."""
    ops = np.array([a.ops for a, _ in voters], dtype=np.int64)
    weights = np.arange(len(voters), 0, -1, dtype=np.float64)
    return Arch(tuple(int(np.argmax(np.bincount(ops[:, d], weights, n))) for d, n in enumerate(choices)))


def _verify(s: Search, rule: str, fallback: Callable[[Arch], Arch]) -> Arch:
    voted = vote(s.voters(), s.choices)
    return voted if s.is_positive(voted, rule) else fallback(voted)


def _nearest_vote(s: Search, voted: Arch, rule: str) -> Arch:
    """The vote of the :data:`NEAR` positives nearest to ``voted`` (Hamming distance over decisions, then rank); the
    best positive when that vote is not a positive either."""
    near = sorted(s.positives, key=lambda p: sum(a != b for a, b in zip(p[0].ops, voted.ops, strict=True)))[:NEAR]
    again = vote(near, s.choices)
    return again if s.is_positive(again, rule) else s.positives[0][0]


def _final_look(s: Search) -> Arch:
    """Re-score the vote and the :data:`LOOK` best positives with :data:`LOOK_REPEATS` independent runs each, and
    answer the best of them."""
    assert s.score is not None
    candidates = list(dict.fromkeys([vote(s.voters(), s.choices), *(a for a, _ in s.positives[:LOOK])]))
    scores = s.score(candidates, LOOK_REPEATS)
    s.extra_evals["final_look"] = len(candidates) * LOOK_REPEATS
    return candidates[int(np.argmax(scores))]


def _iso_vote(s: Search) -> Arch:
    """The vote of the best positive of each isomorphism class (one network, one vote)."""
    best: dict[str, tuple[Arch, float]] = {}
    for arch, score in s.positives:  # best first, so the first of a class is its best
        best.setdefault(s.iso_key(arch), (arch, score))
    return vote(list(best.values())[: s.top_k], s.choices)


#: every rule: name -> (needs evaluations, answer). ``paper`` is the reference's: the sum vote of the best 50.
RULES: dict[str, tuple[bool, Callable[[Search], Arch]]] = {
    "paper": (False, lambda s: vote(s.voters(), s.choices)),
    "greedy": (False, lambda s: vote(s.voters(), s.choices, mode="greedy")),
    "top10": (False, lambda s: vote(s.voters(10), s.choices)),
    "top25": (False, lambda s: vote(s.voters(25), s.choices)),
    "top100": (False, lambda s: vote(s.voters(100), s.choices)),
    "weighted": (False, lambda s: weighted_vote(s.voters(), s.choices)),
    "iso": (False, _iso_vote),
    "best": (False, lambda s: s.positives[0][0]),
    "verify_best": (True, lambda s: _verify(s, "verify_best", lambda _: s.positives[0][0])),
    "verify_near": (True, lambda s: _verify(s, "verify_near", lambda v: _nearest_vote(s, v, "verify_near"))),
    "final_look": (True, _final_look),
}


def _plugin(group: str, node: dict[str, Any]) -> harness.Plugin:
    """The plug-in a run's summary records under ``config[group]`` (its name and parameters), as the API names it."""
    params = {k: v for k, v in node.items() if k not in ("name", "_target_")}
    return {"benchmark": harness.benchmark, "estimator": harness.estimator, "searcher": harness.searcher}[group](
        node["name"], **params
    )


def replay(folder: Path, summary: dict[str, Any], bench: Benchmark, evaluate: bool) -> Search:
    """The end state of the RMI-NAS search recorded in ``folder`` (``summary``: its summary.json)."""
    config = summary["config"]
    if config["searcher"].get("_target_") != "searchers.rminas.RMINAS":
        raise ConfigError(f"{folder} is not an RMI-NAS search (searcher {config['searcher'].get('name')!r})")
    # the run's own searcher and parameters (its rng unused: tell() draws nothing)
    searcher: RMINAS = _plugin("searcher", config["searcher"]).make(bench.space, np.random.default_rng(0))
    records = harness.load(folder).records
    ok = pd.DataFrame([(r.arch, r.score) for r in records if r.status == "ok"], columns=["arch", "score"])
    for arch, value in ok.itertuples(index=False):
        searcher.tell(bench.space.parse(arch), float(value))
    if searcher.threshold is None or not searcher.positives:
        raise ConfigError(f"{folder}: the search ended before its warm-up did; no rule can answer")
    told = {bench.space.parse(str(a)): float(v) for a, v in ok.groupby("arch", sort=False)["score"].mean().items()}

    def score(archs: list[Arch], repeats: int) -> list[float]:
        estimator = _plugin("estimator", config["estimator"] | ({"repeats": repeats} if repeats > 1 else {}))
        seed, threads = int(summary["estimator_seed"]), int(summary["threads"])
        # one rank run per architecture: a rank sample refuses two isomorphic cells, a verification may not
        runs = [harness.rank(bench.name, estimator, [bench.space.format(a)], seed=seed, threads=threads) for a in archs]
        return [run.records[0].score for run in runs]

    return Search(
        seed=int(summary["seed"]),
        threshold=float(searcher.threshold),
        positives=searcher.positives,
        told=told,
        choices=bench.space.choices,
        iso_key=bench.space.iso_key,
        score=score if evaluate else None,
        top_k=searcher.top_k,
    )


def compare(results: Path, evaluate: bool = True) -> pd.DataFrame:
    """One row per (search, rule) of every finished RMI-NAS search under ``results``: the answer, its validation
    accuracy and the evaluations the rule added."""
    rows = []
    benches: dict[str, Benchmark] = {}
    runs, _ = storage.load_runs(results)
    for folder, summary in runs:
        node = summary["config"]["benchmark"]
        key = repr(sorted(node.items()))
        if key not in benches:
            benches[key] = _plugin("benchmark", node).make()
        bench = benches[key]
        search = replay(folder, summary, bench, evaluate)
        for rule, (needs_evals, answer) in RULES.items():
            if needs_evals and not evaluate:
                continue
            arch = answer(search)
            rows.append(
                {
                    "folder": str(folder),
                    "seed": search.seed,
                    "rule": rule,
                    "answer": bench.space.format(arch),
                    "valid_acc": bench.query(arch).valid_acc,
                    "extra_evals": search.extra_evals.get(rule, 0),
                }
            )
    return pd.DataFrame(rows)


def table(rows: pd.DataFrame, floor: float) -> pd.DataFrame:
    """Per rule: mean, min and standard deviation of the answer's validation accuracy, searches below ``floor``."""
    by = rows.groupby("rule", sort=False)["valid_acc"]
    out = pd.DataFrame(
        {
            "mean": by.mean(),
            "min": by.min(),
            "std": by.std(),
            f"n_below_{floor:g}": by.apply(lambda v: int((v < floor).sum())),
            "n": by.size(),
        }
    )
    return out.join(rows.groupby("rule", sort=False)["extra_evals"].mean().rename("mean_extra_evals"))


#: the margins of PLAN.md's choice (results/examples/rminas_answer/PLAN.md), in validation accuracy points
MARGIN = 0.05


def choose(stats: pd.DataFrame, baseline: str = "paper") -> tuple[str, str]:
    """PLAN.md's choice from :func:`table`'s ``stats``: the rule and why. Only rules whose mean is at most
    :data:`MARGIN` below the ``baseline``'s compete. The highest minimum leads; rules within :data:`MARGIN` of that
    minimum whose mean is at least :data:`MARGIN` above the leader's win over it; among the winners, fewer extra
    evaluations, then the higher mean. The winner replaces the ``baseline`` only if its minimum beats the
    baseline's by more than :data:`MARGIN`."""
    rules: dict[str, dict[str, float]] = {
        str(rule): {str(k): float(v) for k, v in row.items()} for rule, row in stats.to_dict("index").items()
    }
    base = rules[baseline]
    allowed = {r: s for r, s in rules.items() if s["mean"] >= base["mean"] - MARGIN}
    best_min = max(s["min"] for s in allowed.values())
    leaders = {r: s for r, s in allowed.items() if s["min"] == best_min}
    bar = max(s["mean"] for s in leaders.values()) + MARGIN
    better = {r: s for r, s in allowed.items() if s["min"] >= best_min - MARGIN and s["mean"] >= bar}
    pool = better or leaders
    winner = min(pool, key=lambda r: (pool[r]["mean_extra_evals"], -pool[r]["mean"]))
    won = rules[winner]
    if won["min"] - base["min"] <= MARGIN:
        return baseline, (
            f"no rule beats {baseline}'s minimum ({base['min']:.2f}) by more than {MARGIN} (the best, {winner}, by "
            f"{won['min'] - base['min']:+.2f}): {baseline} stays"
        )
    return winner, (
        f"{winner}: minimum {won['min']:.2f} against {baseline}'s {base['min']:.2f}, mean {won['mean']:.2f} against "
        f"{base['mean']:.2f}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m studies.answer_rules", description=__doc__.split("\n")[0])
    parser.add_argument("results", type=Path, help="a folder of finished RMI-NAS search runs")
    parser.add_argument("--out", type=Path, help="write every (search, rule) row to this CSV")
    parser.add_argument("--floor", type=float, default=91.0, help="count answers below this validation accuracy")
    parser.add_argument("--no-evaluate", action="store_true", help="leave out the rules that need evaluations")
    args = parser.parse_args(argv)
    rows = compare(args.results, evaluate=not args.no_evaluate)
    if rows.empty:
        print(f"error: no finished RMI-NAS search under {args.results}", file=sys.stderr)
        return 2
    if args.out:
        rows.to_csv(args.out, index=False)
    stats = table(rows, args.floor)
    print(stats.to_string(float_format="{:.2f}".format))
    print(f"choice (PLAN.md): {choose(stats)[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
