"""``python -m harness.data``: the official NATS-Bench / NAS-Bench-201 files convert to nb201.csv's exact rows, bad
files are one error line, a partial table is refused by the benchmark unless allowed, ``check`` fits one screen, the
single files stream one record at a time in flat memory."""

from __future__ import annotations

import bz2
import csv
import functools
import hashlib
import io
import json
import os
import pickle
import pickletools
import shutil
import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from harness.benchmarks.nb201 import NB201
from harness.data import unpickle
from harness.data.convert import convert
from harness.data.official import open_source
from harness.data.unpickle import EvictedReference, StreamingUnpickler
from harness.errors import DataFileError, OutOfDomainError
from tests.conftest import ROOT

NATS = "nb201/raw/nats_bench_official/NATS-tss-v1_0-3ffb9-simple"
INDEXES = (0, 11, 284)


@pytest.fixture(scope="module")
def official(data_dir: Path) -> Path:
    path = data_dir / NATS
    if not (path / "meta.pickle.pbz2").is_file():
        pytest.skip(f"the official NATS-Bench files are not at {path} (see the data README)")
    return path


def data_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harness.data", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def reference_rows(nb201_csv: Path) -> list[list[str]]:
    """nb201.csv's header and its rows of the fixture's architectures, in the file's order."""
    with nb201_csv.open() as handle:
        reader = csv.reader(handle)
        header = next(reader)
        return [header, *(row for row in reader if int(row[0]) in INDEXES)]


def test_the_official_files_convert_to_nb201_csv_rows_in_every_column(official, nb201_csv, tmp_path):
    out = tmp_path / "nb201" / "nb201.csv"
    proc = data_cli("convert", str(official), str(out), "--allow-partial")
    assert proc.returncode == 0, proc.stderr
    assert "9 rows, 3 of 15,625 architectures (partial)" in proc.stdout
    rows = list(csv.reader(out.open()))
    assert rows == reference_rows(nb201_csv)  # header, then cifar10, cifar100, ImageNet16-120, each by index
    manifest = json.loads((tmp_path / "nb201" / "nb201.manifest.json").read_text())
    listing = "".join(
        f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.name}\n" for p in sorted(official.iterdir())
    )  # what `sha256sum * | sha256sum` hashes in the folder
    assert manifest["source"] == {
        "name": official.name,
        "layout": "NATS-Bench tss simple directory",
        "files": 4,
        "bytes": sum(p.stat().st_size for p in official.iterdir()),
        "sha256": hashlib.sha256(listing.encode()).hexdigest(),
    }
    assert (manifest["partial"], manifest["architectures"], manifest["rows"]) == (True, 3, 9)
    assert manifest["table_sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    assert manifest["converter_version"] == 1


def _whole(official: Path, less_full: bool) -> dict[str, Any]:
    """The fixture's records re-wrapped as one dict, as the single file (keys 12/200) or the .pth (less/full) hold
    them."""
    with bz2.open(official / "meta.pickle.pbz2") as handle:
        meta = unpickle.load(handle)
    infos = {}
    for i in INDEXES:
        with bz2.open(official / f"{i:06d}.pickle.pbz2") as handle:
            record = unpickle.load(handle)
        infos[i] = {"less": record["12"], "full": record["200"]} if less_full else dict(record)
    return {"meta_archs": meta["meta_archs"], "arch2infos": infos, "evaluated_indexes": set(INDEXES)}


@pytest.mark.parametrize("layout", ["pth-zip", "pth-legacy", "single-file"])
def test_the_single_file_and_pth_layouts_convert_to_the_same_rows(official, nb201_csv, tmp_path, layout):
    if layout == "single-file":
        source = tmp_path / "NATS-tss-v1_0-3ffb9.pickle.pbz2"
        source.write_bytes(bz2.compress(pickle.dumps(_whole(official, less_full=False))))
    else:
        import torch

        source = tmp_path / "NAS-Bench-201-v1_1-096897.pth"
        torch.save(_whole(official, less_full=True), source, _use_new_zipfile_serialization=layout == "pth-zip")
    out = tmp_path / "nb201.csv"
    manifest = convert(open_source(source), out, allow_partial=True)
    assert list(csv.reader(out.open())) == reference_rows(nb201_csv)
    assert manifest["source"]["sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()
    assert manifest["source"]["layout"] == (
        "NATS-Bench tss single file" if layout == "single-file" else "NAS-Bench-201 .pth"
    )


def test_the_official_reader_agrees_where_it_is_installed(official, tmp_path):
    """Cross-check with NATS-Bench's own API (the `official` extra), where it is installed."""
    nats_bench = pytest.importorskip("nats_bench")
    api = nats_bench.create(str(official), "tss", fast_mode=True, verbose=False)
    out = tmp_path / "nb201.csv"
    convert(open_source(official), out, allow_partial=True)
    rows = {(int(r["index"]), r["dataset"]): r for r in csv.DictReader(out.open())}
    for i in INDEXES:
        for dataset, valid_key, test_key in [
            ("cifar10", "cifar10-valid", "cifar10"),
            ("cifar100", "cifar100", "cifar100"),
            ("ImageNet16-120", "ImageNet16-120", "ImageNet16-120"),
        ]:
            row = rows[(i, dataset)]
            valid = api.get_more_info(i, valid_key, hp="200", is_random=False)["valid-accuracy"]
            test = api.get_more_info(i, test_key, hp="200", is_random=False)["test-accuracy"]
            cost = api.get_cost_info(i, valid_key, hp="200")
            assert row["valid_acc"] == f"{valid:g}" and row["test_acc"] == f"{test:g}"
            assert row["train_time_s"] == f"{cost['T-train@total']:g}" and row["params_mb"] == f"{cost['params']:g}"


def test_a_missing_record_is_one_error_line_naming_it_and_the_flag(official, tmp_path):
    proc = data_cli("convert", str(official), str(tmp_path / "nb201.csv"))
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: ")
    assert "holds the records of 3 of the 15,625 architectures (missing: 000001.pickle.pbz2 and 15,621 more)" in (
        proc.stderr
    )
    assert "--allow-partial" in proc.stderr and not (tmp_path / "nb201.csv").exists()


def _copy(official: Path, tmp_path: Path) -> Path:
    folder = tmp_path / official.name
    shutil.copytree(official, folder)
    folder.chmod(0o755)
    for p in folder.iterdir():
        p.chmod(0o644)
    return folder


def test_a_truncated_bz2_file_is_one_error_line(official, tmp_path):
    folder = _copy(official, tmp_path)
    record = folder / "000011.pickle.pbz2"
    record.write_bytes(record.read_bytes()[:40000])
    proc = data_cli("convert", str(folder), str(tmp_path / "nb201.csv"), "--allow-partial")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert proc.stderr.startswith(f"error: {record} is truncated or not bz2-compressed (Compressed file ended")
    assert "download it again" in proc.stderr and not (tmp_path / "nb201.csv").exists()


class _Exploit:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        import os

        return os.system, ("touch pwned",)


def test_a_refused_global_is_one_error_line_and_nothing_runs(official, tmp_path):
    folder = _copy(official, tmp_path)
    record = folder / "000011.pickle.pbz2"
    record.write_bytes(bz2.compress(pickle.dumps({"12": _Exploit(), "200": {}})))
    proc = data_cli("convert", str(folder), str(tmp_path / "nb201.csv"), "--allow-partial")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert proc.stderr.startswith(f"error: {record}: refused global posix.system: the official files reference only ")
    assert "files carry data, never code" in proc.stderr
    assert not (ROOT / "pwned").exists() and not (tmp_path / "nb201.csv").exists()


def test_the_benchmark_refuses_a_partial_table_unless_allowed(official, nb201_csv, tmp_path):
    convert(open_source(official), tmp_path / "nb201" / "nb201.csv", allow_partial=True)
    with pytest.raises(
        DataFileError, match=r"partial table: 3 of 15,625 architectures .*\+benchmark.allow_partial=true"
    ):
        NB201("cifar10", data_dir=str(tmp_path), cache_dir=str(tmp_path / "cache")).load()
    bench = NB201("cifar10", data_dir=str(tmp_path), cache_dir=str(tmp_path / "cache"), allow_partial=True).load()
    space = bench.space
    assert bench.query(space.parse(reference_rows(nb201_csv)[2][1])).valid_acc == 87.94  # architecture 11
    assert bench.optimum() == (87.94, 91.5833)
    with pytest.raises(OutOfDomainError, match="no results in nb201's partial table"):
        bench.query(space.parse(_arch_1(nb201_csv)))


def _arch_1(nb201_csv: Path) -> str:
    with nb201_csv.open() as handle:
        return next(r for r in csv.reader(handle) if r[0] == "1")[1]


def test_check_lists_every_file_on_one_screen_here_and_in_an_empty_folder(data_dir, official, tmp_path):
    here = data_cli("check")
    assert here.returncode == 0, here.stdout
    lines = here.stdout.splitlines()
    assert len(lines) <= 40 and lines[-1] == "the main job has every file it needs"
    assert any(line.split()[:3] == ["ok", "*", "nb201/nb201.csv"] for line in lines)
    empty = tmp_path / "empty"
    empty.mkdir()
    none = data_cli("check", env={"HARNESS_DATA_DIR": str(empty)})
    assert none.returncode == 1 and len(none.stdout.splitlines()) <= 40
    assert none.stdout.splitlines()[-1] == (
        "the main job cannot run: nb201/nb201.csv, cifar10/CIFAR-10-images-jpg.tar.gz, teachers/resnet20-12fca82f.th "
        "are not there"
    )
    assert f"make: python -m harness.data convert NATS-tss-v1_0-3ffb9-simple {empty}/nb201/nb201.csv" in none.stdout
    convert(open_source(official), empty / "nb201" / "nb201.csv", allow_partial=True)
    partial = data_cli("check", "--data-dir", str(empty))
    assert partial.returncode == 1
    assert "  partial * nb201/nb201.csv" in partial.stdout and "3 of 15,625 architectures" in partial.stdout


# the single files, streamed


def _intern_names(obj: Any) -> Any:
    """Share field and dataset names between records, as the official writers do (they are the same interned
    strings in every record, so the pickle writes them once, in the first record, and refers back to them)."""
    if isinstance(obj, dict):
        for key in list(obj):
            value = obj.pop(key)
            obj[sys.intern(key) if isinstance(key, str) and key.isidentifier() else key] = _intern_names(value)
    elif isinstance(obj, list):
        obj[:] = [_intern_names(v) for v in obj]
    return obj


def _containers(obj: Any, found: set[int] | None = None) -> set[int]:
    """The ids of every dict and list in ``obj``."""
    found = set() if found is None else found
    if isinstance(obj, dict | list):
        found.add(id(obj))
        for value in obj.values() if isinstance(obj, dict) else obj:
            _containers(value, found)
    return found


@pytest.mark.parametrize("protocol", [2, 4, 5])  # torch.save's, NATS-Bench's (HIGHEST_PROTOCOL of 3.7, 3.8+)
def test_a_single_file_hands_out_each_record_when_complete_and_forgets_it(official, protocol):
    whole = _intern_names(_whole(official, less_full=False))
    infos = whole["arch2infos"]
    reader = StreamingUnpickler(io.BytesIO(pickle.dumps(whole, protocol=protocol)), "arch2infos")
    handed: dict[int, Any] = {}
    memo_sizes = []
    for key, record in reader.items():
        assert record == infos[key]
        # 0 and 11 are handed out while their batch of three is still on the stack, 284 once it is applied
        assert reader.target == ({} if key != 284 else dict.fromkeys(infos))
        in_memo = {id(v) for v in reader.memo.values()}
        assert all(not _containers(r) & in_memo for r in [*handed.values(), record][1:])  # all but the first let go
        assert _containers(handed.get(0, record)) <= in_memo  # the first record's objects stay
        handed[key] = record
        memo_sizes.append(len(reader.memo))
    assert list(handed) == [0, 11, 284] and memo_sizes[1] == memo_sizes[2]
    assert (reader.deferred, reader.missed, reader.target) == (0, set(), dict.fromkeys(infos))
    assert reader.header is not None and reader.header["meta_archs"] == whole["meta_archs"]


@pytest.mark.parametrize("protocol", [1, 2, 4, 5])
def test_records_never_pile_up_across_batches_of_setitems(protocol):
    """2,001 records: pickle writes them in batches of 1,000 (MARK ... SETITEMS) and the last alone (SETITEM)."""
    infos = {i: {"12": {"arch_index": i}, "200": [float(i)] * 3} for i in range(2001)}
    data = pickle.dumps({"meta_archs": ["a"], "arch2infos": infos, "evaluated_indexes": set(infos)}, protocol)
    assert data.count(pickle.SETITEMS) >= 2 and pickle.SETITEM in data
    reader = StreamingUnpickler(io.BytesIO(data), "arch2infos")
    for n, (key, record) in enumerate(reader.items()):
        assert (key, record) == (n, infos[n])
        on_stack = [
            v for frame in [*reader.metastack, reader.stack] for v in frame if isinstance(v, dict) and "12" in v
        ]
        assert on_stack == []  # the record handed out left the stack, and none waits there
        assert reader.target is not None and set(reader.target.values()) <= {None}
        assert len(reader.target) == (1000 * ((n + 1) // 1000) if n < 2000 else 2001)  # handed out mid-batch
    assert n == 2000 and (reader.deferred, reader.missed) == (0, set())


def _sharing_a_container(official: Path) -> dict[str, Any]:
    """The fixture's records, where 284's dataset_seed is the very dict of 11's (equal content): the pickle of 284
    refers back to an object of record 11, which a streaming read has let go by then."""
    whole = _whole(official, less_full=False)
    infos = whole["arch2infos"]
    assert infos[284]["200"]["dataset_seed"] == infos[11]["200"]["dataset_seed"]
    infos[284]["200"]["dataset_seed"] = infos[11]["200"]["dataset_seed"]
    return whole


def test_a_back_reference_to_a_let_go_container_is_read_again_and_converts_exactly(official, nb201_csv, tmp_path):
    whole = _sharing_a_container(official)
    data = pickle.dumps(whole, protocol=4)
    first = StreamingUnpickler(io.BytesIO(data), "arch2infos")
    assert [key for key, _ in first.items()] == [0, 11]  # 284 refers to a let-go object: deferred, not guessed
    assert (first.deferred, first.done, len(first.missed)) == (1, {0, 1}, 1)
    second = StreamingUnpickler(io.BytesIO(data), "arch2infos", keep=first.missed, skip=first.done)
    assert [(key, record) for key, record in second.items()] == [(284, whole["arch2infos"][284])]
    source = tmp_path / "NATS-tss-v1_0-3ffb9.pickle.pbz2"
    source.write_bytes(bz2.compress(data))
    convert(open_source(source), tmp_path / "nb201.csv", allow_partial=True)
    assert list(csv.reader((tmp_path / "nb201.csv").open())) == reference_rows(nb201_csv)


def test_a_second_reading_refuses_a_back_reference_with_one_line(official, tmp_path, monkeypatch):
    """In a second reading (``skip`` given) a reference to a let-go object is an error, never a stand-in; the
    converter reports it as one line (forced here by making the first reading a second one)."""
    data = pickle.dumps(_sharing_a_container(official), protocol=4)
    with pytest.raises(EvictedReference, match=r"refers back to an object of an earlier record \(memo entry \d+\)"):
        list(StreamingUnpickler(io.BytesIO(data), "arch2infos", skip=()).items())
    source = tmp_path / "NATS-tss-v1_0-3ffb9.pickle.pbz2"
    source.write_bytes(bz2.compress(data))
    monkeypatch.setattr(unpickle, "StreamingUnpickler", functools.partial(StreamingUnpickler, skip=()))
    with pytest.raises(DataFileError) as info:
        convert(open_source(source), tmp_path / "nb201.csv", allow_partial=True)
    assert str(info.value).startswith(
        f"{source} is not a readable pickle (EvictedReference: a record refers back to an object of an earlier record"
    )
    assert "\n" not in str(info.value) and not (tmp_path / "nb201.csv").exists()


def test_a_refused_global_in_a_single_file_is_one_error_line(official, tmp_path):
    whole = _whole(official, less_full=False)
    whole["arch2infos"][11] = {"12": _Exploit(), "200": {}}
    source = tmp_path / "NATS-tss-v1_0-3ffb9.pickle.pbz2"
    source.write_bytes(bz2.compress(pickle.dumps(whole)))
    proc = data_cli("convert", str(source), str(tmp_path / "nb201.csv"), "--allow-partial")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith(f"error: {source}: refused global posix.system: the official files reference only ")
    assert not (ROOT / "pwned").exists() and not (tmp_path / "nb201.csv").exists()


@pytest.mark.parametrize("layout", ["single-file", "pth-legacy"])
def test_a_truncated_single_file_is_one_error_line(official, tmp_path, layout):
    whole = _whole(official, less_full=layout != "single-file")
    if layout == "single-file":
        source = tmp_path / "NATS-tss-v1_0-3ffb9.pickle.pbz2"
        data = bz2.compress(pickle.dumps(whole))
        expected = "is truncated or not bz2-compressed (Compressed file ended before the end-of-stream marker"
    else:
        import torch

        source = tmp_path / "NAS-Bench-201-v1_1-096897.pth"
        torch.save(whole, source, _use_new_zipfile_serialization=False)
        data = source.read_bytes()
        expected = "is truncated or unreadable ("
    source.write_bytes(data[: len(data) * 2 // 3])  # in the middle of record 284
    proc = data_cli("convert", str(source), str(tmp_path / "nb201.csv"), "--allow-partial")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith(f"error: {source} {expected}") and "download it again" in proc.stderr
    assert not (tmp_path / "nb201.csv").exists()


# peak memory: a synthetic single file of N re-indexed copies of the fixture records


def _ops(blob: bytes) -> list[tuple[str, Any, bytes]]:
    """(opcode name, argument, bytes) of each operation of a pickle."""
    ops = list(pickletools.genops(blob))
    ends = [pos for _, _, pos in ops[1:]] + [len(blob)]
    return [(op.name, arg, blob[pos:end]) for (op, arg, pos), end in zip(ops, ends, strict=True)]


def _globals_of(obj: Any, found: dict[int, Any]) -> dict[int, Any]:
    """The non-data objects a record holds (OrderedDict, numpy's scalar rebuilder, dtypes), by id."""
    if isinstance(obj, dict):
        found[id(type(obj))] = type(obj)
        for value in obj.values():
            _globals_of(value, found)
    elif isinstance(obj, list | tuple):
        for value in obj:
            _globals_of(value, found)
    elif isinstance(obj, np.generic):
        rebuild, (dtype, _) = obj.__reduce__()[:2]  # type: ignore[str-unpack]
        found.update({id(rebuild): rebuild, id(np.dtype): np.dtype, id(dtype): dtype})
    return found


def synthetic_writer(official: Path) -> Callable[[int, Path], None]:
    """A writer of NATS-Bench single files with N architectures: copy i is fixture record i % 3 re-indexed (its
    arch_index, and its arch_str a reference to meta_archs[i]), written as the official pickle would be, each copy
    with objects of its own and the globals shared (written once, referred back to), in batches of 1,000. The
    fixture's records are pickled once; a copy is spliced from those pieces, so N = 3,000 takes seconds."""
    with bz2.open(official / "meta.pickle.pbz2") as handle:
        meta = unpickle.load(handle)["meta_archs"]
    bases: list[Any] = []
    shared: dict[int, Any] = {}
    for j, i in enumerate(INDEXES):
        with bz2.open(official / f"{i:06d}.pickle.pbz2") as handle:
            record = unpickle.load(handle)
        for state in record.values():
            state["arch_index"], state["arch_str"] = 2_000_000_000 + j, f"@arch{j}@"  # markers to splice
        bases.append(record)
        _globals_of(record, shared)
    shared.pop(id(dict))
    everyone = list(shared.values())
    buffer = io.BytesIO()
    pickler = pickle.Pickler(buffer, 4)
    pickler.dump({"meta_archs": meta, "total_archs": len(meta), "shared": everyone, "arch2infos": {}})
    where = {key: index for key, (index, _) in pickler.memo.copy().items()}  # id -> memo index in the file
    ops = _ops(buffer.getvalue())
    assert [name for name, _, _ in ops[-4:]] == ["EMPTY_DICT", "MEMOIZE", "SETITEMS", "STOP"]
    header = b"".join(raw for name, _, raw in ops[:-2] if name != "FRAME")  # frames would not fit the splice
    memo_start = sum(name == "MEMOIZE" for name, _, _ in ops[:-2])
    pieces = []  # per base record: its operations (bytes, or what to splice in) and how many entries it memoizes
    for j, record in enumerate(bases):
        buffer = io.BytesIO()
        pickler = pickle.Pickler(buffer, 4)
        pickler.memo = {id(o): (k, o) for k, o in enumerate(everyone)}  # refer back to the shared globals
        pickler.dump(record)
        parts: list[Any] = []
        for name, arg, raw in _ops(buffer.getvalue()):
            if name in ("BINGET", "LONG_BINGET"):
                parts.append(where[id(everyone[arg])] if arg < len(everyone) else ("get", arg - len(everyone)))
            elif name == "BININT" and arg == 2_000_000_000 + j:
                parts.append(("index",))
            elif name == "SHORT_BINUNICODE" and arg == f"@arch{j}@":
                parts.append(("arch",))
            elif name not in ("PROTO", "FRAME", "STOP"):
                parts.append(raw)
        pieces.append((parts, sum(p == pickle.MEMOIZE for p in parts)))

    def write(n: int, path: Path) -> None:
        memo = memo_start
        with bz2.open(path, "wb", compresslevel=1) as out:
            out.write(header + pickle.MARK)
            for i in range(n):
                parts, memoizes = pieces[i % 3]
                chunk = [b"J" + struct.pack("<i", i)]
                for part in parts:
                    if type(part) is bytes:
                        chunk.append(part)
                    elif type(part) is int:
                        chunk.append(pickle.LONG_BINGET + struct.pack("<I", part))
                    elif part[0] == "get":
                        chunk.append(pickle.LONG_BINGET + struct.pack("<I", memo + part[1]))
                    elif part[0] == "index":
                        chunk.append(pickle.BININT + struct.pack("<i", i))
                    else:
                        chunk.append(pickle.LONG_BINGET + struct.pack("<I", where[id(meta[i])]))
                out.write(b"".join(chunk))
                memo += memoizes
                if i % 1000 == 999 and i < n - 1:
                    out.write(pickle.SETITEMS + pickle.MARK)
            out.write(pickle.SETITEMS + pickle.SETITEMS + pickle.STOP)

    return write


_PEAK = """
import resource, sys

def peak_mb():  # this process's own high-water mark: ru_maxrss would count the parent's when it is larger (Linux)
    try:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) / 1024 for line in status if line.startswith("VmHWM:"))
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
"""


def convert_measured(source: Path, out: Path) -> dict[str, float]:
    """``python -m harness.data convert SOURCE OUT --allow-partial`` in a fresh process: its peak resident memory
    (MB) and CPU seconds (of the conversion, imports excluded)."""
    script = _PEAK + (
        "import time; from harness.data.__main__ import main; import harness.data.convert\n"
        "t = time.process_time(); rc = main(['convert', sys.argv[1], sys.argv[2], '--allow-partial'])\n"
        "print(rc, peak_mb(), time.process_time() - t)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, str(source), str(out)], cwd=ROOT, capture_output=True, text=True, timeout=3600
    )
    rc, peak, cpu = proc.stdout.split()[-3:]
    assert rc == "0", proc.stderr
    return {"peak_mb": float(peak), "cpu_s": float(cpu)}


def whole_measured(source: Path) -> float:
    """The peak resident memory (MB) of unpickling ``source`` whole with the C unpickler, as the official loaders
    (and this converter before it streamed) do."""
    script = (
        _PEAK + "import bz2; from harness.data import unpickle; unpickle.load(bz2.open(sys.argv[1])); print(peak_mb())"
    )
    proc = subprocess.run([sys.executable, "-c", script, str(source)], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return float(proc.stdout.split()[-1])


def _check_copies(out: Path, n: int, nb201_csv: Path, official: Path) -> None:
    """Copy i's rows are fixture record i % 3's, re-indexed."""
    with bz2.open(official / "meta.pickle.pbz2") as handle:
        meta = unpickle.load(handle)["meta_archs"]
    reference = {(r[0], r[2]): r for r in reference_rows(nb201_csv)[1:]}
    rows = list(csv.reader(out.open()))[1:]
    assert len(rows) == 3 * n
    for row in rows[:6] + rows[-3:]:
        base = reference[(str(INDEXES[int(row[0]) % 3]), row[2])]
        assert row[3:] == base[3:] and row[1] == meta[int(row[0])]


def test_peak_memory_stays_flat_as_a_single_file_grows(official, nb201_csv, tmp_path):
    write = synthetic_writer(official)
    peaks = {}
    for n in (10, 40):
        write(n, tmp_path / f"{n}.pickle.pbz2")
        peaks[n] = convert_measured(tmp_path / f"{n}.pickle.pbz2", tmp_path / f"{n}.csv")["peak_mb"]
        _check_copies(tmp_path / f"{n}.csv", n, nb201_csv, official)
    assert peaks[40] - peaks[10] < 3, peaks  # read whole, 30 more records would take ~57 MB more


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_peak_memory_and_speed_at_300_and_3000_architectures(official, nb201_csv, tmp_path):
    """The numbers of docs/data.md: ``pytest -m slow -s tests/test_data_convert.py -k 3000``."""
    write = synthetic_writer(official)
    runs = {}
    for n in (300, 3000):
        write(n, tmp_path / f"{n}.pickle.pbz2")
        runs[n] = convert_measured(tmp_path / f"{n}.pickle.pbz2", tmp_path / f"{n}.csv")
        _check_copies(tmp_path / f"{n}.csv", n, nb201_csv, official)
        print(f"{n:5d} architectures: peak {runs[n]['peak_mb']:.1f} MB, {runs[n]['cpu_s']:.1f} CPU s")
    per_arch_mb = (runs[3000]["peak_mb"] - runs[300]["peak_mb"]) / 2700
    speed = 2700 / (runs[3000]["cpu_s"] - runs[300]["cpu_s"])
    full_mb = runs[3000]["peak_mb"] + per_arch_mb * (15625 - 3000)
    print(
        f"growth {per_arch_mb * 1024:.2f} KB per architecture; all 15,625: ~{full_mb:.0f} MB; {speed:.0f} "
        f"architectures per CPU second, so ~{15625 / speed / 60:.0f} CPU minutes"
    )
    print(
        f"300 architectures unpickled whole (the old way): peak {whole_measured(tmp_path / '300.pickle.pbz2'):.0f} MB"
    )
    assert per_arch_mb < 0.005  # flat: a few KB of table text per architecture, where a record is ~2 MB


def test_check_stops_quietly_when_its_reader_goes_away():
    """``python -m harness.data check | head``: a pipe whose reader is gone before the output comes."""
    read_end, write_end = os.pipe()
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness.data", "check"], cwd=ROOT, stdout=write_end, stderr=subprocess.PIPE
    )
    os.close(write_end)
    os.close(read_end)  # the reader is gone: every write to the pipe fails (EPIPE)
    _, stderr = proc.communicate(timeout=120)
    assert (proc.returncode, stderr) == (141, b"")
