"""AZ-NAS (Lee & Ham, "AZ-NAS: Assembling Zero-Cost Proxies for Network Architecture Search", CVPR 2024; official
code GitHub cvlab-yonsei/AZ-NAS, ``NB201/ZeroShotProxy/compute_az_nas_score.py`` and ``NB201/tss_general.ipynb``),
written from the paper's definitions.

One forward pass of a freshly initialised network on one batch, with the output of every *primary block* kept
(:func:`primary_blocks`: the stem and then each cell or layer, in forward order), gives four components; higher is
predicted better for each:

* **expressivity**: for each block output, the eigenvalues of the covariance of its channel vectors (one per image
  and position) are normalised to sum to 1 and their entropy taken; the sum over blocks.
* **progressivity**: the smallest increase of that entropy from one block to the next.
* **trainability**: for each pair of consecutive blocks, the spectral norm ``sigma`` of the channel
  Jacobian of the later block's output with respect to the earlier one's, estimated with a Rademacher vector
  ``g`` on the later output as ``mean over positions of (J^T g) g^T`` (positions of a strided block's input
  folded into channels, so that both sides are counted at the same positions); the pair scores
  ``2 - sigma - 1/sigma``, at most 0 (at ``sigma = 1``), and ``-inf`` when the block is the identity. The mean
  over pairs.
* **complexity**: FLOPs of a forward pass of one image (:func:`estimators.zero_cost.flops`: Conv2d and
  Linear multiply-adds; the NB201 API's FLOPs count the same layers, so they rank the same).

A NaN component (a network whose block output is constant, e.g. an NB201 cell whose output is zero) counts as
``-inf``, as in the official code. The score is the paper's non-linear ranking aggregation,
``sum over components of log(rank / m)``, ranks ascending among ``m`` candidates. The paper ranks the whole NB201
space (all 15,625 cells): a score depends on the candidates it is ranked with. Here the candidates are a fixed
reference pool of ``pool`` architectures drawn uniformly from the space at ``fit`` (its cost charged to the fit)
plus the architecture itself (``m = pool + 1``): a uniform pool's ranks estimate ranks within the whole space, so
the score is the paper's up to that estimate, and it depends only on the architecture and the estimator seed (not
on what else was scored, or in which order), so it can be cached.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from estimators.training_free import Batch, TrainingFree, hooked
from estimators.zero_cost import flops
from harness import seeding
from harness.budget import stopwatch
from harness.errors import ConfigError, EstimatorError
from harness.interfaces import EstimatorContext, check_count
from harness.networks.darts import DartsNetwork
from harness.networks.nb201 import NB201Network
from harness.networks.nbmacro import NBMacroNetwork, Shortcut
from harness.types import Arch

#: the four components, in the order of :func:`components`' array
COMPONENTS = ("expressivity", "progressivity", "trainability", "complexity")
#: what the estimator scores: the rank aggregate (``az_nas``) or one raw component
PROXIES = ("az_nas", *COMPONENTS)


def _nb201_blocks(net: NB201Network) -> list[nn.Module]:
    """The stem, then every cell and reduction block in forward order (the official ``extract_cell_features``)."""
    blocks: list[nn.Module] = [net.stem]
    for s, stage in enumerate(net.stages):
        if s > 0:
            blocks.append(net.reductions[s - 1])
        blocks.extend(stage.children())
    return blocks


def _nbmacro_blocks(net: NBMacroNetwork) -> list[nn.Module]:
    """The stem, then every layer except a stride-1 identity choice, which NAS-Bench-Macro uses to drop the layer
    (it returns its input, so it would be a block whose Jacobian is the identity, ``-inf`` trainability)."""
    layers = [m for stage in net.stages for m in stage.children() if not (isinstance(m, Shortcut) and m.proj is None)]
    return [net.stem, *layers]


def _darts_blocks(net: DartsNetwork) -> list[nn.Module]:
    """The stem, then every cell."""
    return [net.stem, *net.cells]


#: how to find the primary blocks of each network of :mod:`harness.networks` (the paper: the cells of NB201, the
#: blocks of the MobileNetV2 space); the official code adds such a feature extractor to each network class
_BLOCKS: dict[type[nn.Module], Callable[..., list[nn.Module]]] = {
    NB201Network: _nb201_blocks,
    NBMacroNetwork: _nbmacro_blocks,
    DartsNetwork: _darts_blocks,
}


def primary_blocks(net: nn.Module) -> list[nn.Module]:
    """The modules whose outputs AZ-NAS compares, in forward order; :class:`EstimatorError` for a network whose
    blocks are not defined here."""
    for kind, blocks in _BLOCKS.items():
        if isinstance(net, kind):
            return blocks(net)
    raise EstimatorError(f"az_nas does not know the primary blocks of a {type(net).__name__}")


def block_features(net: nn.Module, x: Tensor) -> list[Tensor]:
    """The output of every :func:`primary_blocks` module for a forward pass of ``x``, still in the graph."""
    blocks = primary_blocks(net)
    outputs: dict[int, Tensor] = {}

    def keep(index: int) -> Callable[[nn.Module, tuple[Tensor, ...], Tensor], None]:
        def hook(_module: nn.Module, _inp: tuple[Tensor, ...], out: Tensor) -> None:
            outputs[index] = out

        return hook

    with hooked([block.register_forward_hook(keep(i)) for i, block in enumerate(blocks)]):
        net(x)
    return [outputs[i] for i in range(len(blocks))]


def eigen_entropy(feature: Tensor) -> float:
    """Entropy of the normalised eigenvalues of the covariance of the channel vectors of ``feature`` (N, C, H, W),
    one vector per image and position, in float64; NaN when the covariance is zero."""
    rows = feature.detach().permute(0, 2, 3, 1).reshape(-1, feature.shape[1]).double()
    rows = rows - rows.mean(0, keepdim=True)
    eig = torch.linalg.eigvalsh(rows.t() @ rows / rows.shape[0])
    p = eig / eig.sum()
    return float(-(p * torch.log(p + 1e-8)).sum())  # the official code's 1e-8 guards log(0)


def expressivity_progressivity(features: list[Tensor]) -> tuple[float, float]:
    """(sum of the blocks' :func:`eigen_entropy`, smallest increase of it from a block to the next)."""
    entropy = np.array([eigen_entropy(f) for f in features])
    return float(entropy.sum()), float(np.diff(entropy).min())


def pair_trainability(f_in: Tensor, f_out: Tensor) -> float:
    """``2 - sigma - 1/sigma`` of the Jacobian of ``f_out`` with respect to ``f_in`` (see the module docstring);
    ``-inf`` when that Jacobian is the identity. The Rademacher vector comes from torch's global generator.

    An output that does not depend on the input (a zero cell, or the cell after it) has a zero Jacobian: ``sigma``
    is 0 and the pair scores about ``-1e6`` (``1e-6`` guards the division, as in the official code)."""
    g_out = torch.randint(0, 2, f_out.shape, device=f_out.device).to(f_out.dtype) * 2 - 1
    g_in: Tensor | None = None
    if f_out.requires_grad and f_in.requires_grad:
        (g_in,) = torch.autograd.grad(f_out, f_in, g_out, retain_graph=True, allow_unused=True)
    if g_in is None:
        g_in = torch.zeros_like(f_in)
    if g_in.shape == g_out.shape and torch.equal(g_in, g_out):
        return -math.inf
    if g_in.shape[2:] != g_out.shape[2:]:
        g_in = F.pixel_unshuffle(g_in, g_in.shape[2] // g_out.shape[2])
    rows_in = g_in.permute(0, 2, 3, 1).reshape(-1, g_in.shape[1])
    rows_out = g_out.permute(0, 2, 3, 1).reshape(-1, g_out.shape[1])
    sigma = float(torch.linalg.matrix_norm(rows_in.t() @ rows_out / rows_out.shape[0], ord=2))
    return 2 - sigma - 1 / (sigma + 1e-6)


def trainability(features: list[Tensor]) -> float:
    """The mean :func:`pair_trainability` over consecutive blocks, taken from the last pair back (the official
    order, which decides the Rademacher draws)."""
    return float(np.mean([pair_trainability(features[i - 1], features[i]) for i in reversed(range(1, len(features)))]))


def components(net: nn.Module, x: Tensor, y: Tensor) -> np.ndarray:
    """The four raw components of ``net`` (in its current mode and initialisation) on images ``x``, as a float64
    array in the order of :data:`COMPONENTS`; NaN becomes ``-inf``."""
    features = block_features(net, x)
    expressivity, progressivity = expressivity_progressivity(features)
    values = np.array([expressivity, progressivity, trainability(features), flops(net, x, y)])
    return np.where(np.isnan(values), -np.inf, values)


def aggregate(values: np.ndarray, pool: np.ndarray) -> float:
    """``sum_i log(rank_i / m)``: ``rank_i`` the ascending rank of ``values[i]`` among ``pool[:, i]`` and itself
    (ties share their mean rank, as ``scipy.stats.rankdata``; ``-inf`` ties with ``-inf``), ``m = len(pool) + 1``.
    At most 0, reached by an architecture above the whole pool in every component."""
    less = (pool < values).sum(axis=0)
    ties = (pool == values).sum(axis=0)
    ranks = 1 + less + ties / 2
    return float(np.log(ranks / (len(pool) + 1)).sum())


class AZNAS(TrainingFree):
    """Score = :func:`aggregate` of the architecture's :func:`components` among those of a reference pool (or one
    raw component, see ``proxy``); cost = the seconds to build the network and compute its components. The pool's
    components are computed once, at ``fit``, and charged to it.

    Args:
        proxy: ``az_nas`` (the rank aggregate) or one of :data:`COMPONENTS` (its raw value; no pool is drawn).
        pool: reference architectures, drawn uniformly from the space with the generator of (estimator seed,
            ``"az_nas:pool"``), possibly with repeats; at least 1.
        init: as :class:`~estimators.training_free.TrainingFree`: AZ-NAS re-initialises with ``kaiming_normal``
            (Conv2d and Linear weights He normal, fan in, ReLU gain, biases 0; BatchNorm scale 1, shift 0).
        batch_size, inputs, bn: as :class:`~estimators.training_free.TrainingFree` (one batch).
    """

    def __init__(
        self,
        proxy: str = "az_nas",
        pool: int = 300,
        init: str = "kaiming_normal",
        batch_size: int = 64,
        inputs: str = "gaussian",
        bn: str = "train",
    ) -> None:
        super().__init__(batch_size=batch_size, n_batches=1, inputs=inputs, bn=bn, init=init)
        self.proxy = proxy
        self.pool = pool

    def fit(self, context: EstimatorContext) -> float:
        if self.proxy not in PROXIES:
            raise ConfigError(f"az_nas proxy must be one of {', '.join(PROXIES)}, got {self.proxy!r}")
        check_count(
            "az_nas pool (the reference architectures the ranks are taken among; 0 would rank each alone)", self.pool
        )
        cost = super().fit(context)
        self._pool = np.empty((0, len(COMPONENTS)))
        if self.proxy == "az_nas":
            elapsed = stopwatch(context.device)
            rng = seeding.rng(context.seed, "az_nas:pool")
            self._pool = np.array([self.components(context.space.sample(rng)) for _ in range(self.pool)])
            cost += elapsed()
        return cost

    def components(self, arch: Arch) -> np.ndarray:
        """The four raw :func:`components` of ``arch``'s network as :meth:`estimate` scores it."""
        with torch.enable_grad():
            return self._components(self.network(arch), self._batches)

    def _components(self, net: nn.Module, batches: list[Batch]) -> np.ndarray:
        x, y = batches[0]
        return components(net, x, y)

    def score(self, net: nn.Module, batches: list[Batch]) -> float:
        values = self._components(net, batches)
        if self.proxy == "az_nas":
            return aggregate(values, self._pool)
        return float(values[COMPONENTS.index(self.proxy)])
