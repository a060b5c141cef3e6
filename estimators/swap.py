"""SWAP: "SWAP-NAS: Sample-Wise Activation Patterns for Ultra-fast NAS" (Peng et al., ICLR 2024; official code
GitHub pym1024/SWAP, ``src/metrics/swap.py`` and ``correlation.py``, which has no licence file: read, not copied).

A ReLU unit is one element of the feature map a ``nn.ReLU`` module returns (channel and position). Its
*sample-wise activation pattern* over a batch of ``B`` images is the binary vector of length ``B`` saying for which
images the unit is active (output > 0). The SWAP score is the number of distinct patterns over all units of all
ReLU modules that see a feature map (4-D input; the official code skips ReLUs on vectors); a ReLU module called
twice contributes its units twice. Identical patterns count once, so the score is at most
``min(units, 2 ** B)``: with the official batch of 16 images, 65,536.

SWAP-reg multiplies the score by ``exp(-(P - mu)^2 / sigma)``, with ``P`` the number of trainable parameters in
thousands (the official ``count_parameters``), steering the ranking towards networks of about ``mu`` thousand
parameters.

The score is the mean over ``repeats`` independent initialisations of the same network on the same batch (the
official ``correlation.py`` re-initialises the network before each of its repeats).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from estimators.training_free import Batch, TrainingFree, hooked, initialise
from harness.errors import ConfigError
from harness.interfaces import EstimatorContext, check_count, check_positive
from harness.networks import n_params

#: bits of an activation pattern packed into one int64 code (the sign bit stays clear)
_BITS = 63


def pattern_codes(active: Tensor) -> Tensor:
    """The activation patterns of a (B, units) boolean matrix (True = unit active on that image) packed into
    integers: a (units, ceil(B / 63)) int64 matrix whose row is unit's pattern, bit ``b % 63`` of word ``b // 63``
    set when it is active on image ``b``. Two units have equal rows exactly when their patterns are equal."""
    words = []
    for start in range(0, active.shape[0], _BITS):
        bits = active[start : start + _BITS].long()
        shifts = torch.arange(bits.shape[0], device=bits.device).unsqueeze(1)
        words.append((bits << shifts).sum(dim=0))
    return torch.stack(words, dim=1)


def activation_patterns(net: nn.Module, x: Tensor) -> Tensor:
    """The sample-wise activation patterns of ``net`` on images ``x`` (B images), packed by :func:`pattern_codes`:
    one row per element of every feature map (4-D input) that a ``nn.ReLU`` module outputs in one forward pass."""
    codes: list[Tensor] = []

    def keep(_module: nn.Module, inp: tuple[Tensor, ...], out: Tensor) -> None:
        if inp[0].dim() == 4:
            codes.append(pattern_codes((out > 0).flatten(1)))

    with hooked([m.register_forward_hook(keep) for m in net.modules() if isinstance(m, nn.ReLU)]), torch.no_grad():
        net(x)
    words = -(-x.shape[0] // _BITS)
    return torch.cat(codes) if codes else torch.zeros((0, words), dtype=torch.long, device=x.device)


def count_distinct(codes: Tensor) -> int:
    """The number of distinct rows of a (units, words) code matrix of :func:`activation_patterns`."""
    distinct = torch.unique(codes[:, 0]) if codes.shape[1] == 1 else torch.unique(codes, dim=0)
    return int(distinct.shape[0])


def swap_score(net: nn.Module, x: Tensor) -> int:
    """The SWAP score: distinct sample-wise activation patterns of ``net`` on images ``x`` (at most ``2 ** B``)."""
    return count_distinct(activation_patterns(net, x))


def size_factor(net: nn.Module, mu: float, sigma: float) -> float:
    """SWAP-reg's factor ``exp(-(P - mu)^2 / sigma)``, ``P`` = trainable parameters of ``net`` in thousands."""
    return math.exp(-((n_params(net) / 1e3 - mu) ** 2) / sigma)


class SWAP(TrainingFree):
    """Score = the mean SWAP score of ``repeats`` initialisations of the network on one batch, times SWAP-reg's
    size factor when ``mu`` and ``sigma`` are set. Higher = predicted better.

    Args:
        repeats: initialisations averaged (each draws the weights anew as ``init`` says).
        mu, sigma: SWAP-reg's target size (thousands of parameters) and width; both ``None`` = plain SWAP.
        batch_size, n_batches, inputs, bn, init: as :class:`~estimators.training_free.TrainingFree`; only the
            first batch is used.
    """

    def __init__(
        self,
        repeats: int = 32,
        mu: float | None = None,
        sigma: float | None = None,
        batch_size: int = 16,
        n_batches: int = 1,
        inputs: str = "data",
        bn: str = "train",
        init: str = "gaussian",
    ) -> None:
        super().__init__(batch_size=batch_size, n_batches=n_batches, inputs=inputs, bn=bn, init=init)
        self.repeats = repeats
        self.mu = mu
        self.sigma = sigma

    def fit(self, context: EstimatorContext) -> float:
        check_count("SWAP repeats", self.repeats)
        if (self.mu is None) != (self.sigma is None):
            raise ConfigError("SWAP-reg needs both mu and sigma (or neither, for plain SWAP)")
        if self.sigma is not None:
            check_positive("SWAP sigma", self.sigma)
            check_positive("SWAP mu", self.mu)
        return super().fit(context)

    def score(self, net: nn.Module, batches: list[Batch]) -> float:
        x = batches[0][0]
        counts = []
        for r in range(self.repeats):
            if r:
                initialise(net, self.init)
            counts.append(swap_score(net, x))
        value = sum(counts) / len(counts)
        if self.mu is not None and self.sigma is not None:
            value *= size_factor(net, self.mu, self.sigma)
        return value
