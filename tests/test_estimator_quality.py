"""The quality bar every estimator must clear on NAS-Bench-201, apart from the contract (which checks what an
estimator does, not how well it ranks): Kendall tau above :data:`TAU_BAR` on 30 architectures at the contract's
small settings (:data:`~tests.contracts.test_estimator_contract.TEST_SIZE`). It catches a sign error (higher score
must mean better) and an estimator that does not rank at all. An estimator that cannot rank a sample at seconds of
learning is named in :data:`BY_PAIR`, with its settings, and must order an unambiguous pair instead.
"""

from __future__ import annotations

import numpy as np
import pytest

from harness.benchmarks import NB201
from harness.metrics import kendall_tau
from tests.contracts.test_estimator_contract import ESTIMATORS, context, make

#: the bar: Kendall tau of the scores of 30 random NB201 architectures (seed 1) against their test accuracy
TAU_BAR = 0.2
#: estimators whose direction is checked on :data:`PAIR`, not on a sample, with their settings for it, and why
BY_PAIR = {
    "oneshot": {"train_images": 512, "valid_images": 200, "epochs": 1, "batch_size": 32, "bn_batches": 2},
}
#: a pair of unambiguous order for an estimator that learns for seconds only: the cell that passes its input
#: through (the network is then the stem, reduction blocks and classifier, which every step of a supernet trains)
#: and the cell whose output is zero (a constant prediction). A supernet trained for seconds ranks neither a
#: sample nor NB201's best cell above the zero one: each conv of a cell is trained on a fifth of the steps.
PAIR = ("|none~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|", "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|")


@pytest.fixture(scope="module")
def bench(nb201_csv, tmp_path_factory):
    return NB201("cifar10", cache_dir=str(tmp_path_factory.mktemp("cache"))).load()


@pytest.mark.parametrize("name", [n for n in ESTIMATORS if n not in BY_PAIR])
def test_scores_rank_better_architectures_higher(name, bench):
    """Higher score = predicted better: on a sample of 30, at :data:`TEST_SIZE`, scores agree with test accuracy
    (tau > TAU_BAR). Ranking quality at full size is ``task=rank``'s job (see the README)."""
    est = make(name)
    est.fit(context(bench))
    rng = np.random.default_rng(1)
    archs = [bench.space.sample(rng) for _ in range(30)]
    tau = kendall_tau([est.estimate(a).score for a in archs], [bench.test_accuracy(a) for a in archs])
    assert tau > TAU_BAR, f"{name}: higher score must mean predicted better (tau={tau:.2f})"


@pytest.mark.parametrize("score", ["accuracy", "loss"])
@pytest.mark.parametrize("name", sorted(BY_PAIR))
def test_scores_order_an_unambiguous_pair(name, score, bench):
    """Higher score = predicted better, for each score option of an estimator that cannot rank a sample when it
    learns for seconds: the first cell of :data:`PAIR` scores above the second."""
    better, worse = (bench.space.parse(text) for text in PAIR)
    assert bench.test_accuracy(better) > bench.test_accuracy(worse) + 20
    est = make(name, {name: {**BY_PAIR[name], "score": score}})
    est.fit(context(bench))
    high, low = (est.estimate(arch).score for arch in (better, worse))
    assert high > low, f"{name}: higher score must mean predicted better ({high} <= {low})"
