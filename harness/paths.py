"""Where data, caches and results live.

One setting each, overridable by an environment variable:

* ``data_dir``: ``$HARNESS_DATA_DIR``, else ``../shared/data`` relative to the project root.
* ``cache_dir``: ``$HARNESS_CACHE_DIR``, else ``.cache/`` in the project root (git-ignored). Derived files only.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from harness.errors import DataFileError

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def data_dir(override: str | os.PathLike[str] | None = None) -> Path:
    """The shared data folder: ``override`` if given, else ``$HARNESS_DATA_DIR``, else ``<project>/../shared/data``."""
    if override:
        return Path(override).expanduser().resolve()
    env = os.environ.get("HARNESS_DATA_DIR")
    return Path(env).expanduser().resolve() if env else (PROJECT_ROOT.parent / "shared" / "data").resolve()


def cache_dir(override: str | os.PathLike[str] | None = None) -> Path:
    """The derived-cache folder (created): ``override``, else ``$HARNESS_CACHE_DIR``, else ``<project>/.cache``."""
    if override:
        path = Path(override).expanduser()
    else:
        env = os.environ.get("HARNESS_CACHE_DIR")
        path = Path(env).expanduser() if env else PROJECT_ROOT / ".cache"
    path.mkdir(parents=True, exist_ok=True)
    return path.resolve()


def require_file(path: Path, *, contains: str, source: str) -> Path:
    """Return ``path`` if it is a file, else raise :class:`DataFileError` naming it, its content and its origin."""
    if not path.is_file():
        raise DataFileError(
            f"missing data file {path}: it must contain {contains}; it comes from {source}. "
            "Set data_dir=... or $HARNESS_DATA_DIR to the folder that holds it."
        )
    return path


def write_atomic(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Call ``write`` on a temporary file next to ``path``, sync it, then ``os.replace`` it into place: readers
    (other processes too) see the old file or the whole new one, never a part; a failed write leaves no trace."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; results and caches are not secret
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    """The hex digest of a file's bytes (``algorithm``: any of :mod:`hashlib`'s), read in blocks."""
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, algorithm).hexdigest()
