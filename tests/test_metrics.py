from __future__ import annotations

import numpy as np
import pytest

from harness import metrics


def test_kendall_tau_by_hand():
    # pairs of (1,2,3) vs (1,3,2): 2 concordant, 1 discordant -> (2 - 1) / 3
    assert metrics.kendall_tau([1, 2, 3], [1, 3, 2]) == pytest.approx(1 / 3)
    assert metrics.kendall_tau([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1)
    assert np.isnan(metrics.kendall_tau([1, 1, 1], [1, 2, 3]))


def test_spearman_by_hand():
    # ranks (1,2,3,4) vs (2,1,4,3): d^2 sum = 4 -> 1 - 6*4 / (4*15) = 0.6
    assert metrics.spearman_rho([10, 20, 30, 40], [2, 1, 4, 3]) == pytest.approx(0.6)


def test_top_k_precision_by_hand():
    scores = [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]
    truth = [0, 8, 7, 6, 5, 4, 3, 2, 1, 9]
    assert metrics.top_k_precision(scores, truth, 0.2) == 0.5  # top-2 {0,1} vs {9,1}
    assert metrics.top_k_precision(scores, scores, 0.1) == 1.0
    assert metrics.top_k_precision(scores, truth, 0.01) == 0.0  # at least one: {0} vs {9}


def test_bootstrap_ci_brackets_the_estimate():
    rng = np.random.default_rng(0)
    x = rng.normal(size=200)
    y = x + rng.normal(size=200)
    tau = metrics.kendall_tau(x, y)
    lo, hi = metrics.tau_ci(x, y, np.random.default_rng(1), n_boot=300)
    assert lo < tau < hi and hi - lo < 0.25


def test_bootstrap_ci_is_scipys_percentile_bootstrap_that_leaves_out_nan():
    from scipy.stats import bootstrap

    x = np.array([3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0])
    y = np.array([2.0, 7.0, 1.0, 8.0, 2.0, 8.0, 1.0, 8.0])
    ours = metrics.tau_diff_ci(x, -y, y, np.random.default_rng(3), n_boot=200)
    theirs = bootstrap(
        (x, -y, y),
        lambda a, b, t: metrics.kendall_tau(a, t) - metrics.kendall_tau(b, t),
        n_resamples=200,
        paired=True,
        vectorized=False,
        method="percentile",
        rng=np.random.default_rng(3),
    ).confidence_interval
    assert ours == pytest.approx((theirs.low, theirs.high))
    # a constant resample has no tau: scipy's interval turns NaN, ours leaves that resample out
    lo, hi = metrics.tau_ci(np.array([1.0, 1.0, 2.0]), np.array([1.0, 2.0, 3.0]), np.random.default_rng(0), 50)
    assert np.isfinite([lo, hi]).all() and -1 <= lo <= hi <= 1


def test_top1_regret_is_the_loss_of_trusting_the_best_score():
    assert metrics.top1_regret([0.1, 0.9, 0.5], [90.0, 92.0, 94.0]) == pytest.approx(2.0)
    assert metrics.top1_regret([3, 2, 1], [94.0, 92.0, 90.0]) == 0.0
    assert metrics.top1_regret([1, 1, 0], [90.0, 94.0, 93.0]) == pytest.approx(4.0)  # a tie: the first


def test_vote_is_the_per_decision_majority_and_ties_go_to_the_lower_index():
    ops = np.array([[0, 1, 2], [0, 1, 1], [1, 2, 1], [1, 2, 2]])
    scores = np.array([1.0, 2.0, 3.0, 4.0])
    assert metrics.vote(ops[:3], scores[:3], (3, 3, 3)) == (0, 1, 1)
    assert metrics.vote(ops, scores, (3, 3, 3)) == (0, 1, 1)  # 2-2 everywhere: the lower index
    assert metrics.vote(ops, scores, (3, 3, 3), tie_break="score") == (1, 2, 1)  # better voters; 5 = 5: lower


def test_argmax_so_far_and_mean_std():
    # a failed (NaN) first value, a tie (3 at 2 and 4: the earlier stays), -inf never becomes the best
    assert metrics.argmax_so_far([np.nan, 1, 3, 2, 3, 5]).tolist() == [-1, 1, 2, 2, 2, 5]
    assert metrics.argmax_so_far([-np.inf, np.nan]).tolist() == [-1, -1]
    assert metrics.argmax_so_far([]).tolist() == []
    assert metrics.mean_std([1.0, 2.0, 3.0, np.nan]) == (2.0, 1.0, 3)
    assert metrics.mean_std([4.0]) == (4.0, 0.0, 1)


def test_ndcg_by_hand():
    # gains 2^t - 1 = 1, 3, 7; the scores order them 1, 3, 7, the ideal 7, 3, 1; discounts 1, 1/log2(3), 1/2
    scores, truth = [3.0, 2.0, 1.0], [1.0, 2.0, 3.0]
    d = 1 / np.log2(3)
    assert metrics.ndcg(scores, truth) == pytest.approx((1 + 3 * d + 7 / 2) / (7 + 3 * d + 1 / 2))  # 0.6806
    assert metrics.ndcg(scores, truth) == pytest.approx(0.68061, abs=1e-5)
    assert metrics.ndcg(scores, truth, k=1) == pytest.approx(1 / 7)
    assert metrics.ndcg(scores, truth, k=2) == pytest.approx((1 + 3 * d) / (7 + 3 * d))
    assert metrics.ndcg(truth, truth) == 1.0 and metrics.ndcg(truth, truth, k=50) == 1.0  # k past the end: all
    # accuracy in percent: one point halves the gain (2^93 : 2^94 : 2^90 = 8 : 16 : 1), and nothing overflows
    assert metrics.ndcg([2.0, 3.0, 1.0], [94.0, 93.0, 90.0]) == pytest.approx(
        (8 + 16 * d + 1 / 2) / (16 + 8 * d + 1 / 2)
    )
    assert metrics.ndcg([1.0, 1.0, 0.0], [90.0, 94.0, 93.0], k=1) == pytest.approx(2.0**-4)  # a tie: the first
    assert np.isnan(metrics.ndcg([1.0, 2.0], [0.0, 0.0]))  # no gain anywhere


def test_ndcg_cutoff_is_vkdnws_share_of_the_space():
    assert metrics.ndcg_cutoff(15625) == 1000 and metrics.ndcg_cutoff(1000) == 64
    assert metrics.ndcg_cutoff(200) == 13 and metrics.ndcg_cutoff(3) == 1


def test_paired_diff_ci_of_ndcg_and_tau():
    rng = np.random.default_rng(0)
    y = 90 + 4 * rng.random(300)
    good, bad = y + rng.normal(0, 0.5, 300), y + rng.normal(0, 3, 300)
    lo, hi = metrics.paired_diff_ci(metrics.ndcg, good, bad, y, np.random.default_rng(1), n_boot=200)
    assert 0 < lo < metrics.ndcg(good, y) - metrics.ndcg(bad, y) < hi
    # tau_diff_ci is paired_diff_ci of Kendall's tau: the same resamples, the same interval
    tau = metrics.tau_diff_ci(good, bad, y, np.random.default_rng(2), n_boot=100)
    assert tau == metrics.paired_diff_ci(metrics.kendall_tau, good, bad, y, np.random.default_rng(2), n_boot=100)
    assert 0 < tau[0] < tau[1]
    same = metrics.paired_diff_ci(metrics.ndcg, good, good, y, np.random.default_rng(1), n_boot=50)
    assert same == (0.0, 0.0)


def test_rminas_vote_preview_votes_the_best_scored_5_percent():
    assert [metrics.rminas_voters(n) for n in (1, 10, 40, 200, 1000, 5000)] == [1, 1, 2, 10, 50, 50]
    # 40 members: the 2 best-scored vote; they disagree on decision 1 (tie: the lower index), agree on 0 and 2
    ops = np.zeros((40, 3), dtype=np.int64)
    scores = np.arange(40, dtype=float)
    ops[39], ops[38] = [2, 3, 1], [2, 1, 1]
    ops[37] = [4, 4, 4]  # third best: no vote
    assert metrics.rminas_vote_preview(ops, scores, (5, 5, 5)) == (2, 1, 1)
    # a tie of scores at the cut goes to the first: member 0 votes, member 1 does not
    ops2, scores2 = np.array([[1], [2], [0]]), np.array([5.0, 5.0, 1.0])
    assert metrics.rminas_vote_preview(ops2, scores2, (3,)) == (1,)
