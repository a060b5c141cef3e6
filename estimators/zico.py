"""ZiCo: "ZiCo: Zero-shot NAS via Inverse Coefficient of Variation on Gradients" (Li et al., ICLR 2023; official code
GitHub SLDGroup/ZiCo, Apache-2.0, ``ZeroShotProxy/compute_zico.py``), written from the paper and that code.

For each Conv2d and Linear layer ``l`` and each of its weights ``w``, the cross-entropy gradient ``g_b(w)`` is taken on
each of the ``B`` batches (the paper's 2) of the same freshly initialised network in train mode. With ``mu(w)`` the
mean of ``|g_b(w)|`` over the batches and ``sigma(w)`` the standard deviation (population, over the batches) of
``g_b(w)``::

    ZiCo = sum over layers l of  log( sum over w in l with sigma(w) > 0 of  mu(w) / sigma(w) )

Weights with ``sigma = 0`` are left out of their layer's sum, and a layer with no such weight (or whose weights get
no gradient) adds nothing, as in the official code; a network none of whose layers has a weight with ``sigma > 0``
(an NB201 cell whose output is zero) scores 0. Higher = better.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from estimators.training_free import Batch, TrainingFree
from harness.errors import ConfigError
from harness.interfaces import EstimatorContext

#: what sigma is the standard deviation of: the signed gradients (official code) or their absolute values
SPREADS = ("signed", "abs")


class ZiCo(TrainingFree):
    """ZiCo of the freshly initialised network over ``n_batches`` labelled batches (see the module docstring).

    Args:
        spread: ``signed``: sigma is the standard deviation of the signed gradients (the official code); ``abs``:
            of their absolute values.
        batch_size, n_batches, inputs, bn: as :class:`~estimators.training_free.TrainingFree`; ZiCo needs
            ``n_batches >= 2`` (one batch has no spread).
    """

    def __init__(
        self, spread: str = "signed", batch_size: int = 64, n_batches: int = 2, inputs: str = "data", bn: str = "train"
    ) -> None:
        super().__init__(batch_size=batch_size, n_batches=n_batches, inputs=inputs, bn=bn)
        self.spread = spread

    def fit(self, context: EstimatorContext) -> float:
        if self.spread not in SPREADS:
            raise ConfigError(f"ZiCo spread must be one of {', '.join(SPREADS)}, got {self.spread!r}")
        if self.n_batches < 2:
            raise ConfigError(
                f"ZiCo needs n_batches >= 2 (the spread of gradients across batches); got {self.n_batches}"
            )
        return super().fit(context)

    def score(self, net: nn.Module, batches: list[Batch]) -> float:
        layers = [m for m in net.modules() if isinstance(m, nn.Conv2d | nn.Linear)]
        weights = [m.weight for m in layers]
        per_batch = []
        for x, y in batches:
            loss = F.cross_entropy(net(x), y)
            per_batch.append(torch.autograd.grad(loss, weights, allow_unused=True))
        total = 0.0
        for grads in zip(*per_batch, strict=True):
            if grads[0] is None:  # the loss does not depend on this layer (on any batch: the graph is the same)
                continue
            g = torch.stack([gb.flatten() for gb in grads]).double()  # (batches, weights of the layer)
            sigma = (g.abs() if self.spread == "abs" else g).std(dim=0, correction=0)
            keep = sigma > 0
            ratio = float((g.abs().mean(dim=0)[keep] / sigma[keep]).sum())
            if ratio > 0:
                total += math.log(ratio)
        return total
