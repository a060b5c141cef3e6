"""RMI-NAS searcher: warm-up, threshold, forest-guided proposals, stopping, the two votes, config errors, seeds."""

from __future__ import annotations

import numpy as np
import pytest
from omegaconf import OmegaConf

from estimators.table import TableEstimator
from harness import loop
from harness.budget import Budget
from harness.errors import ConfigError
from harness.interfaces import SearchSpace
from harness.plugins import build
from harness.spaces.nb201 import NB201Space
from harness.spaces.toy import ToySpace
from harness.types import Arch
from searchers.rminas import RMINAS
from tests.conftest import CONF, ToyBenchmark, drive, toy_context

NB201 = NB201Space()
TOY = ToySpace()


def n_conv(arch: Arch) -> float:
    """Synthetic NB201 score: the number of convolutions (nor_conv_1x1 = 2, nor_conv_3x3 = 3) in the cell."""
    return float(sum(op in (2, 3) for op in arch.ops))


def rminas(space: SearchSpace = NB201, seed: int = 0, **hparams: object) -> RMINAS:
    return RMINAS(space, np.random.default_rng(seed), **hparams)  # type: ignore[arg-type]


def tell_all(searcher: RMINAS, table: dict[str, float]) -> None:
    for text, score in table.items():
        searcher.tell(TOY.parse(text), score)


def test_yaml_builds_the_reference_defaults():
    name, factory = build(OmegaConf.load(CONF / "searcher" / "rminas.yaml"))
    searcher = factory(NB201, np.random.default_rng(0))
    assert name == "rminas" and isinstance(searcher, RMINAS)
    got = {k: getattr(searcher, k) for k in ("n_warmup", "positive_quantile", "n_trees", "n_candidates")}
    assert got == {"n_warmup": 100, "positive_quantile": 0.05, "n_trees": 30, "n_candidates": 1000}
    assert (searcher.n_positives, searcher.top_k, searcher.mode, searcher.unique) == (100, 50, "sum", True)


def test_warmup_is_n_warmup_uniform_draws_then_the_threshold_is_fixed():
    searcher = rminas(seed=5, n_warmup=20, unique=False)
    reference = np.random.default_rng(5)
    for _ in range(20):
        arch = searcher.ask()
        assert arch == NB201.sample(reference)  # plain uniform draws from the searcher's rng
        assert searcher.threshold is None
        searcher.tell(arch, n_conv(arch))
    assert searcher.threshold is not None


def test_unique_warmup_never_repeats():
    asked = drive(rminas(TOY, n_warmup=60), lambda a: 0.0 + sum(a.ops), 60)
    assert len(set(asked)) == 60


def test_threshold_is_the_top_quantile_of_the_warmup_scores():
    searcher = rminas(n_warmup=100, n_positives=1000, n_candidates=50)
    warmup = [searcher.ask() for _ in range(100)]
    for i, arch in enumerate(warmup):
        searcher.tell(arch, float(i))
    assert searcher.threshold == pytest.approx(94.05)  # = -(5% quantile of the losses 0..-99)
    assert [s for _, s in searcher.positives] == [99.0, 98.0, 97.0, 96.0, 95.0]
    below, at = searcher.ask(), searcher.ask()
    searcher.tell(below, 94.0)
    searcher.tell(at, searcher.threshold)
    searcher.tell(searcher.ask(), 1000.0)
    assert searcher.threshold == pytest.approx(94.05)  # fixed after the warm-up
    assert searcher.n_found == 2 and len(searcher.positives) == 7


def test_forest_guided_proposals_beat_random_ones_on_nb201():
    searcher = rminas(n_warmup=60, positive_quantile=0.1, n_candidates=300, n_positives=1000)
    asked = drive(searcher, n_conv, 100)
    warmup = [n_conv(a) for a in asked[:60]]
    guided = [n_conv(a) for a in asked[60:]]
    assert len(guided) == 40
    assert np.mean(guided) > np.mean(warmup) + 1.0  # random: 6 * 2/5 = 2.4 convolutions on average
    assert np.mean(guided) > 4.0


def test_stops_once_the_forest_found_n_positives():
    searcher = rminas(n_warmup=30, positive_quantile=0.1, n_candidates=200, n_positives=5)
    asked = drive(searcher, n_conv, 500)
    assert searcher.threshold is not None
    guided_positive = [n_conv(a) >= searcher.threshold for a in asked[30:]]
    assert sum(guided_positive) == searcher.n_found == 5
    assert guided_positive[-1]  # the search ends on its fifth positive
    assert searcher.ask() is None


@pytest.mark.parametrize("unique", [True, False])
def test_stops_when_the_toy_space_is_exhausted(unique):
    searcher = rminas(TOY, n_warmup=10, n_trees=10, unique=unique)
    asked = drive(searcher, lambda a: float(sum(a.ops)), 1000)
    assert set(asked) == set(TOY.enumerate())
    assert len(set(asked[10:])) == len(asked[10:]) and not set(asked[:10]) & set(asked[10:])  # guided: unseen only
    assert searcher.ask() is None


# Four positives (scores >= the median 5) and four negatives; the best four vote.
SUM_CASE = {"abc": 10.0, "acd": 9.0, "bbd": 8.0, "bdd": 7.0, "caa": 1.0, "dab": 2.0, "ccc": 0.0, "cab": 3.0}


def test_sum_answer_is_the_per_decision_majority_of_the_top_positives():
    searcher = rminas(TOY, n_warmup=8, positive_quantile=0.5, top_k=4, tie_break="score")
    assert searcher.recommend() is None  # no threshold yet
    tell_all(searcher, SUM_CASE)
    assert searcher.threshold == 5.0
    # decision 0: a (10 + 9) ties b (8 + 7), the voters' total score decides; decision 1: b twice; decision 2: d.
    assert TOY.format(searcher.recommend()) == "abd"  # never evaluated


@pytest.mark.parametrize(("tie_break", "answer"), [("score", "bbd"), ("index", "abd")])
def test_sum_ties_go_to_the_better_voters_or_to_the_lower_index(tie_break, answer):
    flipped = {**SUM_CASE, "abc": 7.0, "acd": 8.0, "bbd": 9.0, "bdd": 10.0}
    searcher = rminas(TOY, n_warmup=8, positive_quantile=0.5, top_k=4, tie_break=tie_break)
    tell_all(searcher, flipped)
    assert TOY.format(searcher.recommend()) == answer  # decision 0: a (7 + 8) ties b (9 + 10)
    top2 = rminas(TOY, n_warmup=8, positive_quantile=0.5, top_k=2, tie_break=tie_break)
    tell_all(top2, SUM_CASE)  # voters abc (10) and acd (9): every tie goes to abc, the better and the lower
    assert TOY.format(top2.recommend()) == "abc"


# Five positives (scores >= 5); "a" leads decision 0, then the voters that chose "a" disagree on decision 1.
GREEDY_CASE = {"aab": 10.0, "acc": 9.0, "add": 8.0, "bba": 7.0, "cba": 6.0}
GREEDY_CASE |= {"dda": 0.0, "dad": 1.0, "ddd": 2.0, "ccc": 3.0, "bad": 4.0}


def test_greedy_answer_follows_the_chain_of_decisions():
    answers = {}
    for mode in ("sum", "greedy"):
        searcher = rminas(TOY, n_warmup=10, positive_quantile=0.5, top_k=5, mode=mode, tie_break="score")
        tell_all(searcher, GREEDY_CASE)
        answers[mode] = TOY.format(searcher.recommend())
    # sum: a (3 votes), b (bba, cba), a (bba, cba). greedy: a; the a-voters chose a, c, d once each at decision 1,
    # which also tie overall (1 vote each), so the best voter (aab, 10) decides a; the only "aa" voter then says b.
    assert answers == {"sum": "aba", "greedy": "aab"}


def test_greedy_and_sum_find_a_conv_cell_on_nb201():
    answers, trajectories = {}, {}
    for mode in ("sum", "greedy"):
        searcher = rminas(seed=3, n_warmup=40, positive_quantile=0.1, n_candidates=200, n_positives=10, mode=mode)
        trajectories[mode] = drive(searcher, n_conv, 300)
        answers[mode] = searcher.recommend()
    assert trajectories["sum"] == trajectories["greedy"]  # the mode only changes the answer
    assert all(n_conv(a) >= 4 for a in answers.values())  # random cells have 2.4 convolutions on average


def test_a_single_class_does_not_crash():
    searcher = rminas(TOY, n_warmup=10, n_positives=5)
    asked = drive(searcher, lambda a: 1.0, 100)  # every score equal: every architecture is positive
    assert searcher.threshold == 1.0
    assert len(asked) == 15 and len(set(asked)) == 15 and searcher.n_found == 5
    assert TOY.is_valid(searcher.recommend())


def test_in_the_loop_the_answer_is_the_vote_after_the_warmup_and_the_best_before():
    bench = ToyBenchmark()
    early = loop.search(bench, TableEstimator(), rminas(TOY, n_warmup=10), Budget(max_evals=5), toy_context(bench))
    assert early.summary.incumbent_valid_acc == max(r.score for r in early.records)
    searcher = rminas(TOY, n_warmup=10, top_k=3)
    late = loop.search(bench, TableEstimator(), searcher, Budget(max_evals=30), toy_context(bench))
    assert late.summary.incumbent == TOY.format(searcher.recommend())


@pytest.mark.parametrize(
    "bad",
    [
        {"n_warmup": 0},
        {"n_warmup": 2.5},
        {"positive_quantile": 0.0},
        {"positive_quantile": 1.0},
        {"positive_quantile": "0.05"},
        {"n_trees": 0},
        {"n_candidates": -1},
        {"n_positives": 0},
        {"top_k": 0},
        {"top_k": True},
        {"mode": "max"},
    ],
)
def test_bad_hyper_parameters_raise_config_error(bad):
    key = next(iter(bad))
    with pytest.raises(ConfigError, match=f"rminas: {key}"):
        rminas(**bad)


def test_same_seed_same_trajectory_and_answer_other_seed_differs():
    def run(seed: int) -> tuple[list[Arch], Arch | None]:
        searcher = rminas(seed=seed, n_warmup=20, n_trees=10, n_candidates=100, n_positives=1000)
        return drive(searcher, n_conv, 40), searcher.recommend()

    a, b, c = run(7), run(7), run(8)
    assert a == b
    assert a[0] != c[0]
