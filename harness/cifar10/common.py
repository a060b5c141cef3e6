"""What every CIFAR-10 module shares: the array types, the data set's constants, the source config and a split."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from harness.errors import ConfigError

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
#: The image splits of the data set (not the architecture halves of :data:`harness.sampling.ARCH_SPLITS`).
IMAGE_SPLITS: tuple[Split, ...] = ("train", "test")
#: Images per split in the full data set.
SPLIT_SIZES: dict[str, int] = {"train": 50_000, "test": 10_000}
IMAGE_SHAPE: tuple[int, int, int] = (32, 32, 3)

# The single place for the input normalisation. These are the (ImageNet) statistics the pretrained teachers of
# estimators.rmi_teachers (akamaster/pytorch_resnet_cifar10) were trained with; every model input goes through them.
MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
STD: tuple[float, float, float] = (0.229, 0.224, 0.225)


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


def check_split(split: str) -> None:
    """Refuse a split name that is not one of :data:`IMAGE_SPLITS`. Parameters: split: the name."""
    if split not in IMAGE_SPLITS:
        raise ConfigError(f"cifar10 split must be one of {IMAGE_SPLITS}, got {split!r}")
