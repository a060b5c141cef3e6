"""The one-shot estimator and its supernet training, on tiny settings (a few dozen CIFAR-10 images, a few SGD steps).

BatchNorm recalibration, augmentation, training, checkpoint resume / reuse / rejection, settings validation, both
scores, and order-independent determinism (weight inheritance is in test_networks.py). Over 300 lines: the
checkpoint cases share this file's tiny estimator fixtures.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import estimators.oneshot as oneshot
from estimators import oneshot_training
from estimators.oneshot import OneShot, evaluate, recalibrate_bn
from estimators.oneshot_training import augment, to_input
from harness import cifar10, seeding
from harness.errors import ConfigError
from harness.interfaces import EstimatorContext
from harness.networks.nb201 import NB201Config
from harness.networks.supernet import NB201Supernet, Supernet
from harness.spaces import MacroSpace, NB201Space, ToySpace
from harness.types import Arch

#: 3 steps of 16 images per epoch, 2 epochs, 32 held-out images, 2 BatchNorm batches: about a second per fit
TINY = {"train_images": 48, "valid_images": 32, "epochs": 2, "batch_size": 16, "lr": 0.1, "bn_batches": 2}
ARCHS = [Arch((3, 2, 4, 1, 0, 3)), Arch((0, 0, 0, 0, 0, 0)), Arch((1, 3, 3, 0, 2, 3)), Arch((4, 0, 1, 3, 3, 2))]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny tensors: one thread is fastest, and robust on a busy machine (threads fighting for cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _no_query(*args: object, **kwargs: object) -> None:
    raise AssertionError("the one-shot estimator never looks up the benchmark table")


def ctx(seed: int = 0, *, space: object = None, dataset: str = "cifar10") -> EstimatorContext:
    return EstimatorContext(
        space or NB201Space(),
        "nb201",
        dataset,
        _no_query,
        seeding.rng(seed, "estimator"),
        seed=seed,  # type: ignore[arg-type]
    )


@pytest.fixture(scope="module")
def cifar() -> None:
    if not cifar10.jpeg_archive_path().is_file():
        pytest.skip("CIFAR-10 JPEG archive not found (set HARNESS_DATA_DIR)")


@pytest.fixture
def ckpt_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cifar: None) -> Path:
    """Checkpoints go to a fresh folder; the decoded CIFAR-10 images still come from the shared cache."""
    root = tmp_path / "cache"
    monkeypatch.setattr(oneshot, "cache_dir", lambda override=None: root)
    return root


class Recording(OneShot):
    """Records the epochs it trains; raises after epoch ``stop_after`` (an interrupted training)."""

    def __init__(self, stop_after: int | None = None, **params: object) -> None:
        super().__init__(**{**TINY, **params})  # type: ignore[arg-type]
        self.stop_after = stop_after
        self.epochs_trained: list[int] = []

    def on_epoch_end(self, epoch: int, checkpoint: Path, loss: float) -> None:
        self.epochs_trained.append(epoch)
        if epoch == self.stop_after:
            raise KeyboardInterrupt(f"interrupted after epoch {epoch}")


def weights(est: OneShot) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in est.training.supernet.state_dict().items()}


def same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ------------------------------------------------------------------------------------------------ pieces


def test_bn_recalibration_replaces_running_statistics() -> None:
    seeding.seed_torch(seeding.rng(0, "test"))
    sn = NB201Supernet(NB201Config(C=8, N=1))
    gen = torch.Generator().manual_seed(2)
    net = sn.extract((3, 2, 4, 1, 0, 3))
    before = {k: v.clone() for k, v in net.state_dict().items() if "running" in k}
    batches = [torch.randn(8, 3, 32, 32, generator=gen) * 2 + 1 for _ in range(3)]
    recalibrate_bn(net, batches)
    assert not net.training
    after = {k: v for k, v in net.state_dict().items() if "running" in k}
    assert all(not torch.equal(before[k], after[k]) for k in before)
    stem_bn = net.stem[1]
    assert int(stem_bn.num_batches_tracked) == 3
    with torch.no_grad():  # momentum None: the plain average of the per-batch means
        expected = torch.stack([net.stem[0](b).mean((0, 2, 3)) for b in batches]).mean(0)
    torch.testing.assert_close(stem_bn.running_mean, expected)
    # the supernet itself is untouched
    assert torch.equal(sn.stem[1].running_mean, before["stem.1.running_mean"])


def test_augment_is_a_seeded_crop_and_flip() -> None:
    images = torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    out = augment(images, torch.Generator().manual_seed(5))
    assert out.dtype == torch.uint8 and out.shape == images.shape
    assert torch.equal(out, augment(images, torch.Generator().manual_seed(5)))
    padded = nn.functional.pad(images, (4, 4, 4, 4))
    for i in range(len(images)):
        crops = [padded[i, :, r : r + 32, c : c + 32] for r in range(9) for c in range(9)]
        assert any(torch.equal(out[i], crop) or torch.equal(out[i], crop.flip(2)) for crop in crops)
    x = to_input(torch.full((1, 3, 2, 2), 255, dtype=torch.uint8))
    torch.testing.assert_close(x[0, :, 0, 0], (1 - torch.tensor(cifar10.MEAN)) / torch.tensor(cifar10.STD))


# ------------------------------------------------------------------------------------------------ estimator


def _path_loss(supernet: Supernet, x: torch.Tensor, y: torch.Tensor, paths: list[tuple[int, ...]]) -> float:
    """Mean cross-entropy over ``paths`` on the (un-augmented) images, with batch statistics."""
    supernet.train()
    with torch.no_grad():
        return float(np.mean([nn.functional.cross_entropy(supernet(x, ops), y).item() for ops in paths]))


def test_training_reduces_the_loss(ckpt_root: Path) -> None:
    est = OneShot(train_images=32, valid_images=16, epochs=12, batch_size=8, lr=0.1, bn_batches=1)
    seconds = est.fit(ctx())
    assert seconds > 0 and len(est.training.losses) == 12 and np.isfinite(est.training.losses).all()
    paths = [tuple(ops) for ops in seeding.rng(0, "paths").integers(0, 5, (10, 6)).tolist()]
    x, y = to_input(est._train_x), est._train_y
    initial = oneshot_training.fresh(est.recipe(ctx())).supernet  # the seeded initial weights
    before, after = _path_loss(initial, x, y, paths), _path_loss(est.training.supernet, x, y, paths)
    assert after < before - 0.1, (before, after)


def test_data_split_is_disjoint_and_from_the_training_split(ckpt_root: Path) -> None:
    est = OneShot(**{**TINY, "eval_images": 20})  # type: ignore[arg-type]
    est.fit(ctx())
    assert len(est.train_indices) == 48 and len(est.eval_indices) == 20
    assert not set(est.train_indices) & set(est.eval_indices)
    assert est.eval_indices.max() < cifar10.SPLIT_SIZES["train"]
    # a random draw in the order drawn, not sorted into the split's (class-ordered) file order
    assert not np.all(np.diff(est.eval_indices) > 0)
    assert len(set(est._valid_y[:10].tolist())) > 1
    other = OneShot(**TINY)  # type: ignore[arg-type]
    other.fit(ctx(seed=1))
    assert not np.array_equal(est.train_indices, other.train_indices)


def test_checkpoint_layout(ckpt_root: Path) -> None:
    est = Recording()
    seconds = est.fit(ctx())
    path = est.checkpoint_path(ctx())
    assert path.parent.parent == ckpt_root / "oneshot" and len(path.parent.name) == 16 and path.is_file()
    saved = torch.load(path, weights_only=True)
    assert saved["epoch"] == 2 and saved["train_seconds"] == seconds and len(saved["losses"]) == 2
    assert {"supernet", "optimizer", "scheduler", "config", "config_hash"} <= saved.keys()
    assert saved["config"]["seed"] == 0 and saved["config"]["space"] == "nb201"
    assert saved["config"]["cell_bn_affine"] is False and saved["config"]["lr"] == 0.1
    assert not list(path.parent.glob("*.tmp"))
    # the hash covers what changes training, not what only changes evaluation
    assert OneShot(**{**TINY, "lr": 0.3}).checkpoint_path(ctx()) != path  # type: ignore[arg-type]
    assert OneShot(**TINY).checkpoint_path(ctx(seed=1)) != path  # type: ignore[arg-type]
    assert OneShot(**TINY).checkpoint_path(ctx(space=MacroSpace())) != path  # type: ignore[arg-type]
    assert OneShot(**{**TINY, "cell_bn_affine": True}).checkpoint_path(ctx()) != path  # type: ignore[arg-type]
    assert OneShot(**{**TINY, "train_images": 64}).checkpoint_path(ctx()) != path  # type: ignore[arg-type]
    scoring = {"valid_images": 40, "bn_batches": 5, "eval_images": 10, "score": "loss"}
    same = OneShot(**{**TINY, **scoring})  # type: ignore[arg-type]
    assert same.checkpoint_path(ctx()) == path


def test_resume_continues_from_the_saved_epoch(ckpt_root: Path, tmp_path: Path, monkeypatch) -> None:
    interrupted = Recording(stop_after=1)
    with pytest.raises(KeyboardInterrupt):
        interrupted.fit(ctx())
    path = interrupted.checkpoint_path(ctx())
    first = torch.load(path, weights_only=True)
    assert first["epoch"] == 1
    resumed = Recording()
    seconds = resumed.fit(ctx())
    assert resumed.epochs_trained == [2] and resumed.training.resumed_from == 1
    assert seconds == torch.load(path, weights_only=True)["train_seconds"] > first["train_seconds"]
    # a resumed training ends where an uninterrupted one does
    monkeypatch.setattr(oneshot, "cache_dir", lambda override=None: tmp_path / "other")
    straight = Recording()
    straight.fit(ctx())
    assert straight.epochs_trained == [1, 2]
    assert same_weights(weights(resumed), weights(straight))
    assert [resumed.estimate(a).score for a in ARCHS] == [straight.estimate(a).score for a in ARCHS]


def test_finished_checkpoint_is_reused_and_charges_recorded_seconds(ckpt_root: Path) -> None:
    first = Recording()
    seconds = first.fit(ctx())
    again = Recording()
    assert again.fit(ctx()) == seconds and again.epochs_trained == []
    assert same_weights(weights(first), weights(again))
    path = first.checkpoint_path(ctx())
    saved = torch.load(path, weights_only=True)
    saved["train_seconds"] = 1234.5  # what is charged is what the checkpoint records
    torch.save(saved, path)
    assert Recording().fit(ctx()) == 1234.5


def _garbage(path: Path) -> None:
    path.write_bytes(b"not a checkpoint" * 10)


def _truncated(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:1000])


def _edit(change):
    def damage(path: Path) -> None:
        saved = torch.load(path, weights_only=True)
        change(saved)
        torch.save(saved, path)

    return damage


def _rename_key(saved: dict) -> None:
    saved["supernet"]["renamed.weight"] = saved["supernet"].pop("classifier.weight")


def _wrong_shape(saved: dict) -> None:
    saved["supernet"]["classifier.weight"] = torch.zeros(3, 3)


@pytest.mark.parametrize(
    ("damage", "why"),
    [
        (_garbage, "unreadable"),
        (_truncated, "unreadable"),
        (_edit(lambda s: s.update(config_hash="0" * 64)), "config hash differs"),
        (_edit(_rename_key), "state-dict keys"),
        (_edit(_wrong_shape), "cannot be loaded"),
        (_edit(lambda s: s.update(epoch=7)), "bad epoch"),
        (_edit(lambda s: s.pop("supernet")), "not a oneshot checkpoint"),
    ],
)
def test_corrupted_or_mismatched_checkpoint_is_retrained(ckpt_root: Path, caplog, damage, why: str) -> None:
    clean = Recording()
    clean.fit(ctx())
    damage(clean.checkpoint_path(ctx()))
    retrained = Recording()
    with caplog.at_level(logging.WARNING, logger="estimators.oneshot_training"):
        retrained.fit(ctx())
    assert retrained.epochs_trained == [1, 2]
    assert any(why in r.getMessage() and "training from scratch" in r.getMessage() for r in caplog.records)
    assert same_weights(weights(clean), weights(retrained))
    assert torch.load(clean.checkpoint_path(ctx()), weights_only=True)["epoch"] == 2  # healed


@pytest.mark.parametrize(
    ("params", "context", "match"),
    [
        ({"epochs": 0}, {}, "epochs must be an integer >= 1"),
        ({"train_images": 0}, {}, "train_images must be an integer >= 1"),
        ({"valid_images": -1}, {}, "valid_images must be"),
        ({"train_images": 45_000, "valid_images": 5_001}, {}, "exceeds the 50000 images"),
        ({"batch_size": 64}, {}, "batch_size 64 exceeds train_images 48"),
        ({"eval_images": 33}, {}, "eval_images must be in 1..valid_images"),
        ({"lr": 0.0}, {}, "lr must be"),
        ({"bn_batches": 0}, {}, "bn_batches must be"),
        ({"epochs": 1.5}, {}, "epochs must be an integer"),
        ({"score": "tau"}, {}, "score must be one of accuracy, loss"),
        ({"cell_bn_affine": 1}, {}, "cell_bn_affine must be true or false"),
        ({}, {"dataset": "cifar100"}, "only CIFAR-10"),
        ({}, {"space": ToySpace()}, "has no supernet"),
    ],
)
def test_bad_settings_fail_before_any_work(ckpt_root: Path, monkeypatch, params, context, match) -> None:
    monkeypatch.setattr(cifar10, "load_split", lambda *a, **k: pytest.fail("loaded images"))
    with pytest.raises(ConfigError, match=match):
        OneShot(**{**TINY, **params}).fit(ctx(**context))  # type: ignore[arg-type]
    assert not ckpt_root.exists()


def test_scores_are_deterministic_whatever_the_order(ckpt_root: Path) -> None:
    est = OneShot(**TINY)  # type: ignore[arg-type]
    est.fit(ctx())
    forward = [est.estimate(a) for a in ARCHS]
    assert all(e.score < 0.0 and e.cost_s > 0 and e.device == "cpu" for e in forward)  # minus a cross-entropy
    again = OneShot(**TINY)  # type: ignore[arg-type]
    again.fit(ctx())  # from the checkpoint
    backward = [again.estimate(a) for a in reversed(ARCHS + ARCHS[:1])]
    assert [e.score for e in forward] == [e.score for e in reversed(backward[1:])]
    assert backward[0].score == forward[0].score
    # BatchNorm batches depend on (seed, architecture) only
    b1, b2 = est.bn_batches_for(ARCHS[0]), again.bn_batches_for(ARCHS[0])
    assert all(torch.equal(x, y) for x, y in zip(b1, b2, strict=True))
    assert not torch.equal(b1[0], est.bn_batches_for(ARCHS[2])[0])


def test_loss_score_is_the_negated_held_out_cross_entropy(ckpt_root: Path) -> None:
    """``score=loss`` reuses the supernet of ``score=accuracy`` (the same recipe) and scores minus the mean
    cross-entropy of the same recalibrated path on the same images."""
    by_accuracy = Recording(score="accuracy")
    by_accuracy.fit(ctx())
    by_loss = Recording(score="loss")
    by_loss.fit(ctx())
    assert by_loss.epochs_trained == []  # reused
    for arch in ARCHS[:2]:
        net = by_loss.training.supernet.extract(arch.ops)
        recalibrate_bn(net, by_loss.bn_batches_for(arch))
        with torch.no_grad():
            logits = net(by_loss._valid_x)
        expected = -float(nn.functional.cross_entropy(logits.double(), by_loss._valid_y))
        assert by_loss.estimate(arch).score == pytest.approx(expected, rel=1e-9) and expected < 0
        accuracy = 100.0 * float((logits.argmax(1) == by_loss._valid_y).float().mean())
        assert by_accuracy.estimate(arch).score == pytest.approx(accuracy)
        assert evaluate(net, by_loss._valid_x, by_loss._valid_y)[1] == pytest.approx(-expected, rel=1e-9)


def test_nbmacro_supernet_trains_and_scores(ckpt_root: Path) -> None:
    est = OneShot(train_images=16, valid_images=16, epochs=1, batch_size=8, bn_batches=1)
    assert est.fit(ctx(space=MacroSpace())) > 0
    score = est.estimate(Arch((0, 1, 2, 0, 1, 2, 0, 1))).score
    assert math.isfinite(score) and score < 0.0  # minus a cross-entropy
