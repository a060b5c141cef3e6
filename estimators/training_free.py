"""The base of the training-free estimators of 2023-25 (ZiCo, MeCo, SWAP, VKDNW, AZ-NAS, ...): score a freshly
initialised network from a few batches, or from none.

Each estimator that derives from :class:`TrainingFree` lives in its own module, so that the score cache keys its
scores by exactly its code (this module and the network builders included). What decides a method's numbers is a
parameter of its YAML file, which cites the paper and the official code for each setting: the batch size, the
number of batches, the input (CIFAR-10 images or Gaussian noise), the BatchNorm mode and the initialisation.

Like :mod:`estimators.zero_cost`, which predates this base and keeps its own (its scores are keyed by its code):
the batches are drawn once in ``fit`` with the estimator's own generator, and each network is initialised from
(estimator seed, architecture) alone, so a score never depends on what was evaluated before it.
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import Tensor, nn

from harness import seeding
from harness.budget import stopwatch
from harness.errors import ConfigError
from harness.interfaces import Estimator, EstimatorContext, EstimatorTags, check_positive
from harness.types import Arch, Estimate

#: what an estimator may be given as its input: CIFAR-10 training images, or standard Gaussian noise of their shape
INPUTS = ("data", "gaussian")
#: the BatchNorm mode a network is scored in: ``train`` (batch statistics, PyTorch's default for a fresh network)
BN_MODES = ("train", "eval")
#: how a network's weights are drawn before it is scored: ``default`` (PyTorch's, as built), ``kaiming_normal``
#: (He normal, fan-in, ReLU gain) or ``gaussian`` (standard normal); see :func:`initialise`
INITS = ("default", "kaiming_normal", "gaussian")

Batch = tuple[Tensor, Tensor]


@contextlib.contextmanager
def hooked(handles: list[torch.utils.hooks.RemovableHandle]) -> Iterator[None]:
    """Keep the hooks of ``handles`` (``register_forward_hook`` and the like) for the block, and remove them when
    it ends, however it ends."""
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def initialise(net: nn.Module, init: str) -> None:
    """Re-draw ``net``'s weights from torch's global RNG as :data:`INITS` ``init`` names (``default`` leaves them):
    the weight of every Conv2d and Linear layer from He's normal (``kaiming_normal``) or the standard normal
    (``gaussian``), their biases 0, and the affine weight and bias of every BatchNorm and GroupNorm 1 and 0."""
    if init == "default":
        return
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.Conv2d | nn.Linear):
                if init == "kaiming_normal":
                    nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
                else:
                    nn.init.normal_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.modules.batchnorm._BatchNorm | nn.GroupNorm) and m.weight is not None:
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)


class TrainingFree(Estimator):
    """Score = ``score(net, batches)`` of the freshly initialised network of the architecture; cost = the
    :func:`~harness.budget.stopwatch` seconds to build the network and score it on ``context.device``.

    Args:
        batch_size: images per batch.
        n_batches: batches drawn once at ``fit`` (distinct images across batches).
        inputs: ``data`` (CIFAR-10 training images, normalised, with their labels) or ``gaussian`` (standard
            normal images of the same shape, with the labels of the images they replace).
        bn: ``train`` or ``eval``: the network's mode while it is scored.
        init: one of :data:`INITS`: how the network's weights are drawn (:func:`initialise`).
    """

    tags = EstimatorTags(live=True, deterministic=True)

    def __init__(
        self, batch_size: int = 64, n_batches: int = 1, inputs: str = "data", bn: str = "train", init: str = "default"
    ) -> None:
        self.batch_size = batch_size
        self.n_batches = n_batches
        self.inputs = inputs
        self.bn = bn
        self.init = init

    @abc.abstractmethod
    def score(self, net: nn.Module, batches: list[Batch]) -> float:
        """The method's number for ``net`` (already in the mode :attr:`bn` names); higher = predicted better.
        It may change BatchNorm statistics and gradients of ``net`` (a fresh network is built for every score)."""

    def fit(self, context: EstimatorContext) -> float:
        from harness.cifar10 import Cifar10Config, get_batch, load_split, sample_indices

        name = type(self).__name__
        if self.inputs not in INPUTS:
            raise ConfigError(f"{name} inputs must be one of {', '.join(INPUTS)}, got {self.inputs!r}")
        if self.bn not in BN_MODES:
            raise ConfigError(f"{name} bn must be one of {', '.join(BN_MODES)}, got {self.bn!r}")
        if self.init not in INITS:
            raise ConfigError(f"{name} init must be one of {', '.join(INITS)}, got {self.init!r}")
        check_positive(f"{name} batch_size", self.batch_size)
        check_positive(f"{name} n_batches", self.n_batches)
        if context.dataset != "cifar10":
            raise ConfigError(
                f"{name} draws CIFAR-10 images (the only images available), so it supports only dataset cifar10, "
                f"not {context.dataset!r}"
            )
        # the one-time JPEG decode of a fresh machine is not this estimator's cost: load before the clock starts
        data = load_split("train", Cifar10Config(data_dir=context.data_dir, cache_dir=context.cache_dir))
        elapsed = stopwatch(context.device)
        idx = sample_indices(self.batch_size * self.n_batches, context.rng, split=data)
        idx = idx[context.rng.permutation(len(idx))].reshape(self.n_batches, self.batch_size)
        self._batches = [get_batch(data, rows, device=context.device) for rows in idx]
        if self.inputs == "gaussian":
            noise = seeding.torch_generator(context.rng, context.device)
            self._batches = [
                (torch.randn(x.shape, generator=noise, device=context.device), y) for x, y in self._batches
            ]
        self.context = context
        return elapsed()

    def network(self, arch: Arch) -> nn.Module:
        """The freshly initialised network of ``arch`` on ``context.device``, in the mode :attr:`bn` names. Torch's
        global generator is seeded from (estimator seed, architecture) first, so what the network and ``score``
        draw from it depends on nothing else."""
        from harness.networks import build_network

        ctx = self.context
        seeding.seed_torch(seeding.rng(ctx.seed, "init:" + ctx.space.format(arch)))
        net: nn.Module = build_network(ctx.space.name, arch.ops, dataset=ctx.dataset).to(ctx.device)
        initialise(net, self.init)
        net.train(self.bn == "train")
        return net

    def estimate(self, arch: Arch) -> Estimate:
        elapsed = stopwatch(self.context.device)
        net = self.network(arch)
        with torch.enable_grad():
            value = self.score(net, self._batches)
        return Estimate(value, cost_s=elapsed(), device=self.context.device)

    def data_files(self, data_dir: Path) -> list[Path]:
        from harness.cifar10 import jpeg_archive_path

        return [jpeg_archive_path(data_dir)]
