"""The NAS-Bench-Macro chain space: 8 layers x 3 choices = 6,561 strings of 8 digits, 3,969 distinct networks."""

from __future__ import annotations

from harness.errors import ArchParseError
from harness.interfaces import SearchSpace
from harness.types import Arch

#: Meaning of each digit (NAS-Bench-Macro).
CHOICES: tuple[str, ...] = ("identity", "mb3_k3", "mb6_k5")
N_LAYERS = 8
#: Layers per stage; the first layer of a stage has stride 2 and doubles the channels (as harness/networks/nbmacro.py).
STAGES: tuple[int, ...] = (2, 3, 3)


class MacroSpace(SearchSpace):
    """NAS-Bench-Macro architectures, e.g. ``"02012100"``: layer ``i`` takes choice ``int(text[i])``.

    ``0`` = identity, ``1`` = inverted residual 3x3 expand 3, ``2`` = inverted residual 5x5 expand 6.
    """

    name = "nbmacro"
    choices = (3,) * N_LAYERS

    def parse(self, text: str) -> Arch:
        text = text.strip()
        if len(text) != N_LAYERS:
            raise ArchParseError(
                f"NAS-Bench-Macro architecture {text!r} must have {N_LAYERS} digits in 0-2, got {len(text)}"
            )
        for i, ch in enumerate(text):
            if ch not in "012":
                raise ArchParseError(
                    f"NAS-Bench-Macro architecture {text!r}: bad token {ch!r} at layer {i}; "
                    "valid: 0 (identity), 1 (MB3 3x3), 2 (MB6 5x5)"
                )
        return Arch(tuple(int(ch) for ch in text))

    def format(self, arch: Arch) -> str:
        return "".join(str(o) for o in arch.ops)

    def iso_key(self, arch: Arch) -> str:
        """The string of the network the release trained for ``arch``: in each stage the first (stride-2) layer
        stays, and the identities among the other layers, which do nothing, move to the stage's end. The release
        copied that network's results to every string with this key, so its 6,561 entries hold 3,969 distinct
        networks (xiusu/NAS-Bench-Macro @61a2bfc: ``get_real_arch`` in train/collect_benchmark.py lines 9-24, the
        copy in lines 37-39; train/train_benchmark.py lines 29-39 trains only these strings)."""
        ops = iter(arch.ops)
        key: list[int] = []
        for n in STAGES:
            first, *rest = (next(ops) for _ in range(n))
            key += [first, *(o for o in rest if o != 0), *(o for o in rest if o == 0)]
        return "".join(str(o) for o in key)
