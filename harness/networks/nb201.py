"""The NAS-Bench-201 evaluation network ("infer.tiny": TinyNetwork + InferCell of the NB201 / xautodl code).

Macro skeleton (C=16, N=5)::

    stem: conv3x3(3->C) + BN
    stage 1: N cells at C        -> ResNet block stride 2 (C -> 2C)
    stage 2: N cells at 2C       -> ResNet block stride 2 (2C -> 4C)
    stage 3: N cells at 4C
    lastact BN + ReLU, global average pool, linear classifier

A cell has 4 nodes; node k = sum over j < k of op(edge k<-j)(node j); the output is node 3. An architecture is
6 op indices for the edges 1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2, each indexing :data:`NB201_OPS`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from harness.networks.checks import check_ops
from harness.spaces.nb201 import EDGES as NB201_EDGES  # (to, from)
from harness.spaces.nb201 import OPS as NB201_OPS


@dataclass(frozen=True)
class NB201Config:
    """Macro settings of the NB201 network.

    Args:
        C: channels of the first stage (doubled by each reduction block).
        N: cells per stage.
        num_classes: classifier outputs (cifar10 10, cifar100 100, ImageNet16-120 120).
    """

    C: int = 16
    N: int = 5
    num_classes: int = 10

    def __post_init__(self) -> None:
        for name in ("C", "N", "num_classes"):
            if getattr(self, name) < 1:
                raise ValueError(f"NB201Config.{name} must be >= 1, got {getattr(self, name)}")


def check_nb201_ops(ops: Sequence[int]) -> tuple[int, ...]:
    """``ops`` as a tuple of 6 op indices (edges 1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2); ArchParseError (a ValueError)
    if malformed. A string is refused, digits too: parse an architecture string with the space first."""
    return check_ops(ops, [len(NB201_OPS)] * len(NB201_EDGES), "NB201")


class ReLUConvBN(nn.Sequential):
    """ReLU -> Conv (no bias) -> BN (affine, tracked stats).

    Args:
        c_in, c_out: channels. kernel_size, stride, padding: of the convolution.
    """

    def __init__(self, c_in: int, c_out: int, kernel_size: int, stride: int, padding: int) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel_size, stride=stride, padding=padding, bias=False),
            nn.BatchNorm2d(c_out, affine=True, track_running_stats=True),
        )


class ResNetBasicBlock(nn.Module):
    """NB201's reduction block: two ReLUConvBN 3x3 (first one strided) plus an AvgPool(2) + 1x1 conv shortcut.

    Args:
        c_in, c_out: channels. stride: 1 or 2 (NB201 uses it only with stride 2).
    """

    def __init__(self, c_in: int, c_out: int, stride: int = 2) -> None:
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, stride, 1)
        self.conv_b = ReLUConvBN(c_out, c_out, 3, 1, 1)
        self.downsample: nn.Module | None
        if stride == 2:
            self.downsample = nn.Sequential(
                nn.AvgPool2d(kernel_size=2, stride=2, padding=0),
                nn.Conv2d(c_in, c_out, kernel_size=1, stride=1, padding=0, bias=False),
            )
        elif c_in != c_out:
            self.downsample = ReLUConvBN(c_in, c_out, 1, 1, 0)
        else:
            self.downsample = None

    def forward(self, x: Tensor) -> Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        out: Tensor = residual + self.conv_b(self.conv_a(x))
        return out


def make_op(op: int, channels: int) -> nn.Module | None:
    """The module of NB201 op index ``op`` on a stride-1 edge, or None for ``none`` (a zero contribution).

    Args:
        op: index into :data:`NB201_OPS`. channels: input = output channels.
    """
    name = NB201_OPS[op]
    if name == "none":
        return None
    if name == "skip_connect":
        return nn.Identity()
    if name == "nor_conv_1x1":
        return ReLUConvBN(channels, channels, 1, 1, 0)
    if name == "nor_conv_3x3":
        return ReLUConvBN(channels, channels, 3, 1, 1)
    return AvgPool3x3()


def _window_sum(x: Tensor) -> Tensor:
    """Sum of each 3x3 window of ``x`` (zero padding 1), added in the row-major order of the window, the order in
    which torch's CPU ``avg_pool2d`` accumulates a window and its backward an input's outputs."""
    h, w = x.shape[-2:]
    padded = F.pad(x, (1, 1, 1, 1))
    total = padded[..., 0:h, 0:w] + padded[..., 0:h, 1 : w + 1]
    for i, j in ((0, 2), (1, 0), (1, 1), (1, 2), (2, 0), (2, 1), (2, 2)):
        total += padded[..., i : i + h, j : j + w]
    return total


@functools.cache
def _window_sizes(h: int, w: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """Positions of each 3x3 window (padding 1) inside an ``h`` x ``w`` image: 4, 6 or 9 (exact small integers)."""
    ones = torch.ones(1, 1, h, w, dtype=dtype, device=device)
    return F.avg_pool2d(ones, 3, stride=1, padding=1, count_include_pad=True) * 9


class _AvgPool3x3Function(torch.autograd.Function):
    """``avg_pool2d(x, 3, 1, 1, count_include_pad=False)`` and its gradient as 9 shifted whole-tensor additions:
    bit for bit torch's CPU kernel (which adds window by window, per element; about 3x slower at NB201's sizes)."""

    @staticmethod
    def forward(ctx: Any, x: Tensor) -> Tensor:
        sizes = _window_sizes(x.shape[-2], x.shape[-1], x.dtype, x.device)
        ctx.save_for_backward(sizes)
        return _window_sum(x) / sizes

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        (sizes,) = ctx.saved_tensors
        return _window_sum(grad / sizes)  # input (i, j) gets the outputs of its window in row-major order


class AvgPool3x3(nn.AvgPool2d):
    """NB201's ``avg_pool_3x3`` (stride 1, padding 1, padding not counted); on the CPU computed by
    :class:`_AvgPool3x3Function`, with the same result, elsewhere by ``nn.AvgPool2d``."""

    def __init__(self) -> None:
        super().__init__(3, stride=1, padding=1, count_include_pad=False)

    def forward(self, input: Tensor) -> Tensor:
        if input.device.type != "cpu" or input.dim() != 4:
            return super().forward(input)
        out: Tensor = _AvgPool3x3Function.apply(input)  # type: ignore[no-untyped-call]  # torch leaves apply unannotated
        return out


class InferCell(nn.Module):
    """One NB201 cell with fixed ops; ``none`` edges are not computed.

    With ``skip_unread`` set (:func:`harness.networks.skip_unread`), neither is what the output never reads: the
    nodes no path of non-``none`` edges leads from to node 3 (their modules are built all the same, so a seeded
    initialisation is that of the whole cell), and the ``skip_connect`` and ``avg_pool_3x3`` edges out of a node
    that is zero because every edge into it is ``none`` (or such an edge), whose output is zero. The result, and
    its gradients, are bit for bit those of computing every node (tests/test_networks.py); a hook on a skipped
    module does not fire, so it is off by default (the zero-cost proxies hook every ReLU).

    Args:
        ops: 6 validated op indices. channels: cell width (input = output).
    """

    def __init__(self, ops: Sequence[int], channels: int) -> None:
        super().__init__()
        self.ops = tuple(ops)
        edges = [make_op(op, channels) for op in self.ops]
        self.edges = nn.ModuleList([e for e in edges if e is not None])
        # per node k = 1..3: list of (position in self.edges, source node) of its non-`none` edges
        self.plan: list[list[tuple[int, int]]] = [[] for _ in range(4)]
        pos = 0
        for (to, frm), edge in zip(NB201_EDGES, edges, strict=True):
            if edge is not None:
                self.plan[to].append((pos, frm))
                pos += 1
        # the nodes the output reads, through non-`none` edges (node 3 itself, and node 0, the input, always)
        live = [True, False, False, True]
        for k in (2, 1):
            live[k] = any(live[to] and frm == k for to in range(k + 1, 4) for _, frm in self.plan[to])
        # per node, the edges computed: none for a node the output does not read; else those whose input is not a
        # zero node, or whose op is parametric (its BatchNorm's shift makes the output of a zero input non-zero)
        zero = [False] * 4
        self.skip_unread = False
        self.compute: list[list[tuple[int, int]]] = [[] for _ in range(4)]
        for k in range(1, 4):
            kept = [(i, j) for i, j in self.plan[k] if not (zero[j] and _keeps_zero(self.edges[i]))]
            zero[k] = not kept
            if live[k]:
                self.compute[k] = kept

    def forward(self, x: Tensor) -> Tensor:
        nodes: list[Tensor | None] = [x]  # None: a zero node
        plan = self.compute if self.skip_unread else self.plan
        for k in range(1, 4):
            terms = [self.edges[i](_value(nodes[j], x)) for i, j in plan[k]]
            nodes.append(sum(terms[1:], terms[0]) if terms else None)
        # all inputs `none` (or zero): NB201's Zero ops sum to zeros of the input's shape
        return _value(nodes[3], x)


def _keeps_zero(module: nn.Module) -> bool:
    """An edge module whose output is zero when its input is (``skip_connect``, ``avg_pool_3x3``)."""
    return isinstance(module, nn.Identity | nn.AvgPool2d)


def _value(node: Tensor | None, x: Tensor) -> Tensor:
    """A node's tensor; None (a zero node) as zeros of the input's shape."""
    return torch.zeros_like(x) if node is None else node


def add_skeleton(net: nn.Module, config: NB201Config, stage: Callable[[int], nn.Module]) -> None:
    """Give ``net`` the "infer.tiny" skeleton: ``stem``, ``stages`` (``stage(width)`` for widths C, 2C, 4C) with
    residual ``reductions`` between them, ``lastact`` (BN-ReLU), ``global_pooling`` and ``classifier``. Layers are
    created in that order, which fixes what a seeded initialisation gives them."""
    c = config.C
    net.stem = nn.Sequential(nn.Conv2d(3, c, kernel_size=3, padding=1, bias=False), nn.BatchNorm2d(c))
    net.stages = nn.ModuleList()
    net.reductions = nn.ModuleList()
    for s in range(3):
        width = c * 2**s
        if s > 0:
            net.reductions.append(ResNetBasicBlock(width // 2, width, stride=2))
        net.stages.append(stage(width))
    net.lastact = nn.Sequential(nn.BatchNorm2d(4 * c), nn.ReLU(inplace=True))
    net.global_pooling = nn.AdaptiveAvgPool2d(1)
    net.classifier = nn.Linear(4 * c, config.num_classes)


class NB201Network(nn.Module):
    """NB201 TinyNetwork for one architecture.

    Args:
        ops: 6 op indices (see :func:`check_nb201_ops`). config: macro settings.
    """

    # the layers add_skeleton sets
    stem: nn.Sequential
    stages: nn.ModuleList
    reductions: nn.ModuleList
    lastact: nn.Sequential
    global_pooling: nn.AdaptiveAvgPool2d
    classifier: nn.Linear

    def __init__(self, ops: Sequence[int], config: NB201Config | None = None) -> None:
        super().__init__()
        self.config = config or NB201Config()
        self.ops = check_nb201_ops(ops)
        n = self.config.N
        add_skeleton(self, self.config, lambda width: nn.Sequential(*[InferCell(self.ops, width) for _ in range(n)]))

    def forward_stages(self, x: Tensor, *, final_act: bool = False) -> tuple[list[Tensor], Tensor]:
        """Return the output of the last cell of each of the 3 stages, and the logits.

        Args:
            x: images, (B, 3, H, W).
            final_act: return the third stage after the final BN + ReLU (``lastact``), as RMI-NAS's code does.
        """
        feats: list[Tensor] = []
        h = self.stem(x)
        for s, stage in enumerate(self.stages):
            if s > 0:
                h = self.reductions[s - 1](h)
            h = stage(h)
            feats.append(h)
        h = self.lastact(h)
        if final_act:
            feats[-1] = h
        logits: Tensor = self.classifier(self.global_pooling(h).flatten(1))
        return feats, logits

    def forward(self, x: Tensor) -> Tensor:
        """Logits (B, num_classes) for images ``x`` (B, 3, H, W)."""
        return self.forward_stages(x)[1]


def build_nb201(ops: Sequence[int], *, num_classes: int = 10, C: int = 16, N: int = 5) -> NB201Network:
    """Build the NB201 network of an architecture.

    Args:
        ops: 6 op indices for edges 1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2.
        num_classes: classifier outputs. C: first-stage channels. N: cells per stage.
    """
    return NB201Network(ops, NB201Config(C=C, N=N, num_classes=num_classes))


def build(ops: Sequence[int], *, num_classes: int, channels: int | None, cells: int | None) -> NB201Network:
    """:func:`harness.networks.build_network` for NB201: ``channels`` = C (16), ``cells`` = N (5) when ``None``."""
    return build_nb201(ops, num_classes=num_classes, C=channels or 16, N=cells or 5)
