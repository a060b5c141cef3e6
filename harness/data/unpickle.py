"""A restricted unpickler for the official NATS-Bench and NAS-Bench-201 files: they carry data, never code.

Unpickling can call any global a file names, so :class:`Unpickler` resolves only the globals those files use
(:data:`ALLOWED`) and refuses every other one with :class:`RefusedGlobal`, before anything is called. The module
itself has the shape of a pickle module (``Unpickler``, ``load``), so a reader can pass it where one is expected.
"""

from __future__ import annotations

import _codecs
import collections
import importlib
import pickle
from collections.abc import Callable
from typing import IO, Any

import numpy as np


def _numpy_scalar() -> Callable[..., Any]:
    """numpy's scalar rebuilder (``numpy._core.multiarray.scalar`` in numpy 2, ``numpy.core...`` before)."""
    for name in ("numpy._core.multiarray", "numpy.core.multiarray"):
        try:
            return importlib.import_module(name).scalar  # type: ignore[no-any-return]
        except (ImportError, AttributeError):
            continue
    raise ImportError("numpy has no multiarray.scalar")  # pragma: no cover - every numpy since 1.0 has it


def _latin1_encode(text: str, encoding: str = "latin1", errors: str = "strict") -> bytes:
    """``_codecs.encode`` as protocol-2 pickles use it for a bytes value (latin-1 text to bytes), nothing else."""
    if encoding not in ("latin1", "latin-1"):
        raise RefusedGlobal("_codecs", f"encode with encoding {encoding!r}")
    return _codecs.encode(text, encoding, errors)


#: (module, name) -> the object it resolves to: the only globals the official files reference. The NATS-Bench
#: pickles use the first four (numpy 1 spelling); files written by torch.save (NAS-Bench-201's ``.pth``, protocol 2)
#: also a set and a bytes payload; numpy 2 writes ``numpy._core``.
ALLOWED: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("numpy.core.multiarray", "scalar"): _numpy_scalar(),
    ("numpy._core.multiarray", "scalar"): _numpy_scalar(),
    ("numpy", "dtype"): np.dtype,
    ("builtins", "set"): set,
    ("__builtin__", "set"): set,
    ("_codecs", "encode"): _latin1_encode,
}


class RefusedGlobal(pickle.UnpicklingError):
    """A pickle names a global outside :data:`ALLOWED`; nothing was called. Parameters: module, name."""

    def __init__(self, module: str, name: str) -> None:
        self.module, self.name = module, name
        super().__init__(
            f"refused global {module}.{name}: the official files reference only "
            f"{', '.join(sorted({f'{m}.{n}' for m, n in ALLOWED}))}"
        )


class Unpickler(pickle.Unpickler):
    """``pickle.Unpickler`` that resolves only :data:`ALLOWED` globals and no persistent ids (tensor storages)."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return ALLOWED[(module, name)]
        except KeyError:
            raise RefusedGlobal(module, name) from None

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError(f"the file holds a tensor storage ({pid!r:.60}); the official results hold none")


def load(file: IO[bytes], **_: Any) -> Any:
    """Unpickle one object from ``file`` with :class:`Unpickler`."""
    return Unpickler(file).load()
