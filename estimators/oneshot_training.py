"""Supernet training for one-shot NAS: uniform single-path sampling (SPOS), with resumable checkpoints.

"Single Path One-Shot Neural Architecture Search with Uniform Sampling" (Guo et al., ECCV 2020): every step samples
one architecture uniformly and trains only its path of the supernet (:mod:`harness.networks.supernet`), with
NB201's weight-sharing optimiser (see :data:`LR_MIN`). The initial weights, and per epoch the batch order, the
paths and the augmentation, come from named streams of the seed, so a resumed training equals an uninterrupted one.

Checkpoint: one file per :class:`Recipe`, rewritten atomically after every epoch. A file that is unreadable, of
another recipe, or does not fit the supernet is refused with one logged warning, and training starts afresh.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from harness import cifar10, seeding
from harness.budget import stopwatch
from harness.cache.keys import code_hash
from harness.errors import EstimatorError
from harness.interfaces import SearchSpace
from harness.networks.supernet import Supernet, build_supernet
from harness.paths import write_atomic

log = logging.getLogger(__name__)

#: NB201's weight-sharing optimiser (xautodl ``configs/nas-benchmark/algos/RANDOM.config``, ``SETN.config``,
#: ``weight-sharing.config``): SGD, Nesterov momentum 0.9, weight decay 5e-4, lr 0.025 at batch 64 with a cosine
#: schedule down to 0.001, stepped per batch as there
MOMENTUM = 0.9
WEIGHT_DECAY = 5e-4
LR_MIN = 0.001
#: gradient-norm clipping at 5, as in NB201's weight-sharing scripts (xautodl ``exps/algos/RANDOM-NAS.py``); paths
#: differ wildly in scale (a cell of skip connections sums its inputs), and early training is unstable without it
GRAD_CLIP = 5.0
#: networks and images in NHWC layout: about 20% faster convolutions on a CPU (oneDNN), also fine on CUDA
MEMORY_FORMAT = torch.channels_last
_KEYS = {"config_hash", "epoch", "train_seconds", "supernet", "optimizer", "scheduler"}


def augment(images: Tensor, generator: torch.Generator) -> Tensor:
    """Standard CIFAR augmentation of uint8 images, drawn from a torch generator: random 32x32 crop of the
    zero-padded (4 px) image, then a horizontal flip with probability 1/2; returns uint8 (B, 3, 32, 32). The draws
    (crop offsets, then flips) are made here, every step; :func:`harness.cifar10.crop_and_flip` applies them.

    Args:
        images: uint8 (B, 3, 32, 32) on any device.
        generator: a CPU ``torch.Generator``; the only randomness used (drawn on the CPU, so any device gives the
            same images).
    """
    b = images.shape[0]
    offsets = torch.randint(0, 9, (2, b), generator=generator)
    flip = torch.rand(b, generator=generator) < 0.5
    return cifar10.crop_and_flip(images, offsets[0], offsets[1], flip, pad=4)


def to_input(images: Tensor) -> Tensor:
    """uint8 (B, 3, H, W) -> float32 normalised (:func:`harness.cifar10.normalize_tensor`), in NHWC layout.

    Args:
        images: uint8 NCHW tensor.
    """
    return cifar10.normalize_tensor(images).contiguous(memory_format=MEMORY_FORMAT)


@dataclass(frozen=True)
class Recipe:
    """Everything besides the images themselves that determines a trained supernet.

    Args:
        space: the search space (its name picks the supernet; ``sample`` draws the path of each step).
        dataset: the images' dataset name (recorded in the config).
        seed: the seed of every random stream.
        train_images: how many training images there are (each epoch visits them once).
        epochs: training epochs (a last partial batch of an epoch is dropped).
        batch_size: images per step.
        lr: initial learning rate of the cosine schedule (down to :data:`LR_MIN`).
        cell_bn_affine: learnt scale and shift in the choices' BatchNorm (see :mod:`harness.networks.supernet`).
        device: torch device of the training (not part of :meth:`config`).
    """

    space: SearchSpace
    dataset: str
    seed: int
    train_images: int
    epochs: int
    batch_size: int
    lr: float
    cell_bn_affine: bool
    device: str = "cpu"

    def config(self) -> dict[str, Any]:
        """The recipe as a JSON-able dict, fixed settings included: what a checkpoint is keyed by."""
        return {
            # the code that trains it, keyed as the score cache keys a score (harness.cache.keys): an edit that
            # changes what training computes never reuses an old checkpoint, and one that does not keeps it
            "code": code_hash(__name__, type(self.space).__module__),
            "space": self.space.name,
            "dataset": self.dataset,
            "seed": self.seed,
            "train_images": self.train_images,
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "lr": float(self.lr),
            "lr_min": LR_MIN,
            "momentum": MOMENTUM,
            "nesterov": True,
            "weight_decay": WEIGHT_DECAY,
            "grad_clip": GRAD_CLIP,
            "schedule": "cosine per batch",
            "augment": "crop32 pad4 + hflip",
            "sampling": "uniform single path",
            "cell_bn_affine": bool(self.cell_bn_affine),
        }

    def digest(self) -> str:
        """SHA-256 (hex) of :meth:`config` as canonical JSON."""
        text = json.dumps(self.config(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    @property
    def steps(self) -> int:
        """Steps per epoch."""
        return self.train_images // self.batch_size


@dataclass
class Training:
    """A supernet with its optimiser and schedule after ``epoch`` epochs of a recipe.

    Args:
        supernet, optimizer, scheduler: the training objects.
        epoch: epochs done. seconds: training seconds so far (:func:`~harness.budget.stopwatch`).
        losses: the mean training loss of each epoch done. resumed_from: epochs a checkpoint had done when loaded.
    """

    supernet: Supernet
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    epoch: int = 0
    seconds: float = 0.0
    losses: list[float] = field(default_factory=list)
    resumed_from: int = 0


def fresh(recipe: Recipe) -> Training:
    """The supernet (seeded initial weights), optimiser and cosine schedule, as at the start of training.

    Args:
        recipe: the training recipe.
    """
    seeding.seed_torch(seeding.rng(recipe.seed, "oneshot:init"))
    supernet = build_supernet(recipe.space.name, num_classes=10, cell_bn_affine=recipe.cell_bn_affine)
    supernet = supernet.to(recipe.device, memory_format=MEMORY_FORMAT)  # type: ignore[call-overload]  # stubs lack it
    opt = torch.optim.SGD(
        supernet.parameters(), lr=recipe.lr, momentum=MOMENTUM, nesterov=True, weight_decay=WEIGHT_DECAY
    )
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=recipe.epochs * recipe.steps, eta_min=LR_MIN)
    return Training(supernet, opt, sched)


class _Unusable(Exception):
    """Why a checkpoint cannot be used."""


def _load(path: Path, recipe: Recipe, training: Training) -> dict[str, Any]:
    """The checkpoint, validated and loaded into ``training``; raises :class:`_Unusable` saying why not (then
    ``training`` may be partly overwritten)."""
    try:
        ckpt = torch.load(path, map_location=recipe.device, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is a corrupted checkpoint
        raise _Unusable(f"unreadable: {type(exc).__name__}: {exc}") from exc
    if not isinstance(ckpt, dict) or not _KEYS <= ckpt.keys():
        raise _Unusable("not a oneshot checkpoint")
    if ckpt["config_hash"] != recipe.digest():
        raise _Unusable("its training config hash differs")
    epoch, seconds = ckpt["epoch"], ckpt["train_seconds"]
    if not (isinstance(epoch, int) and 1 <= epoch <= recipe.epochs and isinstance(seconds, float) and seconds >= 0):
        raise _Unusable(f"bad epoch {epoch!r} or training seconds {seconds!r}")
    if not isinstance(ckpt["supernet"], dict) or ckpt["supernet"].keys() != training.supernet.state_dict().keys():
        raise _Unusable("its state-dict keys do not match the supernet")
    try:
        training.supernet.load_state_dict(ckpt["supernet"], strict=True)
        training.optimizer.load_state_dict(ckpt["optimizer"])
        training.scheduler.load_state_dict(ckpt["scheduler"])
    except (KeyError, RuntimeError, ValueError, TypeError) as exc:
        raise _Unusable(f"cannot be loaded: {type(exc).__name__}: {exc}") from exc
    training.epoch = training.resumed_from = epoch
    training.seconds = seconds
    training.losses = [float(v) for v in ckpt.get("losses", [])]
    return ckpt


def _start(path: Path, recipe: Recipe) -> Training:
    """Training as the checkpoint ``path`` left it, or fresh when there is none or it is refused."""
    training = fresh(recipe)
    if not path.exists():
        log.info("oneshot: training the supernet for %d epochs (checkpoint %s)", recipe.epochs, path)
        return training
    try:
        ckpt = _load(path, recipe, training)
    except _Unusable as why:
        log.warning("oneshot: ignoring the supernet checkpoint %s (%s); training from scratch", path, why)
        return fresh(recipe)  # the refused load may have changed some weights
    if training.epoch < recipe.epochs:
        log.info("oneshot: resuming supernet training from epoch %d of %d (%s)", training.epoch, recipe.epochs, path)
    else:
        what = "oneshot: reusing the finished supernet %s; charging its recorded %.1f training seconds (on %s)"
        log.info(what, path, training.seconds, ckpt.get("device", "?"))
    return training


def _save(path: Path, recipe: Recipe, training: Training) -> None:
    """Write ``training``'s state to the checkpoint ``path`` atomically."""
    state = {
        "config_hash": recipe.digest(),
        "config": recipe.config(),
        "epoch": training.epoch,
        "train_seconds": training.seconds,
        "losses": training.losses,
        "device": recipe.device,
        "supernet": training.supernet.state_dict(),
        "optimizer": training.optimizer.state_dict(),
        "scheduler": training.scheduler.state_dict(),
    }
    write_atomic(path, functools.partial(torch.save, state))


def train_supernet(
    recipe: Recipe,
    images: Tensor,
    labels: Tensor,
    path: Path,
    on_epoch_end: Callable[[int, Path, float], None] | None = None,
) -> Training:
    """Train the supernet of ``recipe``, resuming from (or reusing) the checkpoint ``path`` of the same recipe; the
    checkpoint is rewritten after every epoch. Returns the finished training.

    Args:
        recipe: the training recipe. images: its ``train_images`` uint8 (N, 3, 32, 32) images on the recipe's
            device. labels: their int64 labels (N,).
        path: the checkpoint file (its folder is created).
        on_epoch_end: called with (epochs done, checkpoint path, epoch's mean loss) after each epoch is saved.
    """
    if len(images) != recipe.train_images or len(labels) != recipe.train_images:
        raise ValueError(f"expected {recipe.train_images} images and labels, got {len(images)} and {len(labels)}")
    training = _start(path, recipe)
    path.parent.mkdir(parents=True, exist_ok=True)
    while training.epoch < recipe.epochs:
        elapsed = stopwatch(recipe.device)
        loss = train_epoch(recipe, training, images, labels)
        training.seconds += elapsed()
        if not math.isfinite(loss):
            raise EstimatorError(f"oneshot: supernet training diverged in epoch {training.epoch + 1} (loss {loss})")
        training.epoch += 1
        training.losses.append(loss)
        _save(path, recipe, training)
        if on_epoch_end is not None:
            on_epoch_end(training.epoch, path, loss)
    return training


def train_epoch(recipe: Recipe, training: Training, images: Tensor, labels: Tensor) -> float:
    """Train epoch ``training.epoch`` (its weights, optimiser and schedule; not its counters) and return its mean
    loss. Randomness: the stream ``oneshot:epoch:<epoch>`` of the recipe's seed.

    Args:
        recipe: the training recipe. training: the state. images: uint8 training images. labels: their labels.
    """
    rng = seeding.rng(recipe.seed, f"oneshot:epoch:{training.epoch}")
    order = torch.from_numpy(rng.permutation(len(images))).to(recipe.device)
    generator = seeding.torch_generator(rng)
    supernet, opt = training.supernet, training.optimizer
    supernet.train()
    total = torch.zeros((), device=recipe.device)
    for step in range(recipe.steps):
        ops = recipe.space.sample(rng).ops
        idx = order[step * recipe.batch_size : (step + 1) * recipe.batch_size]
        x = to_input(augment(images[idx], generator))
        loss = F.cross_entropy(supernet(x, ops), labels[idx])
        # set_to_none: off-path weights get no gradient, so SGD leaves them (momentum, decay) untouched
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(supernet.parameters(), GRAD_CLIP)
        opt.step()
        training.scheduler.step()
        total += loss.detach()
    return float(total) / recipe.steps
