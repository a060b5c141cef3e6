"""Every searcher in conf/searcher/ passes these, built from its own YAML file exactly as the CLI builds it."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np
import pytest
from omegaconf import OmegaConf

from harness import loop
from harness.budget import Budget
from harness.interfaces import Searcher
from harness.plugins import build
from harness.types import Arch
from tests.conftest import CONF, ToyBenchmark, drive, plugin_names, toy_context
from tests.contracts import config_classes, plugin_classes

SEARCHERS = plugin_names("searcher")


def score(bench: ToyBenchmark) -> Callable[[Arch], float]:
    return lambda arch: bench.query(arch).valid_acc


def make(name: str, seed: int = 0, **overrides: object) -> Searcher:
    node = OmegaConf.merge(OmegaConf.load(CONF / "searcher" / f"{name}.yaml"), overrides)
    built_name, factory = build(node)
    assert built_name == name, "the 'name' in a plug-in's YAML must equal its file name"
    bench = ToyBenchmark()
    searcher = factory(bench.space, np.random.default_rng(seed))
    assert isinstance(searcher, Searcher)
    return searcher


def test_every_searcher_class_has_a_config_and_every_config_names_one():
    defined = plugin_classes("searchers", lambda c: issubclass(c, Searcher))
    assert config_classes("searcher", SEARCHERS) == defined


@pytest.mark.parametrize("name", SEARCHERS)
def test_asks_valid_architectures(name):
    bench = ToyBenchmark()
    searcher = make(name)
    asked = drive(searcher, score(bench), 200)
    assert len(asked) == (min(200, bench.space.size) if searcher.unique else 200)
    assert all(bench.space.is_valid(a) for a in asked)


@pytest.mark.parametrize("name", SEARCHERS)
def test_unique_never_repeats_and_exhausts_the_space(name):
    bench = ToyBenchmark()
    searcher = make(name, unique=True)
    asked = drive(searcher, score(bench), 1000)
    assert len(asked) == len(set(asked)) == bench.space.size
    assert searcher.ask() is None


@pytest.mark.parametrize("name", SEARCHERS)
def test_same_seed_same_trajectory_other_seed_differs(name):
    bench = ToyBenchmark()
    a, b, c = (drive(make(name, seed), score(bench), 50) for seed in (3, 3, 4))
    assert a == b
    assert a != c


@pytest.mark.parametrize("name", SEARCHERS)
@pytest.mark.parametrize("budget", [Budget(max_evals=17), Budget(max_cost_s=200.0)])
def test_respects_the_budget_in_the_loop(name, budget):
    bench = ToyBenchmark()
    from estimators.table import TableEstimator

    result = loop.search(bench, TableEstimator(), make(name), budget, toy_context(bench))
    clocks = [r.clock_s for r in result.records]
    if budget.max_evals is not None:
        assert len(result.records) == 17
    else:
        assert all(c < 200.0 for c in clocks[:-1]) and clocks[-1] >= 200.0  # only the last one crosses
    assert result.summary.incumbent_valid_acc == max(r.score for r in result.records)


@pytest.mark.parametrize("name", SEARCHERS)
def test_ask_again_before_tell_is_allowed(name):
    """The loop does not tell failed evaluations, so a searcher must cope with asks that get no tell."""
    searcher = make(name)
    arch = searcher.ask()
    assert arch is not None
    assert searcher.ask() is not None  # asking again without a tell is allowed


@pytest.mark.parametrize("name", ["rea", "rl"])
def test_learning_searchers_beat_random_on_the_toy_table(name):
    """On the toy table (score grows with every op index) a learner finds better architectures than chance."""
    bench = ToyBenchmark()
    late = [bench.query(a).valid_acc for a in drive(make(name), score(bench), 300)[200:]]
    rand = [bench.query(a).valid_acc for a in drive(make("rs"), score(bench), 300)[200:]]
    assert np.mean(late) > np.mean(rand) + 5


@pytest.mark.parametrize("name", SEARCHERS)
def test_a_guess_of_the_next_ask_changes_no_ask(name):
    """``speculate`` (what a lookahead worker evaluates ahead, harness/lookahead.py) is worked out on a copy: asking
    for three guesses at every step leaves every ask as it was, and each guess is a valid architecture."""
    bench = ToyBenchmark()
    plain = drive(make(name, seed=4), score(bench), 60)
    searcher, asked = make(name, seed=4), []
    for _ in range(60):
        arch = searcher.ask()
        if arch is None:
            break
        guesses = list(itertools.islice(searcher.speculate(arch), 3))
        assert all(bench.space.is_valid(g) for g in guesses)
        asked.append(arch)
        searcher.tell(arch, score(bench)(arch))
    assert asked == plain
