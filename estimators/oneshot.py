"""One-shot estimator: the path of a weight-sharing supernet trained with uniform single-path sampling (SPOS).

"Single Path One-Shot Neural Architecture Search with Uniform Sampling" (Guo et al., ECCV 2020): the supernet is
trained once (:mod:`estimators.oneshot_training`); a candidate then inherits its path's weights, its BatchNorm
statistics are recalibrated on training batches (the supernet's running statistics mix all paths), and its
accuracy (or negated cross-entropy) on held-out images is the score.

Data: ``train_images`` + ``valid_images`` distinct images of the CIFAR-10 *training* split, drawn with the
estimator seed; the test images are never used. The held-out images are a random draw of the split (whose files
are in class order), kept in the order drawn. An estimate (BatchNorm batches included) depends only on (seed,
architecture), never on the order of the calls.

Checkpoint: ``<cache_dir>/oneshot/<hash>/supernet.pt``, ``hash`` = :meth:`Recipe.digest
<estimators.oneshot_training.Recipe.digest>` of :meth:`OneShot.recipe`; scoring settings are not in it.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from estimators.oneshot_training import MEMORY_FORMAT, Recipe, Training, to_input, train_supernet
from harness import cifar10, seeding
from harness.budget import stopwatch
from harness.errors import ConfigError
from harness.interfaces import Estimator, EstimatorContext, EstimatorTags
from harness.paths import cache_dir
from harness.types import Arch, Estimate

CHECKPOINT_NAME = "supernet.pt"
#: spaces with a supernet; every one of them is a CIFAR-10 space here
SPACES = ("nb201", "nbmacro")
#: what a candidate is scored by on the held-out images: top-1 accuracy (%), or the negated mean cross-entropy
SCORES = ("accuracy", "loss")
_EVAL_CHUNK = 500


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


def evaluate(net: nn.Module, x: Tensor, y: Tensor) -> tuple[float, float]:
    """Top-1 accuracy (%) and mean cross-entropy (nats) of ``net`` in eval mode on images ``x`` with labels ``y``.

    Args:
        net: the network. x: normalised images. y: labels.
    """
    net.eval()
    correct, loss = 0, 0.0
    with torch.no_grad():
        for i in range(0, len(y), _EVAL_CHUNK):
            logits, labels = net(x[i : i + _EVAL_CHUNK]), y[i : i + _EVAL_CHUNK]
            correct += int((logits.argmax(1) == labels).sum())
            loss += float(F.cross_entropy(logits.double(), labels, reduction="sum"))
    return 100.0 * correct / len(y), loss / len(y)


class OneShot(Estimator):
    """Score = held-out accuracy (%), or negated held-out cross-entropy, of the architecture's path of an
    SPOS-trained supernet after BatchNorm recalibration; cost = the :func:`~harness.budget.stopwatch` seconds of
    that (weight inheritance, recalibration, evaluation).

    ``fit`` trains the supernet (:func:`~estimators.oneshot_training.train_supernet`), or resumes or reuses a
    checkpoint of the same recipe, and charges the training's seconds (for a reused checkpoint: those recorded in it).

    Args:
        train_images: size of the training subset of the CIFAR-10 training split.
        valid_images: size of the held-out subset of the training split, disjoint from the training subset.
        epochs: supernet training epochs (each visits the training subset once, in batches of ``batch_size``;
            a last partial batch is dropped).
        batch_size: training and BatchNorm-recalibration batch size.
        lr: initial learning rate (SGD, Nesterov momentum 0.9, weight decay 5e-4, cosine decay per batch to 0.001;
            :mod:`estimators.oneshot_training`).
        bn_batches: training batches (no augmentation) of the BatchNorm recalibration of each candidate.
        eval_images: how many of the held-out images score each candidate (the same ones for all);
            ``None`` = all ``valid_images``.
        cell_bn_affine: learnt scale and shift in the BatchNorm of the supernet's choices (NB201 cells,
            NAS-Bench-Macro blocks); False (the references' setting): affine-free.
        score: ``accuracy`` (top-1, %) or ``loss`` (minus the mean cross-entropy) on the held-out images.
            ``loss`` is the default: it was chosen on validation (README).
    """

    tags = EstimatorTags(live=True, deterministic=True)

    def __init__(
        self,
        train_images: int = 10_000,
        valid_images: int = 1000,
        epochs: int = 20,
        batch_size: int = 64,
        lr: float = 0.025,
        bn_batches: int = 4,
        eval_images: int | None = None,
        cell_bn_affine: bool = False,
        score: str = "loss",
    ) -> None:
        self.train_images = train_images
        self.valid_images = valid_images
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.bn_batches = bn_batches
        self.eval_images = eval_images
        self.cell_bn_affine = cell_bn_affine
        self.score = score

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
        if not isinstance(self.cell_bn_affine, bool):
            problems.append(f"cell_bn_affine must be true or false, got {self.cell_bn_affine!r}")
        if self.score not in SCORES:
            problems.append(f"score must be one of {', '.join(SCORES)}, got {self.score!r}")
        if context.space.name not in SPACES:
            problems.append(f"search space {context.space.name!r} has no supernet; known: {', '.join(SPACES)}")
        if context.dataset != "cifar10":
            problems.append(
                f"dataset {context.dataset!r}: the supernet trains on images, and only CIFAR-10 is available "
                "(use nb201 cifar10 or nbmacro)"
            )
        if problems:
            raise ConfigError("estimator oneshot: " + "; ".join(problems))

    def recipe(self, context: EstimatorContext) -> Recipe:
        """The supernet's training recipe under ``context`` (space, dataset, estimator seed, device); the scoring
        settings (``valid_images``, ``eval_images``, ``bn_batches``, ``score``) are not in it.

        Args:
            context: the estimator context.
        """
        return Recipe(
            space=context.space,
            dataset=context.dataset,
            seed=context.seed,
            train_images=self.train_images,
            epochs=self.epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            cell_bn_affine=self.cell_bn_affine,
            device=context.device,
        )

    def checkpoint_path(self, context: EstimatorContext) -> Path:
        """``<cache_dir>/oneshot/<recipe digest>/supernet.pt`` (the folder is not created here).

        Args:
            context: the estimator context.
        """
        return cache_dir(context.cache_dir) / "oneshot" / self.recipe(context).digest()[:16] / CHECKPOINT_NAME

    # ------------------------------------------------------------------------------------------------ fit

    def fit(self, context: EstimatorContext) -> float:
        """Load the images; train the supernet, or resume / reuse its checkpoint. Returns the supernet's total
        training seconds (as recorded in the checkpoint when an earlier run trained it, even partly)."""
        self._check(context)
        self.context = context
        device = context.device
        data = cifar10.load_split(
            "train", cifar10.Cifar10Config(data_dir=context.data_dir, cache_dir=context.cache_dir)
        )
        order = seeding.rng(context.seed, "oneshot:split").permutation(len(data))
        self.train_indices = np.sort(order[: self.train_images])
        self.eval_indices = order[self.train_images : self.train_images + (self.eval_images or self.valid_images)]
        images = np.ascontiguousarray(np.asarray(data.images[self.train_indices]).transpose(0, 3, 1, 2))
        self._train_x = torch.from_numpy(images).to(device)
        self._train_y = torch.from_numpy(np.asarray(data.labels[self.train_indices], dtype=np.int64)).to(device)
        self._valid_x, self._valid_y = cifar10.get_batch(data, self.eval_indices, device=device)
        self._valid_x = self._valid_x.contiguous(memory_format=MEMORY_FORMAT)
        path = self.checkpoint_path(context)
        self.training: Training = train_supernet(
            self.recipe(context), self._train_x, self._train_y, path, self.on_epoch_end
        )
        self.training.supernet.eval()
        return self.training.seconds

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
        net = self.training.supernet.extract(arch.ops).to(memory_format=MEMORY_FORMAT)  # type: ignore[call-overload]
        recalibrate_bn(net, self.bn_batches_for(arch))
        accuracy, loss = evaluate(net, self._valid_x, self._valid_y)
        return Estimate(accuracy if self.score == "accuracy" else -loss, elapsed(), self.context.device)

    def data_files(self, data_dir: Path) -> list[Path]:
        return [cifar10.jpeg_archive_path(data_dir)]
