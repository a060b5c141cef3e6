"""The loop's summary records: written as ``summary.json`` has always held them, cost units read back, and the
readers' keys checked against the records."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from estimators.table import TableEstimator
from harness import aggregate, loop, plots, report, sampling, storage
from harness.budget import Budget, CostUnit, cost_unit
from harness.summaries import (
    RankMetrics,
    RankSummary,
    RunInfo,
    SearchSummary,
    Where,
    as_dict,
    interval_key,
    run_dict,
    summary_key,
)
from searchers.random_search import RandomSearch
from tests.conftest import toy_context

#: every cost unit the harness has written (the last one before the CPU-second clock), and what it is
WRITTEN = {
    "recorded benchmark training seconds": CostUnit.RECORDED,
    "CPU seconds of the process on cpu": CostUnit.CPU,
    "wall seconds on cuda": CostUnit.WALL,
    "wall seconds on cuda:1": CostUnit.WALL,
    "wall seconds on mps": CostUnit.WALL,
    "mixed: see cost_by_device": CostUnit.MIXED,
    "measured wall seconds on cpu": CostUnit.WALL,
}


@pytest.mark.parametrize(("written", "unit"), WRITTEN.items())
def test_every_written_cost_unit_is_read_back(written, unit):
    assert CostUnit.of(written) is unit
    assert plots._unit_kind(written) == ("recorded" if unit is CostUnit.RECORDED else "measured")


def test_cost_units_are_written_as_before():
    assert cost_unit("cpu") == "CPU seconds of the process on cpu" and cost_unit("cuda:0") == "wall seconds on cuda:0"
    assert CostUnit.RECORDED.on("table") == "recorded benchmark training seconds" == CostUnit.RECORDED
    assert plots._unit_label("recorded benchmark training seconds") == "recorded GPU training seconds of the benchmark"
    assert plots._unit_label("wall seconds on cuda") == "wall seconds on cuda"
    with pytest.raises(ValueError, match="not a cost unit"):
        CostUnit.of("seconds")


def test_search_summary_writes_the_keys_of_before(toy):
    searcher = RandomSearch(toy.space, np.random.default_rng(0))
    s = loop.search(toy, TableEstimator(), searcher, Budget(max_evals=5), toy_context(toy)).summary
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.incumbent = "aaa"  # type: ignore[misc]
    d = as_dict(s)
    # a table estimator has no cache hits and a search that answered none to explain: those keys are absent
    assert "n_cache_hits" not in d and "incumbent_note" not in d and "lookahead" not in d
    assert d["cost_unit"] == "recorded benchmark training seconds" and d["device"] == "table"
    assert d["cost_by_device"] == {"table": {"unit": d["cost_unit"], "cost_s": d["total_cost_s"], "n_evals": 5}}
    assert d["incumbent_score"] is not None and d["n_evals"] == 5 and d["n_failed"] == 0


def test_rank_summary_flattens_its_metrics_with_intervals_as_lists(toy):
    archs, _ = sampling.sample_distinct(toy.space, 20, np.random.default_rng(0))
    s = loop.rank(toy, TableEstimator(), archs, toy_context(toy), ci_rng=np.random.default_rng(0)).summary
    d = as_dict(s)
    assert "metrics" not in d and s.metrics is not None
    assert d["kendall_tau_test"] == s.metrics.kendall_tau_test
    assert d["kendall_tau_test_ci95"] == list(s.metrics.kendall_tau_test_ci95)
    assert {f.name for f in dataclasses.fields(RankMetrics)} <= set(d)
    few = loop.rank(toy, TableEstimator(), archs[:1], toy_context(toy), ci_rng=np.random.default_rng(0)).summary
    assert few.metrics is None and not {f.name for f in dataclasses.fields(RankMetrics)} & set(as_dict(few))
    assert math.isfinite(as_dict(few)["median_cost_per_arch_s"])


def test_readers_name_fields_of_the_records():
    assert summary_key("total_cost_s", SearchSummary, RankSummary) == "total_cost_s"
    with pytest.raises(AttributeError, match="no field 'kendall_tau'"):
        summary_key("kendall_tau", RankMetrics)
    with pytest.raises(AttributeError, match="n_archs_ci95"):
        interval_key("n_archs")
    loop_keys = {f.name for r in (SearchSummary, RankSummary, RankMetrics) for f in dataclasses.fields(r)}
    required = {*storage._REQUIRED, *(k for keys in storage._REQUIRED_BY_TASK.values() for k in keys)}
    assert required & loop_keys == {"total_cost_s", "cost_unit", "incumbent_test_acc", "optimum_test_acc", "n_archs"}
    assert required <= loop_keys | {f.name for f in dataclasses.fields(RunInfo)}
    assert {k for k, _, _ in report.RANK_COLUMNS} <= loop_keys
    assert set(aggregate.HEADLINE.values()) <= loop_keys


def _info(**changes):
    info = RunInfo(
        task="search",
        experiment="default",
        benchmark="toy",
        dataset="cifar10",
        searcher="rs",
        estimator="full_train",
        seed=0,
        estimator_seed=0,
        budget={"max_evals": 5, "max_cost_s": None},
        test_split=True,
        n_resumed=0,
        started_utc="2026-01-01T00:00:00+00:00",
        versions={"python": "3.11"},
        config_id="0123abcd",
        config_label="max_evals=5",
        config={"task": "search"},
        where=Where(data_dir="/d", cache_dir="/c"),
    )
    return dataclasses.replace(info, **changes)


def test_run_info_writes_what_ran_beside_the_loop_summary(toy):
    searcher = RandomSearch(toy.space, np.random.default_rng(0))
    s = loop.search(toy, TableEstimator(), searcher, Budget(max_evals=5), toy_context(toy)).summary
    d = run_dict(_info(), s)
    assert d["where"] == {"data_dir": "/d", "cache_dir": "/c"} and d["budget"]["max_evals"] == 5
    # a search has no rank draws, a table estimator no threads: those keys are absent, as before the record
    assert "n_draws" not in d and "threads" not in d
    assert run_dict(_info(n_draws=20, threads=1), s)["n_draws"] == 20
    assert set(d) == set(as_dict(_info())) | set(as_dict(s))
    with pytest.raises(dataclasses.FrozenInstanceError):
        _info().seed = 1  # type: ignore[misc]
    loop_keys = {f.name for r in (SearchSummary, RankSummary, RankMetrics) for f in dataclasses.fields(r)}
    assert not {f.name for f in dataclasses.fields(RunInfo)} & loop_keys  # run_dict refuses a key in both
