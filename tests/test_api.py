"""The Python API (``import harness``): the CLI's runs from Python, and every ```python example of the docs as
written.

The API's records are compared with ``python -m harness`` runs in fresh processes (the same config and seed give
the same ``records.csv``), its errors with the CLI's lines, its defaults with the config schema's.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import harness
from harness import paths, storage
from harness.benchmarks.view import ValidationView
from harness.interfaces import Estimator, EstimatorContext, Searcher, SearchSpace
from harness.schema import HarnessConfig
from harness.types import Arch, Estimate
from tests.conftest import ROOT, reproducible_part

#: the docs whose ```python blocks are programs to run; docs/extending.md's are files to write into the project,
#: which tests/test_docs.py writes into a copy of it and tests there
DOCS = [ROOT / "README.md", *sorted(p for p in (ROOT / "docs").glob("*.md") if p.name != "extending.md")]
BEST = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
WORST = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"


def examples() -> list[tuple[str, str]]:
    """(``file:line``, code) of every ```python block of the README and docs/*.md."""
    found = []
    for path in DOCS:
        text = path.read_text()
        for match in re.finditer(r"^```python\n(.*?)^```", text, flags=re.S | re.M):
            line = text[: match.start()].count("\n") + 1
            found.append((f"{path.relative_to(ROOT)}:{line}", match.group(1)))
    return found


def cli(*args: str, results: Path) -> Path:
    """Run ``python -m harness ARGS`` (one thread, no bar) writing under ``results``; returns its one run folder."""
    proc = subprocess.run(
        [sys.executable, "-m", "harness", *args, f"results_dir={results}", "threads=1", "progress=false"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr
    [summary] = results.rglob("summary.json")
    return summary.parent


def cli_error(*args: str, tmp_path: Path) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "harness", *args, f"results_dir={tmp_path}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    [line] = proc.stderr.splitlines()
    return line.removeprefix("error: ")


def test_the_docs_have_a_python_api_section_with_an_example() -> None:
    assert any(path.name == "api.md" and "# Python API" in path.read_text() for path in DOCS)
    assert any(where.startswith("docs/api.md") for where, _ in examples())
    readme = (ROOT / "README.md").read_text()  # the front page shows the API at a glance, with a run example
    assert "\n## Python API\n" in readme
    # issue 23: it ranks with a live estimator and searches with a searcher class the example itself defines
    [code] = [code for where, code in examples() if where.startswith("README.md")]
    assert "harness.rank(" in code and "(Searcher):" in code and "harness.search(" in code


@pytest.mark.parametrize("where,code", examples(), ids=[w for w, _ in examples()])
def test_docs_example_runs_as_written(where: str, code: str, tmp_path: Path, nb201_csv: Path) -> None:
    """Each block in a fresh process, in an empty folder, with an empty cache folder (the CIFAR-10 arrays derived
    by earlier runs linked in, as they take minutes to derive): nothing but the code as written."""
    cache = tmp_path / "cache"
    cache.mkdir()
    cifar = paths.cache_dir() / "cifar10"
    if cifar.is_dir():
        (cache / "cifar10").symlink_to(cifar)
    (tmp_path / "example.py").write_text(code)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HARNESS_CACHE_DIR": str(cache)}
    proc = subprocess.run(
        [sys.executable, "example.py"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, f"{where}:\n{proc.stderr}"
    assert "Traceback" not in proc.stderr


def test_search_gives_the_cli_records_in_memory_and_in_the_cli_run_folder(tmp_path: Path, nb201_csv: Path) -> None:
    args = ["searcher=rea", "searcher.population_size=5", "estimator=train12", "seed=3"]
    folder = cli(*args, "budget.max_evals=25", "budget.max_cost_s=null", results=tmp_path / "cli")
    rea = harness.searcher("rea", population_size=5)
    result = harness.search("nb201", "train12", rea, max_evals=25, seed=3, threads=1)
    written = harness.write(result, tmp_path / "api")
    assert reproducible_part(written / "records.csv") == reproducible_part(folder / "records.csv")
    assert len(result.records) == 25 and result.records[-1].answer
    cli_summary = storage.read_summary(folder)
    for key in ("config_id", "config_label", "config", "incumbent", "incumbent_test_acc", "total_cost_s", "budget"):
        assert result.summary[key] == cli_summary[key], key
    # results_dir=: the CLI's run folder, at the CLI's path; a second call reads the finished run back
    again = harness.search("nb201", "train12", rea, max_evals=25, seed=3, threads=1, results_dir=tmp_path / "cli")
    assert [r.arch for r in again.records] == [r.arch for r in result.records]
    assert again.summary["started_utc"] == cli_summary["started_utc"]  # skipped: the CLI's run, not a new one
    new = harness.search("nb201", "train12", rea, max_evals=25, seed=3, threads=1, results_dir=tmp_path / "r")
    [own] = (tmp_path / "r").rglob("summary.json")
    assert own.parent.relative_to(tmp_path / "r") == folder.relative_to(tmp_path / "cli")
    assert reproducible_part(own.parent / "records.csv") == reproducible_part(folder / "records.csv")
    assert new.summary["config_id"] == cli_summary["config_id"]


def test_live_rank_shares_the_cli_score_cache_and_its_records(tmp_path: Path, nb201_csv: Path) -> None:
    """A live estimator named by its config is cached under the CLI's key: the API's run of the CLI's config hits
    every score the CLI stored and charges their recorded cost, so its records are the CLI's, costs included."""
    scores = tmp_path / "scores.sqlite"
    args = ["task=rank", "estimator=params", "n_archs=8", "sample_seed=2"]
    folder = cli(*args, f"score_cache={scores}", results=tmp_path / "cli")
    result = harness.rank("nb201", "params", n_archs=8, sample_seed=2, threads=1, score_cache=str(scores))
    assert result.summary["n_cache_hits"] == 8
    written = harness.write(result, tmp_path / "api")
    # every column but the clock, which starts at the estimator's fit: measured again in each process
    api_rows, cli_rows = (storage.read_records(f).drop(columns=["wall_s", "clock_s"]) for f in (written, folder))
    assert api_rows.to_csv() == cli_rows.to_csv()
    cli_summary = storage.read_summary(folder)
    assert result.summary["kendall_tau_test"] == cli_summary["kendall_tau_test"]
    assert result.summary["config_id"] == cli_summary["config_id"]


def test_rank_of_a_given_list(nb201_csv: Path) -> None:
    result = harness.rank("nb201", "train12", [BEST, WORST], seed=0)
    assert [r.arch for r in result.records] == [BEST, WORST]
    assert result.records[0].score > result.records[1].score
    assert result.summary["n_archs"] == 2 and result.summary["kendall_tau_test"] == 1.0


class Seen:
    """What the own plug-ins below were given, to check the honesty rules."""

    contexts: list[EstimatorContext] = []


class OpsSum(Estimator):
    """Scores an architecture by the sum of its choices; looks one validation number up at fit time."""

    def fit(self, context: EstimatorContext) -> float:
        Seen.contexts.append(context)
        context.query(context.space.sample(context.rng))  # validation numbers only
        return super().fit(context)

    def estimate(self, arch: Arch) -> Estimate:
        return Estimate(float(sum(arch.ops)), 0.01, "cpu")


class Walk(Searcher):
    def __init__(self, space: SearchSpace, rng: np.random.Generator) -> None:
        super().__init__(space, rng)
        self.last: Arch | None = None

    def propose(self) -> Arch:
        return self.space.sample(self.rng) if self.last is None else self.space.mutate(self.last, self.rng)

    def tell(self, arch: Arch, score: float) -> None:
        self.last = arch


def test_own_classes_and_instances_are_taken_seeded_honest_and_not_cached(tmp_path: Path, nb201_csv: Path) -> None:
    scores = tmp_path / "scores.sqlite"
    Seen.contexts.clear()
    runs = [
        harness.search("nb201", OpsSum, Walk, max_evals=12, seed=s, score_cache=str(scores), threads=1)
        for s in (0, 0, 1)
    ]
    archs = [[r.arch for r in run.records] for run in runs]
    assert archs[0] == archs[1] != archs[2]  # the searcher class is seeded by seed, as a named one
    assert [r.score for r in runs[0].records] == [float(sum(a.ops)) for a in map(_parse, archs[0])]
    summary = runs[0].summary
    assert summary["searcher"] == "Walk" and summary["estimator"] == "OpsSum"
    assert summary["config"]["estimator"] == {"name": "OpsSum", "_target_": f"{OpsSum.__module__}.OpsSum"}
    assert summary["n_cache_hits"] == 0 and not scores.exists()  # an own estimator is not cached
    for context in Seen.contexts:  # the estimator saw the validation view, never the benchmark
        assert isinstance(context.query.__self__, ValidationView)  # type: ignore[attr-defined]
        assert not hasattr(context, "test_accuracy") and not hasattr(context.query.__self__, "test_accuracy")
    instance = harness.rank("nb201", OpsSum(), [BEST, WORST], threads=1)
    assert [r.score for r in instance.records] == [float(sum(_parse(BEST).ops)), 0.0]
    walker = Walk(harness.benchmark("nb201").make().space, np.random.default_rng(7))
    walked = harness.search("nb201", "train12", walker, max_evals=5)
    assert len(walked.records) == 5 and walker.asked
    with pytest.raises(harness.ConfigError, match=r"^results_dir= writes run folders .* the estimator given as an"):
        harness.rank("nb201", OpsSum, n_archs=4, results_dir=tmp_path / "r")
    assert not (tmp_path / "r").exists()


def _parse(text: str) -> Arch:
    return harness.benchmark("nb201").make().space.parse(text)  # type: ignore[no-any-return]


def test_unknown_names_keys_and_kinds_are_the_cli_errors(tmp_path: Path) -> None:
    cases = {
        ("estimator=nope",): lambda: harness.estimator("nope"),
        ("estimator=synflow", "+estimator.foo=1"): lambda: harness.estimator("synflow", foo=1),
        ("estimator=synflow", "estimator.batch_size=ten"): lambda: harness.estimator("synflow", batch_size="ten"),
        ("searcher=rea", "+searcher.lr=0.1"): lambda: harness.searcher("rea", lr=0.1),
    }
    for args, call in cases.items():
        with pytest.raises(harness.ConfigError) as caught:
            call()
        assert str(caught.value) == cli_error(*args, tmp_path=tmp_path), args
    with pytest.raises(harness.ConfigError, match="^In 'config': Could not find 'benchmark/nb999'"):
        harness.rank("nb999", "train12")
    with pytest.raises(harness.ConfigError, match=r"^estimator= got the searcher rea; use harness.estimator\(...\)"):
        harness.rank("nb201", harness.searcher("rea"))
    with pytest.raises(harness.ConfigError, match="^searcher=42 is not a searcher: give its name, harness.searcher"):
        harness.search("nb201", "train12", 42)  # type: ignore[arg-type]
    with pytest.raises(harness.ConfigError, match="^seed='x': "):
        harness.rank("nb201", "train12", seed="x")  # type: ignore[arg-type]


def test_the_api_defaults_are_the_config_schema_defaults() -> None:
    schema = {f.name: f.default for f in dataclasses.fields(HarnessConfig) if f.default is not dataclasses.MISSING}
    for function in (harness.rank, harness.search):
        settings = inspect.signature(function).parameters
        given = {name: p.default for name, p in settings.items() if p.kind is p.KEYWORD_ONLY and name in schema}
        given.pop("results_dir"), given.pop("progress")  # None: nothing written; False: no bar by default
        assert given == {name: schema[name] for name in given} and len(given) >= 10


def test_write_refuses_a_finished_run_and_load_reads_it_back(tmp_path: Path, nb201_csv: Path) -> None:
    result = harness.search("nb201", "train12", "rs", max_evals=4, seed=1)
    folder = harness.write(result, tmp_path / "run")
    loaded = harness.load(folder)
    kept = [(r.arch, r.score, r.cost_s, r.answer) for r in loaded.records]
    assert kept == [(r.arch, r.score, r.cost_s, r.answer) for r in result.records]
    assert loaded.summary["incumbent"] == result.summary["incumbent"]
    with pytest.raises(harness.ConfigError, match="holds a finished run; choose another folder"):
        harness.write(result, folder)
    with pytest.raises(harness.ConfigError, match="holds no finished run"):
        harness.load(tmp_path)


def test_import_harness_is_light_and_every_public_name_resolves() -> None:
    code = "import sys, harness; print(sorted(m for m in ('harness.api', 'hydra', 'torch') if m in sys.modules))"
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip() == "[]", proc.stderr
    assert all(getattr(harness, name) is not None for name in harness.__all__)
    assert math.isnan(harness.EvalRecord(0, "a", 0.0, 0.0, 0.0, 0.0, "cpu").test_acc)
