"""How a harness process ends on SIGTERM (what SLURM sends) or SIGINT (Ctrl-C): one line, status 128 + the signal,
every finished evaluation kept; and how a parallel sweep's processes end together.

A sweep's parent (``hydra/launcher=joblib``) that gets a stop signal passes it on to its workers, each stops its
job (or, between jobs, itself) with its own line, and any that has not after :data:`GRACE_S` is killed. A worker
that is stopped passes the signal on to the parent (the whole sweep stops, instead of the worker taking the next
job) and ends after it, and a worker whose parent is gone, even by ``kill -9``, stops itself. The state here is
per process: this module is imported, never pickled with a job (``harness/__main__.py`` is, when a launcher ships
``main`` to its workers).
"""

from __future__ import annotations

import atexit
import os
import signal
import sys
import threading
import time
from pathlib import Path
from types import FrameType

from harness.storage import RECORDS

#: how long a sweep's parent waits for its stopped workers to say their lines before it kills them: a worker runs
#: its handler only once its main thread is back from the C call it is in, which on a busy machine (CI) took over 5 s;
#: SLURM sends SIGKILL 30 s (its default KillWait) after SIGTERM
GRACE_S = 20.0
#: how often a sweep's worker checks that its parent is still there
WATCH_S = 0.5
SIGNALS = (signal.SIGTERM, signal.SIGINT)

#: the process that runs the command line (:func:`catch`); any other that runs a job is a launcher's worker
_cli_pid: int | None = None
#: in a launcher's worker: the sweep's parent process (:func:`_watch_parent`)
_parent: int | None = None
_stopping = False
_signum: int | None = None  # the stop signal of this job, once one arrived (:func:`check`)


class Stopped(KeyboardInterrupt):
    """SIGTERM or SIGINT arrived; ``args[0]`` is the signal."""


def catch(*, cli: bool) -> None:
    """Turn the stop signals into :class:`Stopped` from here on: in the command line's process (``cli``) and at
    the start of every job. A job in a launcher's worker also starts the watch of its parent."""
    global _cli_pid, _stopping, _signum
    if cli:
        _cli_pid = os.getpid()
    elif in_worker():
        _watch_parent()
    _stopping, _signum = False, None
    for signum in SIGNALS:
        signal.signal(signum, _stop)


def in_worker() -> bool:
    """Whether this process is a launcher's worker, not the one that runs the command line."""
    return _cli_pid != os.getpid()


def job_done() -> None:
    """After a job in a launcher's worker: until the next job's :func:`catch`, a stop signal stops the worker with
    a line of its own that says nothing was lost (it has no job under way), not silently: a worker that just died
    makes the launcher kill the others at once, before they have said where their evaluations are kept."""
    if in_worker():
        for signum in SIGNALS:
            signal.signal(signum, _stop_between_jobs)


def say(line: str) -> None:
    """``line`` on stderr in one write: the lines of a sweep's processes never interleave."""
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def job_line(signum: int, job_dir: Path) -> str:
    """The line of a job stopped by ``signum``: where its finished evaluations are kept (``records.csv`` of its
    first seed's run folder ``job_dir``), or, stopped before any was recorded (a run keeps its ``records.csv``
    from its first evaluation on), that nothing was lost."""
    name = signal.Signals(signum).name
    if (job_dir / RECORDS).is_file():
        return (
            f"stopped by {name}: every finished evaluation is kept in {RECORDS} under {job_dir}; run the same "
            "command again to resume"
        )
    return f"stopped by {name} before any evaluation was recorded: nothing was lost; run the same command again"


def exit_stopped(signum: int) -> None:
    """End the process with status 128 + ``signum``, after its line (:func:`say`). A launcher's worker first
    passes the signal on to the sweep's parent, which stops the other workers, and then ends for real
    (``os._exit`` after what a normal exit runs: the launcher would catch ``SystemExit`` and hand the worker the
    next job), once the parent is gone: from now on it ignores the stop signals, which tells the parent (in
    ``/proc``) that it has said its line. A worker must not end first: the launcher kills the other workers as soon
    as one ends, and one that has not yet run its handler (on a loaded machine, a worker can wait a while for a
    CPU) would end without its line."""
    if not in_worker():
        sys.exit(128 + signum)
    for each in SIGNALS:
        signal.signal(each, signal.SIG_IGN)
    if _parent is not None and os.getppid() == _parent:
        _kill(_parent, signum)
    sys.stdout.flush()
    sys.stderr.flush()
    atexit._run_exitfuncs()  # flush the logs, release semaphores
    while _parent is not None and os.getppid() == _parent:  # the parent kills it, or it ends after the parent
        time.sleep(WATCH_S)
    os._exit(128 + signum)


def _stop_between_jobs(signum: int, _frame: FrameType | None) -> None:
    global _stopping
    if _stopping:
        return
    _stopping = True
    say(
        f"stopped by {signal.Signals(signum).name} between jobs: nothing was lost; run the same command again to resume"
    )
    exit_stopped(signum)


def check() -> None:
    """Raise :class:`Stopped` again if a stop signal arrived in this job: called between evaluations, so a stop
    whose exception C code swallowed (a signal handler may run inside a C call that clears errors) still ends the
    job with its line, instead of the job running on until the sweep's parent kills it silently."""
    if _signum is not None:
        raise Stopped(_signum)


def _stop(signum: int, _frame: FrameType | None) -> None:
    global _stopping, _signum
    _signum = signum
    if _stopping:  # one stop: the same signal to the group, or a second Ctrl-C, does not interrupt it
        return
    _stopping = True
    _end_children(signum)
    raise Stopped(signum)


def _end_children(signum: int) -> None:
    """Pass ``signum`` on to the children that it ends (a launcher's workers, not the resource trackers, which
    ignore it and end after their users), wait up to :data:`GRACE_S` for each to have stopped (it ended, or said
    its line and now ignores the signal: :func:`exit_stopped`), and kill those left."""
    pending = [pid for pid in _children() if not _ignores(pid, signum)]
    for pid in pending:
        _kill(pid, signum)
    deadline = time.monotonic() + GRACE_S
    while pending and time.monotonic() < deadline:
        time.sleep(0.05)
        live = set(_children())
        pending = [pid for pid in pending if pid in live and not _ignores(pid, signum)]
    for pid in pending:
        _kill(pid, signal.SIGKILL)


def _children() -> list[int]:
    """The live (not zombie) child processes of this one; Linux's ``/proc``, elsewhere none are found."""
    me, found = os.getpid(), []
    for entry in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, ppid = entry.read_text().rsplit(")", 1)[1].split()[:2]  # after "pid (command)"
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
        if int(ppid) == me and state not in "ZX":
            found.append(int(entry.parent.name))
    return found


def _ignores(pid: int, signum: int) -> bool:
    """Whether process ``pid`` ignores ``signum`` (or is gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return True
    mask = next((line.split()[1] for line in status.splitlines() if line.startswith("SigIgn:")), "0")
    return bool(int(mask, 16) >> (signum - 1) & 1)


def _kill(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def _watch_parent() -> None:
    """Once per worker: SIGTERM this process as soon as its parent is gone (its parent id changes)."""
    global _parent
    if _parent is not None:
        return
    _parent = os.getppid()
    from tqdm import tqdm

    tqdm.set_lock(threading.RLock())  # not tqdm's default semaphore: a worker the launcher kills leaks none

    def watch() -> None:
        while os.getppid() == _parent:
            time.sleep(WATCH_S)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="harness-parent-watch", daemon=True).start()
