"""Pretrained CIFAR-10 ResNet teachers (akamaster/pytorch_resnet_cifar10, BSD-2-Clause).

The architecture of He et al. (2016) for CIFAR: a 3x3 convolution stem (16 channels) + BN + ReLU, three
stages of BasicBlocks (16/32/64 channels, stride 1/2/2), parameter-free "option A" shortcuts (stride-2
subsampling plus zero channel padding), global average pooling and a ``linear`` classifier. Parameter names
match the published checkpoints (after their ``module.`` prefix is stripped): they load with
``strict=True``.

Inputs must be normalised with :data:`harness.cifar10.MEAN` / :data:`harness.cifar10.STD`
(see :func:`harness.cifar10.normalize`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from harness.errors import ConfigError, DataFileError
from harness.paths import data_dir as _data_dir
from harness.paths import require_file

#: name -> (checkpoint file under ``<data_dir>/teachers/``, BasicBlocks per stage)
TEACHERS: dict[str, tuple[str, int]] = {
    "resnet20": ("resnet20-12fca82f.th", 3),
    "resnet56": ("resnet56-4bfd9763.th", 9),
}
STAGE_CHANNELS: tuple[int, int, int] = (16, 32, 64)
_SOURCE = "GitHub akamaster/pytorch_resnet_cifar10 (see the data README, section 'Pretrained teachers')"
_CONTAINS = 'a torch checkpoint {"best_prec1", "state_dict"} of the CIFAR-10 ResNet (keys prefixed "module.")'


class ShortcutA(nn.Module):
    """Parameter-free shortcut: keep every other pixel, pad the new channels with zeros.

    Parameters: in_channels, out_channels: channel counts (out >= in); stride: spatial subsampling step.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        self.pad_before = (out_channels - in_channels) // 2
        self.pad_after = out_channels - in_channels - self.pad_before

    def forward(self, x: Tensor) -> Tensor:
        """Subsample ``x`` (N, C, H, W) by ``stride`` and zero-pad its channels."""
        x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, self.pad_before, self.pad_after))


class BasicBlock(nn.Module):
    """Two 3x3 conv + BN layers with a residual connection (identity or :class:`ShortcutA`).

    Parameters: in_channels, out_channels: channel counts; stride: stride of the first convolution.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        needs_projection = stride != 1 or in_channels != out_channels
        self.shortcut: nn.Module = ShortcutA(in_channels, out_channels, stride) if needs_projection else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        """ReLU(BN(conv(ReLU(BN(conv(x))))) + shortcut(x))."""
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """ResNet-(6n+2) for 32x32 inputs with 10 classes.

    Parameters: blocks_per_stage: n (3 for ResNet-20, 9 for ResNet-56); num_classes: output size.
    """

    def __init__(self, blocks_per_stage: int, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, STAGE_CHANNELS[0], 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(STAGE_CHANNELS[0])
        self.layer1 = _stage(STAGE_CHANNELS[0], STAGE_CHANNELS[0], blocks_per_stage, stride=1)
        self.layer2 = _stage(STAGE_CHANNELS[0], STAGE_CHANNELS[1], blocks_per_stage, stride=2)
        self.layer3 = _stage(STAGE_CHANNELS[1], STAGE_CHANNELS[2], blocks_per_stage, stride=2)
        self.linear = nn.Linear(STAGE_CHANNELS[2], num_classes)

    def forward_stages(self, x: Tensor) -> tuple[list[Tensor], Tensor]:
        """Stage outputs (after layer1/2/3: 16x32x32, 32x16x16, 64x8x8) and logits.

        Parameters: x: normalised images (N, 3, 32, 32).
        """
        out = F.relu(self.bn1(self.conv1(x)))
        s1 = self.layer1(out)
        s2 = self.layer2(s1)
        s3 = self.layer3(s2)
        logits = self.linear(torch.flatten(F.adaptive_avg_pool2d(s3, 1), 1))
        return [s1, s2, s3], logits

    def forward(self, x: Tensor) -> Tensor:
        """Logits (N, num_classes). Parameters: x: normalised images (N, 3, 32, 32)."""
        return self.forward_stages(x)[1]


def _stage(in_channels: int, out_channels: int, blocks: int, stride: int) -> nn.Sequential:
    """``blocks`` BasicBlocks; only the first changes stride / channels."""
    layers = [BasicBlock(in_channels, out_channels, stride)]
    layers += [BasicBlock(out_channels, out_channels, 1) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


def build_teacher(name: str) -> CifarResNet:
    """An untrained teacher architecture. Parameters: name: ``"resnet20"`` or ``"resnet56"``."""
    return CifarResNet(_spec(name)[1])


def teacher_path(name: str, data_dir: str | os.PathLike[str] | None = None) -> Path:
    """A teacher's checkpoint path. Parameters: name: teacher name; data_dir: shared data folder override."""
    return _data_dir(data_dir) / "teachers" / _spec(name)[0]


def load_teacher(
    name: str, *, data_dir: str | os.PathLike[str] | None = None, device: str | torch.device = "cpu"
) -> CifarResNet:
    """A pretrained teacher in eval mode with frozen parameters.

    Parameters:
        name: ``"resnet20"`` or ``"resnet56"``.
        data_dir: override of the shared data folder (checkpoints under ``teachers/``).
        device: torch device for the model.
    """
    path = require_file(teacher_path(name, data_dir), contains=_CONTAINS, source=_SOURCE)
    model = build_teacher(name)
    state = _read_state_dict(path)
    try:
        model.load_state_dict(state, strict=True)
    except (RuntimeError, ValueError, TypeError) as exc:
        raise DataFileError(
            f"teacher checkpoint {path} does not match the {name} architecture ({exc}); it must contain "
            f"{_CONTAINS}; it comes from {_SOURCE}"
        ) from exc
    model.eval().requires_grad_(False)
    return model.to(device)


def _spec(name: str) -> tuple[str, int]:
    if name not in TEACHERS:
        raise ConfigError(f"unknown teacher {name!r}; choose one of {sorted(TEACHERS)}")
    return TEACHERS[name]


def _read_state_dict(path: Path) -> dict[str, Tensor]:
    """Load a checkpoint safely (``weights_only=True``) and return its state dict without ``module.``."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt zip, bad pickle, truncated file, ... all mean "not a checkpoint"
        # torch's own message may advise loading with weights_only=False, which runs arbitrary code: never echo it
        raise DataFileError(
            f"corrupted teacher checkpoint {path}: it cannot be read as a weights-only torch checkpoint "
            f"({type(exc).__name__}); it must contain {_CONTAINS}; it comes from {_SOURCE}. "
            "Replace it with an intact copy."
        ) from exc
    state = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, Mapping) else None
    if not isinstance(state, Mapping) or not all(isinstance(v, Tensor) for v in state.values()):
        raise DataFileError(
            f"teacher checkpoint {path} holds no state dict of tensors; it must contain {_CONTAINS}; "
            f"it comes from {_SOURCE}"
        )
    return {_strip(str(k)): v for k, v in state.items()}


def _strip(key: str) -> str:
    return key[len("module.") :] if key.startswith("module.") else key
