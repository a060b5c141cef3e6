"""studies/vkdnw_agg.py: VKDNW_agg's sum of log-ranks on hand-made scores."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from studies.vkdnw_agg import COMPONENTS, DENSE, exported_scores, log_rank_sum, read_components


def test_log_rank_sum_by_hand() -> None:
    # ranks a: 1 2 3 4, b: 4 1 3 2 -> sums log(4), log(2), log(9), log(8)
    scores = {"a": np.array([0.1, 0.2, 0.3, 0.4]), "b": np.array([9.0, -1.0, 5.0, 2.0])}
    got = log_rank_sum(scores)
    assert got == pytest.approx([math.log(4), math.log(2), math.log(9), math.log(8)])
    assert int(np.argmax(got)) == 2


def test_ties_average_or_dense_and_nan_lowest() -> None:
    tied = {"v": np.array([5.0, 5.0, 7.0, 7.0, 9.0])}
    assert log_rank_sum(tied) == pytest.approx(np.log([1.5, 1.5, 3.5, 3.5, 5]))  # mean ranks
    assert log_rank_sum(tied, dense=["v"]) == pytest.approx(np.log([1, 1, 2, 2, 3]))  # dense ranks
    # a missing score ranks below every other, -inf included (it ties with -inf)
    assert log_rank_sum({"v": np.array([np.nan, -3.0, 2.0])}) == pytest.approx(np.log([1, 2, 3]))
    assert log_rank_sum({"v": np.array([np.nan, -np.inf, 2.0])}) == pytest.approx(np.log([1.5, 1.5, 3]))


def test_the_papers_five_proxies_vkdnw_dense() -> None:
    assert set(COMPONENTS) == {"vkdnw", "az_nas_expressivity", "az_nas_trainability", "flops", "jacov"}
    assert DENSE == ("vkdnw",)


def test_needs_one_rank_run_of_each(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="exactly one rank run"):
        read_components(tmp_path)


def test_exported_scores_one_per_arch_or_refused(tmp_path: Path) -> None:
    path = tmp_path / "scores.csv"
    rows = [
        ("k1", "nb201", "cifar10", "a", 0, 1.0),
        ("k2", "nb201", "cifar10", "a", 0, 1.0),  # another code version, the same score
        ("k1", "nb201", "cifar10", "b", 0, 2.0),
        ("k1", "nb201", "cifar10", "b", 1, 9.0),  # another seed
        ("k1", "nb301", "cifar10", "c", 0, 3.0),  # another benchmark
    ]
    pd.DataFrame(rows, columns=["estimator", "benchmark", "dataset", "arch", "seed", "score"]).to_csv(path)
    assert exported_scores(path, "nb201", "cifar10", 0).to_dict() == {"a": 1.0, "b": 2.0}
    rows.append(("k3", "nb201", "cifar10", "a", 0, 1.5))
    pd.DataFrame(rows, columns=["estimator", "benchmark", "dataset", "arch", "seed", "score"]).to_csv(path)
    with pytest.raises(ValueError, match="different scores"):
        exported_scores(path, "nb201", "cifar10", 0)
