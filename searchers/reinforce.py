"""REINFORCE (Williams 1992) over independent per-decision categorical distributions, as in the NAS-Bench-201
baselines: Adam on the logits, reward = score, exponential-moving-average baseline (bias-corrected)."""

from __future__ import annotations

import numbers

import numpy as np

from harness.errors import ConfigError
from harness.interfaces import Searcher, SearchSpace, check_positive
from harness.types import Arch


class Reinforce(Searcher):
    """Policy gradient over one softmax per decision.

    Each ``tell`` is one policy step: ``loss = -log p(arch) * (score - baseline)``, minimised with Adam; the
    baseline is updated with the new score before the step (NAS-Bench-201 ``reinforce.py``).

    Args:
        space: the search space.
        rng: the searcher's generator (also draws the initial logits, ``1e-3 * N(0, 1)``).
        learning_rate: Adam step size.
        ema_momentum: momentum of the moving-average baseline.
        unique: never ask an architecture twice.
    """

    def __init__(
        self,
        space: SearchSpace,
        rng: np.random.Generator,
        *,
        learning_rate: float = 0.01,
        ema_momentum: float = 0.9,
        unique: bool = False,
    ) -> None:
        super().__init__(space, rng, unique=unique)
        check_positive("REINFORCE: learning_rate", learning_rate)
        momentum: object = ema_momentum  # checked as a config may give it, whatever the annotation says
        if isinstance(momentum, bool) or not isinstance(momentum, numbers.Real) or not 0 <= float(momentum) < 1:
            raise ConfigError(f"REINFORCE: ema_momentum must be a number in [0, 1), got {ema_momentum!r}")
        self.learning_rate = learning_rate
        self.ema_momentum = ema_momentum
        choices = np.asarray(space.choices)
        self._mask = np.arange(choices.max()) >= choices[:, None]  # options a decision does not have
        self._rows = np.arange(len(choices))
        self.logits = np.where(self._mask, -np.inf, 1e-3 * rng.standard_normal(self._mask.shape))
        self._m = np.zeros(self._mask.shape)
        self._v = np.zeros(self._mask.shape)
        self._t = 0
        self._ema_num = 0.0
        self._ema_den = 0.0

    def probabilities(self) -> np.ndarray:
        """Current policy: one row of option probabilities per decision."""
        z = np.exp(self.logits - self.logits.max(axis=1, keepdims=True))
        return np.asarray(z / z.sum(axis=1, keepdims=True))

    def propose(self) -> Arch:
        cum = np.cumsum(self.probabilities(), axis=1)
        u = self.rng.random(len(cum))[:, None] * cum[:, -1:]
        return Arch(tuple((cum <= u).sum(axis=1).tolist()))

    def tell(self, arch: Arch, score: float) -> None:
        self._ema_num = self.ema_momentum * self._ema_num + (1 - self.ema_momentum) * score
        self._ema_den = self.ema_momentum * self._ema_den + (1 - self.ema_momentum)
        advantage = score - self._ema_num / self._ema_den
        onehot = np.zeros(self.logits.shape)
        onehot[self._rows, arch.ops] = 1.0
        grad = -(onehot - self.probabilities()) * advantage  # d(-log p(arch) * advantage) / d logits
        self._adam(grad)

    def likely_score(self, arch: Arch) -> float:
        """The baseline: a policy step of (almost) zero advantage, so the next draw, from the same uniforms,
        usually picks the same options whatever the score."""
        return self._ema_num / self._ema_den if self._ema_den else 0.0

    def _adam(self, grad: np.ndarray, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8) -> None:
        self._t += 1
        self._m = beta1 * self._m + (1 - beta1) * grad
        self._v = beta2 * self._v + (1 - beta2) * grad * grad
        m_hat = self._m / (1 - beta1**self._t)
        v_hat = self._v / (1 - beta2**self._t)
        self.logits = np.where(self._mask, -np.inf, self.logits - self.learning_rate * m_hat / (np.sqrt(v_hat) + eps))
