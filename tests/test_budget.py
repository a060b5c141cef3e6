from __future__ import annotations

import math

import pytest

from harness.budget import Budget, CostClock
from harness.errors import ConfigError


def test_clock_adds_up_and_counts_evaluations():
    clock = CostClock()
    clock.charge(5.0, evaluation=False)
    clock.charge(2.5)
    clock.charge(0.0)
    assert clock.elapsed_s == 7.5 and clock.n_evals == 2


@pytest.mark.parametrize("bad", [-1.0, math.nan, math.inf])
def test_clock_rejects_bad_costs(bad):
    with pytest.raises(ValueError, match="finite number of seconds"):
        CostClock().charge(bad)


def test_exhausted_by_cost_and_by_count():
    clock = CostClock()
    by_cost, by_count = Budget(max_cost_s=10.0), Budget(max_evals=2)
    clock.charge(9.0)
    assert not clock.exhausted(by_cost) and not clock.exhausted(by_count)
    clock.charge(4.0)  # crosses the cost limit: the next evaluation may not start
    assert clock.exhausted(by_cost) and clock.exhausted(by_count)
    assert clock.exhausted(Budget(max_evals=100, max_cost_s=13.0))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"max_cost_s": -5.0}, "max_cost_s must be a positive number"),
        ({"max_evals": 0}, "max_evals must be a positive integer"),
        ({}, "unlimited"),
    ],
)
def test_bad_budgets(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        Budget(**kwargs)
