"""The one image pipeline (:func:`harness.cifar10.crop_and_flip`, :func:`harness.cifar10.normalize_tensor`) gives,
bit for bit, what the two pipelines it replaced gave: numpy's ``flip_and_crop`` + ``normalize`` (RMI and the
zero-cost proxies, through ``get_batch``) and torch's ``augment`` + ``to_input`` (the one-shot supernet's training).
Stored scores are keyed by those outputs, so "close" is not enough: every comparison is ``torch.equal``. The
references below are the replaced code, copied verbatim."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
import torch
import torch.nn.functional as F

from estimators.oneshot_training import MEMORY_FORMAT, augment, to_input
from harness import cifar10, seeding
from harness.cifar10 import MEAN, STD, Cifar10Split

DEVICES = ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]


# ------------------------------------------------------------------------------ the replaced code, verbatim


def old_normalize(images: npt.NDArray[np.uint8], *, device: str = "cpu") -> torch.Tensor:
    array = np.array(images, dtype=np.uint8, copy=True)
    x = torch.from_numpy(array).to(device).permute(0, 3, 1, 2).float().div_(255.0)
    mean = torch.tensor(MEAN, dtype=torch.float32, device=device).view(1, 3, 1, 1)
    std = torch.tensor(STD, dtype=torch.float32, device=device).view(1, 3, 1, 1)
    return ((x - mean) / std).contiguous()


def old_flip_and_crop(images: npt.NDArray[np.uint8], rng: np.random.Generator, pad: int = 4) -> npt.NDArray[np.uint8]:
    out = np.array(images, dtype=np.uint8, copy=True)
    n, h, w, _ = out.shape
    flip = rng.random(n) < 0.5
    out[flip] = out[flip, :, ::-1]
    padded = np.pad(out, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    top, left = rng.integers(0, 2 * pad + 1, size=(2, n))
    return np.stack([padded[i, y : y + h, x : x + w] for i, (y, x) in enumerate(zip(top, left, strict=True))])


def old_get_batch(
    data: Cifar10Split, indices: npt.ArrayLike, *, device: str = "cpu", augment: np.random.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    idx = np.asarray(indices, dtype=np.int64)
    images = data.images[idx] if augment is None else old_flip_and_crop(data.images[idx], augment)
    x = old_normalize(images, device=device)
    y = torch.from_numpy(np.array(data.labels[idx], dtype=np.int64)).to(device)
    return x, y


def old_augment(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    b, _, h, w = images.shape
    device = images.device
    padded = F.pad(images, (4, 4, 4, 4))
    offsets = torch.randint(0, 9, (2, b), generator=generator).to(device)
    flip = (torch.rand(b, generator=generator) < 0.5).to(device)
    rows = offsets[0, :, None] + torch.arange(h, device=device)
    cols = offsets[1, :, None] + torch.arange(w, device=device)
    cols = torch.where(flip[:, None], cols.flip(1), cols)
    batch = torch.arange(b, device=device)[:, None, None, None]
    channel = torch.arange(3, device=device)[None, :, None, None]
    return padded[batch, channel, rows[:, None, :, None], cols[:, None, None, :]]


def old_to_input(images: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(cifar10.MEAN, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(cifar10.STD, device=images.device).view(1, 3, 1, 1)
    return ((images.float().div(255.0) - mean) / std).contiguous(memory_format=MEMORY_FORMAT)


# ------------------------------------------------------------------------------------------------------ tests


def _split(tmp_path: Path, n: int = 200) -> Cifar10Split:
    """Random uint8 images (every value 0..255 occurs) and labels, memory-mapped as a loaded split is."""
    rng = np.random.default_rng(7)
    images = rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)
    images[0], images[1] = 0, 255
    np.save(tmp_path / "images.npy", images)
    labels = rng.integers(0, 10, size=n).astype(np.int64)
    return Cifar10Split("train", np.load(tmp_path / "images.npy", mmap_mode="r"), labels)


@pytest.mark.parametrize("device", DEVICES)
def test_get_batch_is_bit_identical_to_the_numpy_pipeline(tmp_path: Path, device: str) -> None:
    data = _split(tmp_path)
    indices = [5, 0, 1, 199, 42, 42, *range(100, 164)]
    for seed in range(5):
        old_rng, new_rng = seeding.rng(seed, "augment"), seeding.rng(seed, "augment")
        old_x, old_y = old_get_batch(data, indices, device=device, augment=old_rng)
        new_x, new_y = cifar10.get_batch(data, indices, device=device, augment=new_rng)
        assert torch.equal(new_x, old_x) and torch.equal(new_y, old_y)
        assert new_x.is_contiguous() and new_x.stride() == old_x.stride()
        assert new_rng.bit_generator.state == old_rng.bit_generator.state  # the same draws, no more
    old_x, _ = old_get_batch(data, indices, device=device)
    new_x, _ = cifar10.get_batch(data, indices, device=device)
    assert torch.equal(new_x, old_x)
    first = data.images[:50]
    assert torch.equal(cifar10.normalize(first, device=device), old_normalize(first, device=device))


@pytest.mark.parametrize("device", DEVICES)
def test_supernet_augment_and_input_are_bit_identical_to_the_torch_pipeline(tmp_path: Path, device: str) -> None:
    images = torch.from_numpy(np.ascontiguousarray(np.asarray(_split(tmp_path).images).transpose(0, 3, 1, 2)))
    images = images.to(device)
    for seed in range(5):
        old_gen, new_gen = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed)
        old = old_to_input(old_augment(images, old_gen))
        new = to_input(augment(images, new_gen))
        assert torch.equal(new, old) and new.stride() == old.stride()
        assert torch.equal(new_gen.get_state(), old_gen.get_state())


def test_a_flip_then_a_crop_is_a_mirrored_crop_then_a_flip() -> None:
    """The conversion :func:`harness.cifar10.flip_and_crop` relies on, at every offset, for a non-zero pad."""
    images = torch.randint(0, 256, (1, 2, 5, 7), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    for pad in (1, 3):
        for top in range(2 * pad + 1):
            for left in range(2 * pad + 1):
                flipped = F.pad(images.flip(3), (pad, pad, pad, pad))[:, :, top : top + 5, left : left + 7]
                t, lt, yes = torch.tensor([top]), torch.tensor([2 * pad - left]), torch.tensor([True])
                assert torch.equal(cifar10.crop_and_flip(images, t, lt, yes, pad=pad), flipped)
                plain = F.pad(images, (pad, pad, pad, pad))[:, :, top : top + 5, left : left + 7]
                t, lt, no = torch.tensor([top]), torch.tensor([left]), torch.tensor([False])
                assert torch.equal(cifar10.crop_and_flip(images, t, lt, no, pad=pad), plain)


def test_normalize_tensor_refuses_what_is_not_uint8_nchw() -> None:
    with pytest.raises(ValueError, match="uint8 images"):
        cifar10.normalize_tensor(torch.zeros(1, 3, 2, 2))
    with pytest.raises(ValueError, match="uint8 images"):
        cifar10.normalize_tensor(torch.zeros(1, 2, 2, 3, dtype=torch.uint8))
