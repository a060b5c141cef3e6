"""benchmark=nb301: the NB301 sample as a closed-set table (surrogate validation, no test split, no cost), the
SubsetSpace that keeps searchers inside it, a rank job on it, and its bad inputs on the command line."""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from harness.benchmarks import NB301
from harness.errors import ConfigError, DataFileError, OutOfDomainError
from harness.experiment import run_job
from harness.interfaces import Benchmark
from harness.metrics import kendall_tau
from harness.plugins import build
from harness.spaces import DartsSpace, SubsetSpace, ToySpace
from harness.types import Arch
from tests.conftest import CONF, ROOT, compose_cfg, drive

DARTS = DartsSpace()


@pytest.fixture(scope="module")
def sample_csv(data_dir):
    path = data_dir / "nb301" / "nb301_sample.csv"
    if not path.is_file():
        pytest.skip(f"NB301 sample not found at {path} (set HARNESS_DATA_DIR)")
    return path


@pytest.fixture(scope="module")
def bench(sample_csv) -> NB301:
    return NB301().load()


@pytest.fixture(scope="module")
def table(sample_csv) -> pd.DataFrame:
    return pd.read_csv(sample_csv, usecols=["genotype", "val_accuracy", "params"])


# ---------------------------------------------------------------------------------------------- the table


def test_the_sample_is_a_closed_set_table(bench, table):
    assert bench.space.size == len(list(bench.space.enumerate())) == 1218
    assert bench.space.name == "darts" and bench.space.choices == DARTS.choices
    for text, acc in zip(table["genotype"][::50], table["val_accuracy"][::50], strict=True):
        arch = bench.space.parse(text)
        obs = bench.query(arch)
        assert obs.valid_acc == acc and obs.fidelity == "surrogate" and np.isnan(obs.train_cost_s)
        assert bench.test_accuracy(arch) == acc  # no test split: the same number, and the benchmark says so
    assert not bench.has_train_cost and not bench.has_test_split and "no test split" in bench.note
    assert bench.optimum() == (table["val_accuracy"].max(),) * 2 == (94.488883, 94.488883)
    assert bench.fidelities == ("surrogate",) and bench.query(arch, fidelity="surrogate") == obs


def test_cold_start_is_under_two_seconds(sample_csv):
    t0 = time.perf_counter()
    NB301().load()
    assert time.perf_counter() - t0 < 2.0


def test_architectures_outside_the_sample_and_bad_fidelities(bench):
    outside = DARTS.sample(np.random.default_rng(0))
    assert outside not in bench.space
    with pytest.raises(OutOfDomainError, match="is not one of the 1,218 architectures of the NB301 sample"):
        bench.query(outside)
    with pytest.raises(OutOfDomainError, match="not one of the 1,218"):
        bench.test_accuracy(outside)
    with pytest.raises(OutOfDomainError, match="a valid darts architecture but not one of the 1,218"):
        bench.space.parse(DARTS.format(outside))
    with pytest.raises(OutOfDomainError, match="no fidelity '12ep'; valid: surrogate"):
        bench.query(bench.space.members[0], fidelity="12ep")


def test_only_cifar10(sample_csv):
    with pytest.raises(ConfigError, match="benchmark.dataset='cifar100' is not a dataset of nb301; valid: cifar10"):
        NB301("cifar100").load()


def _write(tmp_path, text: str):
    (tmp_path / "nb301").mkdir()
    (tmp_path / "nb301" / "nb301_sample.csv").write_text(text)
    return str(tmp_path)


def test_missing_file_names_it(tmp_path):
    with pytest.raises(DataFileError, match="missing data file .*nb301/nb301_sample.csv: it must contain one row"):
        NB301(data_dir=str(tmp_path)).load()


@pytest.mark.parametrize(
    ("rows", "match"),
    [
        ("genotype,val_accuracy\nx,1\n", "lacks the columns dataset"),
        (
            'genotype,dataset,val_accuracy\n"Genotype(normal=[])",cifar10,93\n',
            "line 2: .*lacks normal_concat",
        ),
        ("genotype,dataset,val_accuracy\n{g},cifar10,abc\n", "line 2: could not convert"),
        ("genotype,dataset,val_accuracy\n{g},cifar10,93\n{g},cifar10,94\n", "line 3: genotype .* appears twice"),
        ("genotype,dataset,val_accuracy\n{g},cifar100,93\n", "cifar10 only"),
    ],
)
def test_malformed_file_is_a_clear_error(tmp_path, rows, match):
    g = '"' + DARTS.format(DARTS.sample(np.random.default_rng(0))) + '"'
    with pytest.raises(DataFileError, match=match):
        NB301(data_dir=_write(tmp_path, rows.format(g=g))).load()


# ------------------------------------------------------------------------------------------ SubsetSpace

TOY = ToySpace()
MEMBERS = [TOY.parse(t) for t in ("aaa", "aab", "abb", "bbb", "ddd", "cdc")]


def test_subset_space_samples_enumerates_and_counts_members():
    sub = SubsetSpace(TOY, MEMBERS, what="six toy cells")
    assert sub.size == 6 and list(sub.enumerate()) == MEMBERS and [sub.index(a) for a in MEMBERS] == list(range(6))
    rng = np.random.default_rng(0)
    counts = pd.Series([TOY.format(sub.sample(rng)) for _ in range(3000)]).value_counts()
    assert set(counts.index) == {TOY.format(a) for a in MEMBERS} and counts.min() > 400
    assert sub.is_valid(MEMBERS[0]) and not sub.is_valid(TOY.parse("abc")) and TOY.is_valid(TOY.parse("abc"))
    assert (sub.encode(MEMBERS[2]) == TOY.encode(MEMBERS[2])).all() and sub.format(MEMBERS[1]) == "aab"
    with pytest.raises(OutOfDomainError, match="abc is a valid toy architecture but not one of six toy cells"):
        sub.parse("abc")
    with pytest.raises(OutOfDomainError, match="not one of six toy cells"):
        sub.index(TOY.parse("abc"))
    with pytest.raises(ConfigError, match="distinct"):
        SubsetSpace(TOY, [MEMBERS[0], MEMBERS[0]])


def test_nearest_is_hamming_distance_with_ties_by_rng():
    sub = SubsetSpace(TOY, MEMBERS)
    # 'baa' is 2 decisions from aab and bbb, 1 from aaa
    picks = {TOY.format(sub.nearest(TOY.parse("baa"), np.random.default_rng(s))) for s in range(30)}
    assert picks == {"aaa"}
    picks = {TOY.format(sub.nearest(TOY.parse("baa"), np.random.default_rng(s), exclude=MEMBERS[0])) for s in range(30)}
    assert picks == {"aab", "bbb"}
    assert sub.nearest(MEMBERS[4], np.random.default_rng(0)) == MEMBERS[4]
    assert TOY.format(sub.nearest(MEMBERS[4], np.random.default_rng(0), exclude=MEMBERS[4])) == "cdc"


def test_mutate_moves_to_the_member_nearest_a_one_decision_mutant(bench):
    sub = bench.space
    m = np.array([a.ops for a in sub.members])
    rng = np.random.default_rng(0)
    for parent in sub.members[:60]:
        child = sub.mutate(parent, rng)
        assert child in sub and child != parent
        d = (m != np.array(parent.ops)).sum(axis=1)
        d[sub.index(parent)] = 99
        # the child is nearest to a mutant at distance 1 from the parent: at most 2 further than the nearest member
        assert d[sub.index(child)] <= d.min() + 2
    first = [sub.mutate(sub.members[0], np.random.default_rng(s)) for s in range(20)]
    assert len(set(first)) > 1  # ties and the mutated decision are random


@pytest.mark.parametrize(
    ("name", "overrides"),
    [("rs", {}), ("rea", {}), ("rminas", {"n_warmup": 20, "n_candidates": 200, "n_positives": 5, "n_trees": 5})],
)
def test_searchers_stay_in_the_sample(bench, name, overrides):
    node = OmegaConf.merge(OmegaConf.load(CONF / "searcher" / f"{name}.yaml"), overrides)
    _, factory = build(node)
    searcher = factory(bench.space, np.random.default_rng(0))
    asked = drive(searcher, lambda a: bench.query(a).valid_acc, 80)
    assert len(asked) >= 25 and all(a in bench.space for a in asked)


def test_unique_search_exhausts_a_subset():
    from searchers.random_search import RandomSearch

    sub = SubsetSpace(TOY, MEMBERS)
    asked = drive(RandomSearch(sub, np.random.default_rng(0), unique=True), lambda a: 0.0, 20)
    assert sorted(asked, key=sub.index) == MEMBERS


# ------------------------------------------------------------------------------------------ jobs and the CLI


def test_rank_job_on_nb301(tmp_path, bench):
    args = ["benchmark=nb301", "task=rank", "estimator=nwot", "estimator.batch_size=8", "n_archs=5", "threads=1"]
    cfg = compose_cfg([*args, "score_cache=off"], tmp_path)
    [folder] = run_job(cfg, tmp_path / "job")
    s = pd.read_json(folder / "summary.json", typ="series")
    assert s["benchmark"] == "nb301" and s["n_scored"] == s["n_unique"] == 5
    assert s["kendall_tau_test"] == s["kendall_tau_valid"] and not s["test_split"]  # nb301 has no test split
    records = pd.read_csv(folder / "records.csv")
    assert (records["status"] == "ok").all() and all(bench.space.parse(a) in bench.space for a in records["arch"])


@pytest.mark.slow
@pytest.mark.timeout(3600)  # about 1-2 min on an idle core; far more on a shared one
def test_rank_on_the_whole_sample_reproduces_the_params_column(tmp_path, bench, table):
    cfg = compose_cfg(["+experiment=nb301_rank", "estimator=params", "threads=1", "score_cache=off"], tmp_path)
    [folder] = run_job(cfg, tmp_path / "job")
    s = pd.read_json(folder / "summary.json", typ="series")
    assert s["n_scored"] == 1218
    assert s["kendall_tau_valid"] == pytest.approx(kendall_tau(table["params"], table["val_accuracy"]), abs=1e-12)


def _cli(*args: str, tmp_path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harness", "benchmark=nb301", *args, "progress=false", f"results_dir={tmp_path}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _bad_genotype(bench) -> str:
    return bench.space.format(bench.space.members[0]).replace("('max_pool_3x3'", "('none'", 1)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (lambda b: ["task=rank", f'archs=["{_bad_genotype(b)}"]'], "error: DARTS genotype: normal edge"),
        (
            lambda b: ["task=rank", f'archs=["{DARTS.format(DARTS.sample(np.random.default_rng(1)))}"]'],
            "is a valid darts architecture but not one of the 1,218 architectures of the NB301 sample",
        ),
        (lambda b: ["benchmark.dataset=cifar100"], "error: benchmark.dataset='cifar100' is not a dataset of nb301"),
    ],
)
def test_bad_input_is_one_error_line_and_exit_2(tmp_path, bench, args, expected):
    assert "'none'" in _bad_genotype(bench)
    proc = _cli(*args(bench), tmp_path=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and expected in proc.stderr
    assert len([line for line in proc.stderr.splitlines() if line.strip()]) == 1


def test_members_are_architectures_of_the_darts_space_and_nb301_is_a_benchmark(bench):
    assert all(DARTS.is_valid(a) for a in bench.space.members)
    assert isinstance(bench.space.members[0], Arch) and isinstance(bench, Benchmark)


def test_rminas_on_the_closed_set_says_when_its_vote_is_not_a_member(bench):
    from estimators.table import TableEstimator
    from harness import loop
    from harness.budget import Budget
    from harness.interfaces import EstimatorContext
    from searchers.rminas import RMINAS

    searcher = RMINAS(bench.space, np.random.default_rng(0), n_warmup=30, n_positives=5, n_trees=5)
    context = EstimatorContext(bench.space, "nb301", "cifar10", bench.query, np.random.default_rng(0))
    s = loop.search(bench, TableEstimator(), searcher, Budget(max_evals=200), context).summary
    if s.incumbent in {bench.space.format(a) for a in bench.space.enumerate()}:
        assert s.incumbent_valid_acc == s.incumbent_test_acc  # no test split: the same number
    else:
        assert s.incumbent_valid_acc is None or np.isnan(s.incumbent_valid_acc)
        assert s.incumbent_note is not None and "not in nb301's table" in s.incumbent_note
