"""The score cache's key: what a stored score depends on (parameters, code, data files, torch, device)."""

from __future__ import annotations

import ast
import functools
import hashlib
import json
from pathlib import Path
from typing import Any

from harness import paths
from harness.interfaces import Estimator, SearchSpace

#: the project's packages: an estimator's code is its module plus the modules of these it imports, transitively
_PACKAGES = ("harness", "estimators", "searchers")


def _module_file(name: str) -> Path | None:
    """The source file of project module ``name`` (a package's ``__init__.py``), found without importing it."""
    base = paths.PROJECT_ROOT.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _is_type_checking(node: ast.AST) -> bool:
    """``if TYPE_CHECKING:`` (or ``typing.TYPE_CHECKING``): a block that only the type checker runs."""
    if not isinstance(node, ast.If):
        return False
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.Module, module: str, is_package: bool) -> set[str]:
    """The project modules that a module's code imports anywhere (function-level imports included, imports for the
    type checker only left out). A package's ``__init__`` counts only when a name is taken from it
    (``from harness.networks import build_network``), not when it is passed through to reach a submodule
    (``from harness.spaces.nb201 import OPS``)."""
    found: set[str] = set()
    for node in ast.walk(_RunCode().visit(tree)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                parts = module.split(".")
                package = parts[: len(parts) - node.level + is_package]
                base = ".".join([*package, *([base] if base else [])])
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                found.add(submodule if _module_file(submodule) is not None else base)
    return {name for name in found if name.split(".")[0] in _PACKAGES and _module_file(name) is not None}


class _RunCode(ast.NodeTransformer):
    """Strips what does not change what a module computes: docstrings, type annotations and ``if TYPE_CHECKING:``
    blocks (comments are already gone in the tree). Typing a module or editing its prose keeps its scores' keys."""

    def generic_visit(self, node: ast.AST) -> ast.AST:
        super().generic_visit(node)
        body = getattr(node, "body", None)
        if isinstance(body, list):
            body = [b for b in body if not _is_type_checking(b)]
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                if isinstance(body[0].value.value, str):
                    body = body[1:]
            node.body = body or [ast.Pass()]  # type: ignore[attr-defined]  # a node with a list body (checked above)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            node.returns = None
        elif isinstance(node, ast.arg):
            node.annotation = None
        elif isinstance(node, ast.AnnAssign):  # a dataclass field keeps its name and default, not its type
            node.annotation = ast.Name(id="_", ctx=ast.Load())
        return node


def _normalised(tree: ast.Module) -> str:
    """The code of a module as it runs (:class:`_RunCode`): editing prose or types does not change its hash."""
    return ast.dump(_RunCode().visit(tree))


@functools.cache
def code_hash(*modules: str) -> str:
    """A hash of the code that project modules ``modules`` run: their own source and that of every project module
    they import, transitively, docstrings and comments left out. A conservative superset of what a score depends
    on; editing prose or an unrelated module leaves it unchanged."""
    todo, seen = list(modules), set()
    while todo:
        name = todo.pop()
        path = _module_file(name)
        if name in seen or path is None:
            continue
        seen.add(name)
        todo.extend(_imports(ast.parse(path.read_text(), filename=str(path)), name, path.name == "__init__.py"))
    digest = hashlib.sha1()
    for name in sorted(seen):
        path = _module_file(name)
        assert path is not None
        digest.update(f"{name}\n{_normalised(ast.parse(path.read_text()))}\n".encode())
    return digest.hexdigest()[:12]


def file_hash(path: Path) -> str:
    """A short content hash of a data file (``missing`` if there is none: the estimator's fit then says so)."""
    if not path.is_file():
        return "missing"
    digest = hashlib.sha256()  # hashlib.file_digest would need Python 3.11
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def estimator_key(
    params: dict[str, Any],
    estimator: Estimator | None = None,
    *,
    space: SearchSpace | None = None,
    device: str = "cpu",
    data_dir: str | None = None,
) -> str:
    """Canonical id of what an estimator computes: every parameter of its config (``_target_`` included, its
    cosmetic ``name`` not) and, given the ``estimator`` object, everything else its scores depend on: the
    :func:`code_hash` of its module, of the ``space``'s module and of that space's network module
    (``harness/networks/<space>.py``, which :func:`harness.networks.build_network` loads by name), and for a live
    estimator the torch version, the device type and the content of the data files it reads
    (:meth:`~harness.interfaces.Estimator.data_files`). A changed implementation, data file, device or torch never
    serves old scores."""
    key: dict[str, Any] = {k: v for k, v in params.items() if k != "name"}
    if estimator is not None:
        modules = [type(estimator).__module__]
        if space is not None:
            modules += [type(space).__module__, f"harness.networks.{space.name}"]
        key["code"] = code_hash(*modules)
        if estimator.tags.live:
            from importlib.metadata import version

            key["torch"] = version("torch")
            key["device"] = device.split(":")[0]
            root = paths.data_dir(data_dir)
            key["data"] = {f.relative_to(root).as_posix(): file_hash(f) for f in estimator.data_files(root)}
    return json.dumps(key, sort_keys=True, separators=(",", ":"))
