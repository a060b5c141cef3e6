"""CIFAR-10 readers: python batches, the JPEG cache (build, reuse, invalidation), errors, sampling."""

from __future__ import annotations

import io
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from harness import cifar10
from harness.cifar10 import CLASSES, Cifar10Config, Cifar10Split
from harness.errors import ConfigError, DataFileError
from harness.seeding import rng

# ----------------------------------------------------------------------------------------------------------
# helpers


def _colour(split: str, label: int, index: int) -> tuple[int, int, int]:
    """A flat colour identifying an image (flat JPEGs decode to within a few levels)."""
    return (20 * label + 10, 40 * index + 30 + (100 if split == "test" else 0), 200 - 15 * label)


def _jpeg(colour: tuple[int, int, int]) -> bytes:
    array = np.empty((32, 32, 3), dtype=np.uint8)
    array[...] = colour
    png = io.BytesIO()
    Image.fromarray(array).save(png, format="PNG")
    out = io.BytesIO()
    Image.open(io.BytesIO(png.getvalue())).convert("RGB").save(out, format="JPEG", quality=95)
    return out.getvalue()


def _add(tar: tarfile.TarFile, name: str, payload: bytes | None) -> None:
    info = tarfile.TarInfo(name)
    if payload is None:
        info.type = tarfile.DIRTYPE
        tar.addfile(info)
        return
    info.size = len(payload)
    tar.addfile(info, io.BytesIO(payload))


def _write_archive(path: Path, layout: dict[str, dict[str, int]], offset: int = 0) -> None:
    """Write a tiny JPEG archive, ``layout[split][class] = number of images``, members in scrambled order."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        _add(tar, "CIFAR-10-images/", None)
        _add(tar, "CIFAR-10-images/README.md", b"# readme\n")
        for split in sorted(layout, reverse=True):  # test before train
            for cls in sorted(layout[split], reverse=True):  # truck before airplane
                label = CLASSES.index(cls)
                for i in reversed(range(layout[split][cls])):  # 0001.jpg before 0000.jpg
                    colour = _colour(split, label, i + offset)
                    _add(tar, f"CIFAR-10-images/{split}/{cls}/{i:04d}.jpg", _jpeg(colour))


_LAYOUT = {"train": {"airplane": 2, "dog": 1, "truck": 2}, "test": {"cat": 1, "airplane": 1}}


@pytest.fixture
def tiny_archive(tmp_path: Path) -> Path:
    archive = tmp_path / "data" / "cifar10" / "CIFAR-10-images-jpg.tar.gz"
    _write_archive(archive, _LAYOUT)
    return archive


def _write_batches(folder: Path, sizes: dict[str, int]) -> dict[str, tuple[np.ndarray, list[int]]]:
    """Write tiny official-format batch files; returns their (data, labels)."""
    folder.mkdir(parents=True, exist_ok=True)
    gen = rng(0, "test-batches")
    written = {}
    for name, n in sizes.items():
        data = gen.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        labels = [int(v) for v in gen.integers(0, 10, size=n)]
        with (folder / name).open("wb") as handle:
            pickle.dump({b"batch_label": name.encode(), b"labels": labels, b"data": data}, handle)
        written[name] = (data, labels)
    return written


_BATCH_SIZES = {**{f"data_batch_{i}": i + 1 for i in range(1, 6)}, "test_batch": 4}

# ----------------------------------------------------------------------------------------------------------
# official python batches


def test_python_batches_reader(tmp_path: Path) -> None:
    written = _write_batches(tmp_path / "cifar-10-batches-py", _BATCH_SIZES)
    train = cifar10.load_split("train", Cifar10Config(source="python", path=tmp_path))  # parent folder works
    test = cifar10.load_python_split("test", tmp_path / "cifar-10-batches-py")
    assert train.images.shape == (2 + 3 + 4 + 5 + 6, 32, 32, 3) and train.images.dtype == np.uint8
    assert test.images.shape == (4, 32, 32, 3) and test.labels.dtype == np.int64
    data, labels = written["test_batch"]
    np.testing.assert_array_equal(test.labels, labels)
    # channel-major rows: R plane, then G, then B; pixel (row 1, col 2) of image 3
    for c in range(3):
        assert test.images[3, 1, 2, c] == data[3, c * 1024 + 1 * 32 + 2]
    first = written["data_batch_1"][0]
    np.testing.assert_array_equal(train.images[:2], first.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))


@pytest.mark.parametrize(
    "content",
    [
        b"not a pickle at all",
        pickle.dumps({b"data": np.zeros((2, 3072), np.uint8)}),  # no labels
        pickle.dumps({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}),  # wrong width
        pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 12]}),  # label out of range
        pickle.dumps([1, 2, 3]),
    ],
)
def test_python_batches_malformed(tmp_path: Path, content: bytes) -> None:
    _write_batches(tmp_path, _BATCH_SIZES)
    (tmp_path / "test_batch").write_bytes(content)
    with pytest.raises(DataFileError, match='test_batch.*b"data"'):
        cifar10.load_python_split("test", tmp_path)


def test_python_batches_missing_file(tmp_path: Path) -> None:
    _write_batches(tmp_path, {"data_batch_1": 2})
    with pytest.raises(DataFileError, match="data_batch_2.*official"):
        cifar10.load_python_split("train", tmp_path)


def test_config_validation() -> None:
    with pytest.raises(ConfigError, match="path"):
        Cifar10Config(source="python")
    with pytest.raises(ConfigError, match="source"):
        Cifar10Config(source="png")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="split"):
        cifar10.load_split("valid")


# ----------------------------------------------------------------------------------------------------------
# JPEG archive and cache


def _expected_order(split: str) -> list[tuple[int, int]]:
    return sorted((CLASSES.index(c), i) for c, n in _LAYOUT[split].items() for i in range(n))


def test_jpeg_cache_build_order_and_values(tiny_archive: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cfg = Cifar10Config(data_dir=tmp_path / "data", cache_dir=cache)
    for split in ("train", "test"):
        data = cifar10.load_split(split, cfg)
        order = _expected_order(split)
        assert isinstance(data.images, np.memmap)
        assert data.images.shape == (len(order), 32, 32, 3) and data.images.dtype == np.uint8
        assert data.labels.dtype == np.int64
        assert data.labels.tolist() == [label for label, _ in order]
        for k, (label, i) in enumerate(order):
            mean = data.images[k].reshape(-1, 3).mean(axis=0)
            np.testing.assert_allclose(mean, _colour(split, label, i), atol=3)
    assert len(list((cache / "cifar10").glob("*.npy"))) == 4
    assert not list((cache / "cifar10").glob("*.tmp"))


def test_jpeg_cache_env_var_reuse_and_invalidation(
    tiny_archive: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "env-cache"
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(cache))
    monkeypatch.setenv("HARNESS_DATA_DIR", str(tmp_path / "data"))
    first = cifar10.load_split("train")
    files = sorted((cache / "cifar10").glob("*.npy"))
    assert len(files) == 4

    def fail(archive: Path) -> None:
        raise AssertionError("the cache should have been reused")

    monkeypatch.setattr(cifar10.cache, "decode_jpeg_archive", fail)  # where load_split looks it up
    again = cifar10.load_split("train")
    np.testing.assert_array_equal(first.images, again.images)
    monkeypatch.undo()
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(cache))
    monkeypatch.setenv("HARNESS_DATA_DIR", str(tmp_path / "data"))

    # a new archive (other content, other size/mtime) must be decoded again, and the old cache removed
    _write_archive(tiny_archive, {"train": {"bird": 3}, "test": {"ship": 1}}, offset=1)
    stat = tiny_archive.stat()
    os.utime(tiny_archive, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    changed = cifar10.load_split("train")
    assert changed.labels.tolist() == [2, 2, 2]
    np.testing.assert_allclose(changed.images[0].reshape(-1, 3).mean(axis=0), _colour("train", 2, 1), atol=3)
    new_files = sorted((cache / "cifar10").glob("*.npy"))
    assert len(new_files) == 4 and not set(new_files) & set(files)


def test_jpeg_unreadable_cache_is_rebuilt(tiny_archive: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cifar10.load_jpeg_split("test", archive=tiny_archive, cache_dir=cache)
    images_path = cifar10.jpeg_cache_files(tiny_archive, cache)["test"][0]
    images_path.write_bytes(b"garbage")
    data = cifar10.load_jpeg_split("test", archive=tiny_archive, cache_dir=cache)
    assert data.images.shape == (2, 32, 32, 3)


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_corrupted_archive(tiny_archive: Path, tmp_path: Path, damage: str) -> None:
    raw = tiny_archive.read_bytes()
    tiny_archive.write_bytes(b"\x00" * 1000 if damage == "garbage" else raw[: len(raw) // 2])
    with pytest.raises(DataFileError, match="corrupted archive .*CIFAR-10-images-jpg.tar.gz.*YoongiKim"):
        cifar10.load_split("test", Cifar10Config(data_dir=tmp_path / "data", cache_dir=tmp_path / "cache"))


def test_corrupted_jpeg_member(tmp_path: Path) -> None:
    archive = tmp_path / "a.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        _add(tar, "CIFAR-10-images/train/cat/0000.jpg", b"not a jpeg")
    with pytest.raises(DataFileError, match="train/cat/0000.jpg"):
        cifar10.load_jpeg_split("train", archive=archive, cache_dir=tmp_path / "cache")


def test_missing_archive(tmp_path: Path) -> None:
    with pytest.raises(DataFileError, match="missing data file .*CIFAR-10-images-jpg.tar.gz.*YoongiKim"):
        cifar10.load_split("train", Cifar10Config(data_dir=tmp_path, cache_dir=tmp_path / "cache"))


# ----------------------------------------------------------------------------------------------------------
# tensors and sampling


def test_normalize_and_get_batch() -> None:
    images = np.zeros((4, 32, 32, 3), dtype=np.uint8)
    images[1] = 255
    split = Cifar10Split("test", images, np.arange(4, dtype=np.int64))
    x, y = cifar10.get_batch(split, [1, 0])
    assert tuple(x.shape) == (2, 3, 32, 32) and str(x.dtype) == "torch.float32"
    assert y.tolist() == [1, 0]
    for c in range(3):
        assert x[0, c, 0, 0].item() == pytest.approx((1 - cifar10.MEAN[c]) / cifar10.STD[c], rel=1e-5)
        assert x[1, c, 5, 5].item() == pytest.approx(-cifar10.MEAN[c] / cifar10.STD[c], rel=1e-5)


def test_sample_indices_seeded() -> None:
    a = cifar10.sample_indices(64, rng(1, "batches"), split="train")
    b = cifar10.sample_indices(64, rng(1, "batches"), split="train")
    c = cifar10.sample_indices(64, rng(2, "batches"), split="train")
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.dtype == np.int64 and len(set(a.tolist())) == 64 and 0 <= a.min() and a.max() < 50_000
    assert np.all(np.diff(a) > 0)
    with pytest.raises(ConfigError):
        cifar10.sample_indices(10_001, rng(1, "x"), split="test")


def test_sample_indices_class_balanced() -> None:
    labels = np.repeat(np.arange(10, dtype=np.int64), 7)
    split = Cifar10Split("train", np.zeros((70, 32, 32, 3), np.uint8), labels)
    idx = cifar10.sample_indices(23, rng(3, "balanced"), split=split, class_balanced=True)
    counts = np.bincount(labels[idx], minlength=10)
    assert idx.size == 23 and len(set(idx.tolist())) == 23
    assert counts.min() == 2 and counts.max() == 3 and counts.sum() == 23
    same = cifar10.sample_indices(23, rng(3, "balanced"), split=split, class_balanced=True)
    np.testing.assert_array_equal(idx, same)
    with pytest.raises(ConfigError, match="class"):
        cifar10.sample_indices(80, rng(3, "balanced"), split=split, class_balanced=True)
