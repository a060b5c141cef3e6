"""studies/top_of_space.py: the pool is the select half's top, and a real estimator scores it through the cache."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import harness
from harness import ConfigError
from harness.sampling import split_of
from studies import top_of_space


@pytest.fixture(scope="module")
def bench():
    return harness.benchmark("nb201").make()


def test_the_pool_is_the_select_half_s_top_without_isomorphic_pairs(bench):
    archs = top_of_space.pool(bench, 40, 0.1)
    everything = [bench.query(a).valid_acc for a in bench.space.enumerate()]
    floor = np.quantile(everything, 0.9)
    assert len(archs) == 40
    assert len({bench.space.iso_key(a) for a in archs}) == 40
    assert all(split_of(bench.space, a) == "select" for a in archs)
    assert min(bench.query(a).valid_acc for a in archs) >= floor
    assert top_of_space.pool(bench, 40, 0.1) == archs  # fixed: every variant scores the same pool


def test_a_pool_larger_than_the_top_says_so(bench):
    with pytest.raises(ConfigError, match="smaller --pool or a larger --quantile"):
        top_of_space.pool(bench, 100, 0.001)


def test_a_variant_is_a_config_name_or_a_labelled_name_with_overrides():
    assert top_of_space.variant("rmi")[0] == "rmi"
    label, plugin = top_of_space.variant("wide=rmi:channels=null:steps=50")
    assert label == "wide"
    assert plugin.params["channels"] is None and plugin.params["steps"] == 50
    with pytest.raises(ConfigError, match="needs a label"):
        top_of_space.variant("rmi:steps=50")
    with pytest.raises(ConfigError, match="is not KEY=VALUE"):
        top_of_space.variant("x=rmi:steps")


def test_a_perfect_scorer_tops_the_table_and_two_seeds_agree(bench):
    archs = [bench.space.format(a) for a in top_of_space.pool(bench, 30, 0.1)]
    valid = {a: bench.query(bench.space.parse(a)).valid_acc for a in archs}
    noise = np.random.default_rng(0).normal(size=len(archs))
    rows = pd.DataFrame(
        [{"variant": "oracle", "seed": s, "arch": a, "score": valid[a], "cost_s": 1.0} for s in (0, 1) for a in archs]
        + [
            {"variant": "noise", "seed": 0, "arch": a, "score": n, "cost_s": 2.0}
            for a, n in zip(archs, noise, strict=True)
        ]
    )
    stats = top_of_space.table(rows, valid, top=5).set_index(["variant", "seed"])
    best5 = np.sort(list(valid.values()))[-5:].mean()
    assert stats.loc[("oracle", 0), "tau"] == pytest.approx(1.0, abs=0.02)  # ties in the table's accuracies
    assert stats.loc[("oracle", 0), "top5_valid"] == pytest.approx(best5)
    assert stats.loc[("oracle", 0), "seed_tau"] == pytest.approx(1.0)
    assert stats.loc[("noise", 0), "top5_valid"] < best5
    assert np.isnan(stats.loc[("noise", 0), "seed_tau"])
    assert stats.loc[("noise", 0), "s_per_arch"] == 2.0


def test_a_real_estimator_scores_the_pool_and_the_cli_prints_the_table(capsys, tmp_path):
    out = tmp_path / "rows.csv"
    small = "tiny=rmi:steps=2:batch_size=8:pool_factor=2"
    assert top_of_space.main([small, "--pool", "6", "--top", "2", "--seeds", "0,1", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "pool: 6 architectures" in printed and "tiny" in printed
    rows = pd.read_csv(out)
    assert len(rows) == 12 and rows.score.notna().all() and (rows.valid_acc >= 89.6).all()
    assert top_of_space.main(["nope"]) == 2
    assert "nope" in capsys.readouterr().err
