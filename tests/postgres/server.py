"""A PostgreSQL server of its own, for the tests and the benchmarks (no pytest here).

:class:`PostgresServer` runs ``initdb`` in a temporary directory (as the ``postgres`` user,
or ``nobody``, when run as root: the server refuses root) and starts the server with
``pg_ctl`` on a free loopback port with its Unix socket in that directory (no system
service). :meth:`~PostgresServer.crash` is ``pg_ctl stop -m immediate``,
:meth:`~PostgresServer.kill` a SIGKILL of the postmaster by its pid; both leave the data for
a :meth:`~PostgresServer.start` on the same port, which recovers. ``scripts/test`` installs
the Debian package ``postgresql``. :func:`private_server` is a started server, stopped and
removed after.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator

__all__ = [
    "PostgresServer",
    "PostgresUnavailable",
    "postgres_bin",
    "private_server",
    "rows_of",
    "wait_until_accepting",
]


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server could be started."""


def postgres_bin() -> str:
    """The directory of ``initdb`` and ``pg_ctl`` (the newest installed version)."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
        key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0,
    )
    if found:
        return os.path.dirname(found[-1])
    pg_ctl = shutil.which("pg_ctl")
    if pg_ctl is None:
        raise PostgresUnavailable(
            "pg_ctl not found (install the Debian package 'postgresql': scripts/test does)"
        )
    return os.path.dirname(pg_ctl)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_user() -> list[str]:
    """The command prefix that runs the server as a user other than root."""
    if os.geteuid() != 0:
        return []
    import pwd

    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        runuser = shutil.which("runuser")
        return [runuser, "-u", name, "--"] if runuser else ["su", name, "-s", "/bin/sh", "-c"]
    raise PostgresUnavailable("running as root and neither user 'postgres' nor 'nobody' exists")


def _run(prefix: list[str], args: list[str], timeout: float) -> None:
    command = prefix + args if prefix[:1] != ["su"] else [*prefix, " ".join(args)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise PostgresUnavailable(
            f"{' '.join(args[:1])} failed (exit {done.returncode}): "
            f"{(done.stdout + done.stderr)[-2000:]}"
        )


class PostgresServer:
    """A server with its data directory in ``base``: :meth:`start`, :meth:`crash`
    (``pg_ctl stop -m immediate``: no shutdown checkpoint, recovery at the next start),
    :meth:`kill` (SIGKILL of the postmaster) and :meth:`stop` (fast, then the directory is
    removed)."""

    def __init__(self, base: str):
        self.base = base
        self.bindir = postgres_bin()
        self.prefix = _as_user()
        self.data = os.path.join(base, "data")
        self.log = os.path.join(base, "server.log")
        self.port = free_port()
        self.dsn = f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres"
        if self.prefix:
            import pwd

            user = self.prefix[2] if self.prefix[0].endswith("runuser") else self.prefix[1]
            entry = pwd.getpwnam(user)
            os.chown(base, entry.pw_uid, entry.pw_gid)
        initdb = [f"{self.bindir}/initdb", "-D", self.data, "-U", "postgres", "--auth=trust"]
        _run(self.prefix, [*initdb, "-E", "UTF8", "--no-sync", "--locale=C"], timeout=120)

    def pg_ctl(self, *args: str, timeout: float = 90) -> None:
        _run(self.prefix, [f"{self.bindir}/pg_ctl", "-D", self.data, *args], timeout=timeout)

    def start(self) -> str:
        """Start the server (on the same port every time); return its DSN."""
        options = f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 -c fsync=off"
        self.pg_ctl("-l", self.log, "-w", "-t", "60", "-o", options, "start")
        wait_until_accepting(self.dsn, self.log)
        return self.dsn

    def postmaster_pid(self) -> int | None:
        """The pid of the running postmaster (first line of ``postmaster.pid``), or None."""
        try:
            with open(os.path.join(self.data, "postmaster.pid")) as f:
                pid = int(f.readline().strip())
        except (OSError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        return pid

    def crash(self) -> None:
        self.pg_ctl("-m", "immediate", "-w", "stop", timeout=60)

    def kill(self, timeout: float = 30) -> int:
        """SIGKILL the postmaster (the pid this server's ``postmaster.pid`` names) and wait
        until it and its children (backends, which notice its death and exit on their own)
        are gone; returns the pid killed."""
        pid = self.postmaster_pid()
        if pid is None:
            raise RuntimeError(f"no postmaster running in {self.data}")
        children = _children(pid)
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + timeout
        while any(_alive(p) for p in [pid, *children]):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the postmaster {pid} or its children outlived SIGKILL")
            time.sleep(0.05)
        # its lock files name it; a new postmaster refuses to start while that pid exists,
        # which a zombie not yet reaped by init does: the files of a dead one can go
        for lock in (f"{self.data}/postmaster.pid", f"{self.base}/.s.PGSQL.{self.port}.lock"):
            with contextlib.suppress(FileNotFoundError):
                os.remove(lock)
        return pid

    def stop(self) -> None:
        try:
            self.pg_ctl("-m", "fast", "-w", "stop", timeout=60)
        finally:
            shutil.rmtree(self.base, ignore_errors=True)


def _children(pid: int) -> list[int]:
    """The pids of the processes whose parent is ``pid``."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().split(") ", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid == pid:
                found.append(int(entry))
    return found


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][:1] != "Z"  # a zombie is gone
    except OSError:
        return False


def wait_until_accepting(dsn: str, log: str, timeout: float = 30) -> None:
    import psycopg

    deadline = time.monotonic() + timeout
    while True:
        try:
            with psycopg.connect(dsn, connect_timeout=5) as conn:
                conn.execute("SELECT 1")
            return
        except psycopg.OperationalError as error:
            if time.monotonic() > deadline:
                tail = open(log).read()[-2000:] if os.path.exists(log) else ""
                raise PostgresUnavailable(f"the server does not accept {dsn}: {error}\n{tail}")
            time.sleep(0.1)


@contextlib.contextmanager
def private_server() -> Iterator[PostgresServer]:
    """A started server of its own, stopped and removed after (PostgresUnavailable,
    OSError or TimeoutExpired if it cannot start)."""
    base = tempfile.mkdtemp(prefix="millstream-pg-")  # not under pytest's 0700 directory
    try:
        server = PostgresServer(base)
        server.start()
    except BaseException:
        shutil.rmtree(base, ignore_errors=True)
        raise
    try:
        yield server
    finally:
        server.stop()


def rows_of(dsn: str, table: str, order: str = "1") -> list[tuple]:
    import psycopg

    with psycopg.connect(dsn) as conn:
        return list(conn.execute(f"SELECT * FROM {table} ORDER BY {order}"))
