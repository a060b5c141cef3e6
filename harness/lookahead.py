"""A second process that evaluates the architectures likely to be asked next (``workers=2``).

Both processes take from one list of guesses of the coming asks: the rest of a rank sample (always right), or the
searcher's :meth:`~harness.interfaces.Searcher.speculate` (each ask after the likely outcome of the one before,
e.g. RMI-NAS's "not a positive"). The worker always holds the next guesses it is to evaluate, so it never waits
on this process: when it finishes one, it starts the next. This process evaluates the architecture asked, or,
when the worker already has that one, the first guess the worker has not started. When a guess is right, its
estimate is ready, or under way, when it is asked; when it is wrong, its time is lost and its score stays in the
score cache, where a later ask of that architecture finds it. The search itself runs exactly as in one process:
the same asks, the same scores (the worker builds the same estimator with the same seed, threads and score key),
the same records; only wall time changes. So two workers halve a rank run, and speed up a search by the share of
right guesses.

The worker ignores Ctrl-C (this process stops it on its way out) and ends by itself when this process is gone,
even by ``kill -9``: its end of the pipe closes.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import multiprocessing
import signal
import sys
import types
from collections.abc import Callable, Iterable, Iterator
from multiprocessing.connection import Connection
from typing import Any

from harness.interfaces import Estimator
from harness.types import Arch, Estimate

log = logging.getLogger("harness")


class Lookahead:
    """Two evaluators, this process and a worker, kept busy on the architecture asked and the guesses after it.

    Args:
        factory: builds and fits the worker's estimator (``factory(*args)`` in the worker): picklable, e.g. a
            module-level function of a config.
        args: its arguments (picklable).
    """

    #: guesses after the architecture asked that the two processes take from (the worker holds those this
    #: process has not taken, so that it goes on to the next one as soon as it finishes one)
    depth = 2
    #: finished guesses kept in memory, not asked yet (a later ask may still want one; a cached score outlives them)
    keep = 8

    def __init__(self, factory: Callable[..., Estimator], *args: Any) -> None:
        context = multiprocessing.get_context("spawn")  # fork would copy torch's thread pools: unsafe
        self._conn, theirs = context.Pipe()
        self._process = context.Process(target=_serve, args=(theirs, factory, args), name="harness-lookahead")
        self._process.daemon = True
        with _bare_main():
            self._process.start()
        theirs.close()
        self._running: Arch | None = None  # the architecture the worker is evaluating
        self._confirmed = True  # it said it started ``_running`` (else this process took it as started)
        self._sent: list[Arch] = []  # the last list sent
        self._ready: dict[Arch, Estimate] = {}  # finished guesses, oldest first
        self._up = False  # it has built its estimator
        self._dead = False
        #: guesses evaluated (by either process), and asks answered by one of them
        self.guesses = 0
        self.right = 0

    def __enter__(self) -> Lookahead:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def estimate(self, arch: Arch, estimator: Estimator, guesses: Iterable[Arch]) -> Estimate:
        """``estimator.estimate(arch)``, with the two processes busy meanwhile on the likely next asks,
        ``guesses`` (taken lazily, at most :attr:`depth` of them, before this call returns)."""
        self._read()
        if self._dead and arch not in self._ready:  # one process now: no guess is worked out
            return estimator.estimate(arch)
        ahead = list(itertools.islice((g for g in guesses if g != arch), self.depth))
        while arch not in self._ready:
            if arch != self._running:  # nobody has it, or the worker has not started it: here
                self._hand(ahead, arch)
                return estimator.estimate(arch)  # a failure is recorded here, as in one process
            # the first guess the worker has not started, unless it is the last one it holds: the worker must
            # have its next one when it finishes the architecture asked
            left = [g for g in ahead if g not in self._ready and g != self._running]
            mine = left[0] if len(left) > 1 else None
            self._hand(ahead, mine)
            if mine is None:
                self._read(wait=True)  # nothing to take: wait for the worker
            else:  # evaluate the worker's next guess here while it finishes the architecture asked
                self._here(mine, estimator)
                self._read()
        self._hand(ahead, None)
        self.right += 1  # its estimate was evaluated ahead
        return self._ready.pop(arch)

    def close(self) -> None:
        self._conn.close()
        if self._process.is_alive():
            self._process.terminate()
        self._process.join(5)

    def summary(self) -> dict[str, int]:
        """For ``summary.json``: the guesses evaluated ahead and how many were asked next."""
        return {"workers": 2, "guesses": self.guesses, "right_guesses": self.right}

    def _hand(self, ahead: list[Arch], mine: Arch | None) -> None:
        """Give the worker the guesses of ``ahead`` that are not ready, not its current one and not ``mine`` (what
        this process is about to evaluate), in order, unless it holds exactly those already. An idle worker starts
        the first at once: it is taken as started, and heads every list until the worker says it started it (it
        reads only the newest list, which must not leave it out)."""
        todo = [g for g in ahead if g not in self._ready and g != self._running and g != mine]
        if self._running is not None and not self._confirmed:
            todo.insert(0, self._running)
        if self._dead or todo == self._sent:
            return
        try:
            self._conn.send(todo)
        except OSError:
            self._died("its pipe is closed")
            return
        self._sent = todo
        if self._up and self._running is None and todo:
            self._running, self._confirmed = todo[0], False

    def _here(self, arch: Arch, estimator: Estimator) -> None:
        """Evaluate a guess in this process; a failure is left for the ask that may come to record."""
        self.guesses += 1
        try:
            self._store(arch, estimator.estimate(arch))
        except Exception as exc:  # noqa: BLE001
            log.debug("a guess failed here (%s); its ask, if it comes, evaluates it again", exc)

    def _read(self, wait: bool = False) -> None:
        """Take in what the worker has said (its starts and results), waiting for one message if ``wait``."""
        while not self._dead and (wait or self._conn.poll()):
            wait = False
            try:
                what, arch, value = self._conn.recv()
            except (EOFError, OSError):
                self._died(f"it ended with status {self._process.exitcode}")
                return
            if what == "up":
                self._up = True
            elif what == "dead":
                self._died(value)
            elif what == "started":
                self._running, self._confirmed = arch, True
                self.guesses += 1
            else:  # a result; a failed one is evaluated again by its ask, if it comes, which records it
                if arch == self._running:
                    self._running = None
                if what == "ok":
                    self._store(arch, value)

    def _store(self, arch: Arch, estimate: Estimate) -> None:
        self._ready[arch] = estimate
        while len(self._ready) > self.keep:
            del self._ready[next(iter(self._ready))]

    def _died(self, why: str) -> None:
        if not self._dead:
            log.warning("the lookahead worker stopped (%s); the run goes on in one process", why)
        self._dead, self._running, self._confirmed = True, None, True


@contextlib.contextmanager
def _bare_main() -> Iterator[None]:
    """Start a process without running the caller's script again in it: ``spawn`` imports the parent's
    ``__main__`` in the child, which re-runs a script or notebook that has no ``if __name__ == "__main__"`` guard;
    the worker needs only the factory's own module."""
    main = sys.modules["__main__"]
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        sys.modules["__main__"] = main


def _serve(conn: Connection, factory: Callable[..., Estimator], args: tuple[Any, ...]) -> None:
    """The worker: build the estimator, then evaluate, in order, the architectures of the last list received,
    until the pipe closes (the search's process is gone). It says that it starts the next one before it sends
    the result of the one before, so that the search's process, reading that result, knows what it does now."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the search's process stops on Ctrl-C and ends this one
    with contextlib.suppress(EOFError, OSError):
        try:
            estimator = factory(*args)
        except Exception as exc:  # noqa: BLE001 - told to the search's process, which goes on alone
            conn.send(("dead", None, f"{type(exc).__name__}: {exc}"))
            return
        conn.send(("up", None, None))
        todo: list[Arch] = []
        result: tuple[str, Arch, Any] | None = None  # the last one's, sent once the next one is started
        while True:
            while conn.poll():  # the newest list replaces what is left of the one before
                todo = conn.recv()
            if not todo:
                if result is not None:
                    conn.send(result)
                    result = None
                todo = conn.recv()
                continue
            arch = todo.pop(0)
            conn.send(("started", arch, None))
            if result is not None:
                conn.send(result)
            try:
                result = ("ok", arch, estimator.estimate(arch))
            except Exception as exc:  # noqa: BLE001 - evaluated again by the search's process, which records it
                result = ("failed", arch, f"{type(exc).__name__}: {exc}")
