"""Pretrained CIFAR ResNet teachers: architecture, loading, errors, and accuracy on real images."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from estimators import rmi_teachers as teachers
from harness import cifar10
from harness.errors import ConfigError, DataFileError
from harness.paths import data_dir
from harness.seeding import rng, torch_generator


def _teacher_file(name: str) -> Path:
    path = teachers.teacher_path(name)
    if not path.is_file():
        pytest.skip(f"teacher checkpoint {path} is missing (see the data README, 'Pretrained teachers')")
    return path


def _data_file(relative: str) -> Path:
    path = data_dir() / relative
    if not path.is_file():
        pytest.skip(f"shared data file {path} is missing (see the data README, 'CIFAR-10 images')")
    return path


def test_resnet20_parameter_count() -> None:
    model = teachers.build_teacher("resnet20")
    assert sum(p.numel() for p in model.parameters()) == 269_722
    assert sum(p.numel() for p in teachers.build_teacher("resnet56").parameters()) == 853_018


def test_stage_shapes() -> None:
    model = teachers.build_teacher("resnet20").eval()
    x = torch.randn(2, 3, 32, 32, generator=torch_generator(rng(0, "stage-shapes")))
    with torch.no_grad():
        stages, logits = model.forward_stages(x)
        plain = model(x)
    assert [tuple(s.shape) for s in stages] == [(2, 16, 32, 32), (2, 32, 16, 16), (2, 64, 8, 8)]
    assert tuple(logits.shape) == (2, 10)
    torch.testing.assert_close(plain, logits)


def test_unknown_teacher() -> None:
    with pytest.raises(ConfigError, match="resnet20"):
        teachers.load_teacher("resnet18")


def test_missing_teacher(tmp_path: Path) -> None:
    with pytest.raises(DataFileError, match="missing data file .*resnet20-12fca82f.th.*akamaster"):
        teachers.load_teacher("resnet20", data_dir=tmp_path)


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_corrupted_teacher(tmp_path: Path, damage: str) -> None:
    target = tmp_path / "teachers" / "resnet20-12fca82f.th"
    target.parent.mkdir()
    if damage == "garbage":
        target.write_bytes(b"this is not a torch checkpoint" * 10)
    else:
        raw = _teacher_file("resnet20").read_bytes()
        target.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataFileError, match="corrupted teacher checkpoint .*resnet20-12fca82f.th") as info:
        teachers.load_teacher("resnet20", data_dir=tmp_path)
    assert info.value.__cause__ is not None


def test_mismatched_teacher(tmp_path: Path) -> None:
    folder = tmp_path / "teachers"
    folder.mkdir()
    shutil.copy(_teacher_file("resnet56"), folder / "resnet20-12fca82f.th")
    with pytest.raises(DataFileError, match="does not match the resnet20 architecture") as info:
        teachers.load_teacher("resnet20", data_dir=tmp_path)
    assert isinstance(info.value.__cause__, RuntimeError)


def test_loaded_teacher_is_frozen_eval() -> None:
    _teacher_file("resnet20")
    model = teachers.load_teacher("resnet20")
    assert not model.training
    assert all(not p.requires_grad for p in model.parameters())


def test_resnet20_first20_lossless() -> None:
    _teacher_file("resnet20")
    with np.load(_data_file("cifar10/test_first20_lossless.npz")) as npz:
        x, y = npz["x"], npz["y"]
    model = teachers.load_teacher("resnet20")
    with torch.no_grad():
        predicted = model(cifar10.normalize(x)).argmax(dim=1).numpy()
    np.testing.assert_array_equal(predicted, y)


@pytest.mark.slow
def test_resnet20_jpeg_test_accuracy() -> None:
    """About 81% on the lossy JPEG test images (91.8% on lossless originals); builds the cache if needed."""
    _teacher_file("resnet20")
    _data_file(cifar10.JPEG_ARCHIVE)
    data = cifar10.load_split("test")
    assert len(data) == 10_000
    model = teachers.load_teacher("resnet20")
    correct = 0
    with torch.inference_mode():
        for start in range(0, len(data), 500):
            x, y = cifar10.get_batch(data, np.arange(start, min(start + 500, len(data))))
            correct += int((model(x).argmax(dim=1) == y).sum())
    assert 0.79 <= correct / len(data) <= 0.83
