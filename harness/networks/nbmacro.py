"""The NAS-Bench-Macro network (a MobileNet-like chain of 8 choice layers, CIFAR-10).

Skeleton (standalone child network of the NAS-Bench-Macro / XNAS code, all BN affine)::

    stem: conv3x3(3->32) + BN + ReLU
    stage 1: 2 layers at 64, stage 2: 3 layers at 128, stage 3: 3 layers at 256
        (the first layer of a stage has stride 2 and doubles the channels)
    conv1x1(256->1280) + BN + ReLU, global average pool, linear classifier

Layer choices: 0 = identity (in a stride-2 layer: 1x1 conv stride 2 + BN, no ReLU), 1 = inverted residual 3x3
expand 3, 2 = inverted residual 5x5 expand 6. An inverted residual is 1x1 conv-BN-ReLU, depthwise kxk conv
(strided)-BN-ReLU, 1x1 conv-BN, plus the input when the shape is unchanged (stride 1).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from torch import Tensor, nn

from harness.errors import ConfigError
from harness.networks.checks import check_ops

NBMACRO_OPS: tuple[str, ...] = ("identity", "ir_3x3_t3", "ir_5x5_t6")
NBMACRO_LAYERS = 8


@dataclass(frozen=True)
class NBMacroConfig:
    """Macro settings of the NAS-Bench-Macro network.

    Args:
        num_classes: classifier outputs.
        init_channels: stem width; each stage doubles it.
        stages: layers per stage (must sum to the architecture length, 8).
        last_channels: width of the final 1x1 conv.
    """

    num_classes: int = 10
    init_channels: int = 32
    stages: tuple[int, ...] = (2, 3, 3)
    last_channels: int = 1280

    def __post_init__(self) -> None:
        if min(self.num_classes, self.init_channels, self.last_channels) < 1 or not self.stages:
            raise ValueError(f"invalid NBMacroConfig {self}")
        if any(n < 1 for n in self.stages):
            raise ValueError(f"NBMacroConfig.stages must be positive, got {self.stages}")


def check_nbmacro_ops(ops: Sequence[int], n_layers: int = NBMACRO_LAYERS) -> tuple[int, ...]:
    """``ops`` as a tuple of ``n_layers`` choices in 0..2; ValueError if malformed."""
    return check_ops(ops, [len(NBMACRO_OPS)] * n_layers, "NAS-Bench-Macro")


class Shortcut(nn.Module):
    """The identity choice: the input itself, or a 1x1 conv (strided) + BN where the shape changes.

    Args:
        c_in, c_out: channels. stride: 1 or 2.
    """

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.proj: nn.Module | None = None
        if stride != 1 or c_in != c_out:
            self.proj = nn.Sequential(
                nn.Conv2d(c_in, c_out, kernel_size=1, stride=stride, bias=False), nn.BatchNorm2d(c_out)
            )

    def forward(self, x: Tensor) -> Tensor:
        if self.proj is None:
            return x
        out: Tensor = self.proj(x)
        return out


class InvertedResidual(nn.Module):
    """MobileNetV2 block: expand 1x1 conv-BN-ReLU, depthwise kxk conv-BN-ReLU, project 1x1 conv-BN (+ input).

    Args:
        c_in, c_out: channels. stride: of the depthwise conv. expand: hidden = c_in * expand. kernel: dw size.
    """

    def __init__(self, c_in: int, c_out: int, stride: int, expand: int, kernel: int) -> None:
        super().__init__()
        hidden = c_in * expand
        self.conv = nn.Sequential(
            nn.Conv2d(c_in, hidden, 1, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, hidden, kernel, stride, padding=kernel // 2, groups=hidden, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, c_out, 1, bias=False),
            nn.BatchNorm2d(c_out),
        )
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.conv(x)
        return out + x if self.residual else out


def make_layer(op: int, c_in: int, c_out: int, stride: int) -> nn.Module:
    """The module of choice ``op`` (index into :data:`NBMACRO_OPS`).

    Args:
        op: 0 identity, 1 ir 3x3 t3, 2 ir 5x5 t6. c_in, c_out: channels. stride: 1 or 2.
    """
    if op == 0:
        return Shortcut(c_in, c_out, stride)
    if op == 1:
        return InvertedResidual(c_in, c_out, stride, expand=3, kernel=3)
    return InvertedResidual(c_in, c_out, stride, expand=6, kernel=5)


class NBMacroNetwork(nn.Module):
    """NAS-Bench-Macro network for one architecture.

    Args:
        ops: one choice per layer (see :func:`check_nbmacro_ops`). config: macro settings.
    """

    def __init__(self, ops: Sequence[int], config: NBMacroConfig | None = None) -> None:
        super().__init__()
        self.config = config or NBMacroConfig()
        self.ops = check_nbmacro_ops(ops, sum(self.config.stages))
        c = self.config.init_channels
        self.stem = nn.Sequential(nn.Conv2d(3, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True))
        self.stages = nn.ModuleList()
        ops_left = iter(self.ops)
        for n_layers in self.config.stages:
            layers = [make_layer(next(ops_left), c, 2 * c, 2)]
            c *= 2
            layers += [make_layer(next(ops_left), c, c, 1) for _ in range(n_layers - 1)]
            self.stages.append(nn.Sequential(*layers))
        last = self.config.last_channels
        self.head = nn.Sequential(
            nn.Conv2d(c, last, 1, bias=False),
            nn.BatchNorm2d(last),
            nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(1),
        )
        self.classifier = nn.Linear(last, self.config.num_classes)

    def forward_stages(self, x: Tensor) -> tuple[list[Tensor], Tensor]:
        """Return the output at the end of each stage, and the logits.

        Args:
            x: images, (B, 3, H, W).
        """
        feats: list[Tensor] = []
        h = self.stem(x)
        for stage in self.stages:
            h = stage(h)
            feats.append(h)
        logits: Tensor = self.classifier(self.head(h).flatten(1))
        return feats, logits

    def forward(self, x: Tensor) -> Tensor:
        """Logits (B, num_classes) for images ``x`` (B, 3, H, W)."""
        return self.forward_stages(x)[1]


def build_nbmacro(ops: Sequence[int], *, num_classes: int = 10) -> NBMacroNetwork:
    """Build the NAS-Bench-Macro network of an architecture.

    Args:
        ops: 8 choices in {0, 1, 2} (ints or the json key string like ``"02012100"``).
        num_classes: classifier outputs.
    """
    return NBMacroNetwork(ops, NBMacroConfig(num_classes=num_classes))


def build(ops: Sequence[int], *, num_classes: int, channels: int | None, cells: int | None) -> NBMacroNetwork:
    """:func:`harness.networks.build_network` for NAS-Bench-Macro: ``channels`` = the stem width (32 when ``None``);
    its layers are the architecture, so ``cells`` must be ``None``."""
    if cells is not None:
        raise ConfigError("cells sets NB201's cells per stage; NAS-Bench-Macro's layers are the architecture")
    return NBMacroNetwork(ops, NBMacroConfig(num_classes=num_classes, init_channels=channels or 32))
