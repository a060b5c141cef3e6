"""VKDNW: "Training-free Neural Architecture Search through Variance of Knowledge of Deep Network Weights" (Tybl &
Neumann, CVPR 2025; official code GitHub ondratybl/VKDNW, ``NB201/ZeroShotProxy/compute_vkdnw_score.py``, GPL-3.0:
read, not copied).

The Fisher information of the network's predictive distribution (a categorical over the classes) with respect to a
subset of its weights, from one batch of ``B`` images::

    F = 1/B sum_b J_b^T (diag(p_b) - p_b p_b^T) J_b

with ``J_b`` the Jacobian of image ``b``'s logits with respect to the chosen weights and ``p_b`` its softmax,
smoothed towards uniform (``(1 - s) softmax + s / classes``). No labels enter: the expectation over labels is taken
under the model. The chosen weights are ``per_tensor`` entries (evenly spaced, the first included) of each of the
first ``max_tensors`` parameter tensors in the order the forward pass uses them. With ``q_1..q_9`` the deciles of
the eigenvalues of ``F``, VKDNW is the entropy ``-sum w_k log w_k`` of ``w = q / sum(q)``: at most ``log 9``, when
the spectrum is flat.

The paper's single-proxy ranking (VKDNW_single, tau 0.618 on NB201 CIFAR-10) orders networks by ``aleph``, the
number of trainable parameter tensors (its "#trainable layers"), and by the entropy among networks of equal
``aleph``. The score ``aleph + entropy / (2 log 9)`` gives exactly that order (``layers_first``).

The network is scored in eval mode (BatchNorm uses its running statistics, fresh: mean 0, variance 1), where every
image's logits depend on that image alone, so per-image Jacobians are well defined. Chosen weights that do not
reach the logits (on a branch of the cell that leads nowhere) add zero eigenvalues; when nine tenths of the
eigenvalues are zero, so are all deciles, and the entropy is 0, as in the official code. A non-finite Fisher gives
NaN.
"""

from __future__ import annotations

import math
import warnings

import torch
from torch import Tensor, nn
from torch.func import functional_call, jvp

from estimators.training_free import Batch, TrainingFree, hooked
from harness.errors import ConfigError
from harness.interfaces import EstimatorContext, check_count

#: the quantile levels of the eigenvalue spectrum the entropy is taken over: the nine deciles
DECILES = tuple(k / 10 for k in range(1, 10))

Chosen = list[tuple[str, Tensor]]


def forward_order(net: nn.Module, x: Tensor) -> list[str]:
    """Names of ``net``'s trainable parameter tensors, in the order a forward pass of ``x`` first calls their
    modules (tensors of a module in their registration order; those of modules never called last)."""
    called: dict[int, nn.Module] = {}

    def note(module: nn.Module, _inp: tuple[Tensor, ...]) -> None:
        called.setdefault(id(module), module)

    owners = [m for m in net.modules() if any(True for _ in m.parameters(recurse=False))]
    with hooked([m.register_forward_pre_hook(note) for m in owners]), torch.no_grad():
        net(x)
    prefix = {id(m): name for name, m in net.named_modules()}
    modules = list(called.values()) + [m for m in owners if id(m) not in called]
    return [
        f"{prefix[id(m)]}.{name}" if prefix[id(m)] else name
        for m in modules
        for name, p in m.named_parameters(recurse=False)
        if p.requires_grad
    ]


def choose_weights(net: nn.Module, x: Tensor, max_tensors: int, per_tensor: int) -> Chosen:
    """The weights the Fisher is taken over: ``per_tensor`` evenly spaced flat indices (the first included; all of
    a smaller tensor) of each of the first ``max_tensors`` tensors of :func:`forward_order`."""
    params = dict(net.named_parameters())
    chosen = []
    for name in forward_order(net, x[:1])[:max_tensors]:
        n = params[name].numel()
        idx = torch.linspace(0, n - 1, min(per_tensor, n), device=x.device).long()
        chosen.append((name, idx))
    return chosen


def weight_tangent(module: nn.Module, pname: str, index: int, inp: tuple[Tensor, ...]) -> Tensor:
    """d module(*inp) / d (flat entry ``index`` of its parameter ``pname``), per image, by forward-mode
    differentiation of the module alone (no gradient graph)."""
    weight = getattr(module, pname).detach()
    direction = torch.zeros(weight.numel(), device=weight.device, dtype=weight.dtype)
    direction[index] = 1.0

    def output(w: Tensor) -> Tensor:
        out: Tensor = functional_call(module, {pname: w}, inp)
        return out

    with torch.no_grad():
        tangent: Tensor = jvp(output, (weight,), (direction.view_as(weight),))[1]
    return tangent


def per_image_jacobian(net: nn.Module, x: Tensor, chosen: Chosen) -> Tensor:
    """d logits / d chosen weights of each image of ``x`` on its own: (B, classes, weights), weights in the order
    of ``chosen``. ``net`` must be in eval mode, where an image's logits depend on that image alone.

    Each chosen weight ``w_i`` of a module gets a per-image shift ``d_b``: the module's output for image ``b``
    becomes ``out_b + d_b * (d out_b / d w_i)`` (the tangent, by forward-mode differentiation of the module alone),
    which at ``d = 0`` changes no value and has the derivative of moving ``w_i`` for image ``b`` only. One
    backward pass per class then gives every image's derivative with respect to every chosen weight, without the
    per-image weight gradients that differentiating the weights themselves would compute."""
    modules = dict(net.named_modules())
    shifts: dict[str, list[tuple[str, Tensor, Tensor]]] = {}
    columns = []
    for name, idx in chosen:
        owner, _, pname = name.rpartition(".")
        shift = torch.zeros((x.shape[0], len(idx)), device=x.device, requires_grad=True)
        shifts.setdefault(owner, []).append((pname, idx, shift))
        columns.append(shift)
    busy: set[int] = set()

    def shifted(module: nn.Module, inp: tuple[Tensor, ...], out: Tensor) -> Tensor | None:
        if id(module) in busy:  # the tangent's own call of the module below
            return None
        busy.add(id(module))
        try:
            for pname, idx, shift in shifts[names[id(module)]]:
                for j, i in enumerate(idx.tolist()):
                    tangent = weight_tangent(module, pname, i, inp)
                    out = out + shift[:, j].view(-1, *[1] * (out.dim() - 1)) * tangent
        finally:
            busy.discard(id(module))
        return out

    names = {id(modules[owner]): owner for owner in shifts}
    handles = [modules[owner].register_forward_hook(shifted) for owner in shifts]
    with hooked(handles), torch.enable_grad(), warnings.catch_warnings():
        # torch's forward mode scripts its decompositions at first use, which warns that scripting is deprecated
        warnings.filterwarnings("ignore", "`torch.jit.script` is deprecated", DeprecationWarning)
        logits = net(x)
        rows = []
        for c in range(logits.shape[1]):
            grads = torch.autograd.grad(logits[:, c].sum(), columns, retain_graph=True, allow_unused=True)
            rows.append(
                torch.cat([torch.zeros_like(s) if g is None else g for s, g in zip(columns, grads, strict=True)], 1)
            )
    return torch.stack(rows, dim=1)


def fisher_information(net: nn.Module, x: Tensor, chosen: Chosen, smoothing: float) -> Tensor:
    """``1/B sum_b J_b^T (diag(p_b) - p_b p_b^T) J_b`` (float64), ``p_b`` the softmax of image ``b``'s logits mixed
    with the uniform distribution by ``smoothing``; ``net`` in eval mode."""
    jac = per_image_jacobian(net, x, chosen).double()
    with torch.no_grad():
        logits = net(x).double()
    prob = torch.softmax(logits, dim=1) * (1 - smoothing) + smoothing / logits.shape[1]
    mean_grad = torch.einsum("bcp,bc->bp", jac, prob)
    second = torch.einsum("bcp,bcq->pq", jac * prob.unsqueeze(2), jac)
    return (second - mean_grad.t() @ mean_grad) / x.shape[0]


def decile_entropy(fisher: Tensor) -> float:
    """Entropy of the nine eigenvalue deciles of a symmetric positive semi-definite matrix, normalised to sum 1
    (eigenvalues taken in absolute value, as singular values, and ``0 log 0 = 0``); 0 when the deciles are all zero,
    NaN when the matrix is not finite."""
    if not torch.isfinite(fisher).all():
        return math.nan
    eigenvalues = torch.linalg.eigvalsh(fisher).abs()
    q = torch.quantile(eigenvalues, torch.tensor(DECILES, dtype=eigenvalues.dtype, device=eigenvalues.device))
    if not q.sum() > 0:
        return 0.0
    w = q[q > 0] / q.sum()
    return float(-(w * w.log()).sum())


def n_tensors(net: nn.Module) -> int:
    """aleph, the paper's "#trainable layers": the number of trainable parameter tensors of ``net``."""
    return sum(1 for p in net.parameters() if p.requires_grad)


class VKDNW(TrainingFree):
    """Score = VKDNW of the freshly initialised network on one batch (:func:`decile_entropy` of
    :func:`fisher_information`), ranked after aleph when ``layers_first``. Higher = predicted better.

    Args:
        max_tensors: parameter tensors (in forward order) whose weights enter the Fisher.
        per_tensor: weights taken from each of them.
        smoothing: weight of the uniform distribution mixed into the softmax.
        layers_first: score ``aleph + entropy / (2 log 9)`` (the paper's VKDNW_single ranking); ``False``: the
            entropy alone.
        batch_size, n_batches, inputs, bn, init: as :class:`~estimators.training_free.TrainingFree`; only the
            first batch is used, and ``bn`` must be ``eval``.
    """

    def __init__(
        self,
        max_tensors: int = 128,
        per_tensor: int = 1,
        smoothing: float = 0.05,
        layers_first: bool = True,
        batch_size: int = 64,
        n_batches: int = 1,
        inputs: str = "gaussian",
        bn: str = "eval",
        init: str = "kaiming_normal",
    ) -> None:
        super().__init__(batch_size=batch_size, n_batches=n_batches, inputs=inputs, bn=bn, init=init)
        self.max_tensors = max_tensors
        self.per_tensor = per_tensor
        self.smoothing = smoothing
        self.layers_first = layers_first

    def fit(self, context: EstimatorContext) -> float:
        check_count("VKDNW max_tensors", self.max_tensors)
        check_count("VKDNW per_tensor", self.per_tensor)
        if (
            isinstance(self.smoothing, bool)
            or not isinstance(self.smoothing, int | float)
            or not 0 <= self.smoothing < 1
        ):
            raise ConfigError(f"VKDNW smoothing must be a number in [0, 1), got {self.smoothing!r}")
        if self.bn != "eval":
            raise ConfigError(
                f"VKDNW takes per-image Jacobians, which batch statistics would mix: bn must be eval, got {self.bn!r}"
            )
        return super().fit(context)

    def score(self, net: nn.Module, batches: list[Batch]) -> float:
        x = batches[0][0]
        chosen = choose_weights(net, x, self.max_tensors, self.per_tensor)
        entropy = decile_entropy(fisher_information(net, x, chosen, self.smoothing))
        return n_tensors(net) + entropy / (2 * math.log(9)) if self.layers_first else entropy
