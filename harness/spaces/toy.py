"""A tiny space that tests can enumerate in full: 3 decisions x 4 options = 64 architectures."""

from __future__ import annotations

from harness.errors import ArchParseError
from harness.interfaces import SearchSpace
from harness.types import Arch

LETTERS = "abcd"


class ToySpace(SearchSpace):
    """Architectures written as 3 letters in ``a``-``d``, e.g. ``"abd"``."""

    name = "toy"
    choices = (4, 4, 4)

    def parse(self, text: str) -> Arch:
        if len(text) != 3 or any(ch not in LETTERS for ch in text):
            raise ArchParseError(f"toy architecture {text!r} must be 3 letters in {LETTERS!r}")
        return Arch(tuple(LETTERS.index(ch) for ch in text))

    def format(self, arch: Arch) -> str:
        return "".join(LETTERS[o] for o in arch.ops)
