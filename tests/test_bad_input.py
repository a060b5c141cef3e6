"""The catalogue of bad input: each kind ends a fresh `python -m harness` process with exit status 2, exactly one
`error:` line on stderr that says what is wrong, and no traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

BAD_ARCH = "|conv9~0|+|none~0|none~1|+|none~0|none~1|none~2|"
A = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
DEAD_NODE = "|nor_conv_3x3~0|+|skip_connect~0|none~1|+|skip_connect~0|none~1|nor_conv_3x3~2|"  # node 1 unused
DEAD_NODE_ISO = DEAD_NODE.replace("|nor_conv_3x3~0|", "|avg_pool_3x3~0|", 1)  # so the same function
RANK = ["task=rank", "n_archs=5"]
LIVE = ["task=rank", "n_archs=3", "estimator=params"]
MACRO = ["benchmark=nbmacro", "estimator=full_train", "task=rank"]  # its 6,561 strings are 3,969 networks

# (what, overrides, text the error line must contain)
CATALOGUE = [
    ("unknown searcher", ["searcher=foo"], "Could not find 'searcher/foo' Available options in 'searcher': rea rl"),
    ("unknown estimator", ["estimator=foo"], "Could not find 'estimator/foo'"),
    ("unknown benchmark", ["benchmark=foo"], "Could not find 'benchmark/foo'"),
    ("unknown top-level key", ["n_arch=5"], "Key 'n_arch' not in 'HarnessConfig'"),
    ("unknown plug-in key", ["estimator.foo=1"], "Key 'foo' is not in struct"),
    ("wrong type", ["seed=abc"], "Value 'abc' of type 'str' could not be converted to Integer"),
    ("unknown dataset", ["benchmark.dataset=cifar11"], "benchmark.dataset='cifar11' is not a dataset of nb201"),
    ("unknown task", ["task=serch"], "task='serch' is not a task; valid: search, rank"),
    ("negative cost budget", ["budget.max_cost_s=-5"], "budget.max_cost_s must be a positive number"),
    ("zero evaluations", ["budget.max_evals=0", "budget.max_cost_s=null"], "budget.max_evals must be a positive"),
    ("no budget", ["budget.max_evals=null", "budget.max_cost_s=null"], "the budget is unlimited"),
    ("cost budget without costs", ["benchmark=nbmacro"], "nbmacro records no training time"),
    ("zero seeds", ["n_seeds=0"], "n_seeds >= 1"),
    ("negative seed", ["seed=-1"], "seed must be >= 0"),
    ("unknown op in an architecture", ["task=rank", f"archs=['{BAD_ARCH}']"], "unknown operation 'conv9'"),
    ("too few edges", ["task=rank", "archs=['|nor_conv_3x3~0|']"], "NB201 architecture"),
    ("no architectures", ["task=rank", "archs=[]"], "archs=[] names no architecture"),
    ("zero architectures", ["task=rank", "n_archs=0"], "n_archs must be >= 2"),
    ("negative architectures", ["task=rank", "n_archs=-3"], "n_archs must be >= 2"),
    ("more than the space has", ["task=rank", "n_archs=7000"], "more than the 6466 non-isomorphic architectures"),
    ("more than nbmacro has", [*MACRO, "n_archs=4000"], "n_archs=4000 is more than the 3969 non-isomorphic archit"),
    ("copies in nbmacro", [*MACRO, "archs=['00011110','00011101']"], "the same function as) archs[0] '00011110'"),
    ("more than a half has", [*RANK, "n_archs=3300", "split=select"], "in its select half; ask for fewer"),
    ("unknown split", [*RANK, "split=train"], "split='train' is not one of all, select, report"),
    ("device that does not exist, table", ["device=tpu"], "device='tpu' is not a torch device"),
    ("device that does not exist, live", [*LIVE, "device=tpu"], "device='tpu' is not a torch device"),
    ("device not present, table", ["device=cuda:7"], "device=cuda:7 is not present"),
    ("device not present, live", [*LIVE, "device=cuda:7"], "device=cuda:7 is not present"),
    ("zero threads", [*LIVE, "threads=0"], "threads must be >= 1"),
    ("unknown proxy", [*LIVE, "estimator=zero_cost", "estimator.proxy=foo"], "unknown zero-cost proxy 'foo'"),
    ("RMI without steps", ["task=rank", "n_archs=2", "estimator=rmi", "estimator.steps=0"], "steps and repeats"),
    ("unknown teacher", ["task=rank", "n_archs=2", "estimator=rmi", "estimator.teacher=vgg"], "unknown teacher 'vgg'"),
    ("RMI-NAS without a warm-up", ["searcher=rminas", "searcher.n_warmup=0"], "n_warmup must be an integer >= 1"),
    ("unknown vote", ["searcher=rminas", "searcher.tie_break=coin"], "tie_break must be one of index, score"),
    ("unknown score cache", [*LIVE, "score_cache=ftp://host/db"], "score_cache"),
    # a key the plug-in does not take, added as Hydra's own hint says (+key)
    ("added searcher key", ["+searcher.lr=0.1"], "searcher rea has no parameter 'lr'; it takes population_size, samp"),
    ("added estimator key", ["+estimator.foo=1"], "estimator train12 has no parameter 'foo'; it takes fidelity"),
    ("population in words", ["searcher.population_size=ten"], "population_size='ten' is not a number"),
    ("RMI steps in words", ["task=rank", "estimator=rmi", "estimator.steps=ten"], "steps='ten' is not a number"),
    ("fractional population", ["searcher.population_size=2.5"], "population_size must be an integer >= 1, got 2.5"),
    ("unique neither true nor false", ["searcher.unique=maybe"], "unique='maybe' is not true or false"),
    ("learning rate in words", ["searcher=rl", "searcher.learning_rate=fast"], "learning_rate='fast' is not a number"),
    ("negative estimator seed", ["estimator_seed=-1"], "estimator_seed must be >= 0, got -1"),
    ("no failure allowed", ["max_consecutive_failures=0"], "max_consecutive_failures must be >= 1"),
    ("unknown split in a search", ["split=foo"], "split='foo' is not one of all, select, report"),
    ("split in a search", ["split=select"], "split=select applies to task=rank"),
    ("split of given architectures", ["task=rank", f"archs=['{A}']", "split=select"], "archs= are scored as given"),
    ("more threads than CPUs", [*LIVE, "threads=999"], "CPUs this job was given, got 999; or threads=null"),
    ("three workers", [*LIVE, "workers=3"], "workers must be 1 or 2 (or null"),
    ("the same architecture twice", ["task=rank", f"archs=['{A}','{DEAD_NODE}','{A}']"], "archs[2] '|nor_conv_3x3~0"),
    ("isomorphic architectures", ["task=rank", f"archs=['{DEAD_NODE}','{DEAD_NODE_ISO}']"], "isomorphic to"),
    ("experiment outside results_dir", ["experiment_name=../../x"], "experiment_name='../../x' is not a folder name"),
    ("experiment in a subfolder", ["experiment_name=a/b"], "experiment_name='a/b' is not a folder name"),
]


def run(overrides: list[str], tmp_path: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harness", *overrides, f"results_dir={tmp_path / 'results'}", "progress=false"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, **(env or {})},
    )


def assert_one_error_line(proc: subprocess.CompletedProcess[str], text: str) -> None:
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ") and text in lines[0], lines[0]


def written(tmp_path: Path) -> list[str]:
    """The files under ``tmp_path`` but Hydra's own (``.hydra/``, the job's log), which block nothing."""
    return sorted(
        str(f.relative_to(tmp_path))
        for f in tmp_path.rglob("*")
        if f.is_file() and ".hydra" not in f.parts and f.suffix != ".log"
    )


@pytest.mark.parametrize(
    ("what", "overrides", "text"),
    CATALOGUE,
    ids=[c[0] for c in CATALOGUE],
)
def test_bad_input_is_one_error_line(nb201_csv, tmp_path, what, overrides, text):
    """One error line, and nothing written that blocks the corrected command: no file but Hydra's own, and
    nothing outside results_dir."""
    threads = [] if any(o.startswith("threads=") for o in overrides) else ["threads=1"]
    assert_one_error_line(run([*overrides, *threads], tmp_path), text)
    assert {p.name for p in tmp_path.iterdir()} <= {"results"}
    assert written(tmp_path) == []


def test_the_corrected_command_runs_after_a_refused_start(nb201_csv, tmp_path):
    fast = ["budget.max_evals=5", "budget.max_cost_s=null", "threads=1"]
    assert_one_error_line(run(["searcher.population_size=ten", *fast], tmp_path), "'ten' is not a number")
    proc = run(["searcher.population_size=10", *fast], tmp_path)
    assert proc.returncode == 0, proc.stderr
    [summary] = (tmp_path / "results").rglob("summary.json")
    assert json.loads(summary.read_text())["n_evals"] == 5


def test_results_dir_expands_the_home_folder(nb201_csv, tmp_path):
    """``results_dir='~/x'`` means $HOME/x, as in a shell, not a folder named ``~``."""
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness",
            "results_dir='~/x'",
            "budget.max_evals=5",
            "budget.max_cost_s=null",
            "progress=false",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "HOME": str(tmp_path / "home"), "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == 0, proc.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["home"]
    [summary] = (tmp_path / "home" / "x").rglob("summary.json")
    assert summary.parent.name == "seed=0"


def test_missing_data(tmp_path):
    proc = run([], tmp_path, env={"HARNESS_DATA_DIR": str(tmp_path / "nothing")})
    assert_one_error_line(proc, f"missing data file {tmp_path / 'nothing'}/nb201/nb201.csv")


@pytest.mark.parametrize("where", ["file", "under a file"])
def test_results_that_cannot_be_written(nb201_csv, tmp_path, where):
    target = tmp_path / "taken"
    target.write_text("a file, not a folder")
    results = target if where == "file" else target / "sub"
    proc = subprocess.run(
        [sys.executable, "-m", "harness", "budget=evals100", f"results_dir={results}", "progress=false"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert_one_error_line(proc, "choose another results_dir")


def test_a_corrupt_teacher_never_suggests_unsafe_loading(nb201_csv, data_dir, tmp_path):
    data = tmp_path / "data"
    for name in ("nb201", "cifar10"):
        (data / name).mkdir(parents=True)
        for f in (data_dir / name).iterdir():
            (data / name / f.name).symlink_to(f)
    (data / "teachers").mkdir()
    (data / "teachers" / "resnet20-12fca82f.th").write_bytes(b"PK\x03\x04 not a checkpoint")
    proc = run(
        ["task=rank", "n_archs=2", "estimator=rmi", "estimator.steps=1", "threads=1"],
        tmp_path,
        {"HARNESS_DATA_DIR": str(data)},
    )
    assert_one_error_line(proc, "corrupted teacher checkpoint")
    assert "weights_only=False" not in proc.stderr and "Replace it with an intact copy" in proc.stderr
