"""The score key covers exactly the code that computes a score (issue 20, item 7), tested on a copy of this
checkout's own modules: edits a score does not depend on keep RMI's key, edits it does depend on change it."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from harness import paths
from harness.cache import keys

#: what RMI's scores are computed with on NAS-Bench-201: the estimator, the space and its network module
RMI = ("estimators.rmi", "harness.spaces.nb201", "harness.networks.nb201")


#: (file, pattern, replacement): one edit each; a pattern "$" appends the replacement to the file. A log message:
#: RMI's modules log nothing, so that case first adds a function that logs, then rewords it
_LOGS = "\n\ndef probe(log):\n    log.info('one wording %s', 1)\n    return 1\n"
KEEPS = {
    "error message": ("harness/networks/nb201.py", r'raise ValueError\(f"', 'raise ValueError(f"reworded: '),
    "estimator's error message": ("estimators/rmi.py", r'raise EstimatorError\(f"', 'raise EstimatorError(f"now: '),
    "log message": ("harness/cifar10/cache.py", "one wording", "another wording"),
    "interfaces": ("harness/interfaces.py", "$", "\n\ndef probe_edit() -> int:\n    return 1\n"),
    "the loop": ("harness/loop.py", "$", "\n\ndef probe_edit() -> int:\n    return 1\n"),
    "budget": ("harness/budget.py", "$", "\n\ndef probe_edit() -> int:\n    return 1\n"),
    "storage": ("harness/storage.py", "$", "\n\ndef probe_edit() -> int:\n    return 1\n"),
    "errors": ("harness/errors.py", "$", "\n\nclass ProbeError(Exception):\n    pass\n"),
    "annotation": ("estimators/rmi.py", r"def linear_cka\(", "def linear_cka(  # typed differently\n"),
}
CHANGES = {
    "network op": ("harness/networks/nb201.py", "$", "\n\ndef probe_edit():\n    return 1\n"),
    "image pipeline": ("harness/cifar10/common.py", r"0\.485", "0.4850001"),
    "image reader": ("harness/cifar10/readers.py", "$", "\n\ndef probe_edit():\n    return 1\n"),
    "seeding": ("harness/seeding.py", "$", "\n\ndef probe_edit():\n    return 1\n"),
    "teacher": ("estimators/rmi_teachers.py", "$", "\n\ndef probe_edit():\n    return 1\n"),
    "estimator": ("estimators/rmi.py", "$", "\n\ndef probe_edit():\n    return 1\n"),
    "space": ("harness/spaces/nb201.py", "$", "\n\ndef probe_edit():\n    return 1\n"),
    "an error's type": (
        "harness/networks/nb201.py",
        r"raise ValueError\(f\"NB201Config",
        'raise TypeError(f"NB201Config',
    ),
}


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the project's Python packages, to edit."""
    root = tmp_path_factory.mktemp("tree")
    for package in ("harness", "estimators", "searchers"):
        shutil.copytree(paths.PROJECT_ROOT / package, root / package, ignore=shutil.ignore_patterns("__pycache__"))
    return root


def _edited_hash(tree: Path, tmp_path: Path, edit: tuple[str, str, str]) -> tuple[str, str]:
    """RMI's code hash on a fresh copy of ``tree`` before and after ``edit``."""
    root = tmp_path / "copy"
    shutil.copytree(tree, root)
    file, pattern, replacement = edit
    if pattern == "one wording":
        (root / file).write_text((root / file).read_text() + _LOGS)
    before = keys.code_hash(*RMI, root=root)
    text = (root / file).read_text()
    new = text + replacement if pattern == "$" else re.sub(pattern, lambda _: replacement, text, count=1)
    assert new != text, f"the edit of {file} found no {pattern!r}"
    (root / file).write_text(new)
    keys.code_hash.cache_clear()
    return before, keys.code_hash(*RMI, root=root)


@pytest.mark.parametrize("what", sorted(KEEPS))
def test_an_edit_a_score_does_not_depend_on_keeps_the_key(tree, tmp_path, what):
    before, after = _edited_hash(tree, tmp_path, KEEPS[what])
    assert after == before


@pytest.mark.parametrize("what", sorted(CHANGES))
def test_an_edit_a_score_depends_on_changes_the_key(tree, tmp_path, what):
    before, after = _edited_hash(tree, tmp_path, CHANGES[what])
    assert after != before


def test_rmi_is_keyed_by_its_network_images_seeding_and_teacher_only():
    modules = set(keys.score_modules(*RMI))
    assert {"estimators.rmi", "harness.networks.nb201", "harness.cifar10.batches", "harness.cifar10.readers"} <= modules
    assert {"harness.seeding", "estimators.rmi_teachers", "harness.spaces.nb201"} <= modules
    assert not {m for m in modules if not keys._is_score_code(m)}
    assert not modules & {"harness.loop", "harness.storage", "harness.interfaces", "harness.errors", "harness.budget"}


def test_a_supernet_checkpoint_is_keyed_by_the_same_code_hash():
    from estimators.oneshot_training import Recipe
    from harness.spaces.nb201 import NB201Space

    recipe = Recipe(NB201Space(), "cifar10", 0, 100, 1, 16, 0.025, False)
    assert recipe.config()["code"] == keys.code_hash("estimators.oneshot_training", "harness.spaces.nb201")
    assert "harness.networks.supernet" in keys.score_modules("estimators.oneshot_training")
