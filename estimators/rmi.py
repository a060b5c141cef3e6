"""RMI: representation mutual information with a pretrained reference network (RMI-NAS, Zheng et al., CVPR 2022).

A candidate is trained for a few SGD steps on one fixed mini-batch with a loss that pulls its three stage
representations towards those of a good reference network (linear CKA per stage) plus a little cross-entropy.
The final loss ranks candidates: low loss = high similarity to a good network. Score = minus that loss.

Beyond the paper, ``size_prior`` > 0 adds a prior on model size: score = - ln(loss) + size_prior * ln(parameters of
the benchmark's network), i.e. the loss divided by params ** size_prior. On a log scale one weight serves every
step count (the loss shrinks with the steps; its ratio between candidates much less).

The candidate always trains on CIFAR-10 images with a 10-class head, because the only images and pretrained
teachers are CIFAR-10's; on a CIFAR-100 or ImageNet16-120 table RMI therefore scores the architecture's CIFAR-10
behaviour (a transfer), where the reference code uses that dataset's images and a teacher trained on it.

Over 300 lines for a reason: each option that follows the reference code is implemented next to the others it
interacts with (the teacher's BN mode, the feature taps, the pool, the readout).
"""

from __future__ import annotations

import collections
import functools
import inspect
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from harness import cifar10, seeding
from harness.budget import stopwatch
from harness.errors import ConfigError, EstimatorError
from harness.interfaces import Estimator, EstimatorContext, EstimatorTags
from harness.types import Arch, Estimate

if TYPE_CHECKING:
    import torch

    from estimators.rmi_teachers import CifarResNet

SELECTIONS = ("lowest_ce", "class_balanced", "all")
TEACHER_BN = ("eval", "batch")
LAST_FEATURES = ("cell", "lastact")
READOUTS = ("last_step", "after_update")
TRAJECTORY_COLUMNS = ("loss", "gap1", "gap2", "gap3", "ce", "seconds")


def size_prior_score(loss: float | np.ndarray, n_params: float | np.ndarray, size_prior: float) -> float | np.ndarray:
    """RMI's score from its final loss: ``-loss`` (the paper's) when ``size_prior`` is 0, else
    ``-ln(loss) + size_prior * ln(n_params)``, the loss divided by ``n_params ** size_prior``. Floats or arrays."""
    if size_prior == 0:
        return -loss
    return -np.log(np.maximum(loss, 1e-12)) + size_prior * np.log(n_params)


@functools.cache
def count_params(space: str, ops: tuple[int, ...]) -> int:
    """:func:`harness.networks.n_params` of the benchmark's network of ``ops`` (CIFAR-10 head), cached per
    architecture (building the network is what costs)."""
    from harness.networks import build_network, n_params

    return n_params(build_network(space, ops))


def centered_gram(x: torch.Tensor) -> torch.Tensor:
    """Double-centred linear Gram matrix ``H X X^T H`` of per-example features (``x`` is n x ...)."""
    flat = x.reshape(x.shape[0], -1)
    gram = flat @ flat.T
    return gram - gram.mean(0, keepdim=True) - gram.mean(1, keepdim=True) + gram.mean()


def linear_cka(kc: torch.Tensor, lc: torch.Tensor, lc_norm: torch.Tensor) -> torch.Tensor:
    """Linear CKA (Kornblith et al., 2019) from two centred Gram matrices; ``lc_norm`` = ``||lc||_F``.

    A representation that is the same for every example (e.g. the all-zero output of a cell whose output node
    receives only ``none`` edges) carries no information: its CKA is 0, not 0/0.
    """
    import torch

    # Tensor.norm is unannotated in torch; an annotated local would change the code hash that keys stored scores
    return (kc * lc).sum() / (kc.norm().clamp_min(torch.finfo(kc.dtype).tiny) * lc_norm)  # type: ignore[no-any-return]


class RMI(Estimator):
    """Score = - (beta * sum_s w_s (1 - CKA(candidate stage s, teacher stage s)) + (1 - beta) * CE) after ``steps``
    SGD steps on one batch, from an initialisation seeded by (estimator seed, architecture).

    Args:
        teacher: the pretrained reference network: ``resnet20`` or ``resnet56``.
        steps: SGD steps per candidate (paper: 150).
        batch_size: images the candidate is trained on (paper: 32).
        pool_factor: the batch is chosen from ``pool_factor * batch_size`` random training images (paper: 16).
        selection: ``lowest_ce`` (the batch_size images of the pool with the lowest teacher cross-entropy, ties
            broken by image index), ``class_balanced`` (the lowest per class, round robin) or ``all`` (the pool).
        beta: weight of the CKA term (paper: 0.8); 1 - beta weighs the cross-entropy.
        stage_weights: weight of each of the three stages in the CKA term.
        lr, momentum, weight_decay: SGD settings (paper: 0.1, 0.9, 5e-4).
        channels, cells: train a reduced (or enlarged) proxy of the candidate: first-stage width and, on NB201,
            cells per stage (``None``: the benchmark's network, as in the paper).
        size_prior: weight of ln(parameter count) in the score (0: the paper's score, minus the loss).
        teacher_bn: ``eval`` (the teacher's BatchNorm uses its running statistics) or ``batch`` (it normalises with
            the statistics of the images it sees, as the reference code, which never puts the teacher in eval mode).
        last_feature: the candidate's third compared stage: ``cell`` (the last cell's output, like the teacher's
            stage output) or ``lastact`` (after the network's final BN + ReLU, as the reference code; NB201 only).
        pool_augment: draw the pool with a random horizontal flip and a random 32x32 crop of the image padded by 4
            zeros, once per image, as the reference's training loader does.
        readout: ``last_step`` (the loss of the last step's forward pass, before its update) or ``after_update``
            (the loss after ``steps`` updates, one forward pass later, as the reference code).
        repeats: independent runs per candidate, each with its own pool, batch and initialisation; the score is
            that of their mean final loss (1: the paper's single run).
    """

    tags = EstimatorTags(live=True, deterministic=True, dataset_free=True)  # CIFAR-10 images whatever the table

    def __init__(
        self,
        teacher: str = "resnet20",
        steps: int = 150,
        batch_size: int = 32,
        pool_factor: int = 16,
        selection: str = "lowest_ce",
        beta: float = 0.8,
        stage_weights: Sequence[float] = (1.0, 1.0, 1.0),
        lr: float = 0.1,
        momentum: float = 0.9,
        weight_decay: float = 5e-4,
        channels: int | None = None,
        cells: int | None = None,
        size_prior: float = 0.0,
        teacher_bn: str = "eval",
        last_feature: str = "cell",
        pool_augment: bool = False,
        readout: str = "last_step",
        repeats: int = 1,
    ) -> None:
        self.teacher = teacher
        self.steps = steps
        self.batch_size = batch_size
        self.pool_factor = pool_factor
        self.selection = selection
        self.beta = beta
        self.stage_weights = tuple(stage_weights)
        self.lr = lr
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.channels = channels
        self.cells = cells
        self.size_prior = size_prior
        self.teacher_bn = teacher_bn
        self.last_feature = last_feature
        self.pool_augment = pool_augment
        self.readout = readout
        self.repeats = repeats

    def _check(self, context: EstimatorContext) -> Any:
        """Raise a ConfigError for settings that cannot work on ``context``'s space; return a network of it."""
        from estimators.rmi_teachers import TEACHERS

        problems = []
        if self.teacher not in TEACHERS:
            problems.append(f"teacher={self.teacher!r} is not one of {', '.join(TEACHERS)}")
        if self.steps < 1 or self.repeats < 1:
            problems.append(f"steps and repeats must be >= 1, got {self.steps}, {self.repeats}")
        if self.batch_size < 2 or self.pool_factor < 1:
            problems.append(f"batch_size must be >= 2 and pool_factor >= 1, got {self.batch_size}, {self.pool_factor}")
        elif self.batch_size * self.pool_factor > cifar10.SPLIT_SIZES["train"]:
            problems.append(
                f"batch_size * pool_factor = {self.batch_size * self.pool_factor} exceeds the "
                f"{cifar10.SPLIT_SIZES['train']} training images"
            )
        if self.selection not in SELECTIONS:
            problems.append(f"selection={self.selection!r} is not one of {', '.join(SELECTIONS)}")
        if not 0.0 <= self.beta <= 1.0:
            problems.append(f"beta must be in [0, 1], got {self.beta}")
        if (self.channels is not None and self.channels < 1) or (self.cells is not None and self.cells < 1):
            problems.append(f"channels and cells must be >= 1 or null, got {self.channels}, {self.cells}")
        if len(self.stage_weights) != 3:
            problems.append(f"stage_weights needs one weight per stage (3), got {list(self.stage_weights)}")
        if not self.size_prior >= 0.0:
            problems.append(f"size_prior must be >= 0, got {self.size_prior}")
        for name, valid in (("teacher_bn", TEACHER_BN), ("last_feature", LAST_FEATURES), ("readout", READOUTS)):
            if getattr(self, name) not in valid:
                problems.append(f"{name}={getattr(self, name)!r} is not one of {', '.join(valid)}")
        if problems:
            raise ConfigError("estimator rmi: " + "; ".join(problems))
        # what the space's network can do: build one (channels and cells it cannot take are its ConfigError)
        from harness.networks import build_network

        probe = build_network(
            context.space.name,
            context.space.sample(seeding.rng(0, "rmi-probe")).ops,
            channels=self.channels,
            cells=self.cells,
        )
        if self.last_feature == "lastact" and "final_act" not in inspect.signature(probe.forward_stages).parameters:
            raise ConfigError(
                f"estimator rmi: last_feature=lastact needs a network with a final BN + ReLU (NB201's); "
                f"{context.space.name}'s has none: use last_feature=cell"
            )
        return probe

    def fit(self, context: EstimatorContext) -> float:
        """Load the teacher and the images, choose each run's batch, compute the teacher's stage Gram matrices once."""
        from estimators.rmi_teachers import load_teacher

        probe = self._check(context)
        # the one-time JPEG decode of a fresh machine is not this estimator's cost: load before the clock starts
        data = cifar10.load_split(
            "train", cifar10.Cifar10Config(data_dir=context.data_dir, cache_dir=context.cache_dir)
        )
        elapsed = stopwatch(context.device)
        self.context = context
        teacher = load_teacher(self.teacher, data_dir=context.data_dir, device=context.device)  # eval mode, frozen
        if self.teacher_bn == "batch":
            teacher.train()  # parameters stay frozen; BN normalises with the batch's statistics
        self.batches = [self._batch(teacher, data) for _ in range(self.repeats)]  # the first is repeats=1's
        self._check_stages(probe, len(self.batches[0].teacher))
        return elapsed()

    def _batch(self, teacher: CifarResNet, data: cifar10.Cifar10Split) -> _Batch:
        """Draw a pool with the estimator's generator, choose the batch in it, and keep the teacher's Gram matrices."""
        import torch
        import torch.nn.functional as F

        ctx = self.context
        pool = cifar10.sample_indices(self.batch_size * self.pool_factor, ctx.rng, split=data)
        x, y = cifar10.get_batch(data, pool, device=ctx.device, augment=ctx.rng if self.pool_augment else None)
        with torch.no_grad():  # in float64: in float32 many easy images have a cross-entropy of exactly 0
            ce = F.cross_entropy(teacher(x).double(), y, reduction="none").cpu().numpy()
        keep = self._select(ce, pool, y.cpu().numpy())
        with torch.no_grad():
            stages, _ = teacher.forward_stages(x[keep])
        grams = [(lc, lc.norm()) for lc in (centered_gram(s) for s in stages)]
        return _Batch(x[keep], y[keep], pool[keep], grams)

    def data_files(self, data_dir: Path) -> list[Path]:
        from estimators.rmi_teachers import teacher_path

        return [cifar10.jpeg_archive_path(data_dir), teacher_path(self.teacher, data_dir)]

    def _check_stages(self, probe: Any, n_teacher: int) -> None:
        """CKA compares Gram matrices, so any widths and resolutions fit, but each candidate stage needs a
        teacher stage: fail now, not once per candidate."""
        import torch

        ctx = self.context
        with torch.no_grad():
            n_candidate = len(probe.eval().forward_stages(self.batches[0].x[:2].cpu())[0])
        if n_candidate != n_teacher:
            raise ConfigError(
                f"estimator rmi: teacher {self.teacher!r} has {n_teacher} stages, {ctx.space.name} networks "
                f"{n_candidate}: each candidate stage needs a teacher stage"
            )

    def _select(self, ce: np.ndarray, pool: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """Positions in the pool of the training batch (deterministic: ties broken by image index)."""
        order = np.lexsort((pool, ce))  # by teacher CE, then by image index
        if self.selection == "all":
            return np.sort(order)
        if self.selection == "lowest_ce":
            return np.sort(order[: self.batch_size])
        per_class = [[i for i in order if labels[i] == c] for c in range(10)]
        chosen: list[int] = []
        rank = 0
        while len(chosen) < self.batch_size:
            chosen += [members[rank] for members in per_class if rank < len(members)][: self.batch_size - len(chosen)]
            rank += 1
        return np.sort(np.array(chosen))

    def _train(self, arch: Arch, run: int = 0) -> Iterator[tuple[torch.Tensor, list[torch.Tensor], torch.Tensor]]:
        """Train a fresh candidate on the batch of ``run``, yielding after each SGD step k its loss at step k (the
        loss that ``steps=k`` reads out with ``readout=last_step``, and ``steps=k-1`` with ``after_update``), the
        three stages' ``1 - CKA`` and the cross-entropy (tensors, not synchronised). The last one is the score's."""
        import torch
        import torch.nn.functional as F

        from harness.networks import build_network, skip_unread

        ctx = self.context
        batch = self.batches[run]
        name = ("init:" if run == 0 else f"init{run}:") + ctx.space.format(arch)
        seeding.seed_torch(seeding.rng(ctx.seed, name))
        net = build_network(ctx.space.name, arch.ops, channels=self.channels, cells=self.cells)  # CIFAR-10 head
        net = skip_unread(net).to(ctx.device).train()  # the loss reads the stages and the logits only
        opt = torch.optim.SGD(net.parameters(), lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay)
        forward = net.forward_stages
        if self.last_feature == "lastact":
            forward = functools.partial(net.forward_stages, final_act=True)
        for _ in range(self.readout_row(self.steps) + 1):
            stages, logits = forward(batch.x)
            gaps = [
                1 - linear_cka(centered_gram(s), lc, lc_norm)
                for s, (lc, lc_norm) in zip(stages, batch.teacher, strict=True)
            ]
            ce = F.cross_entropy(logits, batch.y)
            loss = self.beta * sum(w * g for w, g in zip(self.stage_weights, gaps, strict=True)) + (1 - self.beta) * ce
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            yield loss.detach(), [g.detach() for g in gaps], ce.detach()

    def readout_row(self, steps: int) -> int:
        """The row of :meth:`trajectory` (0-based) that holds the loss and cost of ``steps``."""
        return steps - 1 + (self.readout == "after_update")

    def estimate(self, arch: Arch) -> Estimate:
        elapsed = stopwatch(self.context.device)
        losses = [
            float(last[0]) for last in (collections.deque(self._train(arch, r), 1)[0] for r in range(self.repeats))
        ]
        return Estimate(self.score(arch, float(np.mean(losses))), elapsed(), self.context.device)

    def score(self, arch: Arch, loss: float) -> float:
        """The score of a candidate whose run ended at ``loss`` (:func:`size_prior_score`). A non-finite loss is a
        failed evaluation."""
        if not np.isfinite(loss):
            raise EstimatorError(f"RMI loss diverged ({loss}) within {self.steps} steps")
        n_params = count_params(self.context.space.name, arch.ops) if self.size_prior else 1
        return float(size_prior_score(loss, n_params, self.size_prior))

    def trajectory(self, arch: Arch) -> np.ndarray:
        """The whole run of :meth:`estimate`, recorded: one row per step with columns :data:`TRAJECTORY_COLUMNS`
        (loss, 1 - CKA of each stage, cross-entropy: means over the ``repeats`` runs; seconds since the start,
        summed over them, as :func:`~harness.budget.stopwatch` counts). Row :meth:`readout_row` ``(k)`` holds
        exactly what ``steps=k`` scores and costs, because the first steps of a run do not depend on how many
        follow. Synchronises every step: for studies, not for search."""
        runs = []
        for r in range(self.repeats):
            elapsed = stopwatch(self.context.device)
            runs.append(
                [
                    [float(loss), *(float(g) for g in gaps), float(ce), elapsed()]
                    for loss, gaps, ce in self._train(arch, r)
                ]
            )
        rows = np.array(runs)  # (run, step, column)
        out = rows.mean(axis=0)
        out[:, -1] = rows[:, :, -1].sum(axis=0)
        return out  # type: ignore[no-any-return]  # numpy: mean(axis) of a shapeless array is Any; as for linear_cka


@dataclass(frozen=True)
class _Batch:
    """One run's training batch: images, labels, their training-split indices, the teacher's (Gram, norm) per stage."""

    x: torch.Tensor
    y: torch.Tensor
    indices: np.ndarray
    teacher: list[tuple[torch.Tensor, torch.Tensor]]
