"""``python -m harness.data``: the official NATS-Bench / NAS-Bench-201 files convert to nb201.csv's exact rows, bad
files are one error line, a partial table is refused by the benchmark unless allowed, ``check`` fits one screen."""

from __future__ import annotations

import bz2
import csv
import hashlib
import json
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.benchmarks.nb201 import NB201
from harness.data import unpickle
from harness.data.convert import convert
from harness.data.official import open_source
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
    import os

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


def _whole(official: Path, less_full: bool) -> dict[str, object]:
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
