"""The four plug-in kinds: SearchSpace, Benchmark, Estimator, Searcher.

* A **search space** owns the architecture representation; nothing else branches on a space's name.
* A **benchmark** is ground truth. ``query`` reveals validation numbers; ``test_accuracy`` is called only by the
  loop and the tasks, for the report, never by a plug-in.
* An **estimator** scores architectures (higher = predicted better) and says what each score cost.
* A **searcher** only asks and is told; the loop calls benchmarks and estimators on its behalf.
"""

from __future__ import annotations

import abc
import copy
import functools
import itertools
import math
import numbers
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from harness.errors import ConfigError
from harness.types import Arch, Estimate, Observation


class SearchSpace(abc.ABC):
    """A product of categorical decisions: an architecture picks ``arch.ops[i]`` in ``range(choices[i])``.

    Subclasses give the decisions meaning: ``parse``/``format`` of architecture strings and ``iso_key``.
    Every method here is free (no cost is charged).
    """

    name: str
    choices: tuple[int, ...]

    @functools.cached_property
    def size(self) -> int:
        """Number of architectures in the space."""
        return math.prod(self.choices)

    def sample(self, rng: np.random.Generator) -> Arch:
        """A uniformly random architecture."""
        return Arch(tuple(rng.integers(0, self.choices).tolist()))

    def mutate(self, arch: Arch, rng: np.random.Generator) -> Arch:
        """``arch`` with exactly one decision changed to a different, uniformly chosen option."""
        ops = list(arch.ops)
        i = int(rng.integers(len(ops)))
        new = int(rng.integers(self.choices[i] - 1))
        ops[i] = new + (new >= ops[i])
        return Arch(tuple(ops))

    def encode(self, arch: Arch) -> np.ndarray:
        """One-hot float32 vector of length ``sum(choices)`` (decision-major), for learners."""
        out = np.zeros(sum(self.choices), dtype=np.float32)
        out[self._offsets + np.asarray(arch.ops)] = 1.0
        return out

    @property
    def _offsets(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(self.choices)[:-1]])

    def is_valid(self, arch: Arch) -> bool:
        """True when ``arch`` has one in-range choice per decision."""
        return len(arch.ops) == len(self.choices) and all(
            isinstance(o, int) and 0 <= o < c for o, c in zip(arch.ops, self.choices, strict=True)
        )

    #: spaces larger than this are never enumerated (a search over them samples)
    max_enumerable = 10_000_000

    def enumerate(self) -> Iterator[Arch]:
        """Every architecture, in index order (the last decision varies fastest); a :class:`ConfigError` for a space
        too large to enumerate (over :attr:`max_enumerable`)."""
        if self.size > self.max_enumerable:
            raise ConfigError(
                f"the {self.name} space has {self.size:.3g} architectures, too many to enumerate; "
                "sample it instead (or restrict it to a known set)"
            )
        for ops in itertools.product(*(range(c) for c in self.choices)):
            yield Arch(ops)

    def index(self, arch: Arch) -> int:
        """Position of ``arch`` in :meth:`enumerate` order."""
        return int(np.ravel_multi_index(arch.ops, self.choices))

    @abc.abstractmethod
    def parse(self, text: str) -> Arch:
        """The architecture a string names; raises :class:`~harness.errors.ArchParseError` naming the bad token."""

    @abc.abstractmethod
    def format(self, arch: Arch) -> str:
        """The canonical string of ``arch`` (inverse of :meth:`parse`)."""

    def iso_key(self, arch: Arch) -> str:
        """An id shared exactly by architectures that compute the same function; by default the string itself."""
        return self.format(arch)


@runtime_checkable
class Benchmark(Protocol):
    """Ground truth for one (benchmark, dataset).

    Attributes:
        name: CLI name (``nb201``, ``nbmacro``).
        dataset: the dataset the table is for.
        space: the search space the table covers.
        has_train_cost: whether ``query`` returns recorded training seconds.
        fidelities: the training schedules ``query`` accepts; the first is the full one.
        has_test_split: whether ``test_accuracy`` is a split of its own (the run's summary says so as
            ``test_split``); False where it repeats the validation number, as NB301's surrogate sample does.
            True for every table (:class:`~harness.benchmarks.TableBenchmark`).
    """

    name: str
    dataset: str
    space: SearchSpace
    has_train_cost: bool
    fidelities: tuple[str, ...]
    has_test_split: bool

    def load(self) -> Benchmark:
        """Validate the configuration and load the table (idempotent); returns ``self``."""
        ...

    def query(self, arch: Arch, *, fidelity: str | None = None) -> Observation:
        """Validation accuracy and recorded training cost at ``fidelity`` (default: the full schedule). Free."""
        ...

    def test_accuracy(self, arch: Arch) -> float:
        """Test accuracy (%) of the full schedule. Only the loop and the tasks call this, for the report."""
        ...

    def optimum(self) -> tuple[float, float]:
        """(best validation accuracy, best test accuracy) over the whole benchmark, for regret. Free."""
        ...

    def validation(self) -> Callable[..., Observation]:
        """``query`` as a plug-in gets it: validation numbers answered on demand, holding nothing from which a test
        accuracy can be reached (no reference to the benchmark, its test numbers or a closure over them): a
        :class:`~harness.benchmarks.view.ValidationView` of a table's validation columns, or a surrogate's
        validation-only model. Free."""
        ...


@dataclass(frozen=True)
class EstimatorContext:
    """What an estimator may know about the problem at ``fit`` time. No test accuracy is reachable from here.

    Attributes:
        space: the search space.
        benchmark: CLI name of the benchmark.
        dataset: dataset name.
        query: validation look-up of the benchmark table (``Benchmark.query``).
        rng: the estimator's own generator (seeded by ``seed``, independent of the searcher's).
        seed: the estimator's seed; derive per-architecture randomness from (seed, architecture), never from the
            order of calls, so that a cached score does not depend on what was evaluated before.
        device: torch device string for live estimators (``cpu``, ``cuda``).
        data_dir: shared data folder (``None`` = default).
        cache_dir: derived-cache folder (``None`` = default).
    """

    space: SearchSpace
    benchmark: str
    dataset: str
    query: Callable[..., Observation]
    rng: np.random.Generator
    seed: int = 0
    device: str = "cpu"
    data_dir: str | None = None
    cache_dir: str | None = None


@dataclass(frozen=True, slots=True)
class EstimatorTags:
    """Facts the loop and the tests need about an estimator.

    Attributes:
        live: computes something (charges what :func:`~harness.budget.stopwatch` measures) rather than reading a
            table (recorded seconds).
        deterministic: the same (arch, seed) always gives the same score.
        dataset_free: scores do not depend on the benchmark's dataset (the score cache shares them across datasets).
    """

    live: bool
    deterministic: bool = True
    dataset_free: bool = False


class Estimator(abc.ABC):
    """Scores architectures. ``__init__`` stores parameters only; ``fit`` does one-time work."""

    tags: EstimatorTags = EstimatorTags(live=True)

    def fit(self, context: EstimatorContext) -> float:
        """Prepare for ``estimate`` (load data, train a supernet, ...); return the seconds to charge for it."""
        self.context = context
        return 0.0

    @abc.abstractmethod
    def estimate(self, arch: Arch) -> Estimate:
        """Score one architecture; raise :class:`~harness.errors.EstimatorError` when it cannot."""

    def data_files(self, data_dir: Path) -> list[Path]:
        """The shared data files the scores depend on (their content is part of the score cache's key)."""
        return []


class Searcher(abc.ABC):
    """Ask/tell search strategy. Subclasses implement :meth:`propose` and :meth:`tell`.

    Args:
        space: the search space.
        rng: the searcher's own generator.
        unique: never ask the same architecture twice (``ask`` returns ``None`` once the space is exhausted).
    """

    #: proposals tried before falling back to uniform sampling of unseen architectures (``unique=True``)
    max_retries = 100

    def __init__(self, space: SearchSpace, rng: np.random.Generator, *, unique: bool = False) -> None:
        if not isinstance(unique, bool):  # as a config may give it
            raise ConfigError(f"{type(self).__name__}: unique must be true or false, got {unique!r}")
        self.space = space
        self.rng = rng
        self.unique = unique
        #: every architecture asked so far (repeats too when ``unique`` is false)
        self.asked: set[Arch] = set()

    def ask(self) -> Arch | None:
        """The next architecture to evaluate, or ``None`` when there is none left."""
        if self.unique and len(self.asked) >= self.space.size:
            return None
        arch = self.propose()
        if self.unique:
            for _ in range(self.max_retries):
                if arch is None or arch not in self.asked:
                    break
                arch = self.propose()
            else:
                arch = self.draw_unseen(1)[0]
        if arch is not None:
            self.asked.add(arch)
        return arch

    def draw_unseen(self, n: int) -> list[Arch]:
        """``n`` distinct uniformly random architectures never asked (every one left when fewer remain), in an
        order that depends on the rng only."""
        n = min(n, self.space.size - len(self.asked))
        picked: dict[Arch, None] = {}  # insertion-ordered
        for _ in range(20 * n + self.max_retries):
            if len(picked) >= n:
                return list(picked)
            arch = self.space.sample(self.rng)
            if arch not in self.asked:
                picked[arch] = None
        # almost exhausted (rejection keeps failing): draw the rest exactly
        unseen = [a for a in self.space.enumerate() if a not in self.asked and a not in picked]
        rest = self.rng.choice(len(unseen), size=n - len(picked), replace=False)
        return [*picked, *(unseen[int(i)] for i in rest)]

    @abc.abstractmethod
    def propose(self) -> Arch | None:
        """The searcher's own next candidate (may repeat one already asked)."""

    @abc.abstractmethod
    def tell(self, arch: Arch, score: float) -> None:
        """Report the score of an asked architecture. Failed evaluations are not told."""

    def recommend(self) -> Arch | None:
        """The final answer if the searcher has its own; ``None`` = the best-scored evaluated architecture."""
        return None

    def likely_score(self, arch: Arch) -> float | None:
        """The score to assume ``arch``, just asked, will be told, when guessing the asks after it
        (:meth:`speculate`): a likely outcome, or one that changes the next ask the least. ``None`` (the default):
        no guess."""
        return None

    def speculate(self, arch: Arch) -> Iterator[Arch]:
        """The asks likely to follow ``arch``, just asked and not yet told, so that a second process can evaluate
        them meanwhile (``workers=2``, :mod:`harness.lookahead`): lazily, each worked out on a copy of this
        searcher (its generator included) told the :meth:`likely_score` of the ask before it. This searcher is
        left as it was; the copy is made at the first item, so take it before ``arch`` is told. A wrong guess costs
        that process's time and never changes the search. Ends where :meth:`likely_score` gives ``None`` or the
        copy has no ask left."""
        twin = self
        while (score := twin.likely_score(arch)) is not None:
            if twin is self:
                twin = copy.deepcopy(self, {id(self.space): self.space})  # the space is shared, never changed
            twin.tell(arch, score)
            following = twin.ask()
            if following is None:
                return
            yield following
            arch = following

    def no_answer_reason(self) -> str | None:
        """Why :meth:`recommend` has no answer of its own yet, for a searcher that gives one: the loop then answers
        the best-scored evaluation and says why in the run's summary (``incumbent_note``) and log. ``None`` (the
        default): nothing to say (the searcher has no answer of its own, or it has one)."""
        return None

    @property
    def goal(self) -> tuple[str, int, int] | None:
        """What stops this search besides the budget, for the progress bar: (what, done, total), e.g. RMI-NAS's
        positives found. ``None`` (the default): the bar shows the budget."""
        return None


def check_positive(name: str, value: object) -> None:
    """Raise :class:`ConfigError` unless ``value`` is a number > 0 (for searcher and estimator hyper-parameters,
    checked as a config may give them, whatever the annotations say)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not float(value) > 0:
        raise ConfigError(f"{name} must be a number > 0, got {value!r}")


def check_count(name: str, value: object, minimum: int = 1) -> None:
    """Raise :class:`ConfigError` unless ``value`` is an integer >= ``minimum`` (``2.5``, ``"ten"`` and ``true``
    are not), for searcher and estimator hyper-parameters."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or int(value) < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")
