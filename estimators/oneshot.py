"""One-shot estimator: a weight-sharing supernet trained with uniform single-path sampling (SPOS).

"Single Path One-Shot Neural Architecture Search with Uniform Sampling" (Guo et al., ECCV 2020): every training
step samples one architecture uniformly and trains only its path of the supernet. A candidate then inherits the
path's weights, its BatchNorm statistics are recalibrated on training batches (the supernet's running statistics
mix all paths), and its accuracy on held-out images is the score.

Data: ``train_images`` + ``valid_images`` distinct images of the CIFAR-10 *training* split, drawn with the
estimator seed; the test images are never used. Randomness comes from named streams of the estimator seed
(:mod:`harness.seeding`): the split, the initial weights, and per epoch the batch order, the architecture of each
step and the augmentation. A resumed training is therefore the same as an uninterrupted one, and an estimate
(BatchNorm batches included) depends only on (seed, architecture), never on the order of the calls.

Checkpoints: ``<cache_dir>/oneshot/<hash>/supernet.pt`` with ``hash`` = :meth:`OneShot.train_config` hashed.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from harness import cifar10, seeding
from harness.budget import stopwatch
from harness.errors import ConfigError, EstimatorError
from harness.interfaces import Estimator, EstimatorContext, EstimatorTags
from harness.networks.supernet import Supernet, build_supernet
from harness.paths import cache_dir, write_atomic
from harness.types import Arch, Estimate

log = logging.getLogger(__name__)

#: fixed optimiser settings (SPOS / NB201 style): SGD with Nesterov momentum, cosine schedule stepped per batch
MOMENTUM = 0.9
WEIGHT_DECAY = 5e-4
#: gradient-norm clipping, as in NB201's weight-sharing baselines (xautodl); paths differ wildly in scale (a cell of
#: skip connections sums its inputs), and without it early supernet training is unstable
GRAD_CLIP = 5.0
#: bumped when a change of this file changes what training computes (old checkpoints are then not reused)
CHECKPOINT_VERSION = 1
CHECKPOINT_NAME = "supernet.pt"
#: spaces with a supernet; every one of them is a CIFAR-10 space here
SPACES = ("nb201", "nbmacro")
_EVAL_CHUNK = 500
#: networks and images in NHWC layout: about 20% faster convolutions on a CPU (oneDNN), also fine on CUDA
MEMORY_FORMAT = torch.channels_last


def augment(images: Tensor, generator: torch.Generator) -> Tensor:
    """Standard CIFAR augmentation of uint8 images: random 32x32 crop of the zero-padded (4 px) image, then a
    horizontal flip with probability 1/2; returns uint8 (B, 3, 32, 32).

    Args:
        images: uint8 (B, 3, 32, 32) on any device.
        generator: a CPU ``torch.Generator``; the only randomness used (drawn on the CPU, so any device gives the
            same images).
    """
    b, _, h, w = images.shape
    device = images.device
    padded = F.pad(images, (4, 4, 4, 4))
    offsets = torch.randint(0, 9, (2, b), generator=generator).to(device)
    flip = (torch.rand(b, generator=generator) < 0.5).to(device)
    rows = offsets[0, :, None] + torch.arange(h, device=device)
    cols = offsets[1, :, None] + torch.arange(w, device=device)
    cols = torch.where(flip[:, None], cols.flip(1), cols)  # a flipped crop reads its columns backwards
    batch = torch.arange(b, device=device)[:, None, None, None]
    channel = torch.arange(3, device=device)[None, :, None, None]
    return padded[batch, channel, rows[:, None, :, None], cols[:, None, None, :]]


def to_input(images: Tensor) -> Tensor:
    """uint8 (B, 3, H, W) -> float32 normalised with :data:`harness.cifar10.MEAN` / ``STD``.

    Args:
        images: uint8 NCHW tensor.
    """
    mean = torch.tensor(cifar10.MEAN, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(cifar10.STD, device=images.device).view(1, 3, 1, 1)
    return ((images.float().div(255.0) - mean) / std).contiguous(memory_format=MEMORY_FORMAT)


def recalibrate_bn(net: nn.Module, batches: list[Tensor]) -> None:
    """Replace every BatchNorm's running statistics by their plain average over ``batches``: reset them, set
    ``momentum=None`` (cumulative average), forward in train mode without gradients; leaves ``net`` in eval mode.

    Args:
        net: the network (its weights are not changed).
        batches: input batches (normalised images).
    """
    for m in net.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None
    net.train()
    with torch.no_grad():
        for x in batches:
            net(x)
    net.eval()


def accuracy(net: nn.Module, x: Tensor, y: Tensor) -> float:
    """Top-1 accuracy (%) of ``net`` in eval mode on images ``x`` with labels ``y``.

    Args:
        net: the network. x: normalised images. y: labels.
    """
    net.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(y), _EVAL_CHUNK):
            correct += int((net(x[i : i + _EVAL_CHUNK]).argmax(1) == y[i : i + _EVAL_CHUNK]).sum())
    return 100.0 * correct / len(y)


class OneShot(Estimator):
    """Score = validation accuracy (%) of the architecture's path of an SPOS-trained supernet, after BatchNorm
    recalibration; cost = the :func:`~harness.budget.stopwatch` seconds of that (weight inheritance,
    recalibration, evaluation).

    ``fit`` trains the supernet, or resumes or reuses a checkpoint of the same training config, and charges the
    training's wall seconds (for a reused checkpoint: the seconds recorded in it).

    Args:
        train_images: size of the training subset of the CIFAR-10 training split.
        valid_images: size of the held-out subset of the training split, disjoint from the training subset.
        epochs: supernet training epochs (each visits the training subset once, in batches of ``batch_size``;
            a last partial batch is dropped).
        batch_size: training and BatchNorm-recalibration batch size.
        lr: initial learning rate (SGD, Nesterov momentum 0.9, weight decay 5e-4, cosine decay to 0 per batch).
        bn_batches: training batches (no augmentation) of the BatchNorm recalibration of each candidate.
        eval_images: how many of the held-out images score each candidate (the same ones for all);
            ``None`` = all ``valid_images``.
    """

    tags = EstimatorTags(live=True, deterministic=True)

    def __init__(
        self,
        train_images: int = 10_000,
        valid_images: int = 1000,
        epochs: int = 20,
        batch_size: int = 64,
        lr: float = 0.1,
        bn_batches: int = 4,
        eval_images: int | None = None,
    ) -> None:
        self.train_images = train_images
        self.valid_images = valid_images
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.bn_batches = bn_batches
        self.eval_images = eval_images

    # ------------------------------------------------------------------------------------------------ hooks

    def on_epoch_end(self, epoch: int, checkpoint: Path, loss: float) -> None:
        """Called after epoch ``epoch`` (1-based) was trained and its checkpoint saved; a no-op by default.

        Args:
            epoch: completed epochs. checkpoint: the checkpoint file. loss: mean training loss of the epoch.
        """

    # ------------------------------------------------------------------------------------------- settings

    def _check(self, context: EstimatorContext) -> None:
        problems = []
        for name in ("train_images", "valid_images", "epochs", "batch_size", "bn_batches"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                problems.append(f"{name} must be an integer >= 1, got {value!r}")
        if not problems:
            if self.train_images + self.valid_images > cifar10.SPLIT_SIZES["train"]:
                problems.append(
                    f"train_images + valid_images = {self.train_images + self.valid_images} exceeds the "
                    f"{cifar10.SPLIT_SIZES['train']} images of the CIFAR-10 training split"
                )
            if self.batch_size > self.train_images:
                problems.append(f"batch_size {self.batch_size} exceeds train_images {self.train_images}")
            if self.eval_images is not None and not 1 <= self.eval_images <= self.valid_images:
                problems.append(f"eval_images must be in 1..valid_images ({self.valid_images}), got {self.eval_images}")
        if not (isinstance(self.lr, int | float) and math.isfinite(self.lr) and self.lr > 0):
            problems.append(f"lr must be a finite number > 0, got {self.lr!r}")
        if context.space.name not in SPACES:
            problems.append(f"search space {context.space.name!r} has no supernet; known: {', '.join(SPACES)}")
        if context.dataset != "cifar10":
            problems.append(
                f"dataset {context.dataset!r}: the supernet trains on images, and only CIFAR-10 is available "
                "(use nb201 cifar10 or nbmacro)"
            )
        if problems:
            raise ConfigError("estimator oneshot: " + "; ".join(problems))

    def train_config(self, context: EstimatorContext) -> dict[str, Any]:
        """Everything that determines the trained supernet (its checkpoint is keyed by a hash of this).

        Args:
            context: the estimator context (space name and estimator seed are used).
        """
        return {
            "version": CHECKPOINT_VERSION,
            "space": context.space.name,
            "dataset": context.dataset,
            "seed": context.seed,
            "train_images": self.train_images,
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "lr": float(self.lr),
            "momentum": MOMENTUM,
            "nesterov": True,
            "weight_decay": WEIGHT_DECAY,
            "grad_clip": GRAD_CLIP,
            "schedule": "cosine per batch",
            "augment": "crop32 pad4 + hflip",
            "sampling": "uniform single path",
        }

    def checkpoint_path(self, context: EstimatorContext) -> Path:
        """``<cache_dir>/oneshot/<hash of train_config>/supernet.pt`` (the folder is not created here).

        Args:
            context: the estimator context.
        """
        return cache_dir(context.cache_dir) / "oneshot" / self._hash(context)[:16] / CHECKPOINT_NAME

    def _hash(self, context: EstimatorContext) -> str:
        text = json.dumps(self.train_config(context), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    # ------------------------------------------------------------------------------------------------ fit

    def fit(self, context: EstimatorContext) -> float:
        """Load the images; train the supernet, or resume / reuse its checkpoint. Returns the supernet's total
        training wall seconds (as recorded in the checkpoint when it was trained, even partly, by an earlier run)."""
        self._check(context)
        self.context = context
        device = context.device
        data = cifar10.load_split(
            "train", cifar10.Cifar10Config(data_dir=context.data_dir, cache_dir=context.cache_dir)
        )
        order = seeding.rng(context.seed, "oneshot:split").permutation(len(data))
        train_idx = np.sort(order[: self.train_images])
        held_out = order[self.train_images : self.train_images + self.valid_images]
        eval_idx = np.sort(held_out[: self.eval_images or self.valid_images])
        self.train_indices, self.eval_indices = train_idx, eval_idx
        images = np.ascontiguousarray(np.asarray(data.images[train_idx]).transpose(0, 3, 1, 2))
        self._train_x = torch.from_numpy(images).to(device)
        self._train_y = torch.from_numpy(np.asarray(data.labels[train_idx], dtype=np.int64)).to(device)
        self._valid_x, self._valid_y = cifar10.get_batch(data, eval_idx, device=device)
        self._valid_x = self._valid_x.contiguous(memory_format=MEMORY_FORMAT)
        self._supernet, seconds = self._train(context, self.checkpoint_path(context))
        self._supernet.eval()
        return seconds

    def _fresh(self, context: EstimatorContext, steps: int) -> tuple[Supernet, Any, Any]:
        """Supernet (seeded initial weights), optimiser and cosine schedule, as at the start of training."""
        seeding.seed_torch(seeding.rng(context.seed, "oneshot:init"))
        supernet = build_supernet(context.space.name, num_classes=10).to(context.device, memory_format=MEMORY_FORMAT)
        opt = torch.optim.SGD(
            supernet.parameters(), lr=self.lr, momentum=MOMENTUM, nesterov=True, weight_decay=WEIGHT_DECAY
        )
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.epochs * steps)
        return supernet, opt, sched

    def _restore(self, path: Path, digest: str, supernet: Supernet, opt: Any, sched: Any) -> dict[str, Any] | None:
        """Load a checkpoint into the training objects; None (with a logged warning) if it is unusable."""
        if not path.exists():
            return None

        def reject(why: str) -> None:
            log.warning("oneshot: ignoring the supernet checkpoint %s (%s); training from scratch", path, why)

        try:
            ckpt = torch.load(path, map_location=self.context.device, weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any unreadable file is a corrupted checkpoint
            reject(f"unreadable: {type(exc).__name__}: {exc}")
            return None
        if not isinstance(ckpt, dict) or not {"config_hash", "epoch", "train_seconds", "supernet"} <= ckpt.keys():
            reject("not a oneshot checkpoint")
            return None
        if ckpt["config_hash"] != digest:
            reject("its training config hash differs")
            return None
        epoch, seconds = ckpt["epoch"], ckpt["train_seconds"]
        if not (isinstance(epoch, int) and 1 <= epoch <= self.epochs and isinstance(seconds, float) and seconds >= 0):
            reject(f"bad epoch {epoch!r} or training seconds {seconds!r}")
            return None
        expected = supernet.state_dict().keys()
        if not isinstance(ckpt["supernet"], dict) or ckpt["supernet"].keys() != expected:
            reject("its state-dict keys do not match the supernet")
            return None
        try:
            supernet.load_state_dict(ckpt["supernet"], strict=True)
            opt.load_state_dict(ckpt["optimizer"])
            sched.load_state_dict(ckpt["scheduler"])
        except (KeyError, RuntimeError, ValueError, TypeError) as exc:
            reject(f"cannot be loaded: {type(exc).__name__}: {exc}")
            return None
        return ckpt

    def _train(self, context: EstimatorContext, path: Path) -> tuple[Supernet, float]:
        """Train (or resume, or reuse) the supernet; returns it and its total training wall seconds."""
        steps = self.train_images // self.batch_size
        digest = self._hash(context)
        supernet, opt, sched = self._fresh(context, steps)
        ckpt = self._restore(path, digest, supernet, opt, sched)
        if ckpt is None:
            supernet, opt, sched = self._fresh(context, steps)  # a failed load may have changed some weights
            start, seconds, losses = 0, 0.0, []
        else:
            start, seconds, losses = ckpt["epoch"], ckpt["train_seconds"], list(ckpt.get("losses", []))
        self.fit_info = {"checkpoint": str(path), "start_epoch": start, "recorded_seconds": seconds}
        if start == self.epochs:
            log.info(
                "oneshot: reusing the finished supernet %s (%d epochs); charging its recorded %.1f training seconds "
                "(measured on %s)",
                path,
                start,
                seconds,
                ckpt.get("device", "?") if ckpt else "?",
            )
        elif start > 0:
            log.info("oneshot: resuming supernet training from epoch %d of %d (%s)", start, self.epochs, path)
        else:
            log.info("oneshot: training the supernet for %d epochs (checkpoint %s)", self.epochs, path)
        path.parent.mkdir(parents=True, exist_ok=True)
        for epoch in range(start, self.epochs):
            elapsed = stopwatch(context.device)
            loss = self._train_epoch(context, supernet, opt, sched, epoch, steps)
            seconds += elapsed()
            losses.append(loss)
            if not math.isfinite(loss):
                raise EstimatorError(f"oneshot: supernet training diverged in epoch {epoch + 1} (loss {loss})")
            state = {
                "config_hash": digest,
                "config": self.train_config(context),
                "epoch": epoch + 1,
                "train_seconds": seconds,
                "losses": losses,
                "device": context.device,
                "supernet": supernet.state_dict(),
                "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(),
            }
            write_atomic(path, functools.partial(torch.save, state))
            self.on_epoch_end(epoch + 1, path, loss)
        self.train_losses = losses
        return supernet, seconds

    def _train_epoch(
        self, context: EstimatorContext, supernet: Supernet, opt: Any, sched: Any, epoch: int, steps: int
    ) -> float:
        """One epoch of uniform single-path training; returns its mean loss. Randomness: stream ``epoch``."""
        rng = seeding.rng(context.seed, f"oneshot:epoch:{epoch}")
        order = torch.from_numpy(rng.permutation(self.train_images)).to(context.device)
        generator = seeding.torch_generator(rng)
        supernet.train()
        total = torch.zeros((), device=context.device)
        for step in range(steps):
            ops = context.space.sample(rng).ops
            idx = order[step * self.batch_size : (step + 1) * self.batch_size]
            x = to_input(augment(self._train_x[idx], generator))
            loss = F.cross_entropy(supernet(x, ops), self._train_y[idx])
            # set_to_none: off-path weights get no gradient, so SGD leaves them (momentum, decay) untouched
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(supernet.parameters(), GRAD_CLIP)
            opt.step()
            sched.step()
            total += loss.detach()
        return float(total) / steps

    # ------------------------------------------------------------------------------------------- estimate

    def bn_batches_for(self, arch: Arch) -> list[Tensor]:
        """The BatchNorm-recalibration batches of ``arch``: ``bn_batches`` random batches of the training subset
        (no augmentation), drawn from the stream (estimator seed, architecture string).

        Args:
            arch: the candidate.
        """
        ctx = self.context
        rng = seeding.rng(ctx.seed, "oneshot:bn:" + ctx.space.format(arch))
        picks = [rng.choice(self.train_images, size=self.batch_size, replace=False) for _ in range(self.bn_batches)]
        return [to_input(self._train_x[torch.from_numpy(np.sort(p)).to(ctx.device)]) for p in picks]

    def estimate(self, arch: Arch) -> Estimate:
        """Inherit the path's weights, recalibrate BatchNorm on :meth:`bn_batches_for`, score on the held-out images.

        Args:
            arch: the candidate.
        """
        elapsed = stopwatch(self.context.device)
        net = self._supernet.extract(arch.ops).to(memory_format=MEMORY_FORMAT)
        recalibrate_bn(net, self.bn_batches_for(arch))
        score = accuracy(net, self._valid_x, self._valid_y)
        return Estimate(score, elapsed(), self.context.device)

    def data_files(self, data_dir: Path) -> list[Path]:
        return [cifar10.jpeg_archive_path(data_dir)]
