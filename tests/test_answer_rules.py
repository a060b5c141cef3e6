"""studies/answer_rules.py: every rule answers from the replayed end state of a real RMI-NAS search."""

from __future__ import annotations

import pytest

from harness import storage
from harness.types import Arch
from studies import answer_rules

SMALL = [
    "searcher=rminas",
    "estimator=rmi",
    "estimator.steps=2",
    "estimator.batch_size=8",
    "estimator.pool_factor=2",
    "searcher.n_warmup=20",
    "searcher.n_positives=6",
    "searcher.top_k=10",
    "searcher.n_candidates=50",
    "threads=1",
    "progress=false",
]


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    import subprocess
    import sys

    results = tmp_path_factory.mktemp("results")
    subprocess.run([sys.executable, "-m", "harness", *SMALL, f"results_dir={results}"], check=True)
    return results


def test_the_paper_rule_replays_the_search_s_own_answer(searched):
    rows = answer_rules.compare(searched)
    [(folder, summary)] = storage.load_runs(searched)[0]
    by_rule = rows.set_index("rule")
    assert by_rule.loc["paper", "answer"] == summary["incumbent"]
    assert set(by_rule.index) == set(answer_rules.RULES)
    assert (by_rule.drop(["verify_best", "verify_near", "final_look"])["extra_evals"] == 0).all()


def test_verified_and_looked_answers_are_scored_candidates(searched):
    from harness.benchmarks import NB201

    bench = NB201("cifar10").load()
    [(folder, summary)] = storage.load_runs(searched)[0]
    search = answer_rules.replay(folder, summary, bench, evaluate=True)
    best = answer_rules.RULES["best"][1](search)
    assert best == search.positives[0][0]
    answer = answer_rules.RULES["verify_best"][1](search)
    assert search.told[answer] >= search.threshold  # a verified answer is a positive
    looked = answer_rules.RULES["final_look"][1](search)
    n = len({answer_rules.vote(search.voters(), search.choices), *(a for a, _ in search.positives[:4])})
    assert search.extra_evals["final_look"] == n * answer_rules.LOOK_REPEATS
    assert looked in {answer_rules.vote(search.voters(), search.choices), *(a for a, _ in search.positives[:4])}


def test_weighted_vote_weighs_voters_by_rank():
    # three voters: the best picks option 1 on decision 0, the other two option 0: counts say 0, ranks 3 vs 2+1
    voters = [(Arch((1, 0)), -0.1), (Arch((0, 0)), -0.2), (Arch((0, 1)), -0.3)]
    assert answer_rules.weighted_vote(voters, (2, 2)) == Arch((0, 0))  # 3 vs 3: a tie goes to the lower option
    voters = [(Arch((1, 0)), -0.1), (Arch((1, 0)), -0.15), (Arch((0, 1)), -0.2), (Arch((0, 1)), -0.3)]
    assert answer_rules.weighted_vote(voters, (2, 2)) == Arch((1, 0))  # 4+3 beats 2+1, where counts tie
    assert answer_rules.vote(voters, (2, 2)) == Arch((0, 0))  # the plain vote's ties go to the lower index


def _stats(**rules: tuple[float, float, float]):
    import pandas as pd

    return pd.DataFrame.from_dict(rules, orient="index", columns=["mean", "min", "mean_extra_evals"])


@pytest.mark.parametrize(
    ("stats", "chosen"),
    [
        # the highest minimum wins when it beats the paper's by more than the margin
        (_stats(paper=(91.2, 89.8, 0), a=(91.2, 90.5, 0), b=(91.3, 90.0, 0)), "a"),
        # within the margin of the paper's minimum: the paper stays
        (_stats(paper=(91.2, 89.8, 0), a=(91.3, 89.84, 0)), "paper"),
        # a higher minimum that lowers the mean by more than the margin does not compete
        (_stats(paper=(91.2, 89.8, 0), a=(91.1, 90.5, 0)), "paper"),
        # within the margin of the highest minimum and a mean higher by the margin: wins over the leader
        (_stats(paper=(91.2, 89.8, 0), a=(91.2, 90.5, 0), b=(91.3, 90.46, 0)), "b"),
        # as good: fewer extra evaluations win
        (_stats(paper=(91.2, 89.8, 0), a=(91.2, 90.5, 3), b=(91.2, 90.5, 1)), "b"),
    ],
)
def test_the_choice_follows_the_plan(stats, chosen):
    assert answer_rules.choose(stats)[0] == chosen
