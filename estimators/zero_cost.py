"""Zero-cost proxies: score an untrained network from one mini-batch (or from no data) in about a second.

Definitions follow NAS-Bench-Suite-Zero (GitHub automl/NASLib, ``zerocost`` branch,
``naslib/predictors/pruners/measures/`` and ``naslib/predictors/zerocost.py``), which took them from
"Zero-Cost Proxies for Lightweight NAS" (Abdelfattah et al., ICLR 2021; GitHub SamsungLabs/zero-cost-nas,
``foresight/pruners/measures/``); ``nwot`` is "Neural Architecture Search without Training" (Mellor et al.,
ICML 2021) and ``epe_nas`` "EPE-NAS: Efficient Performance Estimation Without Training for Neural Architecture
Search" (Lopes et al., ICANN 2021). Conventions shared by those references and kept here:

* The network is freshly initialised (PyTorch's default init) and in **train mode**, so BatchNorm normalises
  with the statistics of the batch. Only ``synflow`` differs: it removes BatchNorm (it sees a single all-ones
  image). ``params`` and ``flops`` do not depend on the mode.
* Per-weight values are taken for the weights of every ``Conv2d`` and ``Linear`` layer (not BatchNorm, not
  biases) and summed over all of them into one number.
* The loss is cross-entropy against the batch's labels.
* Signs are those of the references, and for every proxy **a higher score means predicted better**.

Each proxy is a function ``proxy(net, x, y) -> float`` of a network, a batch of images and their labels.
It may leave ``net`` in train mode with updated BatchNorm running statistics (the estimator builds a fresh
network for every score) but adds no hooks and changes no weights.

A degenerate network (an NB201 cell whose output is always zero) gets ``synflow = -inf`` (log of 0),
``nwot = -inf`` (singular kernel) and ``jacov = NaN`` (correlation of all-zero Jacobians). They are returned
as they are, and the loop records them as failed evaluations; nothing is clipped or replaced.

Over 300 lines for a reason: ten short proxy functions beside the conventions above, which they all share.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from harness import seeding
from harness.budget import stopwatch
from harness.errors import ConfigError
from harness.interfaces import Estimator, EstimatorContext, EstimatorTags, check_positive
from harness.types import Arch, Estimate

Proxy = Callable[[nn.Module, Tensor, Tensor], float]


def _layers(net: nn.Module) -> list[nn.Conv2d | nn.Linear]:
    """The layers whose weights are scored: every Conv2d and Linear, in module order."""
    return [m for m in net.modules() if isinstance(m, nn.Conv2d | nn.Linear)]


def _weight_grads(net: nn.Module, x: Tensor, y: Tensor, *, create_graph: bool = False) -> list[Tensor | None]:
    """d cross-entropy / d weight of every layer of :func:`_layers`, in train mode; ``None`` for a weight the
    loss does not depend on (a convolution on a branch that never reaches the output)."""
    net.train()
    loss = F.cross_entropy(net(x), y)
    weights = [m.weight for m in _layers(net)]
    return list(torch.autograd.grad(loss, weights, create_graph=create_graph, allow_unused=True))


def _sum_abs_weight_times(layers: list[nn.Conv2d | nn.Linear], grads: list[Tensor | None]) -> float:
    """``sum |theta * grad|`` over the layers' weights (``None`` gradients count 0)."""
    pairs = zip(layers, grads, strict=True)
    return sum(float((m.weight.detach() * g).abs().sum()) for m, g in pairs if g is not None)


def synflow(net: nn.Module, x: Tensor, y: Tensor) -> float:
    """log SynFlow: ``log sum |theta * dR/dtheta|`` with ``R`` the sum of the network's outputs for one
    all-ones image, computed on a float64 copy of ``net`` whose parameters are replaced by their absolute
    values and whose BatchNorm layers are removed (``net`` itself is not touched).

    Only the image size of ``x`` is used. float64 matters: ``R`` reaches 1e50 on NB201's biggest cells, beyond
    float32. The log is what NASLib reports (monotone, so the ranking is SynFlow's); a network without a path
    from input to output has SynFlow 0, i.e. ``-inf``. Higher = better.
    """
    flow = copy.deepcopy(net).double()
    for name, module in list(flow.named_modules()):
        if isinstance(module, nn.BatchNorm1d | nn.BatchNorm2d | nn.BatchNorm3d):
            parent, _, child = name.rpartition(".")
            setattr(flow.get_submodule(parent), child, nn.Identity())
    with torch.no_grad():
        for p in flow.parameters():
            p.abs_()
    flow.train()
    layers = _layers(flow)
    ones = torch.ones((1, *x.shape[1:]), dtype=torch.float64, device=x.device)
    grads = torch.autograd.grad(flow(ones).sum(), [m.weight for m in layers], allow_unused=True)
    total = _sum_abs_weight_times(layers, list(grads))
    return math.log(total) if total > 0 else -math.inf


def snip(net: nn.Module, x: Tensor, y: Tensor) -> float:
    """SNIP connection sensitivity ``sum |theta * dL/dtheta|``: the references' gradient w.r.t. a
    multiplicative mask of ones on every weight, which is the same number. Train mode. Higher = better."""
    return _sum_abs_weight_times(_layers(net), _weight_grads(net, x, y))


def grad_norm(net: nn.Module, x: Tensor, y: Tensor) -> float:
    """Sum over layers of the Euclidean norm of ``dL/dweight``. Train mode. Higher = better."""
    return sum(float(g.norm()) for g in _weight_grads(net, x, y) if g is not None)


def grasp(net: nn.Module, x: Tensor, y: Tensor) -> float:
    """GraSP as the references score it: ``sum -theta * (H g)``, ``g = dL/dtheta``, ``H`` the Hessian of the
    loss w.r.t. the weights (a Hessian-vector product: the gradient of ``g_detached . g``). The minus sign is
    the references' (accuracy correlates with ``-theta H g``). Train mode. Higher = better.

    The references run a second, identical forward pass for ``H g``; differentiating the first pass's graph
    (``create_graph``) computes the same quantity.
    """
    layers = _layers(net)
    grads = _weight_grads(net, x, y, create_graph=True)
    used = [(m.weight, g) for m, g in zip(layers, grads, strict=True) if g is not None]
    z = sum(((g.detach() * g).sum() for _, g in used), torch.zeros((), device=x.device))
    if not z.requires_grad:  # no weight has a gradient that depends on the weights
        return 0.0
    hg = torch.autograd.grad(z, [w for w, _ in used], allow_unused=True)
    return sum(float((-w.detach() * h).sum()) for (w, _), h in zip(used, hg, strict=True) if h is not None)


def fisher(net: nn.Module, x: Tensor, y: Tensor) -> float:
    """Fisher channel saliency: for output channel ``c`` of a layer with output ``a`` (before BatchNorm),
    ``0.5 * mean_n (sum_hw a * dL/da)^2``. As in the references, each channel's value is counted once per
    weight of that channel (times ``weight[0].numel()``, the fan-in) and everything is summed. Train mode.
    Higher = better.
    """
    net.train()
    outputs: list[tuple[nn.Conv2d | nn.Linear, Tensor]] = []

    def keep(module: nn.Module, _inp: tuple[Tensor, ...], out: Tensor) -> None:
        outputs.append((module, out))  # type: ignore[arg-type]  # hooked on _layers(net): conv and linear only

    handles = [m.register_forward_hook(keep) for m in _layers(net)]
    try:
        loss = F.cross_entropy(net(x), y)
    finally:
        for h in handles:
            h.remove()
    grads = torch.autograd.grad(loss, [a for _, a in outputs], allow_unused=True)
    total = 0.0
    for (m, a), g in zip(outputs, grads, strict=True):
        if g is None:
            continue
        per_sample = a.detach() * g  # (N, C, H, W) or (N, C)
        if per_sample.dim() > 2:
            per_sample = per_sample.flatten(2).sum(2)
        total += float(0.5 * per_sample.pow(2).mean(0).sum()) * m.weight[0].numel()
    return total


def _input_jacobian(net: nn.Module, x: Tensor) -> np.ndarray | None:
    """Per image, the gradient of the summed outputs w.r.t. that image, flattened: (N, pixels) float64 array;
    ``None`` when the output does not depend on the input. Train mode."""
    net.train()
    inputs = x.detach().clone().requires_grad_(True)
    (jac,) = torch.autograd.grad(net(inputs).sum(), inputs, allow_unused=True)
    return None if jac is None else jac.flatten(1).double().cpu().numpy()


def jacov(net: nn.Module, x: Tensor, y: Tensor) -> float:
    """Jacobian covariance as NASLib computes it (the first nas-without-training score): with ``J`` the input
    Jacobian of the summed outputs (one row per image) and ``v`` the eigenvalues of the correlation matrix of
    the rows of ``J``, ``-sum(log(v + 1e-5) + 1 / (v + 1e-5))``; at most ``-batch_size`` (reached by
    uncorrelated rows). Train mode. Higher = better. NaN when the output does not depend on the input (a
    constant row has no correlation).
    """
    jac = _input_jacobian(net, x)
    if jac is None:
        return math.nan
    with np.errstate(divide="ignore", invalid="ignore"):
        corr = np.corrcoef(jac)
    if not np.isfinite(corr).all():
        return math.nan
    v = np.linalg.eigvalsh(corr)
    k = 1e-5
    return float(-np.sum(np.log(v + k) + 1.0 / (v + k)))


def epe_nas(net: nn.Module, x: Tensor, y: Tensor) -> float:
    """EPE-NAS as NASLib computes it for up to 100 classes: with ``J`` as in :func:`jacov` and ``C_c`` the
    correlation matrix of the rows of ``J`` of the images of class ``c`` (``[[1]]`` for a class with one
    image), ``sum_c |sum log(|C_c| + 1e-5)|`` over the classes present in the batch. Train mode.
    Higher = better (the references' sign). NaN when the output does not depend on the input.
    """
    jac = _input_jacobian(net, x)
    if jac is None:
        return math.nan
    labels = y.cpu().numpy()
    total = 0.0
    for c in np.unique(labels):
        with np.errstate(divide="ignore", invalid="ignore"):
            corr = np.atleast_2d(np.corrcoef(jac[labels == c]))
        total += abs(float(np.log(np.abs(corr) + 1e-5).sum()))
    return total


def nwot(net: nn.Module, x: Tensor, y: Tensor) -> float:
    """NASWOT (Mellor et al., second version): ``log|det K|``, where ``K[i, j]`` counts the units, over all
    ``nn.ReLU`` modules, at which images ``i`` and ``j`` fall on the same side of zero: with binary codes
    ``c = (ReLU input > 0)``, ``K = sum c c^T + (1 - c)(1 - c)^T`` (units minus Hamming distance).

    Codes are read at the ReLU modules, as the references do: in NB201's ReLU-Conv-BN the ReLU comes first, so
    a cell node feeding three convolutions is counted three times, and one feeding only skips and pools not at
    all.
    Train mode. Higher = better; ``-inf`` when ``K`` is singular (e.g. two images with identical codes).
    """
    net.train()
    kernel = torch.zeros((x.shape[0], x.shape[0]), dtype=torch.float64, device=x.device)

    def count(_module: nn.Module, inp: tuple[Tensor, ...], _out: Tensor) -> None:
        codes = (inp[0].flatten(1) > 0).float()
        kernel.add_((codes @ codes.t() + (1.0 - codes) @ (1.0 - codes).t()).double())

    handles = [m.register_forward_hook(count) for m in net.modules() if isinstance(m, nn.ReLU)]
    try:
        with torch.no_grad():
            net(x)
    finally:
        for h in handles:
            h.remove()
    return float(torch.linalg.slogdet(kernel).logabsdet)


def params(net: nn.Module, x: Tensor, y: Tensor) -> float:
    """Number of trainable parameters (weights, biases and BatchNorm's affine ones). Higher = better."""
    from harness.networks import n_params

    return float(n_params(net))


def flops(net: nn.Module, x: Tensor, y: Tensor) -> float:
    """Multiply-adds of a forward pass of one image of ``x``'s size, counting Conv2d layers (per output
    element ``in_channels / groups * kh * kw``) and Linear layers (``in_features`` per output) only: no
    biases, BatchNorm, activations, pooling or additions. Counted in eval mode; ``net``'s mode is restored.
    Higher = better."""
    total = 0

    def count(module: nn.Module, _inp: tuple[Tensor, ...], out: Tensor) -> None:
        nonlocal total
        if isinstance(module, nn.Conv2d):
            total += out[0].numel() * module.weight[0].numel()
        elif isinstance(module, nn.Linear):
            total += out[0].numel() * module.in_features

    was_training = net.training
    handles = [m.register_forward_hook(count) for m in _layers(net)]
    try:
        net.eval()
        with torch.no_grad():
            net(x[:1])
    finally:
        for h in handles:
            h.remove()
        net.train(was_training)
    return float(total)


#: Every proxy, by its configuration name.
PROXIES: dict[str, Proxy] = {
    "synflow": synflow,
    "snip": snip,
    "grad_norm": grad_norm,
    "grasp": grasp,
    "fisher": fisher,
    "jacov": jacov,
    "epe_nas": epe_nas,
    "nwot": nwot,
    "params": params,
    "flops": flops,
}


class ZeroCost(Estimator):
    """Score = a zero-cost proxy of the freshly initialised network; cost = the :func:`~harness.budget.stopwatch`
    seconds to build the network and compute the proxy on ``context.device``.

    ``fit`` picks one fixed mini-batch of CIFAR-10 training images with the estimator's own generator, so the
    batch depends only on the estimator seed. Each network is initialised from (estimator seed, architecture)
    alone, so a score never depends on what was evaluated before it.

    Args:
        proxy: one of :data:`PROXIES`: ``synflow``, ``snip``, ``grad_norm``, ``grasp``, ``fisher``, ``jacov``,
            ``epe_nas``, ``nwot``, ``params``, ``flops``.
        batch_size: images in the mini-batch (``synflow``, ``params`` and ``flops`` use only their size).
        class_balanced: draw ``batch_size // 10`` images per class instead of uniformly.
    """

    tags = EstimatorTags(live=True, deterministic=True)

    def __init__(self, proxy: str = "synflow", batch_size: int = 64, class_balanced: bool = False) -> None:
        self.proxy = proxy
        self.batch_size = batch_size
        self.class_balanced = class_balanced

    def fit(self, context: EstimatorContext) -> float:
        from harness.cifar10 import Cifar10Config, get_batch, load_split, sample_indices

        if self.proxy not in PROXIES:
            raise ConfigError(f"unknown zero-cost proxy {self.proxy!r}; valid proxies: {', '.join(PROXIES)}")
        if context.dataset != "cifar10":
            raise ConfigError(
                "the zero_cost estimator needs CIFAR-10 images (the only images available), so it supports "
                f"only dataset cifar10, not {context.dataset!r}"
            )
        check_positive("zero_cost batch_size", self.batch_size)
        # the one-time JPEG decode of a fresh machine is not this estimator's cost: load before the clock starts
        data = load_split("train", Cifar10Config(data_dir=context.data_dir, cache_dir=context.cache_dir))
        elapsed = stopwatch(context.device)
        idx = sample_indices(self.batch_size, context.rng, split=data, class_balanced=self.class_balanced)
        self._x, self._y = get_batch(data, idx, device=context.device)
        self.context = context
        return elapsed()

    def estimate(self, arch: Arch) -> Estimate:
        from harness.networks import build_network

        ctx = self.context
        elapsed = stopwatch(ctx.device)
        seeding.seed_torch(seeding.rng(ctx.seed, "init:" + ctx.space.format(arch)))
        net = build_network(ctx.space.name, arch.ops, dataset=ctx.dataset).to(ctx.device)
        with torch.enable_grad():
            score = PROXIES[self.proxy](net, self._x, self._y)
        return Estimate(score, cost_s=elapsed(), device=ctx.device)

    def data_files(self, data_dir: Path) -> list[Path]:
        from harness.cifar10 import jpeg_archive_path

        return [jpeg_archive_path(data_dir)]
