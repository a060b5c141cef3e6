"""A run is its defining config (harness/identity.py): sweeps over any key run every point, aggregates never mix
configs, locations are not identity, and a failed start leaves nothing that blocks the corrected command."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness import identity, paths, storage
from harness.aggregate import aggregate
from harness.config import compose
from harness.errors import ConfigError
from harness.experiment import run_job
from harness.plugins import plain
from tests.conftest import ROOT, compose_cfg

SWEEP = ["-m", "searcher=rea", "searcher.population_size=5,10,20", "seed=0,1", "budget=evals100", "budget.max_evals=15"]
#: a live estimator slow enough to interrupt (about 0.2 s per architecture), its scores always computed
LIVE = ["task=rank", "estimator=synflow", "n_archs=12", "score_cache=off", "threads=1"]


def harness(*args: str, results: Path | None = None, module: str = "harness") -> subprocess.CompletedProcess[str]:
    extra = [f"results_dir={results}", "progress=false"] if module == "harness" else []
    return subprocess.run(
        [sys.executable, "-m", module, *args, *extra], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


def state_files(root: Path) -> list[str]:
    """Every file under ``root`` but Hydra's own (``.hydra/``, the job log)."""
    return sorted(
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.is_file() and ".hydra" not in p.parts and p.suffix != ".log"
    )


def test_a_sweep_over_a_plugin_key_runs_every_point_skips_them_again_and_aggregates_one_row_per_config(
    tmp_path, nb201_csv
):
    first = harness(*SWEEP, results=tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    runs, problems = storage.load_runs(tmp_path)
    assert not problems
    got = sorted((s["config"]["searcher"]["population_size"], s["seed"], s["n_evals"]) for _, s in runs)
    assert got == [(p, k, 15) for p in (5, 10, 20) for k in (0, 1)]
    ids = {s["config"]["searcher"]["population_size"]: s["config_id"] for _, s in runs}
    assert len(set(ids.values())) == 3
    names = {5: "population_size=5,max_evals=15", 10: "max_evals=15", 20: "population_size=20,max_evals=15"}
    folders = sorted(p.name for p in (tmp_path / "default" / "nb201-cifar10" / "rea-train12").iterdir())
    assert folders == sorted(f"{names[p]}-{ids[p]}" for p in (5, 10, 20))
    stamps = {f: f.stat().st_mtime_ns for f in tmp_path.rglob("summary.json")}

    again = harness(*SWEEP, results=tmp_path)
    assert again.returncode == 0 and again.stdout.count("already finished") == 6, again.stdout
    one = harness("searcher.population_size=20", "seed=1", "budget=evals100", "budget.max_evals=15", results=tmp_path)
    assert one.returncode == 0 and one.stdout.count("already finished") == 1, one.stdout  # a single run: same folder
    assert {f: f.stat().st_mtime_ns for f in tmp_path.rglob("summary.json")} == stamps

    table = harness(str(tmp_path), module="harness.aggregate")
    assert table.returncode == 0, table.stderr
    rows = table.stdout.splitlines()[1:]
    assert len(rows) == 3 and all(" 2  " in r for r in rows), table.stdout
    assert sorted(r.split()[-1] for r in rows) == ["population_size=10", "population_size=20", "population_size=5"]
    means = {r["config"]: r["mean"] for r in aggregate(s for _, s in runs)}  # each row: exactly its two seeds
    for p in (5, 10, 20):
        tests = [s["incumbent_test_acc"] for _, s in runs if s["config"]["searcher"]["population_size"] == p]
        assert means[f"population_size={p}"] == pytest.approx(sum(tests) / 2)


def test_two_budgets_in_one_experiment_are_two_rows_labelled_by_the_budget(tmp_path, nb201_csv):
    summaries = []
    for evals in (5, 50):
        for seed in (0, 1):
            cfg = compose_cfg(["budget=evals100", f"budget.max_evals={evals}", f"seed={seed}"], tmp_path)
            [folder] = run_job(cfg, tmp_path / identity.run_path(plain(cfg)) / f"seed={seed}")
            summaries.append(storage.read_summary(folder))
    rows = aggregate(summaries)
    assert [(r["config"], r["n"]) for r in rows] == [("max_evals=5", 2), ("max_evals=50", 2)]
    assert rows[0]["mean"] == pytest.approx(
        (summaries[0]["incumbent_test_acc"] + summaries[1]["incumbent_test_acc"]) / 2
    )


def test_identity_leaves_out_locations_threads_and_the_other_tasks_settings_and_keeps_the_rest():
    base = identity.config_id(plain(compose([])))
    elsewhere = [
        "data_dir=/elsewhere/data",
        "cache_dir=/elsewhere/cache",
        "benchmark.data_dir=/mnt/x",
        "results_dir=/r",
        "experiment_name=other",
        "score_cache=off",
        "threads=3",
        "progress=false",
        "skip_done=false",
        "n_seeds=4",
        "seed=7",
        "n_archs=5",  # task=rank's setting: not read by a search
    ]
    assert identity.config_id(plain(compose(elsewhere))) == base
    defining = [
        "searcher.sample_size=4",
        "budget.max_evals=7",
        "estimator_seed=1",
        "device=cpu",
        "max_consecutive_failures=3",
        "benchmark.dataset=cifar100",
        "estimator.fidelity=200ep",
        "+searcher.x=1",
    ]
    ids = {identity.config_id(plain(compose([o]))) for o in defining}
    assert len(ids) == len(defining) and base not in ids
    rank = identity.config_id(plain(compose(["task=rank"])))
    assert identity.config_id(plain(compose(["task=rank", "searcher=rs", "budget.max_evals=3"]))) == rank
    assert identity.config_id(plain(compose(["task=rank", "split=select"]))) != rank
    # lr=1 and lr: 1.0 are one setting; the folder label names what differs from the plug-in's own file
    assert identity.config_id(plain(compose(["estimator=rmi", "estimator.lr=1"]))) == identity.config_id(
        plain(compose(["estimator=rmi", "estimator.lr=1.0"]))
    )
    assert identity.label(plain(compose(["estimator=rmi_paper"]))) == ""
    assert identity.label(plain(compose(["estimator=synflow", "task=rank", "+estimator.repeats=2"]))) == "repeats=2"


def _interrupted(results: Path, overrides: list[str], rows: int) -> Path:
    """The folder of a run of ``overrides`` stopped by SIGINT once it has recorded ``rows`` evaluations."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness", *overrides, f"results_dir={results}", "progress=false"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        records = list(results.rglob("records.csv"))
        if records and len(records[0].read_text().splitlines()) > rows:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    [started] = results.rglob("started.json")
    return started.parent


def test_locations_are_not_identity_an_explicit_data_and_cache_dir_or_a_copied_folder_skips_and_resumes(
    tmp_path, nb201_csv
):
    data, cache = paths.data_dir(), paths.cache_dir()
    (tmp_path / "data").symlink_to(data)  # the same files under another path
    (tmp_path / "cache").symlink_to(cache)
    explicit = [f"data_dir={tmp_path / 'data'}", f"cache_dir={tmp_path / 'cache'}"]
    here = tmp_path / "here"

    # a run interrupted by SIGINT after its first evaluations
    launched = dt.datetime.now(dt.UTC).replace(microsecond=0)
    _interrupted(here, LIVE, 2)
    [started] = here.rglob("started.json")
    state = json.loads(started.read_text())
    assert "data_dir" not in json.dumps(state) and "cache_dir" not in json.dumps(state)
    assert launched <= dt.datetime.fromisoformat(state["started_utc"])
    kept = storage.read_partial_records(started.parent / "records.csv")
    assert 2 <= len(kept) < 12

    # copied to another results folder, resumed there with explicit (other) data and cache paths
    shutil.copytree(here, tmp_path / "copy")
    resumed = harness(*LIVE, *explicit, results=tmp_path / "copy")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    [summary_file] = (tmp_path / "copy").rglob("summary.json")
    assert summary_file.parent.relative_to(tmp_path / "copy") == started.parent.relative_to(here)
    summary = json.loads(summary_file.read_text())
    assert summary["n_resumed"] == len(kept) and summary["n_scored"] == 12
    assert summary["started_utc"] == state["started_utc"]  # the interrupted run's start, not the resumed one's
    assert str(tmp_path) not in json.dumps(summary["config"]) and summary["where"]["data_dir"] == str(data)
    rows = [storage.record_row(r) for r in storage.read_partial_records(summary_file.parent / "records.csv")]
    assert rows[: len(kept)] == [storage.record_row(r) for r in kept]

    # finished: the same command skips it, from either folder's copy and with either spelling of the paths
    again = harness(*LIVE, results=tmp_path / "copy")
    assert again.returncode == 0 and "already finished" in again.stdout, again.stderr
    shutil.copytree(tmp_path / "copy", tmp_path / "third")
    third = harness(*LIVE, *explicit, results=tmp_path / "third")
    assert third.returncode == 0 and "already finished" in third.stdout, third.stderr


def test_started_utc_of_a_fresh_run_is_its_start_not_its_finish(tmp_path, nb201_csv):
    proc = harness(*LIVE[:2], "n_archs=60", *LIVE[3:], results=tmp_path)
    # 60 architectures: a few seconds even on an idle machine (25 took 2.14 s there, under the 2.2 s this needs)
    assert proc.returncode == 0, proc.stderr[-2000:]
    [summary_file] = tmp_path.rglob("summary.json")
    summary = json.loads(summary_file.read_text())
    finished = dt.datetime.fromtimestamp(summary_file.stat().st_mtime, dt.UTC)
    started = dt.datetime.fromisoformat(summary["started_utc"])  # whole seconds: at most 1 s before the start
    assert summary["wall_s"] > 2.2  # so that the finish time, written as started_utc, would fail the next line
    assert started <= finished - dt.timedelta(seconds=summary["wall_s"] - 1)


def test_a_start_that_fails_leaves_nothing_that_stops_the_corrected_command(tmp_path, nb201_csv):
    # a searcher that cannot be built: its folder keeps no state
    bad = harness("searcher.population_size=0", "budget.max_evals=5", results=tmp_path / "a")
    assert bad.returncode == 2 and bad.stderr.startswith(
        "error: regularized evolution: population_size must be an integer >= 1"
    )
    assert state_files(tmp_path / "a") == []
    # an estimator that cannot be fitted (its data file is missing), then the same config with the right data_dir:
    # the same folder, which the failed start left free
    (tmp_path / "partial").mkdir()
    (tmp_path / "partial" / "nb201").symlink_to(nb201_csv.parent)
    failed = harness(*LIVE, f"data_dir={tmp_path / 'partial'}", results=tmp_path / "b")
    assert failed.returncode == 2 and "missing data file" in failed.stderr, failed.stderr
    assert state_files(tmp_path / "b") == []
    fixed = harness(*LIVE, results=tmp_path / "b")
    assert fixed.returncode == 0, fixed.stderr[-2000:]
    assert [Path(p).name for p in state_files(tmp_path / "b")] == ["records.csv", "summary.json"]


def test_skip_done_false_reruns_the_same_config_and_never_overwrites_another(tmp_path, nb201_csv):
    fast = ["budget=evals100", "budget.max_evals=5"]
    cfg = compose_cfg(["searcher=rs", *fast], tmp_path)
    [folder] = run_job(cfg, tmp_path / "job")
    before = (folder / "summary.json").read_bytes()
    other = compose_cfg(["searcher=rs", "budget=evals100", "budget.max_evals=6", "skip_done=false"], tmp_path)
    with pytest.raises(ConfigError, match=r"holds a finished run of another config \(differs in: budget\)"):
        run_job(other, tmp_path / "job")
    assert (folder / "summary.json").read_bytes() == before
    again = compose_cfg(["searcher=rs", *fast, "skip_done=false"], tmp_path)
    assert run_job(again, tmp_path / "job") == [folder]
    assert (folder / "summary.json").read_bytes() != before  # run again (its wall time and start differ)


def test_a_summary_written_before_config_ids_aggregates_with_the_same_config_run_now(tmp_path, nb201_csv):
    """Before run ids, summary.json held the whole resolved config (paths, threads, progress) and no id."""
    fast = ["budget=evals100", "budget.max_evals=5"]
    folders = []
    for seed in (0, 1):
        cfg = compose_cfg([*fast, f"seed={seed}"], tmp_path)
        [folder] = run_job(cfg, tmp_path / f"seed={seed}")
        folders.append(folder)
    old = json.loads((folders[0] / "summary.json").read_text())
    old_cfg = compose_cfg([*fast, "seed=0", "data_dir=/old/machine/data"], tmp_path)
    old["config"] = {**plain(old_cfg), "n_seeds": 1}
    for key in ("config_id", "config_label", "where"):
        del old[key]
    (folders[0] / "summary.json").write_text(json.dumps(old))
    runs, problems = storage.load_runs(tmp_path)
    assert not problems and len(runs) == 2
    [row] = aggregate(s for _, s in runs)
    assert row["n"] == 2 and row["config"] == ""
    # the old run's seed run again into a folder of its own: counted once, the copy named
    shutil.copytree(folders[0], tmp_path / "rerun" / "seed=0")
    runs, problems = storage.load_runs(tmp_path)
    copy = tmp_path / "rerun" / "seed=0"  # found first (sorted paths): the old folder is the one skipped
    assert len(runs) == 2 and problems == [
        f"{folders[0]}: the same run (config {row['config_id']}, seed 0) as {copy}, counted once"
    ]


def test_aggregate_metric_and_report_out_refuse_bad_input_in_one_line(tmp_path, nb201_csv):
    for seed in (0, 1):
        cfg = compose_cfg(["budget=evals100", "budget.max_evals=5", f"seed={seed}"], tmp_path)
        run_job(cfg, tmp_path / "runs" / f"seed={seed}")
    runs = str(tmp_path / "runs")
    cases = {
        (
            "--metric",
            "no_such",
        ): "error: --metric no_such: all 2 runs lack it; fields that hold a number in every run:",
        ("--metric", "incumbent"): "error: --metric incumbent is not a number in 2 of 2 runs (e.g. '|",
    }
    for args, start in cases.items():
        proc = harness(runs, *args, module="harness.aggregate")
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith(start), proc.stderr
        assert "incumbent_valid_acc" in lines[0]
    ok = harness(runs, "--metric", "incumbent_valid_acc", module="harness.aggregate")
    assert ok.returncode == 0 and " 2  " in ok.stdout.splitlines()[1], ok.stderr
    (tmp_path / "file").write_text("keep me")
    for out, says in ((tmp_path / "file", "is a file, not a folder"), (tmp_path / "file" / "sub", "Not a directory")):
        proc = harness(runs, "--out", str(out), module="harness.report")
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1 and says in lines[0], proc.stderr
    assert (tmp_path / "file").read_text() == "keep me"


def test_an_unfinished_live_run_resumes_only_with_the_score_key_it_started_with(tmp_path, nb201_csv):
    """Scores of two thread counts differ (harness.cache.keys): a run under way at threads=1 is not continued at
    threads=2, which would mix them in one run; at threads=1 it resumes."""
    folder = _interrupted(tmp_path, LIVE, 2)
    kept = (folder / storage.RECORDS).read_text()
    other = harness(*[o for o in LIVE if o != "threads=1"], "threads=2", results=tmp_path)
    assert other.returncode == 2 and other.stderr.count("\n") == 1, other.stderr
    assert "computed otherwise (threads 1 -> 2)" in other.stderr
    assert (folder / storage.RECORDS).read_text() == kept  # untouched
    again = harness(*LIVE, results=tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    assert storage.read_summary(folder)["n_resumed"] == len(kept.splitlines()) - 1
