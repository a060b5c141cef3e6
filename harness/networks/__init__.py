"""Real torch networks built from benchmark architectures (NAS-Bench-201, NAS-Bench-Macro)."""

from harness.networks.nb201 import (
    NB201_EDGES,
    NB201_OPS,
    NB201Config,
    NB201Network,
    build_nb201,
    check_nb201_ops,
)
from harness.networks.nbmacro import (
    NBMACRO_OPS,
    NBMacroConfig,
    NBMacroNetwork,
    build_nbmacro,
    check_nbmacro_ops,
)

#: number of classes of each benchmark dataset
NUM_CLASSES = {"cifar10": 10, "cifar100": 100, "ImageNet16-120": 120}


def build_network(
    space: str, ops: tuple[int, ...], *, dataset: str = "cifar10", channels: int | None = None, cells: int | None = None
) -> NB201Network | NBMacroNetwork:
    """The torch network of architecture ``ops`` of search space ``space`` (``nb201`` or ``nbmacro``), with the
    classifier sized for ``dataset``. Both networks have ``forward(x) -> logits`` and
    ``forward_stages(x) -> ([stage1, stage2, stage3], logits)``. Parameters are initialised from torch's global RNG
    (seed it with :func:`harness.seeding.seed_torch`).

    ``channels`` (the first stage's width: NB201 C = 16, NAS-Bench-Macro's stem 32) and ``cells`` (NB201 cells per
    stage, N = 5) shrink or grow the benchmark's network into a proxy of it; ``None`` keeps the benchmark's."""
    from harness.errors import ConfigError

    if dataset not in NUM_CLASSES:
        raise ConfigError(f"no network head for dataset {dataset!r}; known: {', '.join(NUM_CLASSES)}")
    if (channels is not None and channels < 1) or (cells is not None and cells < 1):
        raise ConfigError(f"channels and cells must be >= 1 (or null), got {channels}, {cells}")
    if space == "nb201":
        return build_nb201(ops, num_classes=NUM_CLASSES[dataset], C=channels or 16, N=cells or 5)
    if space == "nbmacro":
        if cells is not None:
            raise ConfigError("cells sets NB201's cells per stage; NAS-Bench-Macro's layers are the architecture")
        return NBMacroNetwork(ops, NBMacroConfig(num_classes=NUM_CLASSES[dataset], init_channels=channels or 32))
    raise ConfigError(f"no torch network is defined for search space {space!r}; known: nb201, nbmacro")


__all__ = [
    "NUM_CLASSES",
    "build_network",
    "NB201_EDGES",
    "NB201_OPS",
    "NBMACRO_OPS",
    "NB201Config",
    "NB201Network",
    "NBMacroConfig",
    "NBMacroNetwork",
    "build_nb201",
    "build_nbmacro",
    "check_nb201_ops",
    "check_nbmacro_ops",
]
