"""Validation shared by the network builders."""

from __future__ import annotations

import operator
from collections.abc import Sequence

from harness.errors import ArchParseError


def check_ops(ops: Sequence[int], choices: Sequence[int], what: str) -> tuple[int, ...]:
    """``ops`` as a tuple of ints with ``0 <= ops[i] < choices[i]``.

    Raises:
        ArchParseError (a ValueError) naming the bad position: wrong length, a non-integer, or out of range.
    """
    if isinstance(ops, str) or len(ops) != len(choices):
        raise ArchParseError(f"{what} architecture needs {len(choices)} choice indices, got {ops!r}")
    out = []
    for i, (item, n) in enumerate(zip(ops, choices, strict=True)):
        if isinstance(item, bool):
            raise ArchParseError(f"{what} choice {i} must be an int, got {item!r}")
        try:
            op = operator.index(item)
        except TypeError:
            raise ArchParseError(f"{what} choice {i} must be an int, got {item!r}") from None
        if not 0 <= op < n:
            raise ArchParseError(f"{what} choice {i} is {op}, out of range 0..{n - 1}")
        out.append(op)
    return tuple(out)
