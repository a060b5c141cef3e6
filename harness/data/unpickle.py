"""Restricted unpicklers for the official NATS-Bench and NAS-Bench-201 files: they carry data, never code.

Unpickling can call any global a file names, so both unpicklers here resolve only the globals those files use
(:data:`ALLOWED`) and refuse every other one with :class:`RefusedGlobal`, before anything is called.

* :class:`Unpickler` (with :func:`load`) reads a small pickle whole, at C speed. The module has the shape of a pickle
  module (``Unpickler``, ``load``), so a reader can pass it where one is expected.
* :class:`StreamingUnpickler` reads a file that is one big dict of records (``{"meta_archs": [...], "arch2infos":
  {index: record}}``) one record at a time: it hands out each record of ``arch2infos`` as soon as the record is
  complete and then forgets it, so memory holds one record, not 15,625 (see its docstring).
"""

from __future__ import annotations

import _codecs
import collections
import importlib
import io
import pickle
import types
from collections.abc import Callable, Collection, Iterator
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


def _find_class(module: str, name: str) -> Any:
    try:
        return ALLOWED[(module, name)]
    except KeyError:
        raise RefusedGlobal(module, name) from None


def _persistent_load(pid: Any) -> Any:
    raise pickle.UnpicklingError(f"the file holds a tensor storage ({pid!r:.60}); the official results hold none")


class Unpickler(pickle.Unpickler):
    """``pickle.Unpickler`` that resolves only :data:`ALLOWED` globals and no persistent ids (tensor storages)."""

    def find_class(self, module: str, name: str) -> Any:
        return _find_class(module, name)

    def persistent_load(self, pid: Any) -> Any:
        return _persistent_load(pid)


def load(file: IO[bytes], **_: Any) -> Any:
    """Unpickle one object from ``file`` with :class:`Unpickler`."""
    return Unpickler(file).load()


class EvictedReference(pickle.UnpicklingError):
    """A record refers back to an object of an earlier record that :class:`StreamingUnpickler` has let go."""


class _Evicted:
    """What a let-go object reads as in a first reading: it takes whatever the pickle then does to it (items set,
    appended or added, state built, a call), so that reading goes on and finds every such reference."""

    def __call__(self, *args: Any) -> _Evicted:
        return self

    def __setitem__(self, key: Any, value: Any) -> None:
        pass

    def append(self, item: Any) -> None:
        pass

    def extend(self, items: Any) -> None:
        pass

    def add(self, item: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        pass


class _Raw(io.RawIOBase):
    """``file`` as raw bytes for an ``io.BufferedReader``, whose reads then cost no Python call (a ``BZ2File``'s
    own ``closed`` is a Python property, which a buffer around it would call on every read)."""

    def __init__(self, file: IO[bytes]) -> None:
        super().__init__()
        self._readinto = file.readinto  # type: ignore[attr-defined]

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        return self._readinto(buffer)  # type: ignore[no-any-return]


_EVICTED = _Evicted()
_ABSENT = object()
#: memo entries kept past their record, as any record may share them: the allowed globals and numpy dtypes
_SHARED = (type, types.FunctionType, types.BuiltinFunctionType, np.dtype)


class StreamingUnpickler(pickle._Unpickler):
    """Hand out the records of a file that is one big dict, one record at a time, restricted like :class:`Unpickler`.

    The file is one pickle of a dict whose item ``key`` (``"arch2infos"``) is a dict of records. :meth:`items` runs
    the pure-Python unpickler (the C one cannot be stopped mid-load) and yields each ``(index, record)`` of that
    dict as soon as the record is complete: when the next integer key is pushed after it, or when its batch of
    items (``SETITEMS``, up to 1,000 a batch) or its single ``SETITEM`` has been applied. The dict keeps ``None``
    for it, and the memo entries made while the record was read are forgotten, so the record is freed once the
    caller lets it go. Kept: the first record's entries (the objects every record shares, such as field and dataset
    names, first appear there), the allowed globals, numpy dtypes and the indexes in ``keep``.

    A record that refers back to a forgotten entry is not handed out: the entry reads as a stand-in, its index goes
    to ``missed``, and the records handed out with it count in ``deferred``; ``done`` holds the ordinals (0 for the
    file's first record) of those handed out. A second reading with ``keep=missed, skip=done`` keeps those entries
    and hands out the other records. Where records end, and so what is forgotten, depends only on the operations,
    not on the values read, so that reading meets no forgotten entry; should it, the reference raises
    :class:`EvictedReference` (a record is never built from a stand-in).

    Parameters: ``file`` (binary, at the pickle), ``key``, ``keep`` (memo indexes never forgotten), ``skip``
    (ordinals of records not to hand out again; given, it makes the reading a second one). Filled by :meth:`items`:
    ``header`` (the items of the top-level dict before ``key``, e.g. ``meta_archs``) and ``target`` (the dict of
    records, holding None for each record handed out), both None while ``key`` has not been found; ``missed``,
    ``deferred`` (a count), ``done``.
    """

    dispatch = dict(pickle._Unpickler.dispatch)
    memo: dict[int, Any]

    def __init__(
        self, file: IO[bytes], key: str, *, keep: Collection[int] = (), skip: Collection[int] | None = None
    ) -> None:
        self._file = io.BufferedReader(_Raw(file), 1 << 16)  # its read(1) runs at C speed
        super().__init__(self._file)
        self.key, self.keep = key, frozenset(keep)
        self.skip = None if skip is None else frozenset(skip)
        self.header: dict[Any, Any] | None = None
        self.missed: set[int] = set()
        self.deferred = 0
        self.done: set[int] = set()
        self._ordinal = 0  # of the next record
        self.target: dict[Any, Any] | None = None
        self._batch: list[Any] | None = None  # the stack frame that holds a batch of its (key, record) items
        self._done = 0  # items of that batch handed out
        self._closed: list[Any] | None = None  # the batch just applied
        self._single: Any = _ABSENT  # the key of the item a SETITEM just applied
        self._next = 0  # the next memo index
        self._start = 0  # the first memo index of the record being read
        self._forgot_from: int | None = None  # memo indexes from here to _start have been forgotten
        self._missed_now = False  # the record being read refers back to a forgotten entry

    def find_class(self, module: str, name: str) -> Any:
        return _find_class(module, name)

    def persistent_load(self, pid: Any) -> Any:
        return _persistent_load(pid)

    def items(self) -> Iterator[tuple[Any, Any]]:
        """Read the pickle; yield each ``(key, record)`` of the dict of records as soon as the record is complete."""
        # pickle._Unpickler.load's set-up and loop, with the file read straight through (frames are only a hint
        # for reading ahead, which the buffered file does) and a hand-out wherever an operation returns True
        self.read, self.readinto, self.readline = self._file.read, self._file.readinto, self._file.readline
        self.metastack: list[list[Any]] = []
        self.stack: list[Any] = []
        self.append = self.stack.append
        self.proto = 0
        read, dispatch = self.read, self.dispatch
        try:
            while True:
                op = read(1)
                if not op:
                    raise EOFError("the file ends before its pickle does")
                if dispatch[op[0]](self):  # type: ignore[arg-type]
                    yield from self._hand_outs()
        except pickle._Stop:  # type: ignore[attr-defined]
            return

    def _hand_outs(self) -> Iterator[tuple[Any, Any]]:
        """The records an operation completed: those of a batch before its newest key, the rest of a batch just
        applied, or the one of a single ``SETITEM``. A reference to a forgotten entry since the last hand-out
        defers them all."""
        target = self.target
        assert target is not None
        missed, self._missed_now = self._missed_now, False
        if self._closed is not None:
            frame, self._closed = self._closed, None
            end = len(frame) - 1
        elif self._single is not _ABSENT:
            key, self._single = self._single, _ABSENT
            record, target[key] = target[key], None
            yield from self._hand_out(key, record, missed)
            return
        else:
            frame, end = self.stack, len(self.stack) - 2  # the newest key is not handed out
        while 2 * self._done < end:
            at = 2 * self._done
            key, record = frame[at], frame[at + 1]
            frame[at + 1] = None
            if self._batch is not frame:  # applied already
                target[key] = None
            self._done += 1
            yield from self._hand_out(key, record, missed)

    def _hand_out(self, key: Any, record: Any, missed: bool) -> Iterator[tuple[Any, Any]]:
        """Forget the memo entries ``record`` made; yield it unless it is ``missed`` or skipped."""
        if self._forgot_from is None:  # the first record stays
            self._forgot_from = self._next
        else:
            memo, keep, target = self.memo, self.keep, self.target
            for index in range(self._start, self._next):
                value = memo.pop(index, _ABSENT)
                if value is not _ABSENT and (index in keep or value is target or isinstance(value, _SHARED)):
                    memo[index] = value
        self._start = self._next
        ordinal, self._ordinal = self._ordinal, self._ordinal + 1
        if missed:
            self.deferred += 1
        elif self.skip is None or ordinal not in self.skip:
            self.done.add(ordinal)
            yield key, record

    def _get(self, index: int) -> Any:
        try:
            return self.memo[index]
        except KeyError:
            pass
        if self._forgot_from is None or not self._forgot_from <= index < self._start:
            raise pickle.UnpicklingError(f"Memo value not found at index {index}")
        if self.skip is not None:
            raise EvictedReference(
                f"a record refers back to an object of an earlier record (memo entry {index}) that a streaming "
                "read lets go; the official files share no such object between records"
            )
        self.missed.add(index)
        self._missed_now = True
        return _EVICTED

    def _put(self, index: int) -> None:
        self.memo[index] = self.stack[-1]
        self._next = max(self._next, index + 1)

    def _pushed_int(self) -> bool:
        """After an int was pushed: True when it is a new key of the batch, after a record to hand out."""
        stack = self.stack
        return stack is self._batch and len(stack) % 2 == 1 and len(stack) > 2 * self._done + 1

    def load_memoize(self) -> None:
        self.memo[self._next] = self.stack[-1]
        self._next += 1

    def load_put(self) -> None:
        index = int(self.readline()[:-1])
        if index < 0:
            raise ValueError("negative PUT argument")
        self._put(index)

    def load_binput(self) -> None:
        self._put(self.read(1)[0])

    def load_long_binput(self) -> None:
        self._put(int.from_bytes(self.read(4), "little"))

    def load_get(self) -> None:
        self.append(self._get(int(self.readline()[:-1])))

    def load_binget(self) -> None:
        self.append(self._get(self.read(1)[0]))

    def load_long_binget(self) -> None:
        self.append(self._get(int.from_bytes(self.read(4), "little")))

    def load_frame(self) -> None:
        self.read(8)  # the frame's length: its bytes are read as they come

    def load_empty_dictionary(self) -> None:
        """``{}``; the one under ``key`` in the top-level dict's first batch of items is the dict of records."""
        stack, made = self.stack, dict[Any, Any]()
        if (
            self.target is None
            and len(self.metastack) == 1
            and isinstance(self.metastack[0][-1], dict)
            and len(stack) % 2 == 1
            and type(stack[-1]) is str
            and stack[-1] == self.key
        ):
            self.target, self._start = made, self._next
            self.header = dict(zip(stack[:-1:2], stack[1:-1:2], strict=True))
        self.append(made)

    def load_mark(self) -> None:
        opens_batch = self.target is not None and bool(self.stack) and self.stack[-1] is self.target
        super().load_mark()  # type: ignore[misc]
        if opens_batch:
            self._batch, self._done = self.stack, 0

    def load_setitems(self) -> bool:
        frame = self.stack
        super().load_setitems()  # type: ignore[misc]
        if frame is not self._batch:
            return False
        self._closed, self._batch = frame, None
        return True

    def load_setitem(self) -> bool:
        stack = self.stack
        single = self.target is not None and len(stack) >= 3 and stack[-3] is self.target
        if single:
            self._single = stack[-2]
        super().load_setitem()  # type: ignore[misc]
        return single


def _int_push(load: Callable[[Any], None]) -> Callable[[StreamingUnpickler], bool]:
    def push(self: StreamingUnpickler) -> bool:
        load(self)
        return self._pushed_int()

    return push


_OVERRIDES: dict[int, Any] = {
    pickle.MEMOIZE[0]: StreamingUnpickler.load_memoize,
    pickle.PUT[0]: StreamingUnpickler.load_put,
    pickle.BINPUT[0]: StreamingUnpickler.load_binput,
    pickle.LONG_BINPUT[0]: StreamingUnpickler.load_long_binput,
    pickle.GET[0]: StreamingUnpickler.load_get,
    pickle.BINGET[0]: StreamingUnpickler.load_binget,
    pickle.LONG_BINGET[0]: StreamingUnpickler.load_long_binget,
    pickle.FRAME[0]: StreamingUnpickler.load_frame,
    pickle.EMPTY_DICT[0]: StreamingUnpickler.load_empty_dictionary,
    pickle.MARK[0]: StreamingUnpickler.load_mark,
    pickle.SETITEMS[0]: StreamingUnpickler.load_setitems,
    pickle.SETITEM[0]: StreamingUnpickler.load_setitem,
    # the operations that push an int, as a record's key
    **{
        op[0]: _int_push(pickle._Unpickler.dispatch[op[0]])
        for op in (pickle.BININT, pickle.BININT1, pickle.BININT2, pickle.INT, pickle.LONG, pickle.LONG1)
    },
}
StreamingUnpickler.dispatch.update(_OVERRIDES)
