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

The modules, one job each: :mod:`~harness.cifar10.common` (types, constants, the source config),
:mod:`~harness.cifar10.readers` (the two readers), :mod:`~harness.cifar10.cache` (loading a split, the JPEG
through its cache) and :mod:`~harness.cifar10.batches` (index sampling, augmentation, tensors). Use the names
re-exported here. Importing this package does not import torch; only the functions that return tensors do.
"""

from harness.cifar10.batches import (
    crop_and_flip,
    flip_and_crop,
    get_batch,
    normalize,
    normalize_tensor,
    sample_indices,
)
from harness.cifar10.cache import build_jpeg_cache, jpeg_cache_files, load_jpeg_split, load_split
from harness.cifar10.common import (
    CLASSES,
    IMAGE_SHAPE,
    IMAGE_SPLITS,
    MEAN,
    SPLIT_SIZES,
    STD,
    Cifar10Config,
    Cifar10Split,
    ImageArray,
    IndexArray,
    LabelArray,
    SourceName,
    Split,
)
from harness.cifar10.readers import (
    JPEG_ARCHIVE,
    decode_jpeg_archive,
    jpeg_archive_path,
    load_python_split,
    python_batches_dir,
    read_python_batch,
)

__all__ = [
    "CLASSES",
    "IMAGE_SHAPE",
    "IMAGE_SPLITS",
    "JPEG_ARCHIVE",
    "MEAN",
    "SPLIT_SIZES",
    "STD",
    "Cifar10Config",
    "Cifar10Split",
    "ImageArray",
    "IndexArray",
    "LabelArray",
    "SourceName",
    "Split",
    "build_jpeg_cache",
    "decode_jpeg_archive",
    "crop_and_flip",
    "flip_and_crop",
    "get_batch",
    "jpeg_archive_path",
    "jpeg_cache_files",
    "load_jpeg_split",
    "load_python_split",
    "load_split",
    "normalize",
    "normalize_tensor",
    "python_batches_dir",
    "read_python_batch",
    "sample_indices",
]
