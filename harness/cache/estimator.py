"""An estimator answered from the score cache when it can (:class:`CachedEstimator`); workers that want the
same missing score compute it once."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
import time
from collections.abc import Iterator

from harness.cache.backends import ScoreCache, claim_owner
from harness.errors import ServiceUnavailable
from harness.interfaces import Estimator, EstimatorContext, EstimatorTags
from harness.types import Arch, Estimate

log = logging.getLogger("harness")


def cache_slot(context: EstimatorContext, tags: EstimatorTags) -> tuple[str, str, int]:
    """(benchmark, dataset, seed) under which an estimator's scores are stored; dataset ``*`` when they do not
    depend on it."""
    return context.benchmark, "*" if tags.dataset_free else context.dataset, context.seed


class CachedEstimator(Estimator):
    """Wraps a live estimator: answers from the cache when it can, stores every successful new score.

    A database that stays unreachable (:class:`~harness.errors.ServiceUnavailable`) ends the run from the next
    look at the cache, never an evaluation: a score computed before is returned even if it could not be stored.

    Parallel workers that miss the same score compute it once: the first claims it for ``lease_s`` seconds and
    renews the claim every ``lease_s / 3`` while it computes (a heartbeat thread); the others poll for its score (a
    hit). A claim dies with its worker: on this host at once (its process is gone), on another when its lease runs
    out unrenewed. A worker that has waited ``wait_s`` computes the score itself. ``fit`` still runs (and is
    charged) once per run; caching one-time work is the estimator's own business.

    Args:
        inner: the estimator to wrap.
        cache: the score store.
        key: :func:`estimator_key` of ``inner``'s configuration.
        lease_s: how long a claim lasts unrenewed: how long a worker on another host that was killed holds up the
            others.
        wait_s: the longest wait for another live worker's score, whatever that worker does.
        poll_s: the longest pause between two looks at another worker's progress.
    """

    def __init__(
        self,
        inner: Estimator,
        cache: ScoreCache,
        key: str,
        *,
        lease_s: float = 60.0,
        wait_s: float = 600.0,
        poll_s: float = 1.0,
    ) -> None:
        self.inner = inner
        self.cache = cache
        self.key = key
        self.tags = inner.tags
        self.lease_s = lease_s
        self.wait_s = wait_s
        self.poll_s = poll_s
        self.owner = claim_owner()

    def fit(self, context: EstimatorContext) -> float:
        self._where = cache_slot(context, self.tags)
        self._format = context.space.format
        return self.inner.fit(context)

    def estimate(self, arch: Arch) -> Estimate:
        benchmark, dataset, seed = self._where
        slot = (self.key, benchmark, dataset, self._format(arch), seed)
        hit = self._stored_or_claimed(slot)
        if hit is not None:
            return dataclasses.replace(hit, cached=True)
        try:
            with self._heartbeat(slot):
                est = self.inner.estimate(arch)
        except BaseException:
            with contextlib.suppress(ServiceUnavailable):  # unreachable: the claim dies with this process
                self.cache.release(*slot, self.owner)
            raise
        try:
            self.cache.put(*slot, est)
            self.cache.release(*slot, self.owner)
        except ServiceUnavailable as exc:  # the score is computed: it goes into the run's records all the same
            log.error("could not store the score of %s (%s); it is kept in the run's records", slot[3], exc)
        return est

    @contextlib.contextmanager
    def _heartbeat(self, slot: tuple[str, str, str, str, int]) -> Iterator[None]:
        """Renew this worker's claim on ``slot`` every ``lease_s / 3`` while the block runs."""
        done = threading.Event()

        def renew() -> None:
            while not done.wait(self.lease_s / 3):
                try:
                    if not self.cache.renew(*slot, self.owner, self.lease_s):
                        log.warning("lost the claim on %s to another worker (its lease ran out)", slot[3])
                        return
                except Exception as exc:  # noqa: BLE001 - a missed renewal only shortens the lease
                    log.debug("could not renew the claim on %s: %s", slot[3], exc)

        beat = threading.Thread(target=renew, name="claim-heartbeat", daemon=True)
        beat.start()
        try:
            yield
        finally:
            done.set()
            beat.join()

    def _stored_or_claimed(self, slot: tuple[str, str, str, str, int]) -> Estimate | None:
        """The stored score of ``slot``; else None, once this worker holds its claim (or has waited ``wait_s``)."""
        deadline, pause = time.monotonic() + self.wait_s, 0.02
        while True:
            hit = self.cache.get(*slot)
            if hit is not None:
                return hit
            if self.cache.claim(*slot, self.owner, self.lease_s):
                hit = self.cache.get(*slot)  # stored by a worker that released its claim since our first look
                if hit is not None:
                    self.cache.release(*slot, self.owner)
                return hit
            if time.monotonic() >= deadline:
                log.warning("waited %.0f s for another worker's score of %s; computing it here", self.wait_s, slot[3])
                return None
            time.sleep(pause)
            pause = min(2 * pause, self.poll_s)
