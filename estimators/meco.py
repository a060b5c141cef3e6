"""MeCo: "MeCo: Zero-Shot NAS with One Data and Single Forward Pass via Minimum Eigenvalue of Correlation" (Jiang et
al., NeurIPS 2023; official code GitHub HamsterMimi/MeCo, MIT, ``correlation/NAS_Bench_201.py``), written from the
paper and that code.

One forward pass of the freshly initialised network (train mode) on one batch. At every hooked module, the output
of the batch's first image, ``C x H x W``, is read as ``C`` channels observed at ``H * W`` positions; ``P`` is their
``C x C`` Pearson correlation matrix, with the entries of a constant channel (undefined correlation) set to 0::

    MeCo = sum over hooked module calls of  lambda_min(P)

An output with one position per channel (the pooled features, the logits) has no correlation and adds 0. The sum
is taken in float64. Higher = better. A network whose cells output zero still scores (its stem's modules add).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from estimators.training_free import Batch, TrainingFree, hooked
from harness import seeding
from harness.budget import stopwatch
from harness.errors import ConfigError
from harness.interfaces import EstimatorContext, check_positive

#: which modules are hooked: ``all`` (every module, containers included, as the official code) or ``conv`` (Conv2d)
MODULES = ("all", "conv")


def min_eig_correlation(features: Tensor) -> float:
    """lambda_min of the Pearson correlation matrix of the rows of ``features`` (variables x observations), with
    the NaN entries of constant rows set to 0; 0.0 when there are fewer than 2 observations."""
    if features.shape[1] < 2:
        return 0.0
    corr = torch.nan_to_num(torch.corrcoef(features.double()), nan=0.0, posinf=0.0, neginf=0.0)
    return float(torch.linalg.eigvalsh(corr)[0])


class MeCo(TrainingFree):
    """MeCo of the freshly initialised network from one forward pass (see the module docstring).

    Args:
        modules: ``all`` or ``conv`` (:data:`MODULES`).
        resolution: the images' side in pixels, or ``None`` for the images' own (32). Data are resized (bilinear);
            Gaussian inputs are drawn at that size.
        batch_size, inputs, bn: as :class:`~estimators.training_free.TrainingFree` (BatchNorm in train mode
            normalises over the whole batch; the correlation is read on its first image).
        n_batches: must be 1 (one forward pass).
    """

    def __init__(
        self,
        modules: str = "all",
        resolution: int | None = None,
        batch_size: int = 1,
        n_batches: int = 1,
        inputs: str = "data",
        bn: str = "train",
    ) -> None:
        super().__init__(batch_size=batch_size, n_batches=n_batches, inputs=inputs, bn=bn)
        self.modules = modules
        self.resolution = resolution

    def fit(self, context: EstimatorContext) -> float:
        if self.modules not in MODULES:
            raise ConfigError(f"MeCo modules must be one of {', '.join(MODULES)}, got {self.modules!r}")
        if self.n_batches != 1:
            raise ConfigError(f"MeCo takes one forward pass: n_batches must be 1, got {self.n_batches}")
        if self.resolution is not None:
            check_positive("MeCo resolution", self.resolution)
        cost = super().fit(context)
        if self.resolution is None:
            return cost
        elapsed = stopwatch(context.device)
        ((x, y),) = self._batches
        size = (x.shape[0], x.shape[1], self.resolution, self.resolution)
        if self.inputs == "gaussian":
            x = torch.randn(size, generator=seeding.torch_generator(context.rng, context.device), device=x.device)
        else:
            x = F.interpolate(x, size=size[2:], mode="bilinear", align_corners=False)
        self._batches = [(x, y)]
        return cost + elapsed()

    def score(self, net: nn.Module, batches: list[Batch]) -> float:
        total = 0.0

        def add(_module: nn.Module, _inp: tuple[Tensor, ...], out: object) -> None:
            nonlocal total
            if isinstance(out, Tensor) and out.dim() >= 3:  # (N, C, ...): C channels of the first image
                first = out[0].detach()
                total += min_eig_correlation(first.reshape(first.shape[0], -1))

        targets = [m for m in net.modules() if self.modules == "all" or isinstance(m, nn.Conv2d)]
        with hooked([m.register_forward_hook(add) for m in targets]), torch.no_grad():
            net(batches[0][0])
        return total
