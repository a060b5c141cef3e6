"""Golden trajectories: each searcher's first evaluations on NAS-Bench-201 (12-epoch table, seed 0), compared
exactly with ``tests/expect/<searcher>.csv``.

A refactoring that keeps a searcher's behaviour keeps its file; any change to what it asks, in which order, or to
what it would answer, fails here. When a change of trajectory is intended, regenerate with
``HARNESS_ACCEPT=1 pytest tests/test_golden.py`` (the tests then write the files and skip) and commit the diff.
"""

from __future__ import annotations

import csv
import io
import itertools
import os
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from estimators.table import TableEstimator
from harness import loop, seeding
from harness.benchmarks import NB201
from harness.budget import Budget
from harness.interfaces import EstimatorContext
from harness.plugins import build
from tests.conftest import CONF, plugin_names

EXPECT = Path(__file__).parent / "expect"
N_EVALS = 30
SEED = 0
#: settings that let a searcher's learning phase start within the 30 evaluations (RMI-NAS warms up on 100 by
#: default: its trajectory would be random search's)
SHORT = {"rminas": {"n_warmup": 10, "positive_quantile": 0.2, "n_trees": 5, "n_candidates": 50, "top_k": 3}}
COLUMNS = ("step", "arch", "score", "cost_s", "clock_s", "answer")


@pytest.fixture(scope="module")
def bench(nb201_csv, tmp_path_factory):
    return NB201("cifar10", cache_dir=str(tmp_path_factory.mktemp("cache"))).load()


def trajectory(name: str, bench: NB201) -> str:
    """The searcher's first :data:`N_EVALS` evaluations as CSV text (floats as ``repr``: exact)."""
    node = OmegaConf.merge(OmegaConf.load(CONF / "searcher" / f"{name}.yaml"), SHORT.get(name, {}))
    _, make_searcher = build(node)
    searcher = make_searcher(bench.space, seeding.rng(SEED, "searcher"))
    context = EstimatorContext(
        bench.space, "nb201", "cifar10", bench.validation(), seeding.rng(SEED, "estimator"), seed=SEED
    )
    result = loop.search(bench, TableEstimator(fidelity="12ep"), searcher, Budget(max_evals=N_EVALS), context)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for r in result.records:
        writer.writerow((r.step, r.arch, repr(r.score), repr(r.cost_s), repr(r.clock_s), r.answer))
    return out.getvalue()


@pytest.mark.parametrize("name", plugin_names("searcher"))
def test_trajectory_matches_the_stored_one(name, bench):
    path = EXPECT / f"{name}.csv"
    got = trajectory(name, bench)
    if os.environ.get("HARNESS_ACCEPT") == "1":
        path.parent.mkdir(exist_ok=True)
        path.write_text(got)
        pytest.skip(f"HARNESS_ACCEPT=1: wrote {path}; review and commit the diff")
    assert path.is_file(), f"{path} is missing: create it with HARNESS_ACCEPT=1 pytest {Path(__file__).name}"
    want = path.read_text()
    if got != want:
        pairs = itertools.zip_longest(want.splitlines(), got.splitlines(), fillvalue="(none)")
        line, (old, new) = next(((i, p) for i, p in enumerate(pairs, start=1) if p[0] != p[1]), (0, ("", "")))
        pytest.fail(
            f"{name}'s trajectory changed, first at line {line} of {path}:\n  stored: {old}\n  now:    {new}\n"
            "if the change is intended, regenerate with HARNESS_ACCEPT=1"
        )
