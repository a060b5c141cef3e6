"""Every estimator in conf/estimator/ passes these, built from its own YAML file on the real NB201 table."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from omegaconf import OmegaConf

from harness.benchmarks import NB201
from harness.experiment import build
from harness.interfaces import Estimator, EstimatorContext
from tests.conftest import CONF, ROOT, plugin_names

#: estimator configs that define an estimator; the others re-parameterise one of these (``defaults: [base]``) and
#: are checked by ``test_aliases_compose``
ESTIMATORS = [
    n for n in plugin_names("estimator") if "defaults" not in OmegaConf.load(CONF / "estimator" / f"{n}.yaml")
]
ALIASES = sorted(set(plugin_names("estimator")) - set(ESTIMATORS))
#: settings that keep the contract fast for estimators whose defaults take seconds per architecture
TEST_SIZE = {
    "rmi": {"steps": 2, "batch_size": 8, "pool_factor": 2},
    "oneshot": {"train_images": 128, "valid_images": 32, "epochs": 1, "batch_size": 32, "bn_batches": 1},
}


@pytest.fixture(scope="module")
def bench(nb201_csv, tmp_path_factory):
    return NB201("cifar10", cache_dir=str(tmp_path_factory.mktemp("cache"))).load()


def make(name: str) -> Estimator:
    node = OmegaConf.merge(OmegaConf.load(CONF / "estimator" / f"{name}.yaml"), TEST_SIZE.get(name, {}))
    built_name, factory = build(node)
    est = factory()
    assert built_name == name, "the 'name' in a plug-in's YAML must equal its file name"
    assert isinstance(est, Estimator)
    return est


def context(bench: NB201, seed: int = 0) -> EstimatorContext:
    return EstimatorContext(bench.space, "nb201", "cifar10", bench.query, np.random.default_rng(seed))


def test_every_estimator_has_a_config():
    assert {"full_train", "train12"} <= set(ESTIMATORS)


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


@pytest.mark.parametrize("name", [n for n in ESTIMATORS if n not in TEST_SIZE])
def test_scores_rank_better_architectures_higher(name, bench):
    """Higher score = predicted better. Estimators shrunk by TEST_SIZE rank nothing at that size; their ranking
    quality is measured at full size with ``task=rank`` (see the README)."""
    est = make(name)
    est.fit(context(bench))
    rng = np.random.default_rng(1)
    archs = [bench.space.sample(rng) for _ in range(30)]
    from harness.metrics import kendall_tau

    tau = kendall_tau([est.estimate(a).score for a in archs], [bench.test_accuracy(a) for a in archs])
    assert tau > 0.2, f"{name}: higher score must mean predicted better (tau={tau:.2f})"


@pytest.mark.parametrize("name", ALIASES)
def test_aliases_compose(name, tmp_path):
    """``estimator=<alias>`` composes to its base estimator with the alias's name (used for folders and reports)."""
    from tests.conftest import compose_cfg

    cfg = compose_cfg([f"estimator={name}"], tmp_path)
    assert cfg.estimator.name == name
    assert OmegaConf.load(CONF / "estimator" / f"{name}.yaml").defaults[0] in ESTIMATORS
    built_name, factory = build(cfg.estimator)
    assert built_name == name and isinstance(factory(), Estimator)


def test_no_plugin_can_reach_test_accuracy():
    """Searchers and estimators never see test accuracy: nothing in their code asks for it."""
    for folder in ("estimators", "searchers"):
        for path in (ROOT / folder).glob("*.py"):
            assert not re.search(r"test_acc|test_accuracy", path.read_text()), f"{path} mentions test accuracy"
