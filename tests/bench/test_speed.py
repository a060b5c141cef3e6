"""Speed of table search, side by side in one run (``make bench``). Prints a ratio table at the end.

* reference: plain numpy implementations of RS / REA / REINFORCE (tests/bench/reference.py), array look-ups;
* harness: the same 300 runs (3 searchers x 100 seeds, NB201 protocol, 12000 s) through ``loop.search``, and
  through ``run_job`` in one process (writing 300 result folders);
* pandas: the reference loops with a straightforward pandas row look-up per evaluation;
* start-up: a fresh ``python -m harness`` process doing one evaluation; Hydra multirun overhead per job.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

import numpy as np
import pytest

from estimators.table import TableEstimator
from harness import loop, seeding
from harness.benchmarks import NB201
from harness.budget import Budget
from harness.experiment import run_job
from harness.interfaces import EstimatorContext
from searchers.random_search import RandomSearch
from searchers.regularized_evolution import RegularizedEvolution
from searchers.reinforce import Reinforce
from tests.bench import reference
from tests.conftest import ROOT, compose_cfg

pytestmark = pytest.mark.bench
SEEDS = range(100)
BUDGET = 12000.0
MEDIANS: dict[str, float] = {}


@pytest.fixture(scope="module")
def bench():
    return NB201("cifar10").load()


@pytest.fixture(scope="module")
def arrays(bench):
    archs = list(bench.space.enumerate())  # enumerate order == base-5 code order
    obs = [bench.query(a, fidelity="12ep") for a in archs]
    return np.array([o.valid_acc for o in obs]), np.array([o.train_cost_s for o in obs])


def _record(name, benchmark):
    MEDIANS[name] = benchmark.stats.stats.median


def test_reference_numpy(benchmark, arrays):
    valid, cost = arrays
    valid_l, cost_l = valid.tolist(), cost.tolist()

    def lookup(code: int) -> tuple[float, float]:
        return valid_l[code], cost_l[code]

    def all_runs():
        for algo in reference.ALGORITHMS.values():
            for seed in SEEDS:
                algo(lookup, np.random.default_rng(seed), BUDGET)

    benchmark.pedantic(all_runs, rounds=5, warmup_rounds=1)
    _record("reference numpy", benchmark)


def test_reference_pandas_row_lookup(benchmark, nb201_csv):
    import pandas as pd

    df = pd.read_csv(nb201_csv)
    df = df[df["dataset"] == "cifar10"].set_index("arch")
    space = NB201("cifar10").space
    strings = [space.format(a) for a in space.enumerate()]

    def lookup(code: int) -> tuple[float, float]:
        row = df.loc[strings[code]]
        return row["valid_acc_12ep"], row["train_time_12ep_s"]

    def all_runs():
        for algo in reference.ALGORITHMS.values():
            for seed in range(10):  # 10 seeds; scaled x10 below
                algo(lookup, np.random.default_rng(seed), BUDGET)

    benchmark.pedantic(all_runs, rounds=1, warmup_rounds=0)
    MEDIANS["pandas row look-up"] = benchmark.stats.stats.median * len(SEEDS) / 10


def test_harness_loop_in_process(benchmark, bench):
    searchers = {"rs": RandomSearch, "rea": RegularizedEvolution, "rl": Reinforce}
    budget = Budget(max_cost_s=BUDGET)

    def all_runs():
        for cls in searchers.values():
            for seed in SEEDS:
                ctx = EstimatorContext(bench.space, "nb201", "cifar10", bench.query, seeding.rng(0, "estimator"))
                loop.search(bench, TableEstimator("12ep"), cls(bench.space, seeding.rng(seed, "searcher")), budget, ctx)

    benchmark.pedantic(all_runs, rounds=5, warmup_rounds=1)
    _record("harness loop.search", benchmark)


def test_harness_job_writing_results(benchmark, tmp_path, nb201_csv):
    cfgs = [
        compose_cfg(["+experiment=nb201_protocol", f"searcher={s}", "n_seeds=100", "skip_done=false"], tmp_path)
        for s in ("rs", "rea", "rl")
    ]

    def all_runs():
        for i, cfg in enumerate(cfgs):
            run_job(cfg, tmp_path / "jobs" / str(i) / "seed=0")

    benchmark.pedantic(all_runs, rounds=3, warmup_rounds=1)
    _record("harness run_job (+ files)", benchmark)


def _wall(args: list[str], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, *args], cwd=ROOT, check=True, capture_output=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def test_fresh_process_first_query(tmp_path, nb201_csv):
    code = (
        "import time; t0 = time.perf_counter(); from harness.benchmarks import NB201; b = NB201('cifar10').load();"
        "b.query(b.space.parse('|none~0|+|none~0|none~1|+|none~0|none~1|none~2|')); import sys;"
        "assert 'torch' not in sys.modules"
    )
    MEDIANS["fresh process: first query"] = _wall(["-c", code], 5)
    MEDIANS["fresh process: python -m harness, 1 evaluation"] = _wall(
        ["-m", "harness", "budget.max_evals=1", "budget.max_cost_s=null", "progress=false", f"results_dir={tmp_path}"],
        5,
    )
    assert MEDIANS["fresh process: python -m harness, 1 evaluation"] < 2.0


def test_multirun_overhead_per_job(tmp_path, nb201_csv):
    n = 10
    common = ["+experiment=nb201_protocol", "searcher=rs", "progress=false"]
    multirun = _wall(["-m", "harness", "-m", f"seed=range(0,{n})", *common, f"results_dir={tmp_path}/m"], 1)
    in_process = _wall(["-m", "harness", f"n_seeds={n}", *common, f"results_dir={tmp_path}/s"], 1)
    MEDIANS["multirun overhead per job"] = (multirun - in_process) / n


def test_report_ratios():
    if "reference numpy" not in MEDIANS:
        pytest.skip("run the whole file")
    ref = MEDIANS["reference numpy"]
    lines = ["", f"{'measurement':<50}{'median s':>10}{'x reference':>13}"]
    for name, value in MEDIANS.items():
        ratio = f"{value / ref:>13.2f}" if "fresh" not in name and "overhead" not in name else ""
        lines.append(f"{name:<50}{value:>10.3f}{ratio}")
    print("\n".join(lines))
    assert MEDIANS["harness loop.search"] / ref <= 3.0
    assert MEDIANS["harness run_job (+ files)"] / ref <= 3.0
