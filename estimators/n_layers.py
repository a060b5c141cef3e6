"""The number of trainable layers, the baseline "No. of trainable layers (aleph)" of "Training-free Neural
Architecture Search through Variance of Knowledge of Deep Network Weights" (Tybl & Neumann, CVPR 2025, Table 1: NB201
CIFAR-10 Kendall tau 0.626). Its official code (GitHub ondratybl/VKDNW, ``NB201/ZeroShotProxy/compute_vkdnw_score.py``,
``info['vkdnw_dim']``) counts the network's parameter tensors, ``len(list(model.named_parameters()))``: a Conv2d
without bias counts 1, a Linear with bias 2, an affine BatchNorm 2.
"""

from __future__ import annotations

from torch import nn

from estimators.training_free import Batch, TrainingFree


class NLayers(TrainingFree):
    """Score = the number of trainable parameter tensors of the network (see the module docstring); the batches
    are not used. Higher = better.

    Args:
        batch_size, n_batches, inputs, bn: as :class:`~estimators.training_free.TrainingFree` (they change nothing).
    """

    def score(self, net: nn.Module, batches: list[Batch]) -> float:
        return float(sum(1 for p in net.parameters() if p.requires_grad))
