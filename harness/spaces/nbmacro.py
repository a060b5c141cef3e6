"""The NAS-Bench-Macro chain space: 8 layers x 3 choices = 6,561 architectures, written as 8 digits."""

from __future__ import annotations

from harness.errors import ArchParseError
from harness.interfaces import SearchSpace
from harness.types import Arch

#: Meaning of each digit (NAS-Bench-Macro).
CHOICES: tuple[str, ...] = ("identity", "mb3_k3", "mb6_k5")
N_LAYERS = 8


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
