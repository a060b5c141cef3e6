"""Plug-ins cannot reach test accuracy: walk everything reachable from what they are given."""

from __future__ import annotations

import gc
import types

import numpy as np
import pytest

from harness.benchmarks import NB201
from harness.config import compose
from harness.interfaces import EstimatorContext
from harness.plugins import estimator_context


def reachable(root: object, limit: int = 500_000) -> list[object]:
    """Every object reachable from ``root`` through garbage-collector referents, attributes, a bound method's
    ``__self__`` and closure cells; modules, classes and functions' globals are global state any code can import,
    so the walk does not enter them."""
    seen, todo, found = {id(root)}, [root], []
    while todo and len(found) < limit:
        obj = todo.pop()
        found.append(obj)
        nexts = list(gc.get_referents(obj))
        if isinstance(obj, types.MethodType):
            nexts.append(obj.__self__)
        if isinstance(obj, types.FunctionType):
            nexts = [o for o in nexts if o is not obj.__globals__]
            nexts += [cell.cell_contents for cell in obj.__closure__ or ()]
        for attr in getattr(type(obj), "__slots__", ()):
            if isinstance(attr, str) and hasattr(obj, attr):
                nexts.append(getattr(obj, attr))
        for nxt in nexts:
            if isinstance(nxt, types.ModuleType | type) or id(nxt) in seen:
                continue
            seen.add(id(nxt))
            todo.append(nxt)
    assert len(found) < limit, "the walk did not end: it must have escaped into global state"
    return found


@pytest.fixture(scope="module")
def bench(nb201_csv, tmp_path_factory):
    return NB201("cifar10", cache_dir=str(tmp_path_factory.mktemp("c"))).load()


def leaks(context: EstimatorContext, bench: NB201) -> list[str]:
    test_column = bench._cols[bench.test_column]
    hits = []
    for obj in reachable(context):
        if obj is bench:
            hits.append("the benchmark object")
        elif obj is test_column:
            hits.append("the test accuracy column")
    return hits


def test_the_context_of_a_job_reaches_no_test_accuracy(bench):
    cfg = compose(["estimator=train12"])
    context = estimator_context(cfg, "nb201", bench, 0, live=False)
    assert leaks(context, bench) == []
    assert not hasattr(context.query.__self__, "test_accuracy")
    arch = bench.space.parse(
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
    )
    assert context.query(arch) == bench.query(arch)  # the same validation numbers
    assert context.query(arch, fidelity="12ep") == bench.query(arch, fidelity="12ep")


@pytest.mark.parametrize("make_query", [lambda b: b.query, lambda b: lambda arch, **kw: b.query(arch, **kw)])
def test_the_walk_finds_a_bound_method_or_a_closure_over_the_benchmark(bench, make_query):
    context = EstimatorContext(bench.space, "nb201", "cifar10", make_query(bench), np.random.default_rng(0))
    assert "the benchmark object" in leaks(context, bench)  # the old design leaked through __self__ / __closure__
