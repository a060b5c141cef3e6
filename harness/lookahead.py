"""A second process that evaluates the next architecture before it is asked (``workers=2``).

While this process evaluates the architecture just asked, the worker evaluates a guess of the next one: the next
of a rank sample (always right), or the searcher's :meth:`~harness.interfaces.Searcher.speculate` (the ask that
follows the likely outcome, e.g. RMI-NAS's "not a positive"). When the guess is right, its estimate is ready, or
nearly, when it is asked; when it is wrong, the worker's time is lost and its score stays in the score cache,
where a later ask of that architecture finds it. The search itself runs exactly as in one process: the same asks,
the same scores (the worker builds the same estimator with the same seed, threads and score key), the same
records; only wall time changes. So two workers halve a rank run, and speed up a search by the share of right
guesses.

The worker ignores Ctrl-C (this process stops it on its way out) and ends by itself when this process is gone,
even by ``kill -9``: its end of the pipe closes.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import signal
import sys
import types
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection
from typing import Any

from harness.interfaces import Estimator
from harness.types import Arch, Estimate

log = logging.getLogger("harness")


class Lookahead:
    """Two evaluators, this process and a worker, kept busy on the architecture asked and the guess after it.

    Args:
        factory: builds and fits the worker's estimator (``factory(*args)`` in the worker): picklable, e.g. a
            module-level function of a config.
        args: its arguments (picklable).
    """

    #: finished wrong guesses kept in memory (a later ask may still want one; a cached score outlives them)
    keep = 8

    def __init__(self, factory: Callable[..., Estimator], *args: Any) -> None:
        context = multiprocessing.get_context("spawn")  # fork would copy torch's thread pools: unsafe
        self._conn, theirs = context.Pipe()
        self._process = context.Process(target=_serve, args=(theirs, factory, args), name="harness-lookahead")
        self._process.daemon = True
        with _bare_main():
            self._process.start()
        theirs.close()
        self._pending: Arch | None = None  # the guess the worker is evaluating
        self._ready: dict[Arch, Estimate] = {}  # finished guesses, oldest first
        self._dead = False
        #: guesses evaluated (by either process), and those asked next (their estimate was ready or under way)
        self.guesses = 0
        self.right = 0

    def __enter__(self) -> Lookahead:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def estimate(self, arch: Arch, estimator: Estimator, guess: Callable[[], Arch | None]) -> Estimate:
        """``estimator.estimate(arch)``, with the other evaluator busy meanwhile on the next ask's guess,
        ``guess()`` (called at most once, only when an evaluator is free for it). When the worker is already
        evaluating ``arch`` (a right guess), this process evaluates the guess after it while it waits."""
        if arch in self._ready:
            self.right += 1
            self._start(guess)
            return self._ready.pop(arch)
        if arch == self._pending:
            self.right += 1
            after = guess()
            if after is not None and after != arch and after not in self._ready:
                self._here(after, estimator)
            self._collect()
            if arch in self._ready:
                return self._ready.pop(arch)
            return estimator.estimate(arch)  # it failed there: evaluated here, where a failure is recorded
        self._start(guess)
        return estimator.estimate(arch)

    def close(self) -> None:
        self._conn.close()
        if self._process.is_alive():
            self._process.terminate()
        self._process.join(5)

    def summary(self) -> dict[str, int]:
        """For ``summary.json``: the guesses evaluated ahead and how many were asked next."""
        return {"workers": 2, "guesses": self.guesses, "right_guesses": self.right}

    def _start(self, guess: Callable[[], Arch | None]) -> None:
        """Hand the worker the next guess, if it is free (a finished guess is collected first)."""
        if self._pending is not None and self._conn.poll():
            self._collect()
        if self._pending is not None or self._dead:
            return
        arch = guess()
        if arch is None or arch in self._ready:
            return
        try:
            self._conn.send(arch)
        except OSError:
            self._died("its pipe is closed")
            return
        self._pending = arch
        self.guesses += 1

    def _here(self, arch: Arch, estimator: Estimator) -> None:
        """Evaluate a guess in this process; a failure is left for the ask that may come to record."""
        self.guesses += 1
        try:
            self._store(arch, estimator.estimate(arch))
        except Exception as exc:  # noqa: BLE001
            log.debug("a guess failed here (%s); its ask, if it comes, evaluates it again", exc)

    def _collect(self) -> None:
        """Wait for the worker's answer on the pending guess."""
        arch, self._pending = self._pending, None
        try:
            status, value = self._conn.recv()
        except (EOFError, OSError):
            self._died(f"it ended with status {self._process.exitcode}")
            return
        if status == "dead":
            self._died(value)
        elif status == "ok" and arch is not None:
            self._store(arch, value)

    def _store(self, arch: Arch, estimate: Estimate) -> None:
        self._ready[arch] = estimate
        while len(self._ready) > self.keep:
            del self._ready[next(iter(self._ready))]

    def _died(self, why: str) -> None:
        if not self._dead:
            log.warning("the lookahead worker stopped (%s); the run goes on in one process", why)
        self._dead, self._pending = True, None


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
    """The worker: build the estimator, then evaluate each architecture received until the pipe closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the search's process stops on Ctrl-C and ends this one
    try:
        estimator = factory(*args)
    except Exception as exc:  # noqa: BLE001 - told to the search's process, which goes on alone
        conn.send(("dead", f"{type(exc).__name__}: {exc}"))
        return
    while True:
        try:
            arch = conn.recv()
        except EOFError:
            return  # the search's process is gone
        try:
            conn.send(("ok", estimator.estimate(arch)))
        except Exception as exc:  # noqa: BLE001 - evaluated again by the search's process, which records it
            conn.send(("failed", f"{type(exc).__name__}: {exc}"))
