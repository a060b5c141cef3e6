"""RMI-NAS search strategy: Zheng et al., "Neural Architecture Search with Representation Mutual Information",
CVPR 2022, Section 3.3 (random-forest sampling) as implemented in MAC-AutoML/XNAS
``xnas/algorithms/RMINAS/sampler/RF_sampling.py`` and ``scripts/search/RMINAS.py``.

1. Warm-up: ask ``n_warmup`` uniformly random architectures.
2. Fix the threshold: the ``1 - positive_quantile`` quantile of the warm-up scores (scores are "higher = better", so
   this is the reference's ``positive_quantile`` quantile of the losses). An architecture is *positive* when its score
   is at least the threshold.
3. Repeat: fit a random forest on the one-hot encodings (``space.encode``) of every told architecture, labelled
   positive/negative; draw ``n_candidates`` random architectures not asked yet and ask the one the forest finds most
   probably positive. Stop once the forest-guided proposals have found ``n_positives`` positives (the reference's
   ``RF_SUCC``), or the space is exhausted.
4. Answer: a vote of the best ``top_k`` positives, per decision ("sum") or along the chain of decisions ("greedy").
   The answer need not have been evaluated.
"""

from __future__ import annotations

import hashlib
import math
import numbers
from typing import Any

import numpy as np

from harness import metrics
from harness.errors import ConfigError
from harness.interfaces import Searcher, SearchSpace, check_count
from harness.types import Arch


class RMINAS(Searcher):
    """Random-forest-guided sampling of architectures that score in the top ``positive_quantile`` of a warm-up.

    Args:
        space: the search space (any product of categorical decisions; only ``sample``, ``encode``, ``enumerate``,
            ``size`` and ``choices`` are used).
        rng: the searcher's generator; the only source of randomness (warm-up, candidates, ties, forest seed).
        n_warmup: number of told scores that make up the warm-up; the threshold is fixed when the last one arrives.
        positive_quantile: fraction of the warm-up scores that count as positive (0 < q < 1).
        n_trees: trees of the :class:`sklearn.ensemble.RandomForestClassifier`.
        n_candidates: random unseen architectures ranked by the forest per proposal (all unseen ones if fewer).
        n_positives: stop after the forest-guided proposals found this many positives (warm-up ones do not count).
        top_k: the best positives that vote for the answer.
        mode: ``"sum"`` = per-decision majority; ``"greedy"`` = follow the most frequent choice of each decision
            among the voters that agree with the choice already made for the previous decision.
        unique: never ask an architecture twice (the warm-up then samples without replacement).
        tie_break: how the vote settles a tie between choices with as many voters: ``index`` (the lower choice
            index, as the reference's ``np.argmax`` of summed one-hot encodings) or ``score`` (the larger total
            score of their voters, then the lower index).
    """

    def __init__(
        self,
        space: SearchSpace,
        rng: np.random.Generator,
        *,
        n_warmup: int = 100,
        positive_quantile: float = 0.05,
        n_trees: int = 30,
        n_candidates: int = 1000,
        n_positives: int = 100,
        top_k: int = 50,
        mode: str = "sum",
        unique: bool = True,
        tie_break: str = "index",
    ) -> None:
        super().__init__(space, rng, unique=unique)
        # checked as a config may give them, whatever the annotations say
        counts: dict[str, object] = {
            "n_warmup": n_warmup,
            "n_trees": n_trees,
            "n_candidates": n_candidates,
            "n_positives": n_positives,
            "top_k": top_k,
        }
        for name, value in counts.items():
            check_count(f"rminas: {name}", value)
        quantile: object = positive_quantile
        if isinstance(quantile, bool) or not isinstance(quantile, numbers.Real):
            raise ConfigError(f"rminas: positive_quantile must be a number in (0, 1), got {positive_quantile!r}")
        if not 0 < positive_quantile < 1:
            raise ConfigError(f"rminas: positive_quantile must be in (0, 1), got {positive_quantile!r}")
        if mode not in metrics.VOTE_MODES:
            raise ConfigError(f"rminas: mode must be one of {', '.join(metrics.VOTE_MODES)}, got {mode!r}")
        if tie_break not in metrics.TIE_BREAKS:
            raise ConfigError(f"rminas: tie_break must be one of {', '.join(metrics.TIE_BREAKS)}, got {tie_break!r}")
        self.tie_break = tie_break
        self.n_warmup = int(n_warmup)
        self.positive_quantile = float(positive_quantile)
        self.n_trees = int(n_trees)
        self.n_candidates = int(n_candidates)
        self.n_positives = int(n_positives)
        self.top_k = int(top_k)
        self.mode = mode
        #: the score a positive reaches; ``None`` during the warm-up
        self.threshold: float | None = None
        #: positives found by forest-guided proposals (the stopping counter)
        self.n_found = 0
        self._features: list[np.ndarray] = []  # one row per tell (repeats included), as the reference
        self._scores: list[float] = []
        self._told: dict[Arch, list[float]] = {}  # every score of each told architecture, in order of first tell
        self._forest_seed: int | None = None
        self._forest: Any = None  # fitted RandomForestClassifier, or None when all labels are equal
        self._constant = 0.0  # the predicted probability when all labels are equal
        self._stale = True  # a tell arrived since the last fit
        self._fitted = _Fitted()  # shared with the copies speculate() makes

    # ---------------------------------------------------------------- ask / tell

    def propose(self) -> Arch | None:
        if self.threshold is None:
            if not self.unique:
                return self.space.sample(self.rng)
            return next(iter(self.draw_unseen(1)), None)
        return self._guided() if self.n_found < self.n_positives else None

    def tell(self, arch: Arch, score: float) -> None:
        score = float(score)
        first = arch not in self._told
        self._told.setdefault(arch, []).append(score)
        self._features.append(np.asarray(self.space.encode(arch), dtype=np.float32))
        self._scores.append(score)
        self._stale = True
        if self.threshold is None:
            if len(self._scores) >= self.n_warmup:
                self.threshold = float(np.quantile(self._scores, 1.0 - self.positive_quantile))
                self._forest_seed = int(self.rng.integers(2**31 - 1))  # one forest seed per run, as the reference
        elif first and score >= self.threshold:
            self.n_found += 1

    @property
    def goal(self) -> tuple[str, int, int]:
        """What stops this search, for progress bars: (what, done, total): the warm-up's evaluations, then the
        positives the forest-guided proposals found."""
        if self.threshold is None:
            return ("warm-up", len(self._scores), self.n_warmup)
        return ("positives", self.n_found, self.n_positives)

    @property
    def positives(self) -> list[tuple[Arch, float]]:
        """Distinct positive architectures with their (mean) score, best first; empty during the warm-up."""
        if self.threshold is None:
            return []
        return [(a, s) for a, s in self._ranked() if s >= self.threshold]

    # ---------------------------------------------------------------- sampling

    def _guided(self) -> Arch | None:
        candidates = self.draw_unseen(self.n_candidates)  # never an asked one: the guided phase never repeats
        if not candidates:
            return None
        proba = self._positive_probability(candidates)
        best = np.flatnonzero(proba == proba.max())
        return candidates[int(best[self.rng.integers(len(best))])]

    def _positive_probability(self, archs: list[Arch]) -> np.ndarray:
        if self._stale:
            self._fit()
        if self._forest is None:
            return np.full(len(archs), self._constant)
        features = np.stack([np.asarray(self.space.encode(a), dtype=np.float32) for a in archs])
        proba = self._forest.predict_proba(features)
        return np.asarray(proba[:, list(self._forest.classes_).index(True)])

    def _fit(self) -> None:
        """Refit the forest on every tell so far (lazily: once per proposal, after any number of tells)."""
        from sklearn.ensemble import RandomForestClassifier

        assert self.threshold is not None
        labels = np.asarray(self._scores) >= self.threshold
        self._stale = False
        if labels.all() or not labels.any():  # one class: the forest cannot tell architectures apart
            self._forest, self._constant = None, float(labels[0])
            return
        features = np.stack(self._features)
        key = hashlib.blake2b(features.tobytes() + labels.tobytes() + repr(self._forest_seed).encode()).digest()
        if key not in self._fitted:
            forest = RandomForestClassifier(n_estimators=self.n_trees, random_state=self._forest_seed)
            self._fitted.put(key, forest.fit(features, labels))
        self._forest = self._fitted[key]

    # ---------------------------------------------------------------- answer

    def recommend(self) -> Arch | None:
        """The vote of the best ``top_k`` positives (the best ``top_k`` told architectures if there is no positive).

        ``None`` while the warm-up is not over (no threshold, no positives): the loop then answers the best-scored
        evaluation, as random search would.
        """
        if self.threshold is None:
            return None
        voters = (self.positives or self._ranked())[: self.top_k]
        if not voters:
            return None
        ops = np.array([a.ops for a, _ in voters], dtype=np.int64)
        scores = np.array([s for _, s in voters], dtype=np.float64)
        return Arch(metrics.vote(ops, scores, self.space.choices, mode=self.mode, tie_break=self.tie_break))

    def likely_score(self, arch: Arch) -> float:
        """Not a positive (the usual outcome; -inf also leaves a warm-up's threshold almost where it would be).
        After a negative the forest is refitted on the same labels plus one, and ranks the same fresh candidates,
        so the guess is right whenever ``arch`` turns out negative."""
        return -math.inf

    def no_answer_reason(self) -> str | None:
        """Why :meth:`recommend` gave ``None``: the warm-up did not finish, so no threshold was fixed."""
        return "RMI-NAS: its warm-up did not finish, so no threshold was fixed" if self.threshold is None else None

    def _ranked(self) -> list[tuple[Arch, float]]:
        """Distinct told architectures with their mean score, best first (ties: first told first)."""
        means = [(a, float(np.mean(s))) for a, s in self._told.items()]
        return sorted(means, key=lambda item: -item[1])


class _Fitted(dict[bytes, Any]):
    """The last forests fitted by a searcher and the copies :meth:`~harness.interfaces.Searcher.speculate` makes of
    it (a copy shares this, not a copy of it), by what they were fitted on: a copy told that a guess is not a
    positive fits the forest that the searcher fits again when the guess is asked and turns out not to be one.
    A forest is never changed once fitted."""

    keep = 4

    def __deepcopy__(self, memo: dict[int, Any]) -> _Fitted:
        return self

    def put(self, key: bytes, forest: Any) -> None:
        self[key] = forest
        while len(self) > self.keep:
            del self[next(iter(self))]
