"""Where data, caches and results live.

One setting each, overridable by an environment variable:

* ``data_dir``: ``$HARNESS_DATA_DIR``, else ``../shared/data`` relative to the project root.
* ``cache_dir``: ``$HARNESS_CACHE_DIR``, else ``.cache/`` in the project root (git-ignored). Derived files only.
"""

from __future__ import annotations

import os
from pathlib import Path

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
