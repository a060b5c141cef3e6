"""Loading a split: the JPEG archive through its decoded cache, the python batches read directly.

The JPEG archive is decoded once (see :func:`harness.cifar10.readers.decode_jpeg_archive`) into
``<cache_dir>/cifar10/*.npy``; later loads memory-map those files. The cache file names carry a hash of the
archive's size and mtime, so a changed archive is decoded again.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
from pathlib import Path

import numpy as np

from harness.cifar10.common import IMAGE_SHAPE, IMAGE_SPLITS, Cifar10Config, Cifar10Split, check_split
from harness.cifar10.readers import (
    JPEG_CONTAINS,
    JPEG_SOURCE,
    decode_jpeg_archive,
    jpeg_archive_path,
    load_python_split,
)
from harness.errors import DataFileError
from harness.paths import cache_dir as _cache_dir
from harness.paths import require_file, write_atomic

_CACHE_VERSION = 1


def load_split(split: str, config: Cifar10Config | None = None) -> Cifar10Split:
    """Load one split from the configured source.

    Parameters:
        split: ``"train"`` (50,000 images) or ``"test"`` (10,000).
        config: the source; default :class:`Cifar10Config` (the shared JPEG archive).
    """
    cfg = config or Cifar10Config()
    check_split(split)
    if cfg.source == "python":
        assert cfg.path is not None  # checked in Cifar10Config
        return load_python_split(split, cfg.path)
    archive = Path(cfg.path) if cfg.path else None
    return load_jpeg_split(split, archive=archive, data_dir=cfg.data_dir, cache_dir=cfg.cache_dir)


def load_jpeg_split(
    split: str,
    *,
    archive: str | os.PathLike[str] | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> Cifar10Split:
    """Memory-map one split from the cache, decoding the JPEG archive first if the cache is missing or stale.

    Parameters:
        split: ``"train"`` or ``"test"``.
        archive: explicit archive path (default ``<data_dir>/cifar10/CIFAR-10-images-jpg.tar.gz``).
        data_dir: override of the shared data folder.
        cache_dir: override of the cache folder (the files go to ``<cache_dir>/cifar10/``).
    """
    check_split(split)
    src = Path(archive) if archive else jpeg_archive_path(data_dir)
    require_file(src, contains=JPEG_CONTAINS, source=JPEG_SOURCE)
    files = jpeg_cache_files(src, cache_dir)
    loaded = _load_cached(split, files)
    if loaded is None:
        build_jpeg_cache(src, cache_dir)
        loaded = _load_cached(split, files)
    if loaded is None:  # pragma: no cover - only if the files vanish right after being written
        raise DataFileError(f"could not read back the CIFAR-10 cache {files[split][0]} just written")
    return loaded


def jpeg_cache_files(archive: Path, cache_dir: str | os.PathLike[str] | None = None) -> dict[str, tuple[Path, Path]]:
    """Cache paths ``{split: (images.npy, labels.npy)}`` for this archive's current size and mtime.

    Parameters:
        archive: the JPEG archive.
        cache_dir: override of the cache folder.
    """
    stat = archive.stat()
    key = hashlib.sha1(f"v{_CACHE_VERSION}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    folder = _cache_dir(cache_dir) / "cifar10"
    return {s: (folder / f"jpeg_{key}_{s}_images.npy", folder / f"jpeg_{key}_{s}_labels.npy") for s in IMAGE_SPLITS}


def build_jpeg_cache(archive: Path, cache_dir: str | os.PathLike[str] | None = None) -> dict[str, tuple[Path, Path]]:
    """Decode the archive (one streaming pass) and write both splits' ``.npy`` files atomically.

    Older cache files of this source (other archive versions) are removed. Returns the written paths.

    Parameters:
        archive: the JPEG archive.
        cache_dir: override of the cache folder.
    """
    files = jpeg_cache_files(archive, cache_dir)
    decoded = decode_jpeg_archive(archive)
    files["train"][0].parent.mkdir(parents=True, exist_ok=True)
    for split, (images_path, labels_path) in files.items():
        images, labels = decoded[split]
        write_atomic(images_path, functools.partial(np.save, arr=images))
        write_atomic(labels_path, functools.partial(np.save, arr=labels))
    _remove_stale(files)
    return files


def _remove_stale(current: dict[str, tuple[Path, Path]]) -> None:
    """Delete JPEG cache files of other archive versions in the same folder."""
    keep = {p.name for pair in current.values() for p in pair}
    folder = current["train"][0].parent
    for old in folder.glob("jpeg_*_*.npy"):
        if old.name not in keep:
            with contextlib.suppress(OSError):
                old.unlink()


def _load_cached(split: str, files: dict[str, tuple[Path, Path]]) -> Cifar10Split | None:
    """Memory-map a cached split, or ``None`` if its files are missing or unreadable."""
    images_path, labels_path = files[split]
    if not (images_path.is_file() and labels_path.is_file()):
        return None
    try:
        images = np.load(images_path, mmap_mode="r")
        labels = np.load(labels_path, mmap_mode="r")
    except (OSError, ValueError):
        return None
    ok = (
        images.dtype == np.uint8
        and images.shape[1:] == IMAGE_SHAPE
        and labels.dtype == np.int64
        and labels.shape == images.shape[:1]
    )
    return Cifar10Split(split, images, labels) if ok else None
