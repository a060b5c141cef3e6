"""Real torch networks built from benchmark architectures: one module per search space, named as the space
(``nb201.py`` for the space ``nb201``), each with ``build(ops, *, num_classes, channels, cells)``.

:func:`build_network` finds the module by that name, so a new space adds its network file and edits nothing here.
"""

from __future__ import annotations

import importlib
from typing import Any

from harness.errors import ConfigError

#: number of classes of each benchmark dataset
NUM_CLASSES = {"cifar10": 10, "cifar100": 100, "ImageNet16-120": 120}


def build_network(
    space: str, ops: tuple[int, ...], *, dataset: str = "cifar10", channels: int | None = None, cells: int | None = None
) -> Any:
    """The torch network of architecture ``ops`` of search space ``space``, with the classifier sized for
    ``dataset``. Every network has ``forward(x) -> logits`` and ``forward_stages(x) -> ([stage1, stage2, stage3],
    logits)``. Parameters are initialised from torch's global RNG (seed it with :func:`harness.seeding.seed_torch`).

    ``channels`` (the first stage's width) and ``cells`` (cells per stage, where the space has them) shrink or grow
    the benchmark's network into a proxy of it; ``None`` keeps the benchmark's."""
    if dataset not in NUM_CLASSES:
        raise ConfigError(f"no network head for dataset {dataset!r}; known: {', '.join(NUM_CLASSES)}")
    if (channels is not None and channels < 1) or (cells is not None and cells < 1):
        raise ConfigError(f"channels and cells must be >= 1 (or null), got {channels}, {cells}")
    name = f"harness.networks.{space}"
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name != name:
            raise
        module = None
    if not hasattr(module, "build"):
        raise ConfigError(f"no torch network is defined for search space {space!r} (no build() in {name})")
    # not None (hasattr above); narrowing it in code would change the code hash that keys stored scores
    return module.build(ops, num_classes=NUM_CLASSES[dataset], channels=channels, cells=cells)  # type: ignore[union-attr]


def skip_unread(net: Any) -> Any:
    """``net`` with its cells set to skip the work its output never reads (where a space's cells know how: NB201's
    :class:`~harness.networks.nb201.InferCell`): the same outputs and gradients, bit for bit, in less time. Only for
    an estimator that reads the network's outputs alone: a hook on a skipped module does not fire."""
    for module in net.modules():
        if hasattr(module, "skip_unread"):
            module.skip_unread = True
    return net


def n_params(net: Any) -> int:
    """The number of trainable parameters of a torch module (the one parameter counter of the harness)."""
    return sum(p.numel() for p in net.parameters() if p.requires_grad)


__all__ = ["NUM_CLASSES", "build_network", "n_params", "skip_unread"]
