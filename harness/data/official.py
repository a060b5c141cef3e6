"""The official NAS-Bench-201 / NATS-Bench topology releases, read one architecture at a time.

Three layouts hold the same records (an ``ArchResults`` state dict per architecture and schedule):

* a NATS-Bench tss **simple directory** (``NATS-tss-v1_0-3ffb9-simple/``): ``meta.pickle.pbz2`` (``meta_archs``,
  the 15,625 architecture strings) and one ``{index:06d}.pickle.pbz2`` per architecture (``{"12": ..., "200": ...}``).
  Read one file at a time: memory stays that of one record.
* a NATS-Bench tss **single file** (``NATS-tss-v1_0-3ffb9.pickle.pbz2``): one bz2 pickle ``{"meta_archs",
  "arch2infos": {index: {"12", "200"}}, ...}``.
* a NAS-Bench-201 **``.pth``** (``NAS-Bench-201-v1_0-e61699.pth``, ``-v1_1-096897.pth``): the same dict written by
  ``torch.save`` (zip or legacy format), schedules keyed ``less`` (12 epochs) and ``full`` (200 epochs).

The two single files are one pickle each; :class:`~harness.data.unpickle.StreamingUnpickler` streams them, one
record at a time, so memory holds one record there too. Every pickle goes through :mod:`harness.data.unpickle`;
torch is not needed.
"""

from __future__ import annotations

import bz2
import contextlib
import hashlib
import io
import pickle
import struct
import zipfile
from collections.abc import Callable, Generator, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from harness import paths
from harness.data import unpickle
from harness.errors import DataFileError

#: architectures in the NB201 / NATS-Bench topology space
N_ARCHS = 15625
#: schedule key in the files -> its number of epochs as the table names it
SCHEDULES = {"12": "12", "200": "200", "less": "12", "full": "200"}
_ORIGIN = (
    "it must be a file of the official NATS-Bench topology release (NATS-tss-v1_0-3ffb9-simple/ or "
    "NATS-tss-v1_0-3ffb9.pickle.pbz2) or of NAS-Bench-201 (NAS-Bench-201-v1_*.pth); download it again"
)
_TORCH_MAGIC = 0x1950A86A20F9469CFC6C  # the first pickle of torch.save's legacy (non-zip) format


@dataclass(frozen=True)
class ArchRecord:
    """One architecture's results: its ``index``, ``arch`` string and ``schedules`` ({"12"|"200": state dict})."""

    index: int
    arch: str
    schedules: Mapping[str, Mapping[str, Any]]
    origin: str


@dataclass
class Source:
    """An official source opened by :func:`open_source`: its ``layout``, ``meta_archs`` and the indexes it holds.

    :meth:`records` yields them one at a time (a directory's in index order, a single file's in its order);
    ``present`` of a single file is None until :meth:`records` has read it. :meth:`checksum` is valid once every
    record has been read.
    """

    path: Path
    layout: str
    meta_archs: list[str]
    present: list[int] | None
    _open: Callable[[], contextlib.AbstractContextManager[IO[bytes]]] | None = None  # a single file's pickle
    _sums: dict[str, str] = field(default_factory=dict)  # file name -> sha256 of what was read
    _bytes: int = 0

    def missing(self) -> list[int]:
        """Indexes of ``meta_archs`` without a record (of a single file: once :meth:`records` has read it)."""
        have = set(self.present or ())
        return [i for i in range(len(self.meta_archs)) if i not in have]

    def record_name(self, index: int) -> str:
        """Where the record of ``index`` lives, for messages."""
        return f"{index:06d}.pickle.pbz2" if self._open is None else f"arch2infos[{index}]"

    def records(self) -> Iterator[ArchRecord]:
        """Each present architecture's record, one at a time."""
        if self._open is None:
            for index in self.present or ():
                path = self.path / self.record_name(index)
                yield _record(index, self.meta_archs[index], _load_bz2(path, self), str(path))
            return
        seen: set[int] = set()
        for index, schedules in self._items():
            if type(index) is not int or not 0 <= index < len(self.meta_archs):
                continue  # not an architecture of the space
            if index in seen:
                raise DataFileError(f"{self.path} holds {self.record_name(index)} twice; {_ORIGIN}")
            seen.add(index)
            yield _record(index, self.meta_archs[index], schedules, f"{self.path}: {self.record_name(index)}")
        self.present = sorted(seen)

    def _items(self) -> Iterator[tuple[Any, Any]]:
        """A single file's ``(index, record)`` items, streamed. The records that referred back to an object of an
        earlier record that the reading had let go come from a second reading that keeps those objects."""
        first = yield from self._read()
        if first.deferred:
            yield from self._read(keep=first.missed, skip=first.done)

    def _read(self, **options: Any) -> Generator[tuple[Any, Any], None, unpickle.StreamingUnpickler]:
        assert self._open is not None
        with _errors(self.path), self._open() as handle:
            reader = unpickle.StreamingUnpickler(handle, "arch2infos", **options)
            yield from reader.items()
        return reader

    def checksum(self) -> dict[str, Any]:
        """What was read: ``files``, ``bytes`` and ``sha256`` (of the file; for a directory, of the listing
        ``<sha256>  <name>`` of its files read, one per line, sorted by name, as ``sha256sum`` prints it)."""
        if len(self._sums) == 1:
            digest = next(iter(self._sums.values()))
        else:
            listing = "".join(f"{s}  {n}\n" for n, s in sorted(self._sums.items()))
            digest = hashlib.sha256(listing.encode()).hexdigest()
        return {"files": len(self._sums), "bytes": self._bytes, "sha256": digest}


def open_source(path: Path) -> Source:
    """Open ``path`` (a simple directory, a ``.pickle.pbz2`` or a ``.pth``); read its list of architectures (of a
    single file, the items before ``arch2infos``)."""
    if path.is_dir():
        meta_path = path / "meta.pickle.pbz2"
        if not meta_path.is_file():
            raise DataFileError(
                f"{path} has no meta.pickle.pbz2, so it is not a NATS-Bench simple directory; {_ORIGIN}"
            )
        source = Source(path, "NATS-Bench tss simple directory", [], [])
        meta = _load_bz2(meta_path, source)
        source.meta_archs = _meta_archs(meta, meta_path)
        names = {p.name for p in path.iterdir()}
        source.present = [i for i in range(len(source.meta_archs)) if f"{i:06d}.pickle.pbz2" in names]
        return source
    if not path.is_file():
        raise DataFileError(f"{path} does not exist; {_ORIGIN}")
    opener: Callable[[], contextlib.AbstractContextManager[IO[bytes]]]
    if path.name.endswith(".pth"):
        layout, opener = "NAS-Bench-201 .pth", lambda: _open_pth(path)
    elif path.name.endswith(".pbz2"):
        layout, opener = "NATS-Bench tss single file", lambda: bz2.open(path, "rb")
    else:
        raise DataFileError(f"{path} is neither a directory, a .pickle.pbz2 nor a .pth; {_ORIGIN}")
    source = Source(path, layout, [], None, opener)
    source._sums[path.name], source._bytes = paths.file_digest(path), path.stat().st_size
    with _errors(path), opener() as handle:
        reader = unpickle.StreamingUnpickler(handle, "arch2infos")
        next(reader.items(), None)  # reads up to the end of the first record
    if reader.header is None:
        raise DataFileError(f"{path} has no arch2infos dict of records; {_ORIGIN}")
    source.meta_archs = _meta_archs(reader.header, path)
    return source


def _meta_archs(meta: Any, path: Path) -> list[str]:
    archs = meta.get("meta_archs") if isinstance(meta, dict) else None
    if not isinstance(archs, list) or not all(isinstance(a, str) for a in archs):
        raise DataFileError(f"{path} has no meta_archs list of architecture strings; {_ORIGIN}")
    if len(archs) != N_ARCHS:
        raise DataFileError(f"{path} lists {len(archs)} architectures, not NB201's {N_ARCHS}; {_ORIGIN}")
    return archs


def _record(index: int, arch: str, schedules: Any, origin: str) -> ArchRecord:
    """Check a record's shape (both schedules, its index and string) and key it by epochs."""
    if not isinstance(schedules, dict):
        raise DataFileError(f"{origin}: the record is a {type(schedules).__name__}, not a dict of schedules; {_ORIGIN}")
    by_epochs = {SCHEDULES[k]: v for k, v in schedules.items() if k in SCHEDULES}
    for epochs in ("12", "200"):
        state = by_epochs.get(epochs)
        if not isinstance(state, dict):
            raise DataFileError(f"{origin}: no {epochs}-epoch schedule in the record of architecture {index}")
        if state.get("arch_index") != index or state.get("arch_str") != arch:
            raise DataFileError(
                f"{origin}: the {epochs}-epoch record is of architecture {state.get('arch_index')} "
                f"{state.get('arch_str')!r}, not {index} {arch!r}"
            )
    return ArchRecord(index, arch, by_epochs, origin)


@contextlib.contextmanager
def _errors(path: Path) -> Iterator[None]:
    """Turn what a bad file raises while it is read into one :class:`DataFileError` line."""
    try:
        yield
    except unpickle.RefusedGlobal as exc:
        raise DataFileError(
            f"{path}: {exc}; it is not an official results file (files carry data, never code)"
        ) from exc
    except (EOFError, OSError, zipfile.BadZipFile, struct.error) as exc:  # bz2: "Compressed file ended before ..."
        what = "not bz2-compressed" if path.name.endswith(".pbz2") else "unreadable"
        raise DataFileError(f"{path} is truncated or {what} ({exc}); {_ORIGIN}") from exc
    except (pickle.UnpicklingError, ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
        raise DataFileError(f"{path} is not a readable pickle ({type(exc).__name__}: {exc}); {_ORIGIN}") from exc


def _load_bz2(path: Path, source: Source) -> Any:
    """Unpickle one bz2 file whole (a directory's meta or record) and record its checksum in ``source``."""
    with _errors(path):
        data = path.read_bytes()
        source._sums[path.name] = hashlib.sha256(data).hexdigest()
        source._bytes += len(data)
        with bz2.BZ2File(io.BytesIO(data)) as handle:
            return unpickle.load(handle)


@contextlib.contextmanager
def _open_pth(path: Path) -> Iterator[IO[bytes]]:
    """A torch.save file's pickle of data, without torch: the zip format's ``*/data.pkl``, or the legacy format's
    fourth pickle (after the magic number, the protocol version and the system info)."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
            if len(names) != 1:
                raise DataFileError(f"{path} is a zip without one data.pkl, not a torch.save file; {_ORIGIN}")
            with archive.open(names[0]) as handle:
                yield handle
        return
    with path.open("rb") as handle:
        if unpickle.load(handle) != _TORCH_MAGIC:
            raise DataFileError(f"{path} is not a torch.save file (no torch magic number); {_ORIGIN}")
        unpickle.load(handle)  # protocol version
        unpickle.load(handle)  # sys info
        yield handle
