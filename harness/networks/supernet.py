"""Weight-sharing supernets (one-shot NAS) of the NAS-Bench-201 and NAS-Bench-Macro networks.

A supernet holds every candidate operation of every decision; ``forward(x, ops)`` runs the single path ``ops``
(one op per NB201 edge, one block per NAS-Bench-Macro layer). The macro skeleton and the candidate modules are
those of :mod:`harness.networks.nb201` and :mod:`harness.networks.nbmacro` (imported, not copied), so
``extract(ops)`` returns the stand-alone network of ``ops`` with the weights (and BatchNorm buffers) of the path
copied in (weight inheritance), and it computes exactly what ``forward(x, ops)`` computes.

BatchNorm in the choices (NB201 cells, NAS-Bench-Macro blocks) is affine-free by default (``cell_bn_affine=False``:
tracked running statistics, no learnt scale or shift), as in the weight-sharing supernets of NB201 (xautodl
``models/cell_searchs/search_cells.py``, ``NAS201SearchCell``: ``affine=False, track_running_stats=True``) and of
DARTS (``cnn/model_search.py``, ``MixedOp``: ``OPS[primitive](C, stride, False)``); the stem, the reduction blocks
and the head keep affine BatchNorm, as there. The extracted stand-alone network has affine-free BatchNorm in the
same places, so it still computes what the path computes.

State-dict keys of a choice: NB201 ``stages.<s>.<i>.edges.<edge>.<op>.<rest>`` (the stand-alone cell keeps only
its non-``none`` edges, numbered in edge order: ``stages.<s>.<i>.edges.<k>.<rest>``); NAS-Bench-Macro
``stages.<s>.<l>.<op>.<rest>`` (stand-alone: ``stages.<s>.<l>.<rest>``). Every other key is shared as it is.
"""

from __future__ import annotations

import abc
import re
from collections.abc import Sequence
from typing import cast

import torch
from torch import Tensor, nn

from harness.networks.nb201 import (
    NB201Config,
    NB201Network,
    add_skeleton,
    check_nb201_ops,
    make_op,
)
from harness.networks.nbmacro import NBMACRO_OPS, NBMacroConfig, NBMacroNetwork, check_nbmacro_ops, make_layer
from harness.spaces.nb201 import EDGES as NB201_EDGES  # (to, from)
from harness.spaces.nb201 import OPS as NB201_OPS


class _NoOp(nn.Module):
    """Placeholder for NB201's ``none`` candidate: holds no parameters and is never called (a zero contribution)."""

    def forward(self, x: Tensor) -> Tensor:  # pragma: no cover - the cell skips `none` edges
        raise RuntimeError("the `none` candidate is skipped, not called")


def drop_bn_affine(module: nn.Module) -> None:
    """Replace every ``BatchNorm2d`` inside ``module`` by an affine-free one (same features, eps and momentum,
    tracked running statistics). Draws no random numbers, so a seeded initialisation of the rest is unchanged.

    Args:
        module: changed in place.
    """
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            bn = nn.BatchNorm2d(child.num_features, eps=child.eps, momentum=child.momentum, affine=False)
            setattr(module, name, bn)
        else:
            drop_bn_affine(child)


class Supernet(nn.Module, abc.ABC):
    """A weight-sharing supernet: ``forward(x, ops)`` runs one path; ``extract(ops)`` builds its stand-alone net.

    Subclasses set ``cell_bn_affine`` (whether BatchNorm in the choices has a learnt scale and shift).
    """

    cell_bn_affine: bool

    @abc.abstractmethod
    def check_ops(self, ops: Sequence[int]) -> tuple[int, ...]:
        """``ops`` validated for this space (ArchParseError if malformed)."""

    @abc.abstractmethod
    def forward_stages(self, x: Tensor, ops: Sequence[int]) -> tuple[list[Tensor], Tensor]:
        """Stage outputs and logits of path ``ops``.

        Args:
            x: images (B, 3, H, W). ops: one choice per decision.
        """

    def forward(self, x: Tensor, ops: Sequence[int]) -> Tensor:
        """Logits (B, num_classes) of path ``ops`` for images ``x`` (B, 3, H, W)."""
        return self.forward_stages(x, ops)[1]

    def standalone(self, ops: Sequence[int]) -> NB201Network | NBMacroNetwork:
        """A freshly initialised stand-alone network of ``ops`` with this supernet's macro settings and its kind of
        BatchNorm in the choices (affine-free in ``stages`` unless ``cell_bn_affine``).

        Args:
            ops: one choice per decision.
        """
        net = self._network(ops)
        if not self.cell_bn_affine:
            drop_bn_affine(net.stages)
        return net

    @abc.abstractmethod
    def _network(self, ops: Sequence[int]) -> NB201Network | NBMacroNetwork:
        """The space's stand-alone network of ``ops`` (affine BatchNorm everywhere)."""

    @abc.abstractmethod
    def _map_key(self, key: str, ops: tuple[int, ...]) -> str | None:
        """The stand-alone key of supernet state key ``key`` on path ``ops``; None if off the path."""

    def path_state_dict(self, ops: Sequence[int]) -> dict[str, Tensor]:
        """The parameters and buffers of path ``ops`` under the stand-alone network's keys (tensors shared).

        Args:
            ops: one choice per decision.
        """
        checked = self.check_ops(ops)
        out: dict[str, Tensor] = {}
        for key, value in self.state_dict(keep_vars=False).items():
            mapped = self._map_key(key, checked)
            if mapped is not None:
                out[mapped] = value
        return out

    def extract(self, ops: Sequence[int]) -> NB201Network | NBMacroNetwork:
        """The stand-alone network of ``ops`` with the inherited weights (a copy: training it leaves this supernet
        unchanged), on this supernet's device, in the same train/eval mode.

        Args:
            ops: one choice per decision.
        """
        net = self.standalone(ops)
        device = next(self.parameters()).device
        net.load_state_dict({k: v.detach().clone() for k, v in self.path_state_dict(ops).items()}, strict=True)
        return net.to(device).train(self.training)


# ---------------------------------------------------------------------------------------------------- NB201

_NB201_CHOICE = re.compile(r"^(stages\.\d+\.\d+\.edges\.)(\d+)\.(\d+)\.(.+)$")


class NB201SuperCell(nn.Module):
    """An NB201 cell whose every edge holds all 5 candidate ops (``none`` contributes nothing).

    Args:
        channels: cell width (input = output).
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.edges = nn.ModuleList(
            nn.ModuleList(make_op(op, channels) or _NoOp() for op in range(len(NB201_OPS))) for _ in NB201_EDGES
        )

    def forward(self, x: Tensor, ops: Sequence[int]) -> Tensor:
        """Output node of the cell on path ``ops`` (the same sums, in the same order, as ``InferCell``).

        Args:
            x: input (B, C, H, W). ops: 6 validated op indices.
        """
        nodes = [x]
        for k in range(1, 4):
            terms: list[Tensor] = [
                cast(nn.ModuleList, self.edges[e])[op](nodes[frm])
                for e, ((to, frm), op) in enumerate(zip(NB201_EDGES, ops, strict=True))
                if to == k and NB201_OPS[op] != "none"
            ]
            nodes.append(sum(terms[1:], terms[0]) if terms else torch.zeros_like(x))
        return nodes[3]


class NB201Supernet(Supernet):
    """The NB201 "infer.tiny" skeleton (C=16, N=5 by default) with :class:`NB201SuperCell` cells.

    Args:
        config: macro settings (the same dataclass as the stand-alone network).
        cell_bn_affine: learnt scale and shift in the cells' BatchNorm (False: affine-free, as the references).
    """

    # the layers add_skeleton sets
    stem: nn.Sequential
    stages: nn.ModuleList
    reductions: nn.ModuleList
    lastact: nn.Sequential
    global_pooling: nn.AdaptiveAvgPool2d
    classifier: nn.Linear

    def __init__(self, config: NB201Config | None = None, *, cell_bn_affine: bool = False) -> None:
        super().__init__()
        self.config = config or NB201Config()
        self.cell_bn_affine = cell_bn_affine
        n = self.config.N
        add_skeleton(self, self.config, lambda width: nn.ModuleList(NB201SuperCell(width) for _ in range(n)))
        if not cell_bn_affine:
            drop_bn_affine(self.stages)

    def check_ops(self, ops: Sequence[int]) -> tuple[int, ...]:
        return check_nb201_ops(ops)

    def forward_stages(self, x: Tensor, ops: Sequence[int]) -> tuple[list[Tensor], Tensor]:
        ops = self.check_ops(ops)
        feats: list[Tensor] = []
        h = self.stem(x)
        for s, stage in enumerate(self.stages):
            if s > 0:
                h = self.reductions[s - 1](h)
            for cell in cast(nn.ModuleList, stage):
                h = cell(h, ops)
            feats.append(h)
        logits: Tensor = self.classifier(self.global_pooling(self.lastact(h)).flatten(1))
        return feats, logits

    def _network(self, ops: Sequence[int]) -> NB201Network:
        return NB201Network(ops, self.config)

    def _map_key(self, key: str, ops: tuple[int, ...]) -> str | None:
        m = _NB201_CHOICE.match(key)
        if m is None:
            return key
        prefix, edge, op, rest = m.group(1), int(m.group(2)), int(m.group(3)), m.group(4)
        if op != ops[edge]:
            return None
        position = sum(NB201_OPS[o] != "none" for o in ops[:edge])  # InferCell keeps only non-`none` edges
        return f"{prefix}{position}.{rest}"


# ------------------------------------------------------------------------------------------ NAS-Bench-Macro

_NBMACRO_CHOICE = re.compile(r"^stages\.(\d+)\.(\d+)\.(\d+)\.(.+)$")


class NBMacroSupernet(Supernet):
    """The NAS-Bench-Macro skeleton whose every layer holds its 3 candidate blocks.

    Args:
        config: macro settings (the same dataclass as the stand-alone network).
        cell_bn_affine: learnt scale and shift in the blocks' BatchNorm (False: affine-free, as in the NB201 cells).
    """

    def __init__(self, config: NBMacroConfig | None = None, *, cell_bn_affine: bool = False) -> None:
        super().__init__()
        self.config = config or NBMacroConfig()
        self.cell_bn_affine = cell_bn_affine
        c = self.config.init_channels
        self.stem = nn.Sequential(nn.Conv2d(3, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True))
        self.stages = nn.ModuleList()
        for n_layers in self.config.stages:
            layers = [nn.ModuleList(make_layer(op, c, 2 * c, 2) for op in range(len(NBMACRO_OPS)))]
            c *= 2
            layers += [
                nn.ModuleList(make_layer(op, c, c, 1) for op in range(len(NBMACRO_OPS))) for _ in range(n_layers - 1)
            ]
            self.stages.append(nn.ModuleList(layers))
        last = self.config.last_channels
        self.head = nn.Sequential(
            nn.Conv2d(c, last, 1, bias=False), nn.BatchNorm2d(last), nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1)
        )
        self.classifier = nn.Linear(last, self.config.num_classes)
        self._first_layer = [sum(self.config.stages[:s]) for s in range(len(self.config.stages))]
        if not cell_bn_affine:
            drop_bn_affine(self.stages)

    def check_ops(self, ops: Sequence[int]) -> tuple[int, ...]:
        return check_nbmacro_ops(ops, sum(self.config.stages))

    def forward_stages(self, x: Tensor, ops: Sequence[int]) -> tuple[list[Tensor], Tensor]:
        ops = self.check_ops(ops)
        feats: list[Tensor] = []
        h = self.stem(x)
        for s, stage in enumerate(self.stages):
            for i, choices in enumerate(cast(nn.ModuleList, stage)):
                h = cast(nn.ModuleList, choices)[ops[self._first_layer[s] + i]](h)
            feats.append(h)
        logits: Tensor = self.classifier(self.head(h).flatten(1))
        return feats, logits

    def _network(self, ops: Sequence[int]) -> NBMacroNetwork:
        return NBMacroNetwork(ops, self.config)

    def _map_key(self, key: str, ops: tuple[int, ...]) -> str | None:
        m = _NBMACRO_CHOICE.match(key)
        if m is None:
            return key
        s, i, op, rest = int(m.group(1)), int(m.group(2)), int(m.group(3)), m.group(4)
        if op != ops[self._first_layer[s] + i]:
            return None
        return f"stages.{s}.{i}.{rest}"


def build_supernet(space: str, *, num_classes: int = 10, cell_bn_affine: bool = False) -> Supernet:
    """The supernet of search space ``space`` (``nb201``: C=16, N=5; ``nbmacro``) with ``num_classes`` outputs.

    Parameters are initialised from torch's global RNG (seed it with :func:`harness.seeding.seed_torch`).

    Args:
        space: search-space name. num_classes: classifier outputs.
        cell_bn_affine: learnt scale and shift in the choices' BatchNorm (default False, as the references).
    """
    from harness.errors import ConfigError

    if space == "nb201":
        return NB201Supernet(NB201Config(num_classes=num_classes), cell_bn_affine=cell_bn_affine)
    if space == "nbmacro":
        return NBMacroSupernet(NBMacroConfig(num_classes=num_classes), cell_bn_affine=cell_bn_affine)
    raise ConfigError(f"no supernet is defined for search space {space!r}; known: nb201, nbmacro")
