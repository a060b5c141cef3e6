"""The DARTS network of NAS-Bench-301 as NAS-Bench-Suite-Zero scored it (NASLib ``zerocost`` branch @6639fd15,
``naslib/search_spaces/nasbench301/graph.py`` and ``primitives.py``, ``naslib/search_spaces/core/primitives.py``).

Macro skeleton (C=32, N=2; DARTS' ``NetworkCIFAR``, GitHub quark0/darts @f276dd3 ``cnn/model.py``)::

    stem: conv3x3(3 -> 3C) + BN
    3N + 2 cells: N normal at C, reduction at 2C, N normal at 2C, reduction at 4C, N normal at 4C
        (N=2: n n r n n r n n, the cells at positions layers // 3 and 2 * layers // 3 reduce)
    global average pool, Linear(4 * 4C, classes)     -- no auxiliary head, no drop path

A cell preprocesses its inputs, the outputs of the two previous cells (the stem's for the first ones), with
ReLU-Conv1x1-BN to its width C_cell, or with a FactorizedReduce when the cell before it reduced the resolution.
Node k of the cell sums two operations on two different earlier states; the cell outputs nodes 2-5 concatenated
(4 C_cell channels). In a reduction cell the edges from the two inputs have stride 2.

Where NASLib differs from DARTS' own evaluation network, this follows NASLib (the network behind the proxy scores
of ``../shared/data/nb301/nb301_sample.csv``): operations use BatchNorm with ``affine=False``; both pools are
followed by BatchNorm(affine=False); a stride-2 ``skip_connect`` is a FactorizedReduce(affine=False); the
preprocessing, the stem and FactorizedReduce after a reduction keep affine BatchNorm. The parameter count equals
the sample's ``params`` column (millions) on all of its 1,218 architectures (``tests/test_darts.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from harness.networks.checks import check_ops
from harness.spaces.darts import CELLS, NODES, DartsSpace, cell_edges
from harness.types import Arch


@dataclass(frozen=True)
class DartsConfig:
    """Macro settings of the DARTS network.

    Args:
        C: channels of the first stage's cells (doubled by each reduction cell); NAS-Bench-Suite-Zero: 32.
        N: normal cells per stage; the network has 3N + 2 cells (NAS-Bench-Suite-Zero: N=2, 8 cells).
        num_classes: classifier outputs.
    """

    C: int = 32
    N: int = 2
    num_classes: int = 10

    def __post_init__(self) -> None:
        for name in ("C", "N", "num_classes"):
            if getattr(self, name) < 1:
                raise ValueError(f"DartsConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.C % 2:
            raise ValueError(f"DartsConfig.C must be even (FactorizedReduce halves it), got {self.C}")

    @property
    def layers(self) -> int:
        """Number of cells, 3N + 2."""
        return 3 * self.N + 2

    @property
    def reductions(self) -> tuple[int, int]:
        """Positions of the two reduction cells (DARTS: ``layers // 3`` and ``2 * layers // 3``)."""
        return self.layers // 3, 2 * self.layers // 3


def check_darts_ops(ops: Sequence[int]) -> tuple[int, ...]:
    """``ops`` as the 22 decisions of :class:`~harness.spaces.darts.DartsSpace`; ArchParseError if malformed."""
    return check_ops(ops, DartsSpace.choices, "DARTS")


class ReLUConvBN(nn.Sequential):
    """ReLU -> Conv 1x1 (no bias) -> BN (affine): the cells' input preprocessing (NASLib ``ReLUConvBN``)."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__(nn.ReLU(inplace=False), nn.Conv2d(c_in, c_out, 1, bias=False), nn.BatchNorm2d(c_out))


class FactorizedReduce(nn.Module):
    """Halve the resolution: ReLU, then two stride-2 1x1 convs, the second on the input shifted by one pixel,
    concatenated to ``c_out`` channels, then BN (NASLib ``nasbench301/primitives.py``, DARTS ``operations.py``).

    Args:
        c_in, c_out: channels (``c_out`` even). affine: of the BatchNorm.
    """

    def __init__(self, c_in: int, c_out: int, *, affine: bool) -> None:
        super().__init__()
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.conv_2 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(c_out, affine=affine)

    def forward(self, x: Tensor) -> Tensor:
        x = self.relu(x)
        out: Tensor = self.bn(torch.cat([self.conv_1(x), self.conv_2(x[:, :, 1:, 1:])], dim=1))
        return out


def sep_conv(c: int, kernel: int, stride: int) -> nn.Sequential:
    """DARTS' separable convolution, applied twice: (ReLU, depthwise kxk, pointwise 1x1, BN) x 2; only the first
    depthwise conv is strided. BN without affine parameters (NASLib ``SepConv(affine=False)``)."""
    pad = kernel // 2
    return nn.Sequential(
        nn.ReLU(inplace=False),
        nn.Conv2d(c, c, kernel, stride=stride, padding=pad, groups=c, bias=False),
        nn.Conv2d(c, c, 1, bias=False),
        nn.BatchNorm2d(c, affine=False),
        nn.ReLU(inplace=False),
        nn.Conv2d(c, c, kernel, stride=1, padding=pad, groups=c, bias=False),
        nn.Conv2d(c, c, 1, bias=False),
        nn.BatchNorm2d(c, affine=False),
    )


def dil_conv(c: int, kernel: int, stride: int) -> nn.Sequential:
    """DARTS' dilated separable convolution: ReLU, depthwise kxk with dilation 2, pointwise 1x1, BN (no affine)."""
    return nn.Sequential(
        nn.ReLU(inplace=False),
        nn.Conv2d(c, c, kernel, stride=stride, padding=kernel - 1, dilation=2, groups=c, bias=False),
        nn.Conv2d(c, c, 1, bias=False),
        nn.BatchNorm2d(c, affine=False),
    )


def make_op(name: str, c: int, stride: int) -> nn.Module:
    """The module of operation ``name`` (one of :data:`harness.spaces.darts.OPS`) on a ``c``-channel edge."""
    if name == "max_pool_3x3":
        return nn.Sequential(nn.MaxPool2d(3, stride=stride, padding=1), nn.BatchNorm2d(c, affine=False))
    if name == "avg_pool_3x3":
        return nn.Sequential(
            nn.AvgPool2d(3, stride=stride, padding=1, count_include_pad=False), nn.BatchNorm2d(c, affine=False)
        )
    if name == "skip_connect":
        return nn.Identity() if stride == 1 else FactorizedReduce(c, c, affine=False)
    kind, _, size = name.rpartition("_")
    kernel = int(size[0])
    if kind == "sep_conv":
        return sep_conv(c, kernel, stride)
    if kind == "dil_conv":
        return dil_conv(c, kernel, stride)
    raise ValueError(f"unknown DARTS operation {name!r}")


class Cell(nn.Module):
    """One DARTS cell with fixed operations.

    Args:
        edges: 8 ``(operation, input)`` edges, two per node 2-5 (:func:`harness.spaces.darts.cell_edges`).
        c_pp, c_p: channels of the outputs of the cell before the previous one and of the previous one.
        c: the cell's width (each node has ``c`` channels; the output ``4c``).
        reduction: this cell halves the resolution (its edges from inputs 0 and 1 have stride 2).
        reduction_prev: the previous cell did (input 0 is then at twice the resolution of input 1).
    """

    def __init__(
        self, edges: Sequence[tuple[str, int]], c_pp: int, c_p: int, c: int, *, reduction: bool, reduction_prev: bool
    ) -> None:
        super().__init__()
        self.preprocess0 = FactorizedReduce(c_pp, c, affine=True) if reduction_prev else ReLUConvBN(c_pp, c)
        self.preprocess1 = ReLUConvBN(c_p, c)
        self.inputs = tuple(src for _, src in edges)
        self.edges = nn.ModuleList(
            [make_op(op, c, 2 if reduction and src < 2 else 1) for op, src in edges]  # DARTS Cell._compile
        )

    def forward(self, s0: Tensor, s1: Tensor) -> Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        for m in range(len(NODES)):
            a, b = 2 * m, 2 * m + 1
            states.append(self.edges[a](states[self.inputs[a]]) + self.edges[b](states[self.inputs[b]]))
        return torch.cat(states[2:], dim=1)


class DartsNetwork(nn.Module):
    """The NAS-Bench-301 / NAS-Bench-Suite-Zero DARTS network of one genotype.

    Args:
        ops: the 22 decisions of :class:`~harness.spaces.darts.DartsSpace`. config: macro settings.
    """

    def __init__(self, ops: Sequence[int], config: DartsConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or DartsConfig()
        self.ops = check_darts_ops(ops)
        normal, reduce = (cell_edges(Arch(self.ops), c) for c in range(len(CELLS)))
        c_stem = 3 * cfg.C  # DARTS' stem_multiplier
        self.stem = nn.Sequential(nn.Conv2d(3, c_stem, 3, padding=1, bias=False), nn.BatchNorm2d(c_stem))
        c_pp, c_p, c = c_stem, c_stem, cfg.C
        self.cells = nn.ModuleList()
        reduction_prev = False
        for i in range(cfg.layers):
            reduction = i in cfg.reductions
            c = 2 * c if reduction else c
            cell = Cell(
                reduce if reduction else normal, c_pp, c_p, c, reduction=reduction, reduction_prev=reduction_prev
            )
            self.cells.append(cell)
            c_pp, c_p, reduction_prev = c_p, len(NODES) * c, reduction
        #: the last cell of each stage: just before each reduction, and the last one
        self.stage_ends = (cfg.reductions[0] - 1, cfg.reductions[1] - 1, cfg.layers - 1)
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_p, cfg.num_classes)

    def forward_stages(self, x: Tensor) -> tuple[list[Tensor], Tensor]:
        """Return the output of the last cell of each of the 3 stages (4C x H, 8C x H/2, 16C x H/4), and the logits.

        Args:
            x: images, (B, 3, H, W).
        """
        feats: list[Tensor] = []
        s0 = s1 = self.stem(x)
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1)
            if i in self.stage_ends:
                feats.append(s1)
        logits: Tensor = self.classifier(self.global_pooling(s1).flatten(1))
        return feats, logits

    def forward(self, x: Tensor) -> Tensor:
        """Logits (B, num_classes) for images ``x`` (B, 3, H, W)."""
        return self.forward_stages(x)[1]


def build_darts(ops: Sequence[int], *, num_classes: int = 10, C: int = 32, N: int = 2) -> DartsNetwork:
    """Build the DARTS network of an architecture.

    Args:
        ops: the 22 decisions of :class:`~harness.spaces.darts.DartsSpace`.
        num_classes: classifier outputs. C: first-stage channels. N: normal cells per stage (3N + 2 cells).
    """
    return DartsNetwork(ops, DartsConfig(C=C, N=N, num_classes=num_classes))


def build(ops: Sequence[int], *, num_classes: int, channels: int | None, cells: int | None) -> DartsNetwork:
    """:func:`harness.networks.build_network` for DARTS: ``channels`` = C (32), ``cells`` = N, the normal cells per
    stage (2: 8 cells in all), when ``None``."""
    return build_darts(ops, num_classes=num_classes, C=channels or 32, N=cells or 2)
