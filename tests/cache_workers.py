"""Worker processes of the score cache's fault and concurrency tests: ``python -m tests.cache_workers COMMAND URL
ARGS``, run from the project root. Each opens the cache named by URL (an SQLite path or a PostgreSQL URL), prints
``ready``, waits for the file ``$GO`` (when set) so that all workers start together, then works."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from harness.cache import CachedEstimator, open_cache
from harness.interfaces import Estimator, EstimatorTags
from harness.types import Arch, Estimate

ROWS = ('{"estimator":"test"}', "b", "d")  # estimator key, benchmark, dataset of every test row


def row(arch: str, score: float, device: str) -> tuple[object, ...]:
    """A row in EXPORT_COLUMNS order."""
    return (*ROWS, arch, 0, score, 1.0, device, time.time())


class Logged(Estimator):
    """A live estimator that appends one line per computation to ``log`` (``O_APPEND``: whole lines from every
    process), sleeps ``seconds``, and scores an architecture by its name's number."""

    tags = EstimatorTags(live=True)

    def __init__(self, log: Path, seconds: float) -> None:
        self.log = log
        self.seconds = seconds

    def estimate(self, arch: Arch) -> Estimate:
        fd = os.open(self.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        try:
            os.write(fd, f"{os.getpid()} {arch.ops[0]}\n".encode())
        finally:
            os.close(fd)
        time.sleep(self.seconds)
        return Estimate(float(arch.ops[0]), self.seconds, "cpu")


class _Space:
    """What CachedEstimator.fit reads of a context: a space that formats an architecture."""

    @staticmethod
    def format(arch: Arch) -> str:
        return f"a{arch.ops[0]}"


class _Context:
    space = _Space()
    benchmark, dataset, seed = "b", "d", 0


def cached(url: str, log: Path, seconds: float, lease_s: float, wait_s: float = 600.0) -> CachedEstimator:
    """A :class:`Logged` estimator behind the cache at ``url``, fitted, polling every 0.1 s at most."""
    cache = open_cache(url, None)
    assert cache is not None
    est = CachedEstimator(Logged(log, seconds), cache, ROWS[0], lease_s=lease_s, wait_s=wait_s, poll_s=0.1)
    est.fit(_Context())  # type: ignore[arg-type]
    return est


def _start() -> None:
    print("ready", flush=True)
    go = os.environ.get("GO")
    while go and not Path(go).exists():
        time.sleep(0.01)


def write(url: str, worker: int, n: int) -> None:
    """``n`` rows of archs ``a{(i + 100 * worker) % 500}`` (overlapping other workers'), scored ``worker``:
    even workers one ``put`` each, odd ones ``put_rows`` batches of 25."""
    cache = open_cache(url, None)
    assert cache is not None
    _start()
    archs = [f"a{(i + 100 * worker) % 500}" for i in range(n)]
    if worker % 2 == 0:
        for arch in archs:
            cache.put(*ROWS, arch, 0, Estimate(float(worker), 1.0, f"w{worker}"))
            cache.get(*ROWS, arch, 0)
    else:
        for i in range(0, n, 25):
            cache.put_rows([row(arch, float(worker), f"w{worker}") for arch in archs[i : i + 25]])
    cache.close()


def open_new(url: str) -> None:
    """Open the cache at ``url`` (a file nobody has created yet) together with the other workers; print its rows."""
    _start()
    cache = open_cache(url, None)
    assert cache is not None
    print(len(cache), flush=True)
    cache.close()


def batches(url: str, size: int) -> None:
    """Write batches of ``size`` rows, one transaction each, for ever; print each batch's number once committed."""
    cache = open_cache(url, None)
    assert cache is not None
    _start()
    for batch in range(10**9):
        cache.put_rows([row(f"b{batch}-{i}", float(i), "cpu") for i in range(size)])
        print(batch, flush=True)


def claim(url: str, log: str, seconds: float, lease_s: float, *archs: str) -> None:
    """Score ``archs`` (numbers) through the cache; print ``{arch: score}`` and the number of hits as JSON."""
    est = cached(url, Path(log), seconds, lease_s)
    _start()
    estimates = {a: est.estimate(Arch((int(a),))) for a in archs}
    scores = {a: e.score for a, e in estimates.items()}
    print(json.dumps({"scores": scores, "hits": sum(e.cached for e in estimates.values())}), flush=True)


if __name__ == "__main__":
    command, url, *args = sys.argv[1:]
    if command == "write":
        write(url, int(args[0]), int(args[1]))
    elif command == "open":
        open_new(url)
    elif command == "batches":
        batches(url, int(args[0]))
    else:
        claim(url, args[0], float(args[1]), float(args[2]), *args[3:])
