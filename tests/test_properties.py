"""Properties that hold for every input, checked by hypothesis on generated ones: spaces (strings, mutation,
one-hot encoding), the budget's crossing rule, and bootstrap intervals.

Each test sees a fixed set of examples (``derandomize``: the same ones on every run and machine), few enough to
take well under a second, so a failure here is reproducible by rerunning the test.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from harness import loop, metrics
from harness.budget import Budget, CostClock
from harness.errors import ArchParseError, OutOfDomainError
from harness.interfaces import Estimator, EstimatorTags, SearchSpace
from harness.spaces import DartsSpace, MacroSpace, NB201Space, SubsetSpace, ToySpace
from harness.types import Arch, Estimate
from searchers.random_search import RandomSearch
from tests.conftest import ToyBenchmark, toy_context

FIXED = settings(derandomize=True, max_examples=40, deadline=None, database=None)

#: every space class of harness/spaces/, each with its own strings (a subset keeps its base space's)
SPACES: list[SearchSpace] = [ToySpace(), NB201Space(), MacroSpace(), DartsSpace()]
SUBSET = SubsetSpace(
    NB201Space(), [NB201Space().sample(np.random.default_rng(i)) for i in range(12)], what="12 NB201 cells"
)
seeds = st.integers(0, 2**32 - 1)


def archs(space: SearchSpace) -> st.SearchStrategy[Arch]:
    """Any architecture of ``space``: one in-range choice per decision (a subset's members only)."""
    if isinstance(space, SubsetSpace):
        return st.sampled_from(space.members)
    return st.tuples(*(st.integers(0, c - 1) for c in space.choices)).map(Arch)


space_and_arch = st.sampled_from([*SPACES, SUBSET]).flatmap(lambda s: st.tuples(st.just(s), archs(s)))


@FIXED
@given(space_and_arch)
def test_parse_inverts_format_and_the_string_is_canonical(case: tuple[SearchSpace, Arch]) -> None:
    space, arch = case
    text = space.format(arch)
    assert space.parse(text) == arch
    assert space.format(space.parse(text)) == text
    assert space.is_valid(arch)


@FIXED
@given(space_and_arch, st.integers(0, 200), st.text(max_size=6))
def test_an_edited_string_parses_to_a_valid_arch_or_raises_arch_parse_error(
    case: tuple[SearchSpace, Arch], at: int, insert: str
) -> None:
    """A typo anywhere in a string is refused with the typed error (the CLI turns it into one line), or names
    another valid architecture; never another exception."""
    space, arch = case
    text = space.format(arch)
    at = at % (len(text) + 1)
    edited = text[:at] + insert + text[at + len(insert) // 2 :]
    try:
        parsed = space.parse(edited)
    except ArchParseError:
        return
    except OutOfDomainError:  # a valid string of the base space that names no member (SubsetSpace.parse)
        assert isinstance(space, SubsetSpace)
        return
    assert space.is_valid(parsed)


@FIXED
@given(st.sampled_from(SPACES).flatmap(lambda s: st.tuples(st.just(s), archs(s))), seeds)
def test_mutate_stays_valid_and_changes_exactly_one_decision(case: tuple[SearchSpace, Arch], seed: int) -> None:
    space, arch = case
    child = space.mutate(arch, np.random.default_rng(seed))
    assert space.is_valid(child)
    assert sum(a != b for a, b in zip(arch.ops, child.ops, strict=True)) == 1


@FIXED
@given(archs(SUBSET), seeds)
def test_subset_mutate_moves_to_another_member(arch: Arch, seed: int) -> None:
    """A subset's mutation moves to the member nearest a one-decision mutant (its docstring): a member, never the
    parent itself."""
    child = SUBSET.mutate(arch, np.random.default_rng(seed))
    assert child in SUBSET.members and child != arch


@FIXED
@given(space_and_arch)
def test_encode_is_one_hot_per_decision(case: tuple[SearchSpace, Arch]) -> None:
    space, arch = case
    x = space.encode(arch)
    assert x.shape == (sum(space.choices),) and x.dtype == np.float32
    assert set(np.unique(x).tolist()) <= {0.0, 1.0}
    blocks = np.split(x, np.cumsum(space.choices)[:-1])
    assert [block.sum() for block in blocks] == [1.0] * len(space.choices)
    assert tuple(int(block.argmax()) for block in blocks) == arch.ops


class _Charges(Estimator):
    """A table-like estimator whose costs repeat ``costs`` in order."""

    tags = EstimatorTags(live=False)

    def __init__(self, costs: list[float]) -> None:
        self.costs = itertools.cycle(costs)

    def estimate(self, arch: Arch) -> Estimate:
        return Estimate(float(sum(arch.ops)), next(self.costs))


costs = st.lists(st.one_of(st.just(0.0), st.floats(5.0, 60.0)), min_size=1, max_size=6)


@FIXED
@given(costs, st.none() | st.floats(1.0, 400.0), st.none() | st.integers(1, 30), seeds)
def test_an_evaluation_starts_only_while_the_budget_is_unspent_and_the_crossing_one_counts(
    charges: list[float], max_cost_s: float | None, max_evals: int | None, seed: int
) -> None:
    assume(max_cost_s is not None or max_evals is not None)
    assume(max_evals is not None or any(c > 0 for c in charges))
    bench = ToyBenchmark()
    budget = Budget(max_evals=max_evals, max_cost_s=max_cost_s)
    searcher = RandomSearch(bench.space, np.random.default_rng(seed))
    records = loop.search(bench, _Charges(charges), searcher, budget, toy_context(bench)).records
    clocks = [r.clock_s for r in records]
    assert clocks == list(itertools.accumulate(r.cost_s for r in records))
    before = clocks[:-1]  # every evaluation but the last started and ended inside the budget
    assert max_evals is None or len(records) <= max_evals
    assert max_cost_s is None or all(c < max_cost_s for c in before)
    spent_by_cost = max_cost_s is not None and clocks[-1] >= max_cost_s
    spent_by_count = max_evals is not None and len(records) == max_evals
    assert spent_by_cost or spent_by_count  # the run stopped because the budget was spent, and only then


@FIXED
@given(st.lists(st.tuples(st.floats(0.0, 100.0), st.booleans()), max_size=20), st.floats(0.1, 200.0))
def test_once_exhausted_a_clock_stays_exhausted(charges: list[tuple[float, bool]], limit: float) -> None:
    clock, budget, seen = CostClock(), Budget(max_cost_s=limit), False
    for seconds, evaluation in charges:
        clock.charge(seconds, evaluation=evaluation)
        seen = seen or clock.exhausted(budget)
        assert clock.exhausted(budget) == seen == (clock.elapsed_s >= limit)


finite = st.floats(-1e6, 1e6, allow_nan=False)


@FIXED
@given(st.lists(finite, min_size=1, max_size=25), seeds, st.sampled_from([0.5, 0.9, 0.95]))
def test_bootstrap_interval_of_the_mean_is_ordered_and_holds_the_estimate(
    values: list[float], seed: int, level: float
) -> None:
    """A percentile interval of the mean lies in the data's range, ``lo <= hi``, and holds the sample mean
    (every resample mean lies between the data's extremes; the sample mean is a median-like point of them)."""
    x = np.array(values)
    lo, hi = metrics.bootstrap_ci(
        lambda i: float(x[i].mean()), len(x), np.random.default_rng(seed), n_boot=200, level=level
    )
    slack = 1e-9 * (1 + np.abs(x).max())  # the mean of n equal values is that value only up to rounding
    assert lo <= hi
    assert x.min() - slack <= lo and hi <= x.max() + slack
    assert lo - slack <= x.mean() <= hi + slack


@FIXED
@given(st.lists(st.tuples(finite, finite), min_size=3, max_size=25), seeds)
def test_tau_interval_is_ordered_inside_minus_one_to_one(pairs: list[tuple[float, float]], seed: int) -> None:
    x, y = (np.array(v) for v in zip(*pairs, strict=True))
    lo, hi = metrics.tau_ci(x, y, np.random.default_rng(seed), n_boot=25)
    if math.isnan(lo):  # no resample had a defined tau (a constant x or y)
        assert math.isnan(hi) and (len(set(x)) == 1 or len(set(y)) == 1)
        return
    assert -1.0 <= lo <= hi <= 1.0
