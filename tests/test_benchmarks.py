from __future__ import annotations

import collections
import json
import os
import time

import numpy as np
import pytest

from harness import sampling
from harness.benchmarks import NB201, NBMacro
from harness.errors import ConfigError, DataFileError, OutOfDomainError
from harness.types import Arch

BEST = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"


@pytest.fixture(scope="module")
def nb201_tables(nb201_csv, tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    return {ds: NB201(ds, cache_dir=str(cache)).load() for ds in NB201.datasets}


# the numbers checked when the data was put in ../shared/data (its README)
@pytest.mark.parametrize(
    ("dataset", "best_test", "best_valid", "test_of_best_valid"),
    [("cifar10", 94.37, 91.61, 94.37), ("cifar100", 73.51, 73.49, 73.51), ("ImageNet16-120", 47.31, 46.73, 46.20)],
)
def test_nb201_matches_published_checks(nb201_tables, dataset, best_test, best_valid, test_of_best_valid):
    b = nb201_tables[dataset]
    archs = list(b.space.enumerate())
    valid = np.array([b.query(a).valid_acc for a in archs])
    test = np.array([b.test_accuracy(a) for a in archs])
    assert test.max() == pytest.approx(best_test, abs=0.005)
    assert valid.max() == pytest.approx(best_valid, abs=0.005)
    assert test[valid.argmax()] == pytest.approx(test_of_best_valid, abs=0.005)
    assert b.optimum() == (valid.max(), test.max())


def test_nb201_fidelities_and_costs(nb201_tables):
    b = nb201_tables["cifar10"]
    arch = b.space.parse(BEST)
    full, short = b.query(arch), b.query(arch, fidelity="12ep")
    assert full.fidelity == "200ep" and short.fidelity == "12ep"
    assert short.train_cost_s == pytest.approx(full.train_cost_s * 12 / 200, rel=1e-4)
    assert short.valid_acc < full.valid_acc
    assert not hasattr(full, "test_acc")
    with pytest.raises(OutOfDomainError, match="no fidelity '50ep'; valid: 200ep, 12ep"):
        b.query(arch, fidelity="50ep")
    with pytest.raises(OutOfDomainError, match="not an architecture of nb201"):
        b.query(Arch((0, 1, 2)))


def test_unknown_dataset_lists_the_valid_ones(nb201_csv):
    with pytest.raises(
        ConfigError, match="'cifar11' is not a dataset of nb201; valid: cifar10, cifar100, ImageNet16-120"
    ):
        NB201("cifar11").load()


def test_missing_file_names_it_and_its_source(tmp_path):
    with pytest.raises(DataFileError) as err:
        NB201("cifar10", data_dir=str(tmp_path)).load()
    msg = str(err.value)
    assert str(tmp_path / "nb201" / "nb201.csv") in msg and "valid_acc_12ep" in msg and "NATS-Bench" in msg
    assert "HARNESS_DATA_DIR" in msg


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("index,arch\n0,x\n", "lacks the columns dataset, valid_acc"),
        (
            "arch,dataset,valid_acc,test_acc,valid_acc_12ep,train_time_s,train_time_12ep_s\n"
            "|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|,cifar10,1,1,1,1,1\n",
            "unknown operation 'conv'",
        ),
        (
            "arch,dataset,valid_acc,test_acc,valid_acc_12ep,train_time_s,train_time_12ep_s\n"
            f"{BEST},cifar10,1,1,1,1,1\n",
            "exactly one row for each of the 15625",
        ),
    ],
)
def test_malformed_table_is_a_clear_error(tmp_path, content, match):
    (tmp_path / "nb201").mkdir()
    (tmp_path / "nb201" / "nb201.csv").write_text(content)
    with pytest.raises(DataFileError, match=match):
        NB201("cifar10", data_dir=str(tmp_path), cache_dir=str(tmp_path / "cache")).load()


def test_cache_is_built_once_reused_and_invalidated(nb201_csv, tmp_path):
    cache = tmp_path / "cache"
    NB201("cifar10", cache_dir=str(cache)).load()
    files = list((cache / "tables").glob("nb201-*.npz"))
    assert len(files) == 1
    t0 = time.perf_counter()
    b = NB201("cifar100", cache_dir=str(cache)).load()
    assert time.perf_counter() - t0 < 1.0  # a cached load is milliseconds; 1 s leaves room for a loaded CI box
    assert b.query(b.space.parse(BEST)).valid_acc == pytest.approx(73.49, abs=0.01)
    # a changed source (here: a copy with another mtime) gets a new index instead of the stale one
    data = tmp_path / "data" / "nb201"
    data.mkdir(parents=True)
    (data / "nb201.csv").write_bytes(nb201_csv.read_bytes())
    os.utime(data / "nb201.csv", ns=(1, 1))
    NB201("cifar10", data_dir=str(tmp_path / "data"), cache_dir=str(cache)).load()
    assert len(list((cache / "tables").glob("nb201-*.npz"))) == 2


def test_nbmacro_splits_runs_into_signal_and_report(data_dir, tmp_path):
    path = data_dir / "nbmacro" / "nas-bench-macro_cifar10.json"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    raw = json.loads(path.read_text())
    b = NBMacro("cifar10", cache_dir=str(tmp_path)).load()
    assert not b.has_train_cost
    for key in ["02012100", "11111221", "00000000", "22222222"]:
        runs = raw[key]["test_acc"]
        arch = b.space.parse(key)
        obs = b.query(arch)
        assert obs.valid_acc == pytest.approx(runs[0])
        assert np.isnan(obs.train_cost_s)
        assert b.test_accuracy(arch) == pytest.approx((runs[1] + runs[2]) / 2)
    assert max(v["mean_acc"] for v in raw.values()) == pytest.approx(93.13, abs=0.005)


def test_nbmacro_copies_are_the_release_classes_and_counted_once(data_dir):
    """The release copied one trained network's entry to every string of its class (MacroSpace.iso_key): entries
    of one class are identical, and no two classes share their three runs, so the classes are exactly the distinct
    results and the harness counts 3,969 architectures (halves included)."""
    path = data_dir / "nbmacro" / "nas-bench-macro_cifar10.json"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    raw = json.loads(path.read_text())
    space = NBMacro.space
    classes: dict[str, list[str]] = collections.defaultdict(list)
    for text in raw:
        classes[space.iso_key(space.parse(text))].append(text)
    assert len(raw) == 6561 and len(classes) == 3969
    assert all(raw[text] == raw[key] for key, texts in classes.items() for text in texts)
    assert len({tuple(raw[key]["test_acc"]) for key in classes}) == 3969
    assert raw["00011110"]["test_acc"] == raw["00011101"]["test_acc"]
    halves = {h: sampling._distinct(space, h) for h in sampling.ARCH_SPLITS}
    assert halves["all"] == 3969 == halves["select"] + halves["report"]
    assert all(len({sampling.split_of(space, space.parse(t)) for t in texts}) == 1 for texts in classes.values())


def test_nbmacro_malformed_json(tmp_path):
    (tmp_path / "nbmacro").mkdir()
    (tmp_path / "nbmacro" / "nas-bench-macro_cifar10.json").write_text("{not json")
    with pytest.raises(DataFileError, match="is not valid JSON"):
        NBMacro("cifar10", data_dir=str(tmp_path), cache_dir=str(tmp_path / "c")).load()


@pytest.mark.parametrize("content", [b"garbage", b"PK\x03\x04 truncated zip"])
def test_an_unreadable_table_index_is_rebuilt(nb201_csv, tmp_path, content, caplog):
    first = NB201("cifar10", cache_dir=str(tmp_path)).load()
    (index,) = (tmp_path / "tables").glob("nb201-*.npz")
    index.write_bytes(content)
    again = NB201("cifar10", cache_dir=str(tmp_path)).load()
    arch = first.space.parse(
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
    )
    assert (
        again.test_accuracy(arch) == first.test_accuracy(arch)
        and "rebuilding the unreadable table index" in caplog.text
    )


def test_the_validation_view_answers_as_the_benchmark_without_enumerating_the_space(
    nb201_tables, data_dir, monkeypatch
):
    """``validation()`` copies the table's validation columns, never walks the space, and answers every
    architecture and fidelity as ``query`` does; what is not in the table is the same out-of-domain error."""
    from harness.benchmarks.nb301 import NB301

    for bench in (nb201_tables["cifar10"], NBMacro("cifar10").load(), NB301().load()):

        def refuse(*_: object) -> None:
            raise AssertionError("validation() enumerated the space")

        with monkeypatch.context() as patch:
            patch.setattr(type(bench.space), "enumerate", refuse)
            query = bench.validation()
        for arch in bench.space.enumerate():
            for fidelity in bench.fidelities:
                mine, theirs = query(arch, fidelity=fidelity), bench.query(arch, fidelity=fidelity)
                assert (mine.valid_acc, mine.fidelity) == (theirs.valid_acc, theirs.fidelity)
                assert (
                    mine.train_cost_s == theirs.train_cost_s or np.isnan([mine.train_cost_s, theirs.train_cost_s]).all()
                )
    with pytest.raises(OutOfDomainError, match="no fidelity 'x'; valid: 200ep, 12ep"):
        nb201_tables["cifar10"].validation()(Arch((0,) * 6), fidelity="x")
    with pytest.raises(OutOfDomainError, match="not an architecture of nb201"):
        nb201_tables["cifar10"].validation()(Arch((9,) * 6))
