"""The official NAS-Bench-201 / NATS-Bench topology releases, read one architecture at a time.

Three layouts hold the same records (an ``ArchResults`` state dict per architecture and schedule):

* a NATS-Bench tss **simple directory** (``NATS-tss-v1_0-3ffb9-simple/``): ``meta.pickle.pbz2`` (``meta_archs``,
  the 15,625 architecture strings) and one ``{index:06d}.pickle.pbz2`` per architecture (``{"12": ..., "200": ...}``).
  Read one file at a time: memory stays that of one record.
* a NATS-Bench tss **single file** (``NATS-tss-v1_0-3ffb9.pickle.pbz2``): one bz2 pickle ``{"meta_archs",
  "arch2infos": {index: {"12", "200"}}, ...}``.
* a NAS-Bench-201 **``.pth``** (``NAS-Bench-201-v1_0-e61699.pth``, ``-v1_1-096897.pth``): the same dict written by
  ``torch.save`` (zip or legacy format), schedules keyed ``less`` (12 epochs) and ``full`` (200 epochs).

The two single files are one pickle each, so they are unpickled whole (and then handed out one record at a time).
Every pickle goes through :mod:`harness.data.unpickle`; torch is not needed.
"""

from __future__ import annotations

import bz2
import hashlib
import io
import pickle
import zipfile
from collections.abc import Iterator, Mapping
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

    :meth:`records` yields them in index order; :meth:`checksum` is valid once every record has been read.
    """

    path: Path
    layout: str
    meta_archs: list[str]
    present: list[int]
    _infos: dict[int, Any] | None = None  # the arch2infos of a single file; None for a directory
    _sums: dict[str, str] = field(default_factory=dict)  # file name -> sha256 of what was read
    _bytes: int = 0

    def missing(self) -> list[int]:
        """Indexes of ``meta_archs`` without a record."""
        have = set(self.present)
        return [i for i in range(len(self.meta_archs)) if i not in have]

    def record_name(self, index: int) -> str:
        """Where the record of ``index`` lives, for messages."""
        return f"{index:06d}.pickle.pbz2" if self._infos is None else f"arch2infos[{index}]"

    def records(self) -> Iterator[ArchRecord]:
        """Each present architecture's record, in index order, one at a time."""
        for index in self.present:
            if self._infos is None:
                path = self.path / self.record_name(index)
                schedules = _load_bz2(path, self)
                origin = str(path)
            else:
                schedules = self._infos.pop(index)  # hand it out and let it go
                origin = f"{self.path}: {self.record_name(index)}"
            yield _record(index, self.meta_archs[index], schedules, origin)

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
    """Open ``path`` (a simple directory, a ``.pickle.pbz2`` or a ``.pth``); read its list of architectures."""
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
    if path.name.endswith(".pth"):
        layout = "NAS-Bench-201 .pth"
    elif path.name.endswith(".pbz2"):
        layout = "NATS-Bench tss single file"
    else:
        raise DataFileError(f"{path} is neither a directory, a .pickle.pbz2 nor a .pth; {_ORIGIN}")
    source = Source(path, layout, [], [])
    source._sums[path.name], source._bytes = paths.file_digest(path), path.stat().st_size
    whole = _load_pth(path) if layout.startswith("NAS-Bench-201") else _load_bz2(path, None)
    source.meta_archs = _meta_archs(whole, path)
    infos = whole.get("arch2infos")
    if not isinstance(infos, dict):
        raise DataFileError(f"{path} has no arch2infos dict of records; {_ORIGIN}")
    source._infos = infos
    source.present = sorted(i for i in infos if isinstance(i, int) and 0 <= i < len(source.meta_archs))
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


def _load_bz2(path: Path, source: Source | None) -> Any:
    """Unpickle one bz2 file; with ``source``, read it whole first and record its checksum there."""
    try:
        if source is None:
            with bz2.open(path, "rb") as handle:
                return _unpickle(handle, path)
        data = path.read_bytes()
        source._sums[path.name] = hashlib.sha256(data).hexdigest()
        source._bytes += len(data)
        with bz2.BZ2File(io.BytesIO(data)) as handle:
            return _unpickle(handle, path)
    except (EOFError, OSError) as exc:  # bz2: "Compressed file ended before the end-of-stream marker", bad data
        raise DataFileError(f"{path} is truncated or not bz2-compressed ({exc}); {_ORIGIN}") from exc


def _load_pth(path: Path) -> Any:
    """Unpickle a torch.save file without torch: the zip format's ``*/data.pkl``, or the legacy format's 4th pickle."""
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                names = [n for n in archive.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
                if len(names) != 1:
                    raise DataFileError(f"{path} is a zip without one data.pkl, not a torch.save file; {_ORIGIN}")
                with archive.open(names[0]) as handle:
                    return _unpickle(handle, path)
        with path.open("rb") as handle:
            if _unpickle(handle, path) != _TORCH_MAGIC:
                raise DataFileError(f"{path} is not a torch.save file (no torch magic number); {_ORIGIN}")
            _unpickle(handle, path)  # protocol version
            _unpickle(handle, path)  # sys info
            return _unpickle(handle, path)
    except (EOFError, OSError, zipfile.BadZipFile) as exc:
        raise DataFileError(f"{path} is truncated or unreadable ({exc}); {_ORIGIN}") from exc


def _unpickle(handle: IO[bytes], path: Path) -> Any:
    """One restricted unpickle; a refused global or a malformed pickle is a :class:`DataFileError`."""
    try:
        return unpickle.load(handle)
    except unpickle.RefusedGlobal as exc:
        raise DataFileError(
            f"{path}: {exc}; it is not an official results file (files carry data, never code)"
        ) from exc
    except (pickle.UnpicklingError, ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
        raise DataFileError(f"{path} is not a readable pickle ({type(exc).__name__}: {exc}); {_ORIGIN}") from exc
