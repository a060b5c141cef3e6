"""Every command line in the docs is valid as written.

Each ``python -m harness ...``, ``python -m harness.{report,aggregate,cache,data} ...`` and ``make ...`` line of
the code blocks of README.md and docs/*.md (:data:`DOCS`) is checked, once where several files show it:

* ``python -m harness`` lines are composed with the real config (:func:`harness.config.compose`), every value of
  every swept key (on the command line or in a ``+experiment`` file's sweep) once, and resolved. The short ones
  also run for real in a fresh process (:func:`plan` says which and why the others are only composed: a template
  with ``...``, a server this machine has not, more than :data:`MAX_JOBS` jobs, or an estimator that computes for
  minutes). A zero-cost proxy runs on a few architectures, a search on it on a few evaluations; a table look-up,
  ``--cfg`` and ``--help`` run as written.
* ``harness.report`` and ``harness.aggregate`` lines run for real, in a folder whose ``results/`` holds real runs
  under every experiment name they read; ``harness.cache`` lines run for real on an empty score cache.
* ``make`` lines: ``make -n TARGET`` (the target exists; nothing is built or run).
"""

from __future__ import annotations

import math
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from harness import aggregate, report
from harness.config import CONF, compose
from harness.experiment import run_job
from tests.conftest import ROOT, compose_cfg

README = ROOT / "README.md"
#: the files whose code blocks are checked: the front page, then docs/ (where the results log and the rest went)
DOCS = [README, *sorted((ROOT / "docs").glob("*.md"))]
#: a sweep with more jobs than this is only composed
MAX_JOBS = 3
#: estimators that look up a table: they cost nothing to run
TABLES = {"train12", "full_train"}
#: estimators that compute for minutes (supernet training, RMI's proxy training): only composed
SLOW = {"oneshot", "oneshot_gpu", "rmi", "rmi_fast", "rmi_paper", "rmi_ce", "rmi_paper_ce", "swap", "az_nas"}
#: what a short real run appends: a few architectures, a few evaluations, a few seeds
SHORT_RANK = ["n_archs=3"]
SHORT_SEARCH = ["budget.max_evals=3", "budget.max_cost_s=null"]


def readme_lines(prefix: tuple[str, ...]) -> list[str]:
    """The lines of the code blocks of :data:`DOCS` that start with one of ``prefix``, without their comments, each
    once (the README's at-a-glance lines are also in docs/usage.md), in order of first appearance."""
    text = "\n".join(path.read_text() for path in DOCS)
    blocks = re.findall(r"^```[a-z]*\n(.*?)^```", text, flags=re.S | re.M)
    lines = (line.strip() for block in blocks for line in block.splitlines())
    found = (shlex.join(shlex.split(line, comments=True)) for line in lines if line.startswith(prefix))
    return list(dict.fromkeys(found))


def harness_args(line: str) -> list[str]:
    return shlex.split(line)[3:]  # after "python -m harness"


def sweeps(args: list[str]) -> tuple[list[str], dict[str, list[str]]]:
    """(the fixed overrides, {swept key: its values}) of a command line, the sweeps of a ``+experiment`` file
    included unless the command line sets that key."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    parsed = parser.parse_overrides([a for a in args if not a.startswith("-") and a not in ("...", "job")])
    swept = {o.key_or_group: list(o.sweep_string_iterator()) for o in parsed if o.is_sweep_override()}
    for name in (o.value() for o in parsed if o.key_or_group == "experiment"):
        params = OmegaConf.load(CONF / "experiment" / f"{name}.yaml").get("hydra", {}).get("sweeper", {})
        for key, values in params.get("params", {}).items():
            if key not in {o.key_or_group for o in parsed}:
                swept[key] = list(parser.parse_override(f"{key}={values}").sweep_string_iterator())
    return [o.input_line for o in parsed if not o.is_sweep_override()], swept


def jobs(args: list[str]) -> list[list[str]]:
    """The overrides of the jobs to compose: every value of each swept key once, the other keys at their first
    value (a long range by its two ends: its values differ only in a number)."""
    fixed, swept = sweeps(args)
    swept = {k: v if len(v) <= 20 else [v[0], v[-1]] for k, v in swept.items()}
    first = {k: v[0] for k, v in swept.items()}
    variants = [first] + [first | {k: v} for k, values in swept.items() for v in values[1:]]
    return [[*fixed, *(f"{k}={v}" for k, v in variant.items())] for variant in variants]


def n_jobs(args: list[str]) -> int:
    return math.prod(len(values) for values in sweeps(args)[1].values())


def plan(line: str) -> list[str] | str:
    """What a real run of ``line`` appends, or why ``line`` is only composed."""
    args = harness_args(line)
    if "..." in args:
        return "a template: '...' stands for the reader's overrides"
    if any("postgresql://" in a for a in args):
        return "needs the PostgreSQL server the line names"
    if (n := n_jobs(args)) > MAX_JOBS:
        return f"a sweep of {n} jobs"
    cfgs = [compose(job) for job in jobs(args)]
    names = {c.estimator.name for c in cfgs}
    if names & SLOW:
        return f"{', '.join(sorted(names & SLOW))} computes for minutes"
    if "--cfg" in args or "--help" in args or names <= TABLES:
        return []  # as written
    if cfgs[0].task == "rank":
        return [] if any(a.startswith("archs=") for a in args) else SHORT_RANK
    return SHORT_SEARCH


HARNESS = [line for line in readme_lines(("python -m harness",)) if shlex.split(line)[2] == "harness"]
RUN = [line for line in HARNESS if isinstance(plan(line), list)]


def test_the_readme_has_the_commands_this_test_checks():
    assert len(HARNESS) >= 30 and "python -m harness" in HARNESS
    assert "python -m harness benchmark=nbmacro budget=evals100 searcher=rs estimator=full_train" in RUN
    composed_only = {line: plan(line) for line in HARNESS if line not in RUN}
    assert len(RUN) >= 10 and len(composed_only) >= 10, composed_only


@pytest.mark.parametrize("line", HARNESS)
def test_each_harness_line_composes(line):
    for job in jobs(harness_args(line)):
        cfg = compose(job)
        OmegaConf.resolve(cfg)  # every interpolation, as a run resolves it
        assert cfg.estimator.name and cfg.benchmark.name and cfg.searcher.name


@pytest.mark.parametrize("line", RUN)
def test_each_short_harness_line_runs(line, tmp_path, nb201_csv):
    args = harness_args(line)
    shows = "--cfg" in args or "--help" in args  # prints, runs nothing
    extra = [f"results_dir={tmp_path / 'results'}", "progress=false", "threads=1"]
    extra += [] if shows else plan(line)  # type: ignore[operator]
    if any(a.startswith("n_seeds=") for a in args):
        extra.append("n_seeds=2")
    proc = subprocess.run(
        [sys.executable, "-m", "harness", *args, *extra], cwd=ROOT, capture_output=True, text=True, timeout=180
    )
    assert proc.returncode == 0, f"{line}\n{proc.stderr[-2000:]}"
    if "--cfg" in args:
        assert "estimator:" in proc.stdout
    elif "--help" in args:
        assert "+experiment=" in proc.stdout
    else:
        assert list((tmp_path / "results").rglob("summary.json"))


@pytest.fixture(scope="module")
def results_cwd(tmp_path_factory, nb201_csv) -> Path:
    """A folder whose ``results/`` holds a finished search and rank run under every experiment name that the
    README's report and aggregate lines read."""
    cwd = tmp_path_factory.mktemp("readme")
    lines = readme_lines(("python -m harness.report", "python -m harness.aggregate"))
    names = {Path(a).name for line in lines for a in shlex.split(line)[3:] if a.startswith("results/")} - {"results"}
    for name in sorted(names | {"default"}):
        for overrides in (["task=rank", "n_archs=20"], ["searcher=rs", "n_seeds=2", *SHORT_SEARCH]):
            cfg = compose_cfg([*overrides, f"experiment_name={name}"], cwd)
            run_job(cfg, cwd / "results" / name / overrides[0] / "seed=0")
    return cwd


@pytest.mark.parametrize("line", readme_lines(("python -m harness.report", "python -m harness.aggregate")))
def test_each_report_and_aggregate_line_runs(line, results_cwd, monkeypatch, capsys):
    monkeypatch.chdir(results_cwd)
    module = {"harness.report": report, "harness.aggregate": aggregate}[shlex.split(line)[2]]
    assert module.main(shlex.split(line)[3:]) == 0, capsys.readouterr().err
    assert "train12" in capsys.readouterr().out


def test_the_cache_lines_run_on_an_empty_cache(tmp_path):
    env = {"HARNESS_CACHE_DIR": str(tmp_path / "cache"), "PYTHONPATH": str(ROOT)}
    lines = readme_lines(("python -m harness.cache",))
    assert [shlex.split(line)[3] for line in lines] == ["export", "import", "carry"]
    for line in lines:
        proc = subprocess.run(
            [sys.executable, *shlex.split(line)[1:]], cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env
        )
        assert proc.returncode == 0, f"{line}\n{proc.stderr[-2000:]}"
    assert (tmp_path / "scores.csv").read_text().startswith("estimator,")


@pytest.mark.parametrize("line", readme_lines(("make ",)))
def test_each_make_line_names_a_target(line):
    target = shlex.split(line)[1:]
    proc = subprocess.run(["make", "-n", *target], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"{line}\n{proc.stderr}"


@pytest.mark.parametrize(("name", "fidelities"), [("nbmacro", "full"), ("nb301", "surrogate")])
def test_a_benchmark_without_the_default_estimators_table_names_the_one_that_applies(tmp_path, name, fidelities):
    """The README's nbmacro line as it was (the default estimator train12 needs a 12-epoch table): one line that
    says to use estimator=full_train, exit 2."""
    proc = subprocess.run(
        [sys.executable, "-m", "harness", f"benchmark={name}", "budget=evals100", "searcher=rs"]
        + [f"results_dir={tmp_path}", "progress=false"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr == (
        f"error: estimator=train12 needs a 12ep table, which {name} has not ({name} has no fidelity "
        f"'12ep'; valid: {fidelities}); use estimator=full_train (the full schedule, in every table) or a live "
        "estimator\n"
    )


def test_the_data_lines_run(tmp_path, data_dir):
    """`check` runs as written; `convert` runs on the official files here, which hold 3 of the 15,625
    architectures (so with --allow-partial), into a scratch folder in place of $HARNESS_DATA_DIR."""
    source = data_dir / "nb201" / "raw" / "nats_bench_official" / "NATS-tss-v1_0-3ffb9-simple"
    if not source.is_dir():
        pytest.skip(f"{source} not found")
    lines = readme_lines(("python -m harness.data",))
    assert sorted(shlex.split(line)[3] for line in lines) == ["check", "convert"]
    for line in lines:
        args = [a.replace("$HARNESS_DATA_DIR", str(tmp_path)) for a in shlex.split(line)[1:]]
        if args[2] == "convert":
            args = [*args[:3], str(source), *args[4:], "--allow-partial"]
        proc = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, f"{line}\n{proc.stderr[-2000:]}"
    assert (tmp_path / "nb201" / "nb201.csv").read_text().startswith("index,")
