"""Every estimator in conf/estimator/ passes these, built from its own YAML file on the real NB201 table."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from omegaconf import OmegaConf

from estimators.zero_cost import PROXIES
from harness.benchmarks import NB201
from harness.config import compose
from harness.interfaces import Estimator, EstimatorContext
from harness.plugins import build
from harness.types import Arch
from tests.conftest import CONF, ROOT, plugin_names
from tests.contracts import config_classes, plugin_classes

#: estimator configs that define an estimator; the others re-parameterise one of these (``defaults: [base]``)
ESTIMATORS = [
    n for n in plugin_names("estimator") if "defaults" not in OmegaConf.load(CONF / "estimator" / f"{n}.yaml")
]
ALIASES = sorted(set(plugin_names("estimator")) - set(ESTIMATORS))
#: settings that keep the contract fast for estimators whose defaults take seconds per architecture (their
#: aliases' too); the quality bar (tests/test_estimator_quality.py) holds them to these sizes too
TEST_SIZE = {
    "rmi": {"steps": 2, "batch_size": 8, "pool_factor": 2},
    "oneshot": {"train_images": 128, "valid_images": 32, "epochs": 1, "batch_size": 32, "bn_batches": 1},
    "zero_cost": {"batch_size": 16},
    "swap": {"repeats": 2},
    "vkdnw": {"batch_size": 8, "max_tensors": 32},
    "az_nas": {"batch_size": 16, "pool": 8},
    "zico": {"batch_size": 16},
}
BEST = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"


@pytest.fixture(scope="module")
def bench(nb201_csv, tmp_path_factory):
    return NB201("cifar10", cache_dir=str(tmp_path_factory.mktemp("cache"))).load()


def base_of(name: str) -> str:
    """The estimator config an alias re-parameterises, through aliases of aliases (``rmi_paper_ce`` -> ``rmi_paper``
    -> ``rmi``); a defining config is its own base."""
    node = OmegaConf.load(CONF / "estimator" / f"{name}.yaml")
    return base_of(str(node.defaults[0])) if "defaults" in node else name


def make(name: str, size: dict[str, dict[str, object]] | None = None) -> Estimator:
    """The estimator ``estimator=<name>`` composes to, with ``size`` (default :data:`TEST_SIZE`) settings of its
    base estimator merged in."""
    node = compose([f"estimator={name}"]).estimator
    built_name, factory = build(OmegaConf.merge(node, (TEST_SIZE if size is None else size).get(base_of(name), {})))
    est = factory()
    assert built_name == name, "the 'name' in a plug-in's YAML must equal its file name"
    assert isinstance(est, Estimator)
    return est


def context(bench: NB201, seed: int = 0) -> EstimatorContext:
    return EstimatorContext(bench.space, "nb201", "cifar10", bench.query, np.random.default_rng(seed))


def test_every_estimator_class_has_a_config_and_every_config_names_one():
    defined = plugin_classes("estimators", lambda c: issubclass(c, Estimator))
    assert config_classes("estimator", ESTIMATORS) == defined
    assert all(base_of(name) in ESTIMATORS for name in ALIASES)


def test_every_zero_cost_proxy_has_its_own_name():
    """``estimator=<proxy>`` for every proxy (runs of different proxies land in different folders and rows)."""
    named = {str(OmegaConf.load(CONF / "estimator" / f"{n}.yaml").proxy) for n in ALIASES if base_of(n) == "zero_cost"}
    assert named == set(PROXIES)
    assert all(OmegaConf.load(CONF / "estimator" / f"{p}.yaml").name == p for p in named)


@pytest.mark.parametrize("name", ESTIMATORS)
def test_fit_then_estimate(name, bench):
    est = make(name)
    fit_cost = est.fit(context(bench))
    assert fit_cost >= 0
    rng = np.random.default_rng(0)
    archs = [bench.space.sample(rng) for _ in range(5)]
    for arch in archs:
        e = est.estimate(arch)
        assert math.isfinite(e.score) and e.cost_s >= 0 and isinstance(e.device, str)
    if est.tags.deterministic:
        again = make(name)
        again.fit(context(bench))
        assert [again.estimate(a).score for a in archs] == [est.estimate(a).score for a in archs]


@pytest.mark.parametrize("name", ALIASES)
def test_aliases_run(name, bench):
    """``estimator=<alias>`` composes to its base estimator under the alias's name (used for folders and reports),
    and fits and scores two architectures (at :data:`TEST_SIZE`)."""
    est = make(name)
    assert est.fit(context(bench)) >= 0
    for arch in (bench.space.parse(BEST), Arch((3, 2, 4, 1, 0, 3))):
        e = est.estimate(arch)
        assert math.isfinite(e.score) and e.cost_s >= 0, (name, e)


def test_no_plugin_can_reach_test_accuracy():
    """Searchers and estimators never see test accuracy: nothing in their code asks for it."""
    for folder in ("estimators", "searchers"):
        for path in (ROOT / folder).glob("*.py"):
            assert not re.search(r"test_acc|test_accuracy", path.read_text()), f"{path} mentions test accuracy"
