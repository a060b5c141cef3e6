"""The layers point one way: the import graph of the project's code, read from its source with ``ast``.

Every import counts, at module or function level (a deferred import hides a cycle from Python, not from this
test), except those under ``if TYPE_CHECKING:``, which never run. Importing ``a.b.c`` from a module outside package
``a.b`` also runs ``a/b/__init__.py``, so it counts as an import of ``a.b`` too: a cycle through a package's
``__init__`` is a cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("harness", "estimators", "searchers", "studies")
#: the layers that keep data: nothing here may reach up into orchestration, reporting or the CLI
STORAGE = ("harness.storage", "harness.cache")
ABOVE_STORAGE = (
    "harness.api",
    "harness.experiment",
    "harness.loop",
    "harness.report",
    "harness.aggregate",
    "harness.plots",
)


def _name(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.stmt) -> bool:
    test = node.test if isinstance(node, ast.If) else None
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imported(tree: ast.Module, module: str, is_package: bool, known: set[str]) -> set[str]:
    """The project modules that ``module``'s code imports (see the module docstring)."""
    found: set[str] = set()
    todo: list[ast.AST] = [tree]
    while todo:
        node = todo.pop()
        if isinstance(node, ast.If) and _is_type_checking(node):
            todo.extend(node.orelse)
            continue
        todo.extend(ast.iter_child_nodes(node))
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = module.split(".")
                base = ".".join([*parts[: len(parts) - node.level + is_package], *([base] if base else [])])
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
    out = set()
    for name in found:
        while name and name not in known:  # ``import harness.cache.keys as k`` of a module not in the tree
            name = name.rpartition(".")[0]
        if not name:
            continue
        out.add(name)
        parent = name.rpartition(".")[0]
        while parent and not (module == parent or module.startswith(f"{parent}.")):
            out.add(parent)  # its package's __init__ runs first
            parent = parent.rpartition(".")[0]
    out.discard(module)
    return out


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    """``{module: the project modules it imports}`` for every module of :data:`PACKAGES` under ``root``."""
    files = {_name(p, root): p for package in PACKAGES for p in sorted((root / package).rglob("*.py"))}
    known = set(files)
    return {
        name: _imported(ast.parse(path.read_text(), str(path)), name, path.name == "__init__.py", known)
        for name, path in files.items()
    }


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (each a cycle or several), sorted (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in sorted(graph.get(node, ())):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def _under(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(f"{p}.") for p in prefixes)


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return import_graph()


def test_the_graph_sees_deferred_and_package_imports(tmp_path: Path) -> None:
    """The reader itself: a function-level import is an edge, an ``if TYPE_CHECKING:`` one is not, and importing a
    submodule from outside its package runs (so imports) the package's ``__init__``."""
    for package in PACKAGES:
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / "harness" / "cache").mkdir()
    (tmp_path / "harness" / "cache" / "__init__.py").write_text("from harness.cache.transfer import f\n")
    (tmp_path / "harness" / "cache" / "transfer.py").write_text("def f():\n    from harness.top import g\n")
    (tmp_path / "harness" / "top.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from harness.low import h\n"
        "def g():\n    from harness.cache.transfer import f\n"
    )
    (tmp_path / "harness" / "low.py").write_text("")
    found = import_graph(tmp_path)
    assert found["harness.top"] == {"harness.cache", "harness.cache.transfer"}
    assert found["harness.cache.transfer"] == {"harness.top"}
    assert found["harness.cache"] == {"harness.cache.transfer"}
    assert cycles(found) == [["harness.cache", "harness.cache.transfer", "harness.top"]]


def test_no_import_cycle(graph: dict[str, set[str]]) -> None:
    assert cycles(graph) == []


def test_storage_and_cache_do_not_import_orchestration(graph: dict[str, set[str]]) -> None:
    """What stores data never reaches up into what runs, reports or parses the command line."""
    wrong = {
        (module, other)
        for module, imported in graph.items()
        if _under(module, STORAGE)
        for other in imported
        if _under(other, ABOVE_STORAGE) or other.endswith("__main__") and not _under(other, STORAGE)
    }
    assert wrong == set()


def test_the_loop_knows_no_plug_in(graph: dict[str, set[str]]) -> None:
    """The loop reaches estimators and searchers only through :mod:`harness.interfaces`."""
    assert {m for m in graph["harness.loop"] if _under(m, ("estimators", "searchers"))} == set()


def test_the_harness_imports_no_plug_in(graph: dict[str, set[str]]) -> None:
    """``harness/`` is the generic core: it builds estimators and searchers from their config, never by import. What
    serves one estimator only lives beside it in ``estimators/`` (``rmi_teachers`` for RMI, ``oneshot_training`` for
    the one-shot supernet), and only that estimator imports it."""
    assert {
        (m, o)
        for m, imported in graph.items()
        if _under(m, ("harness",))
        for o in imported
        if _under(o, ("estimators", "searchers"))
    } == set()
    for helper, user in (
        ("estimators.rmi_teachers", "estimators.rmi"),
        ("estimators.oneshot_training", "estimators.oneshot"),
    ):
        assert {m for m, imported in graph.items() if helper in imported} == {user}


def test_the_python_api_is_on_top(graph: dict[str, set[str]]) -> None:
    """:mod:`harness.api` sits beside :mod:`harness.experiment`, above everything it uses: only the package's
    ``__init__`` (which re-exports it) imports it."""
    assert {m for m, imported in graph.items() if "harness.api" in imported} == {"harness"}
    assert "harness.experiment" in graph["harness.api"]


#: the most lines a module of the project's code has without saying, at its top, why it needs more
MAX_LINES = 400


def test_a_long_module_says_why_at_its_top() -> None:
    """A module over :data:`MAX_LINES` lines gives its reason in its docstring ("Over N lines for a reason: ...")."""
    unexplained = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            text = path.read_text()
            if text.count("\n") > MAX_LINES and "lines for a reason" not in (ast.get_docstring(ast.parse(text)) or ""):
                unexplained.append(f"{path.relative_to(ROOT)} ({text.count(chr(10))} lines)")
    assert unexplained == []


#: the harness modules below the public API that a study imports, each with why (the public API: ``harness`` and
#: what it exports, :data:`harness.__all__`). A study's own method (``estimators.*``, ``searchers.*``) is not
#: harness and is not listed.
STUDIES_BELOW_THE_API = {
    ("studies.answer_rules", "harness.metrics"): "metrics.vote is RMI-NAS's vote, the answer rule it studies",
    ("studies.answer_rules", "harness.storage"): "storage.load_runs finds every finished run under a folder, "
    "skipping unreadable and repeated ones; the API loads one folder (harness.load)",
    ("studies.rmi_trajectories", "harness.config"): "it takes the CLI's override strings; the API takes keywords",
    ("studies.rmi_trajectories", "harness.plugins"): "plug-ins built from the composed config (the benchmark's "
    "data_dir resolved against the overrides), the estimator fitted in a rank run's context and threads",
    ("studies.rmi_trajectories", "harness.sampling"): "the rank sample, drawn as a rank run draws it, each member's "
    "select/report half",
    ("studies.rmi_trajectories", "harness.cache"): "it fills the score cache for configs it never ran (one "
    "trajectory answers every shorter run): their keys and slots",
    ("studies.rmi_trajectories", "harness.paths"): "write_atomic, for the CSV it resumes",
    ("studies.az_nas_pool", "harness.benchmarks"): "NB201 loaded by class; harness.benchmark('nb201').make() would "
    "do, not moved (no test runs this study)",
    ("studies.az_nas_pool", "harness.metrics"): "tau, rho and bootstrap intervals: the report's statistics",
    ("studies.az_nas_pool", "harness.sampling"): "the rank sample, drawn by hand to vary AZ-NAS's reference pool",
    ("studies.az_nas_pool", "harness.seeding"): "named random streams, so its draws are a rank run's",
    ("studies.rmi_analysis", "harness.benchmarks"): "NB201 loaded by class; harness.benchmark('nb201').make() would "
    "do, not moved (no test runs this study)",
    ("studies.rmi_analysis", "harness.metrics"): "tau, bootstrap and paired-bootstrap intervals",
    ("studies.rmi_analysis", "harness.seeding"): "named random streams for its bootstraps",
    ("studies.rmi_analysis", "harness.storage"): "load_runs and read_records: every rank run under a folder",
    ("studies.rmi_variants", "harness.benchmarks"): "NB201 loaded by class; harness.benchmark('nb201').make() would "
    "do, not moved (no test runs this study)",
    ("studies.rmi_variants", "harness.metrics"): "tau and its bootstrap interval",
    ("studies.rmi_variants", "harness.seeding"): "named random streams for its bootstraps",
    ("studies.top_of_space", "harness.metrics"): "tau and its bootstrap interval",
    ("studies.top_of_space", "harness.sampling"): "split_of: the pool is drawn from the select half only",
    ("studies.vkdnw_agg", "harness.metrics"): "tau, rho, nDCG and their bootstraps: the report's statistics",
    ("studies.vkdnw_agg", "harness.seeding"): "named random streams for its bootstraps",
    ("studies.vkdnw_agg", "harness.storage"): "load_runs and read_records: every rank run under a folder",
    ("studies.vkdnw_agg", "harness.types"): "OK, the status of a successful record, which harness does not export",
}


def test_studies_use_the_public_api(graph: dict[str, set[str]]) -> None:
    """``studies/`` imports ``harness`` (its public API), and below it only :data:`STUDIES_BELOW_THE_API`, each for
    the reason given there; a listed import no study makes any more is an error too, so the list stays true."""
    below = {
        (module, other)
        for module, imported in graph.items()
        if _under(module, ("studies",))
        for other in imported
        if _under(other, ("harness",)) and other != "harness"
    }
    assert below == set(STUDIES_BELOW_THE_API)
    assert all(STUDIES_BELOW_THE_API.values())
