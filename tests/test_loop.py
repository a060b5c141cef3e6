from __future__ import annotations

import math

import numpy as np
import pytest

from estimators.table import TableEstimator
from harness import loop, sampling
from harness.budget import Budget
from harness.errors import ConfigError, EstimatorError
from harness.interfaces import Estimator, EstimatorTags
from harness.types import Arch, Estimate
from searchers.random_search import RandomSearch
from tests.conftest import toy_context


class Flaky(Estimator):
    """Fails on architectures whose first op is 0 (raises) or 1 (returns NaN); else sum of ops."""

    tags = EstimatorTags(live=True)

    def estimate(self, arch: Arch) -> Estimate:
        if arch.ops[0] == 0:
            raise EstimatorError("diverged")
        return Estimate(math.nan if arch.ops[0] == 1 else float(sum(arch.ops)), 0.5, "cpu")


class Broken(Estimator):
    tags = EstimatorTags(live=True)

    def estimate(self, arch: Arch) -> Estimate:
        raise RuntimeError("CUDA out of memory")


def test_failures_are_recorded_and_the_search_goes_on(toy):
    result = loop.search(
        toy, Flaky(), RandomSearch(toy.space, np.random.default_rng(0)), Budget(max_evals=60), toy_context(toy)
    )
    records = result.records
    assert len(records) == 60
    failed = [r for r in records if r.status == "failed"]
    assert failed and all(math.isnan(r.score) for r in failed)
    assert {r.reason.split(":")[0] for r in failed} == {"EstimatorError", "non-finite score nan"}
    assert all(r.cost_s == 0.5 for r in records if r.status == "ok")
    assert result.summary.n_failed == len(failed)
    best = max((r for r in records if r.status == "ok"), key=lambda r: r.score)
    assert result.summary.incumbent == best.arch


def test_a_run_of_failures_aborts_with_the_reason(toy):
    with pytest.raises(loop.RunAborted, match="10 evaluations in a row failed.*CUDA out of memory"):
        loop.search(
            toy, Broken(), RandomSearch(toy.space, np.random.default_rng(0)), Budget(max_evals=50), toy_context(toy)
        )


def test_clock_and_records_agree(toy):
    result = loop.search(
        toy,
        TableEstimator(),
        RandomSearch(toy.space, np.random.default_rng(1)),
        Budget(max_cost_s=300.0),
        toy_context(toy),
    )
    costs = np.array([r.cost_s for r in result.records])
    assert np.allclose(np.cumsum(costs), [r.clock_s for r in result.records])
    assert result.summary.total_cost_s == pytest.approx(costs.sum())
    assert [r.step for r in result.records] == list(range(len(costs)))
    assert result.summary.incumbent_test_acc == toy.test_accuracy(toy.space.parse(result.summary.incumbent))


def test_searcher_recommendation_wins_over_best_seen(toy):
    class Recommends(RandomSearch):
        def recommend(self) -> Arch:
            return Arch((3, 3, 3))

    result = loop.search(
        toy, TableEstimator(), Recommends(toy.space, np.random.default_rng(0)), Budget(max_evals=3), toy_context(toy)
    )
    assert result.summary.incumbent == "ddd"
    assert result.summary.incumbent_valid_acc == toy.query(Arch((3, 3, 3))).valid_acc


def test_cost_budget_needs_recorded_costs(toy):
    toy.has_train_cost = False
    with pytest.raises(ConfigError, match="records no training time.*budget.max_evals"):
        loop.search(
            toy,
            TableEstimator(),
            RandomSearch(toy.space, np.random.default_rng(0)),
            Budget(max_cost_s=10.0),
            toy_context(toy),
        )


def test_rank_reports_correlations_on_distinct_architectures(toy):
    archs, draws = sampling.sample_distinct(toy.space, 40, np.random.default_rng(0))
    assert len(set(archs)) == 40 and draws >= 40
    result = loop.rank(toy, TableEstimator(), archs, toy_context(toy), ci_rng=np.random.default_rng(0))
    s, m = result.summary, result.summary.metrics
    assert m is not None and s.n_archs == s.n_unique == s.n_scored == 40
    assert m.kendall_tau_valid == pytest.approx(1.0)  # the table estimator *is* the validation accuracy
    lo, hi = m.kendall_tau_test_ci95
    assert 0.5 < lo <= m.kendall_tau_test <= hi <= 1.0
    assert s.total_cost_s == pytest.approx(sum(toy.query(a).train_cost_s for a in archs))


def test_rank_reports_the_top_of_the_sample_with_intervals(toy):
    archs, _ = sampling.sample_distinct(toy.space, 40, np.random.default_rng(0))
    m = loop.rank(toy, TableEstimator(), archs, toy_context(toy), ci_rng=np.random.default_rng(0)).summary.metrics
    assert m is not None
    # the table estimator is the validation accuracy: the top of the sample by validation is found exactly
    assert m.top5_precision_valid == m.top10_precision_valid == 1.0 and m.top1_regret_valid == 0.0
    assert m.ndcg_valid == 1.0 and m.ndcg_k == 3  # VKDNW's 1,000 of 15,625, as a share of 40
    picked = [toy.test_accuracy(a) for a in sorted(archs, key=lambda a: -toy.query(a).valid_acc)[:3]]
    ideal = sorted((toy.test_accuracy(a) for a in archs), reverse=True)[:3]
    discount = 1 / np.log2([2, 3, 4])
    dcg = sum((2**t - 1) * d for t, d in zip(picked, discount, strict=True))
    assert m.ndcg_test == pytest.approx(dcg / sum((2**t - 1) * d for t, d in zip(ideal, discount, strict=True)))
    top = max(archs, key=lambda a: toy.query(a).valid_acc)
    assert m.top1_regret_test == pytest.approx(m.sample_best_test_acc - toy.test_accuracy(top))
    assert m.vote_voters == 2  # 5% of 40
    voted = toy.space.parse(m.vote_answer)
    assert m.vote_answer_valid_acc == toy.query(voted).valid_acc
    assert m.vote_answer_test_acc == toy.test_accuracy(voted)
    for name in ("kendall_tau_test", "top5_precision_test", "top1_regret_test", "vote_answer_test_acc", "ndcg_test"):
        lo, hi = getattr(m, f"{name}_ci95")
        assert lo <= hi and np.isfinite([lo, hi]).all(), name


def test_records_carry_the_answer_of_the_search_at_each_step(toy):
    from searchers.rminas import RMINAS

    searcher = RMINAS(toy.space, np.random.default_rng(0), n_warmup=10, n_positives=3, n_trees=5)
    result = loop.search(toy, TableEstimator(), searcher, Budget(max_evals=40), toy_context(toy))
    records = result.records
    # before the warm-up ends, the answer is the best-scored evaluation so far; then the vote
    assert [r.answer for r in records[:9]] == [max(records[: i + 1], key=lambda x: x.score).arch for i in range(9)]
    assert records[-1].answer == result.summary.incumbent and result.summary.incumbent_by == "searcher"
    assert all(r.answer_test_acc == toy.test_accuracy(toy.space.parse(r.answer)) for r in records)


def test_a_searcher_that_cannot_answer_within_the_budget_says_so(toy, caplog):
    from searchers.rminas import RMINAS

    searcher = RMINAS(toy.space, np.random.default_rng(0), n_warmup=20)
    result = loop.search(toy, TableEstimator(), searcher, Budget(max_evals=5), toy_context(toy))
    s = result.summary
    assert s.incumbent_by == "best-scored evaluation" and s.incumbent_note == (
        "RMINAS gave no answer of its own within the budget (RMI-NAS: its warm-up did not finish, so no threshold "
        "was fixed); the answer is the best-scored evaluation"
    )
    assert "warm-up did not finish" in caplog.text
    assert s.incumbent == max(result.records, key=lambda r: r.score).arch


def test_the_loop_asks_the_searcher_interface_only(toy, caplog):
    """What the loop reads from a searcher is declared by :class:`Searcher`, with defaults: no goal (the budget
    stops it), no reason to give when it has no answer. A searcher names its own reason, in its own words."""
    plain = RandomSearch(toy.space, np.random.default_rng(0))
    assert plain.goal is None and plain.no_answer_reason() is None

    class Undecided(RandomSearch):
        def recommend(self) -> Arch | None:
            return None

    class Explains(Undecided):
        def no_answer_reason(self) -> str:
            return "it never decides"

    quiet = loop.search(
        toy, TableEstimator(), Undecided(toy.space, np.random.default_rng(0)), Budget(max_evals=3), toy_context(toy)
    ).summary
    assert quiet.incumbent_by == "best-scored evaluation" and quiet.incumbent_note is None
    said = loop.search(
        toy, TableEstimator(), Explains(toy.space, np.random.default_rng(0)), Budget(max_evals=3), toy_context(toy)
    ).summary
    assert said.incumbent_note == (
        "Explains gave no answer of its own within the budget (it never decides); the answer is the best-scored "
        "evaluation"
    )
