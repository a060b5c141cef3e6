"""Mini-batches: seeded index sampling, the training augmentation, and normalised tensors.

The one image pipeline of the project: :func:`crop_and_flip` and :func:`normalize_tensor` (torch, any device) are
what every augmentation and every model input goes through.

Importing this module does not import torch; only the functions that return tensors do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from harness.cifar10.cache import load_split
from harness.cifar10.common import CLASSES, MEAN, SPLIT_SIZES, STD, Cifar10Config, Cifar10Split, IndexArray, check_split
from harness.errors import ConfigError

if TYPE_CHECKING:
    import torch


def normalize_tensor(images: torch.Tensor) -> torch.Tensor:
    """uint8 (N, 3, H, W) tensor -> float32 normalised with :data:`MEAN`/:data:`STD`, on its device: the one
    normalisation of every model input (:func:`normalize`, :func:`get_batch`, the one-shot supernet's training).
    The result's memory layout is whatever the arithmetic leaves; each caller makes it contiguous in its own.

    Parameters:
        images: uint8 NCHW tensor, on any device.
    """
    import torch

    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"expected uint8 images (N, 3, H, W), got {images.dtype} {tuple(images.shape)}")
    mean = torch.tensor(MEAN, dtype=torch.float32, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(STD, dtype=torch.float32, device=images.device).view(1, 3, 1, 1)
    return (images.float().div(255.0) - mean) / std


def normalize(images: npt.NDArray[np.uint8], *, device: str = "cpu") -> torch.Tensor:
    """uint8 (N, 32, 32, 3) images -> float32 (N, 3, 32, 32) tensor normalised with :data:`MEAN`/:data:`STD`
    (:func:`normalize_tensor`).

    Parameters:
        images: uint8 NHWC array (a memory map is copied).
        device: torch device of the result.
    """
    return normalize_tensor(_to_nchw(images, device)).contiguous()


def _to_nchw(images: npt.NDArray[np.uint8], device: str) -> torch.Tensor:
    """uint8 NHWC array -> uint8 NCHW tensor (a view of a copy) on ``device``."""
    import torch

    array = np.array(images, dtype=np.uint8, copy=True)  # writable, contiguous (memmaps are read-only)
    if array.ndim != 4 or array.shape[3] != 3:
        raise ValueError(f"expected uint8 images (N, H, W, 3), got {array.shape}")
    return torch.from_numpy(array).to(device).permute(0, 3, 1, 2)


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
    images = _to_nchw(data.images[idx], device)
    if augment is not None:
        images = flip_and_crop(images, augment)
    x = normalize_tensor(images).contiguous()
    y = torch.from_numpy(np.array(data.labels[idx], dtype=np.int64)).to(device)
    return x, y


def flip_and_crop(images: torch.Tensor, rng: np.random.Generator, pad: int = 4) -> torch.Tensor:
    """The standard CIFAR training augmentation, once per image, drawn from a numpy generator: a horizontal flip with
    probability 1/2, then a random crop of the original size from the image padded by ``pad`` zero pixels on each
    side (torchvision's ``RandomHorizontalFlip()`` and ``RandomCrop(32, padding=4)``, before normalisation).

    The draws, in this order: ``flip = rng.random(n) < 0.5``, then ``top, left = rng.integers(0, 2 * pad + 1,
    size=(2, n))``; they are applied by :func:`crop_and_flip` (a flip then a crop at column ``left`` is a crop at
    column ``2 * pad - left`` then a flip).

    Parameters:
        images: uint8 (N, C, H, W) tensor, on any device. rng: the caller's generator. pad: zero padding of the crop.
    """
    import torch

    n = images.shape[0]
    flip = rng.random(n) < 0.5
    top, left = rng.integers(0, 2 * pad + 1, size=(2, n))
    left = np.where(flip, 2 * pad - left, left)  # the same column, counted from the other side of the image
    offsets = torch.from_numpy(np.stack([top, left]).astype(np.int64))
    return crop_and_flip(images, offsets[0], offsets[1], torch.from_numpy(flip), pad=pad)


def crop_and_flip(
    images: torch.Tensor, top: torch.Tensor, left: torch.Tensor, flip: torch.Tensor, *, pad: int = 4
) -> torch.Tensor:
    """The one crop-and-flip: image ``i`` cropped to its own size at row ``top[i]``, column ``left[i]`` of its copy
    zero-padded by ``pad`` pixels on each side, then mirrored horizontally where ``flip[i]``. One gather on the
    images' device; the offsets and flags may be on any device. The callers draw them: :func:`flip_and_crop` from a
    numpy generator, the one-shot supernet's training (:func:`estimators.oneshot_training.augment`) from a torch one.

    Parameters:
        images: uint8 (N, C, H, W) tensor. top, left: (N,) integer offsets in ``0..2 * pad``. flip: (N,) bool.
        pad: zero padding of the crop.
    """
    import torch
    import torch.nn.functional as F

    b, c, h, w = images.shape
    device = images.device
    padded = F.pad(images, (pad, pad, pad, pad))
    rows = top.to(device)[:, None] + torch.arange(h, device=device)
    cols = left.to(device)[:, None] + torch.arange(w, device=device)
    cols = torch.where(flip.to(device)[:, None], cols.flip(1), cols)  # a flipped crop reads its columns backwards
    batch = torch.arange(b, device=device)[:, None, None, None]
    channel = torch.arange(c, device=device)[None, :, None, None]
    return padded[batch, channel, rows[:, None, :, None], cols[:, None, None, :]]


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
        check_split(split)
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
