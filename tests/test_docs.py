"""The docs hold: README.md is a front page, every link and reference in README.md and docs/*.md resolves,
``--help`` is the harness's own page, and docs/extending.md's worked example adds a searcher that passes its tests.

The command lines in the docs' code blocks are checked by ``tests/test_readme.py``.
"""

from __future__ import annotations

import importlib
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.config import compose
from tests.conftest import ROOT
from tests.test_readme import DOCS, harness_args, jobs

#: the README is a front page: what it is, the two commands, the CLI at a glance, headline results, where next
MAX_README_LINES = 300
#: project folders whose paths the docs name in `code`; a named path must exist
PROJECT_DIRS = ("harness/", "estimators/", "searchers/", "conf/", "tests/", "studies/", "notebooks/", "docs/")
#: the files docs/extending.md's worked example tells the reader to create
EXAMPLE = "local_search"
EXAMPLE_FILES = {f"searchers/{EXAMPLE}.py", f"conf/searcher/{EXAMPLE}.yaml", f"tests/expect/{EXAMPLE}.csv"}


def prose(text: str) -> str:
    """``text`` without its fenced code blocks (a link or heading in a code block is not one)."""
    return re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: its text (links, code marks and emphasis dropped), lower case, punctuation
    other than ``-`` and ``_`` removed, spaces as ``-``."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = text.replace("`", "").replace("*", "").strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading anchor of a Markdown file, a repeated one as GitHub numbers it (``-1``, ``-2``)."""
    seen: dict[str, int] = {}
    out = set()
    for heading in re.findall(r"^#{1,6} +(.+?) *#* *$", prose(path.read_text()), flags=re.M):
        base = slug(heading)
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def links(path: Path) -> list[str]:
    """The targets of the Markdown links and images of a file, outside code."""
    text = re.sub(r"`[^`\n]*`", "", prose(path.read_text()))
    return re.findall(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)", text)


def code_spans(path: Path) -> list[str]:
    """The inline `code` of a file, outside code blocks."""
    return re.findall(r"`([^`\n]+)`", prose(path.read_text()))


def test_the_readme_is_a_front_page():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= MAX_README_LINES, f"README.md has {len(lines)} lines; move detail into docs/"
    headings = [line for line in lines if line.startswith("## ")]
    assert headings[:2] == ["## Two commands", "## The CLI at a glance"], headings


@pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_link_and_anchor_resolves(path):
    broken = []
    for target in links(path):
        if re.match(r"[a-z]+:", target):  # https:, mailto:
            continue
        file, _, anchor = target.partition("#")
        dest = (path.parent / file).resolve() if file else path
        if not dest.exists():
            broken.append(f"{target}: no {dest.relative_to(ROOT) if dest.is_relative_to(ROOT) else dest}")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{target}: no heading with anchor #{anchor} in {dest.relative_to(ROOT)}")
    assert not broken, "\n".join(broken)


@pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_path_test_and_module_the_docs_name_exists(path):
    """`tests/test_x.py::test_name` names a test that file defines; a project path exists (the worked example's new
    files and templates with ``<...>`` or ``*`` aside); `harness.x.Y` imports."""
    broken = []
    for span in code_spans(path):
        word = span.split()[0] if span.split() else ""
        if word.startswith(PROJECT_DIRS) and not re.search(r"[<*$]|\.\.\.", word):
            file, _, test = word.partition("::")
            if file in EXAMPLE_FILES:
                continue
            if not (ROOT / file).exists():
                broken.append(f"`{span}`: no {file}")
            elif test and not re.search(rf"^(async )?def {re.escape(test)}\(", (ROOT / file).read_text(), re.M):
                broken.append(f"`{span}`: {file} defines no {test}")
        elif re.fullmatch(r"(harness|estimators|searchers|studies)(\.\w+)+", word):
            if word.startswith(f"searchers.{EXAMPLE}"):
                continue
            parts = word.split(".")
            for i in range(len(parts), 0, -1):  # the longest importable prefix, then attributes
                try:
                    obj: object = importlib.import_module(".".join(parts[:i]))
                except ModuleNotFoundError:
                    continue
                for attr in parts[i:]:
                    if not hasattr(obj, attr):
                        broken.append(f"`{span}`: {'.'.join(parts[:i])} has no {'.'.join(parts[i:])}")
                        break
                    obj = getattr(obj, attr)
                break
    assert not broken, "\n".join(broken)


def test_a_broken_link_or_anchor_is_found(tmp_path):
    """The check can fail: a missing file, a wrong anchor, a link inside a code block ignored."""
    (tmp_path / "a.md").write_text("# A title: `x` (y)\n## Twice\n## Twice\n")
    page = tmp_path / "b.md"
    page.write_text(
        "[ok](a.md#a-title-x-y) [ok2](a.md#twice-1) [bad](a.md#nope) ![img](missing.png)\n```\n[no](nothing.md)\n```\n"
    )
    assert links(page) == ["a.md#a-title-x-y", "a.md#twice-1", "a.md#nope", "missing.png"]
    assert anchors(tmp_path / "a.md") == {"a-title-x-y", "twice", "twice-1"}


def help_page() -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "harness", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_help_shows_the_harness_page():
    """Tasks, every group with every option (from conf/), ``+experiment=`` with its +, three examples that compose,
    and the top-level keys, exactly those of the config."""
    page = help_page()
    assert page.startswith("python -m harness [group=option ...]")
    assert "task=search" in page and "task=rank" in page
    for group in ("benchmark", "budget", "estimator", "experiment", "searcher"):
        options = sorted(p.stem for p in (ROOT / "conf" / group).glob("*.yaml"))
        assert f"\n{group}: {', '.join(options)}\n" in page
    assert "+experiment=nb201_protocol" in page
    examples = page.split("== Examples ==\n")[1].split("\n\n")[0].splitlines()
    assert len(examples) == 3 and all(line.startswith("python -m harness ") for line in examples)
    for line in examples:
        for job in jobs(harness_args(line)):
            compose(job)
    listed = page.split("== Keys (key=value) ==\n")[1].split("; a plug-in's")[0]
    cfg = compose([])
    assert set(re.findall(r"\w+", listed)) == set(cfg) - {"task", "benchmark", "estimator", "searcher", "budget"}


def extending_example() -> tuple[dict[str, str], str]:
    """docs/extending.md's worked example: {new file: its text} and the command."""
    text = (ROOT / "docs" / "extending.md").read_text()
    section = text.split("## Add a searcher: a worked example")[1].split("\n## ")[0]
    files = dict(re.findall(r"^\*\*`([^`]+)`\*\*\n\n```[a-z]*\n(.*?)^```", section, flags=re.S | re.M))
    command = re.search(r"^\*\*The command\*\*.*?```bash\n(.*?)\n```", section, flags=re.S | re.M)
    assert command
    return files, command.group(1).strip()


def test_the_worked_example_adds_a_searcher_in_two_files_and_one_command(tmp_path, nb201_csv):
    """On a copy of the project: write the two files, run the command; then the searcher's contract and golden
    tests pass, the CLI runs it, and the files are lint-clean."""
    files, command = extending_example()
    assert set(files) == EXAMPLE_FILES - {f"tests/expect/{EXAMPLE}.csv"}
    copy = tmp_path / "project"
    for name in ("harness", "estimators", "searchers", "conf", "tests"):
        # symlinks kept: harness/conf links to conf/, where the new searcher's file goes
        shutil.copytree(ROOT / name, copy / name, symlinks=True, ignore=shutil.ignore_patterns("__pycache__", ".*"))
    shutil.copy(ROOT / "pyproject.toml", copy)
    for name, body in files.items():
        (copy / name).write_text(body)
    env = {**os.environ, "PYTHONPATH": str(copy), "HARNESS_DATA_DIR": str(nb201_csv.parents[1])}

    def run(*args: str, extra: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(args, cwd=copy, env={**env, **(extra or {})}, capture_output=True, text=True, timeout=600)

    variables, _, words = command.partition(" python ")
    assert variables == "HARNESS_ACCEPT=1" and words.startswith("-m pytest")
    proc = run(sys.executable, *shlex.split(words), "-p", "no:randomly", extra={"HARNESS_ACCEPT": "1"})
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert (copy / "tests" / "expect" / f"{EXAMPLE}.csv").is_file(), proc.stdout[-3000:]
    assert (copy / "tests" / "expect" / f"{EXAMPLE}.csv").read_text().startswith("step,arch,score")
    proc = run(
        sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "tests/contracts/test_searcher_contract.py",
        "tests/test_golden.py", "-k", f"{EXAMPLE} or every_searcher_class",
    )  # fmt: skip
    # the class-and-config test, 7 contract cases, the golden trajectory
    assert proc.returncode == 0 and "9 passed" in proc.stdout, proc.stdout[-3000:]
    proc = run(
        sys.executable, "-m", "harness", f"searcher={EXAMPLE}", "estimator=train12", "budget=evals100",
        f"results_dir={tmp_path / 'results'}", "progress=false",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert len((next((tmp_path / "results").rglob("records.csv"))).read_text().splitlines()) == 101
    code = [name for name in files if name.endswith(".py")]
    for lint in (["ruff", "check"], ["ruff", "format", "--check"], ["mypy"]):
        proc = run(sys.executable, "-m", *lint, *code)
        assert proc.returncode == 0, proc.stdout
