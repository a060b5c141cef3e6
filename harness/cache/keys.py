"""The score cache's key: what a stored score depends on (parameters, code, data files, torch, device)."""

from __future__ import annotations

import ast
import functools
import hashlib
import json
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from harness import paths
from harness.interfaces import Estimator, SearchSpace
from harness.plugins import default_threads, plain, resolve_device

#: the project's packages: an estimator's code is its module plus the modules of these it imports, transitively
_PACKAGES = ("harness", "estimators", "searchers")

#: project modules that never compute a score, so neither they nor what only they import are part of a key: typed
#: errors and messages, the base classes and record types (interfaces, types), where files live (paths; the data
#: files' contents are keyed themselves), the cost clock (budget: a score's cost is measured, not computed), the
#: loop and everything that stores, caches, configures or reports. Every other module an estimator imports counts,
#: so a module added later is keyed until it is listed here with its reason.
NOT_SCORE_CODE = frozenset(
    {
        "harness.errors",
        "harness.interfaces",
        "harness.types",
        "harness.paths",
        "harness.budget",
        "harness.loop",
        "harness.storage",
        "harness.experiment",
        "harness.config",
        "harness.cache",
    }
)

#: the names of logging and warning calls, whose statements are messages (:class:`_RunCode` drops them)
_MESSAGE_CALLS = frozenset({"debug", "info", "warning", "warn", "error", "exception", "critical"})
_LOGGERS = frozenset({"log", "logger", "logging", "warnings", "_log", "_logger"})


def _is_score_code(name: str) -> bool:
    return not any(name == skip or name.startswith(f"{skip}.") for skip in NOT_SCORE_CODE)


def _module_file(name: str, root: Path | None = None) -> Path | None:
    """The source file of project module ``name`` (a package's ``__init__.py``) under ``root`` (default: the
    project's), found without importing it."""
    base = (root or paths.PROJECT_ROOT).joinpath(*name.split("."))
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


def _imports(tree: ast.Module, module: str, is_package: bool, root: Path | None) -> set[str]:
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
                found.add(submodule if _module_file(submodule, root) is not None else base)
    return {name for name in found if name.split(".")[0] in _PACKAGES and _module_file(name, root) is not None}


def _is_message(node: ast.AST) -> bool:
    """A statement that only says something: ``log.info(...)``, ``logger.warning(...)``, ``warnings.warn(...)``."""
    if not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)):
        return False
    func = node.value.func
    return (
        isinstance(func, ast.Attribute)
        and func.attr in _MESSAGE_CALLS
        and isinstance(func.value, ast.Name)
        and func.value.id in _LOGGERS
    )


class _RunCode(ast.NodeTransformer):
    """Strips what does not change what a module computes: docstrings, type annotations, ``if TYPE_CHECKING:``
    blocks, log and warning statements, and messages: ``raise Error(f"...")`` keeps only ``raise Error`` (which
    error, not its words or its cause) and ``assert x, "..."`` only ``assert x`` (comments are already gone in the
    tree). Typing a module or editing its prose keeps its scores' keys."""

    def generic_visit(self, node: ast.AST) -> ast.AST:
        super().generic_visit(node)
        if isinstance(node, ast.Raise):
            if isinstance(node.exc, ast.Call):
                node.exc = node.exc.func
            node.cause = None
        elif isinstance(node, ast.Assert):
            node.msg = None
        body = getattr(node, "body", None)
        if isinstance(body, list):
            body = [b for b in body if not (_is_type_checking(b) or _is_message(b))]
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


def score_modules(*modules: str, root: Path | None = None) -> list[str]:
    """The project modules whose code a score computed with ``modules`` runs: those and every project module they
    import, transitively, except :data:`NOT_SCORE_CODE` (never followed). ``root``: the project folder (default:
    this checkout's)."""
    todo, seen = [m for m in modules if _is_score_code(m)], set()
    while todo:
        name = todo.pop()
        path = _module_file(name, root)
        if name in seen or path is None:
            continue
        seen.add(name)
        imported = _imports(ast.parse(path.read_text(), filename=str(path)), name, path.name == "__init__.py", root)
        todo.extend(m for m in imported if _is_score_code(m))
    return sorted(seen)


@functools.cache
def code_hash(*modules: str, root: Path | None = None) -> str:
    """A hash of the code of :func:`score_modules` ``(*modules)``, each as :class:`_RunCode` leaves it (no prose,
    annotations or messages): a conservative superset of what a score depends on, which editing prose, a message
    or a module that does not compute leaves unchanged."""
    digest = hashlib.sha1()
    for name in score_modules(*modules, root=root):
        path = _module_file(name, root)
        assert path is not None
        digest.update(f"{name}\n{_normalised(ast.parse(path.read_text()))}\n".encode())
    return digest.hexdigest()[:12]


def file_hash(path: Path) -> str:
    """A short content hash of a data file (``missing`` if there is none: the estimator's fit then says so)."""
    if not path.is_file():
        return "missing"
    return paths.file_digest(path)[:16]


def estimator_key(
    params: dict[str, Any],
    estimator: Estimator | None = None,
    *,
    space: SearchSpace | None = None,
    device: str = "cpu",
    data_dir: str | None = None,
    threads: int | None = None,
) -> str:
    """Canonical id of what an estimator computes: every parameter of its config (``_target_`` included, its
    cosmetic ``name`` not) and, given the ``estimator`` object, everything else its scores depend on: the
    :func:`code_hash` of its module, of the ``space``'s module and of that space's network module
    (``harness/networks/<space>.py``, which :func:`harness.networks.build_network` loads by name), and for a live
    estimator the torch version, the content of the data files it reads
    (:meth:`~harness.interfaces.Estimator.data_files`) and the arithmetic it ran on: the device type and, on a CPU,
    the kernel set torch dispatches to (``AVX2``, ``AVX512``, ...) and the number of torch ``threads`` (default:
    torch's current number), on a GPU its name. A short training such as RMI's is chaotic in the last bits of
    its floats: the same code on another kernel set or thread count gives another score (measured on rmi_paper:
    up to 0.4 apart for one cell, where the 50 cells' scores have a standard deviation of 0.56). A changed
    implementation, data file, torch, device, kernel set or thread count never serves old scores."""
    key: dict[str, Any] = {k: v for k, v in params.items() if k != "name"}
    if estimator is not None:
        modules = [type(estimator).__module__]
        if space is not None:
            modules += [type(space).__module__, f"harness.networks.{space.name}"]
        key["code"] = code_hash(*modules)
        if estimator.tags.live:
            from importlib.metadata import version

            import torch

            key["torch"] = version("torch")
            key["device"] = device.split(":")[0]
            if key["device"] == "cpu":
                key["cpu"] = torch.backends.cpu.get_cpu_capability()
                key["threads"] = int(threads if threads is not None else torch.get_num_threads())
            elif key["device"] == "cuda":
                key["gpu"] = torch.cuda.get_device_name(device)
            root = paths.data_dir(data_dir)
            key["data"] = {f.relative_to(root).as_posix(): file_hash(f) for f in estimator.data_files(root)}
    return json.dumps(key, sort_keys=True, separators=(",", ":"))


def score_key(cfg: DictConfig, estimator: Estimator, space: SearchSpace, threads: int | None = None) -> str:
    """The key of the scores a job of ``cfg`` computes with ``estimator`` on ``space``: :func:`estimator_key` of its
    estimator node, on the job's device and ``threads`` (default ``cfg.threads``, and when that is null
    :func:`~harness.plugins.default_threads`)."""
    params = plain(cfg.estimator)
    device = resolve_device(cfg.device, estimator.tags.live)
    if threads is None:
        threads = cfg.threads if cfg.threads is not None else default_threads()
    return estimator_key(params, estimator, space=space, device=device, data_dir=cfg.data_dir, threads=threads)
