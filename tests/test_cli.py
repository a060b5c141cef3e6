"""The command line end to end, in fresh processes: outputs, reproducibility, and one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness import storage
from harness.aggregate import aggregate, format_table
from harness.config import CONF
from harness.errors import ConfigError, HarnessError
from harness.experiment import run_job
from tests.conftest import ROOT, compose_cfg, plugin_names, reproducible_part
from tests.contracts import config_classes, plugin_classes

FAST = ["budget.max_cost_s=3000", "progress=false"]


def cli(*args: str, tmp_path: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "harness",
            *sorted(args, key=lambda a: not a.startswith("-")),
            f"results_dir={tmp_path / 'results'}",
            *([] if any(a.startswith("threads=") for a in args) else ["threads=1"]),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def run_dir(tmp_path: Path, searcher: str = "rea", estimator: str = "train12", seed: int = 0) -> Path:
    """The one run folder of ``seed`` under ``<searcher>-<estimator>`` (its config folder is named by its id)."""
    [folder] = (tmp_path / "results" / "default" / "nb201-cifar10" / f"{searcher}-{estimator}").glob(f"*/seed={seed}")
    return folder


def test_search_writes_records_and_summary(tmp_path, nb201_csv):
    proc = cli(*FAST, tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr
    folder = run_dir(tmp_path)
    records = storage.read_records(folder)
    summary = storage.read_summary(folder)
    assert list(records.columns) == [
        "step",
        "arch",
        "score",
        "cost_s",
        "clock_s",
        "wall_s",
        "device",
        "status",
        "reason",
        "test_acc",
        "answer",
        "answer_test_acc",
    ]
    assert len(records) == summary["n_evals"] > 10
    assert (records["status"] == "ok").all() and (records["device"] == "table").all()
    assert records["clock_s"].iloc[-2] < 3000 <= records["clock_s"].iloc[-1]
    best = records.loc[records["score"].idxmax()]
    assert summary["incumbent"] == best["arch"]
    assert summary["incumbent_score"] == best["score"]
    assert 80 < summary["incumbent_test_acc"] < 95
    for key in ("incumbent_valid_acc", "total_cost_s", "wall_s", "device", "versions", "seed", "config", "cost_unit"):
        assert key in summary
    assert summary["cost_unit"] == "recorded benchmark training seconds"
    assert summary["config"]["searcher"]["population_size"] == 10


def test_same_seed_same_records_other_seed_differs_fresh_process_reproduces(tmp_path, nb201_csv):
    def records(seed: int, where: Path) -> str:
        cfg = compose_cfg(["searcher=rl", f"seed={seed}", *FAST], where)
        [folder] = run_job(cfg, where / f"job{seed}")
        return reproducible_part(folder / "records.csv")

    first = records(1, tmp_path / "a")
    assert first == records(1, tmp_path / "b")
    assert first != records(2, tmp_path / "c")
    proc = cli("searcher=rl", "seed=1", *FAST, tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert reproducible_part(run_dir(tmp_path, "rl", seed=1) / "records.csv") == first


def test_n_seeds_in_one_process_equals_a_multirun_over_seeds(tmp_path, nb201_csv):
    multi = cli("-m", "searcher=rs", "seed=0,1,2", *FAST, tmp_path=tmp_path / "m")
    assert multi.returncode == 0, multi.stderr
    single = cli("searcher=rs", "n_seeds=3", *FAST, tmp_path=tmp_path / "s")
    assert single.returncode == 0, single.stderr
    for seed in range(3):
        a = run_dir(tmp_path / "m", "rs", seed=seed) / "records.csv"
        b = run_dir(tmp_path / "s", "rs", seed=seed) / "records.csv"
        assert reproducible_part(a) == reproducible_part(b)
    runs, problems = storage.load_runs(tmp_path / "s" / "results")
    rows = aggregate(s for _, s in runs)
    assert not problems
    assert len(rows) == 1 and rows[0]["n"] == 3
    tests = [storage.read_summary(run_dir(tmp_path / "s", "rs", seed=k))["incumbent_test_acc"] for k in range(3)]
    assert rows[0]["mean"] == pytest.approx(sum(tests) / 3)


def test_rank_task_on_given_and_sampled_architectures(tmp_path, nb201_csv):
    proc = cli("task=rank", "estimator=train12", "n_archs=60", "progress=false", tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr
    [folder] = (tmp_path / "results" / "default" / "nb201-cifar10" / "rank-train12").glob("n_archs=60-*/seed=0")
    s = storage.read_summary(folder)
    assert s["n_archs"] == s["n_unique"] == s["n_scored"] == 60
    assert 0.4 < s["kendall_tau_test"] < 0.95 and s["kendall_tau_test_ci95"][0] < s["kendall_tau_test"]
    assert s["total_cost_s"] > 0 and s["searcher"] is None
    best = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
    worst = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"  # duplicates are refused (test_bad_input.py)
    proc = cli("task=rank", f"archs=['{best}','{worst}']", "progress=false", tmp_path=tmp_path / "g")
    assert proc.returncode == 0, proc.stderr
    s = json.loads(next((tmp_path / "g").rglob("summary.json")).read_text())
    assert s["n_archs"] == 2 and s["n_unique"] == 2


def test_interrupted_sweep_resumes_without_redoing_finished_runs(tmp_path, nb201_csv):
    # a sweep whose middle job fails: the other jobs still finish
    first = cli("-m", "benchmark.dataset=cifar10,cifar11,cifar100", "searcher=rs", *FAST, tmp_path=tmp_path)
    assert "cifar11" in first.stderr
    done = sorted((tmp_path / "results").rglob("summary.json"))
    assert [p.parts[-5] for p in done] == ["nb201-cifar10", "nb201-cifar100"]
    stamps = [p.stat().st_mtime_ns for p in done]
    again = cli("-m", "benchmark.dataset=cifar10,cifar100,ImageNet16-120", "searcher=rs", *FAST, tmp_path=tmp_path)
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("already finished") == 2
    assert [p.stat().st_mtime_ns for p in done] == stamps
    assert len(list((tmp_path / "results").rglob("summary.json"))) == 3


def test_a_finished_run_of_another_config_is_not_silently_reused(tmp_path, nb201_csv):
    cfg = compose_cfg(["searcher=rs", *FAST], tmp_path)
    [folder] = run_job(cfg, tmp_path / "job")
    assert run_job(cfg, tmp_path / "job") == [folder]  # same config: skipped
    other = compose_cfg(["searcher=rs", "budget.max_cost_s=5000", "progress=false"], tmp_path)
    with pytest.raises(HarnessError, match="another config \\(differs in: budget\\)"):
        run_job(other, tmp_path / "job")


def test_a_run_written_before_a_setting_existed_counts_as_that_setting_at_its_default(tmp_path, nb201_csv):
    cfg = compose_cfg(["task=rank", "n_archs=5", *FAST], tmp_path)
    [folder] = run_job(cfg, tmp_path / "job")
    summary = json.loads((folder / "summary.json").read_text())
    del summary["config"]["split"]  # as written before `split` existed
    (folder / "summary.json").write_text(json.dumps(summary))
    assert run_job(cfg, tmp_path / "job") == [folder]
    with pytest.raises(HarnessError, match="differs in: split"):
        run_job(compose_cfg(["task=rank", "n_archs=5", "split=select", *FAST], tmp_path), tmp_path / "job")


def test_rank_takes_the_estimator_seed_from_seed_and_refuses_estimator_seed(tmp_path, nb201_csv):
    """task=rank: seed is the estimator's seed (the rule every stored rank run was made with), so estimator_seed,
    which it would ignore, is refused instead; task=search honours estimator_seed."""
    (folder,) = run_job(compose_cfg(["task=rank", "n_archs=5", "seed=3", *FAST], tmp_path), tmp_path / "rank")
    assert storage.read_summary(folder)["estimator_seed"] == 3
    refused = r"estimator_seed=3 is not used by task=rank: there seed is the estimator's seed .*set seed=3 instead"
    with pytest.raises(ConfigError, match=refused):
        run_job(compose_cfg(["task=rank", "n_archs=5", "estimator_seed=3", *FAST], tmp_path), tmp_path / "no")
    assert not (tmp_path / "no").exists()
    (folder,) = run_job(compose_cfg(["searcher=rs", "estimator_seed=3", *FAST], tmp_path), tmp_path / "search")
    assert storage.read_summary(folder)["estimator_seed"] == 3


def test_live_rank_reuses_cached_scores_and_charges_their_cost(tmp_path, nb201_csv):
    args = [
        "task=rank",
        "estimator=params",
        "n_archs=12",
        "progress=false",
        f"score_cache={tmp_path / 'scores.sqlite'}",
    ]
    first = cli(*args, "experiment_name=a", tmp_path=tmp_path)
    assert first.returncode == 0, first.stderr
    again = cli(*args, "experiment_name=b", tmp_path=tmp_path)
    assert again.returncode == 0, again.stderr
    folders = [next((tmp_path / "results" / e).rglob("summary.json")).parent for e in "ab"]
    a, b = (storage.read_summary(f) for f in folders)
    assert a["n_cache_hits"] == 0 and b["n_cache_hits"] == 12
    costs = [storage.read_records(f)["cost_s"].tolist() for f in folders]
    assert costs[0] == costs[1] and sum(costs[0]) > 0  # hits charge the recorded cost
    assert b["kendall_tau_test"] == a["kendall_tau_test"]
    assert a["cost_unit"] == "CPU seconds of the process on cpu"


def test_killed_sweep_resumes(tmp_path, nb201_csv):
    import signal
    import time

    args = [
        sys.executable,
        "-m",
        "harness",
        "-m",
        "searcher=rs,rea,rl",
        "seed=0,1,2,3",
        *FAST,
        f"results_dir={tmp_path / 'results'}",
    ]
    proc = subprocess.Popen(
        args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.monotonic() + 60
    while len(list(tmp_path.rglob("summary.json"))) < 3 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("summary.json")}
    assert len(finished) >= 3
    again = cli("-m", "searcher=rs,rea,rl", "seed=0,1,2,3", *FAST, tmp_path=tmp_path)
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("already finished") == len(finished)
    assert all(p.stat().st_mtime_ns == t for p, t in finished.items())
    assert len(list(tmp_path.rglob("summary.json"))) == 12


def test_every_benchmark_class_has_a_config_and_every_config_names_one():
    """``benchmark=<name>`` exists for each benchmark class of harness/benchmarks/, is the class's ``name``, and
    each conf/benchmark/ file names one of those classes."""
    from omegaconf import OmegaConf

    names = plugin_names("benchmark")
    defined = plugin_classes(
        "harness.benchmarks",
        lambda c: isinstance(getattr(c, "name", None), str) and callable(getattr(c, "query", None)),
    )
    assert config_classes("benchmark", names) == defined
    assert {c.name for c in defined} == set(names)
    assert all(OmegaConf.load(CONF / "benchmark" / f"{n}.yaml").name == n for n in names)


def test_aggregate_table_columns_fit_their_longest_entry():
    row = {"task": "search", "benchmark": "nb201", "dataset": "cifar10", "searcher": "rminas", "estimator": "rmi"}
    row |= {"metric": "incumbent_test_acc", "n": 10, "mean": 94.133, "std": 0.334, "cost_mean_s": 858.3}
    row |= {"cost_unit": "CPU seconds", "config_id": "7caba290", "config": ""}
    names = ("rminas_report_r3_a_long_name", "short")
    lines = format_table([{**row, "experiment": name} for name in names]).splitlines()
    assert [line.split() for line in lines[1:]] == [
        ["search", name, "nb201", "cifar10", "rminas", "rmi", "incumbent_test_acc", "10", "94.133", "+-", "0.334"]
        + ["858.3", "CPU", "seconds", "7caba290"]
        for name in names
    ]
    starts = {line.index("nb201") for line in lines[1:]}
    assert starts == {lines[0].index("benchmark")}
