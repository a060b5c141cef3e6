"""A throwaway PostgreSQL server for the tests: ``initdb`` in a temporary folder, listening on a Unix socket only
(no TCP port to clash with), stopped and deleted at the end. Uses the server binaries of the Debian ``postgresql``
package (or any on ``pg_config --bindir`` / ``PATH``) and the ``psycopg`` driver (``pip install .[postgres]``)."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

#: the server's programs
PROGRAMS = ("initdb", "pg_ctl", "postgres")


def server_bindir() -> Path | None:
    """The folder of the PostgreSQL server programs: ``pg_config --bindir``, the newest Debian
    ``/usr/lib/postgresql/<version>/bin``, or that of ``initdb`` on ``PATH``; None if none has them all."""
    candidates = []
    if pg_config := shutil.which("pg_config"):
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False).stdout.strip()
        candidates.append(Path(out))
    versions = Path("/usr/lib/postgresql").glob("*/bin")
    candidates += sorted(versions, key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0, reverse=True)
    if initdb := shutil.which("initdb"):
        candidates.append(Path(initdb).resolve().parent)
    return next((d for d in candidates if all((d / p).is_file() for p in PROGRAMS)), None)


def missing() -> str | None:
    """Why no server can be started here, or None."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "the PostgreSQL driver psycopg is not installed (pip install .[postgres])"
    if server_bindir() is None:
        return "no PostgreSQL server programs (initdb, pg_ctl, postgres) found: apt-get install postgresql"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("nobody")
        except KeyError:
            return "running as root, and there is no user 'nobody' to run the PostgreSQL server as"
    return None


class PostgresServer:
    """A PostgreSQL cluster of its own, started by :meth:`start`. The server refuses to run as root: as root, it
    runs as the user ``nobody``; the tests connect as its superuser ``postgres`` (trust authentication, socket
    only, fsync off)."""

    def __init__(self) -> None:
        bindir = server_bindir()
        assert bindir is not None, missing()
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="harness-pg-", dir="/tmp" if Path("/tmp").is_dir() else None))
        self.socket_dir = self.root / "socket"  # short: a Unix socket's path has at most 107 bytes
        self.databases = 0
        #: (uid, gid) the server runs as: nobody's when we are root, else ours
        self.owner = (os.getuid(), os.getgid())
        if os.geteuid() == 0:
            entry = pwd.getpwnam("nobody")
            self.owner = (entry.pw_uid, entry.pw_gid)
            os.chown(self.root, *self.owner)

    def _run(self, *args: str) -> None:
        kwargs = {}
        if os.geteuid() == 0:
            kwargs = {"user": self.owner[0], "group": self.owner[1], "extra_groups": []}
        proc = subprocess.run(
            [str(self.bindir / args[0]), *args[1:]],
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=120,
            **kwargs,
        )
        if proc.returncode != 0:
            log_file = self.root / "server.log"
            tail = log_file.read_text()[-2000:] if log_file.is_file() else ""
            raise RuntimeError(f"{' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}\n{tail}")

    def start(self) -> PostgresServer:
        data = str(self.root / "data")
        self._run(
            "initdb", "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync", "--no-instructions"
        )
        self.socket_dir.mkdir()
        os.chown(self.socket_dir, *self.owner)
        return self.resume()

    def resume(self) -> PostgresServer:
        """Start the server on its existing data (after :meth:`halt`)."""
        options = f"-k {self.socket_dir} -h '' -F -c max_connections=200"
        data, log_file = str(self.root / "data"), str(self.root / "server.log")
        self._run("pg_ctl", "-D", data, "-l", log_file, "-w", "-t", "60", "-o", options, "start")
        return self

    def halt(self) -> None:
        """Stop the server, as an administrator would (``pg_ctl stop -m fast``: every connection is ended), keeping
        its data."""
        self._run("pg_ctl", "-D", str(self.root / "data"), "-m", "fast", "-w", "stop")

    def restart(self) -> None:
        """A real restart: every connection is ended, the server comes back on the same data."""
        self.halt()
        self.resume()

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@/{database}?host={self.socket_dir}"

    def new_database(self) -> str:
        """A new empty database; returns its URL."""
        import psycopg

        self.databases += 1
        name = f"test{self.databases}"
        with psycopg.connect(self.url(), autocommit=True) as db:
            db.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def stop(self) -> None:
        try:
            if (self.root / "data" / "postmaster.pid").exists():
                self._run("pg_ctl", "-D", str(self.root / "data"), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
