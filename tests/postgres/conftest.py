"""A real PostgreSQL server for the tests of ``to_postgres``.

Without ``$MILLSTREAM_POSTGRES_DSN`` the session runs ``initdb`` in a temporary directory
(as the ``postgres`` user, or ``nobody``, when the tests run as root: the server refuses
root), starts the server with ``pg_ctl`` on a free loopback port with its Unix socket in
that directory (no system service), waits until it accepts connections and stops it
(``pg_ctl stop -m fast``) at the end. When no server can be had the tests FAIL with the
reason: they never skip. ``scripts/test`` installs the Debian package ``postgresql``.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator

import pytest

ENV = "MILLSTREAM_POSTGRES_DSN"


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
    (``pg_ctl stop -m immediate``: no shutdown checkpoint, recovery at the next start) and
    :meth:`stop` (fast, then the directory is removed)."""

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

    def crash(self) -> None:
        self.pg_ctl("-m", "immediate", "-w", "stop", timeout=60)

    def stop(self) -> None:
        try:
            self.pg_ctl("-m", "fast", "-w", "stop", timeout=60)
        finally:
            shutil.rmtree(self.base, ignore_errors=True)


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


@pytest.fixture(scope="session")
def postgres_dsn():
    """The DSN of the session's PostgreSQL server."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.fail("psycopg is not installed: pip install 'psycopg[binary]'", pytrace=False)
    if os.environ.get(ENV):
        yield os.environ[ENV]
        return
    with own_server() as server:
        yield server.dsn


@contextlib.contextmanager
def own_server() -> Iterator[PostgresServer]:
    """A started server of its own, stopped after; ``pytest.fail`` if it cannot start."""
    base = tempfile.mkdtemp(prefix="millstream-pg-")  # not under pytest's 0700 directory
    try:
        server = PostgresServer(base)
        server.start()
    except (PostgresUnavailable, subprocess.TimeoutExpired, OSError) as error:
        shutil.rmtree(base, ignore_errors=True)
        pytest.fail(f"no PostgreSQL server for the tests: {error}", pytrace=False)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def pg_table(postgres_dsn):
    """``pg_table(columns_sql) -> name``: a fresh table, dropped after the test."""
    import psycopg

    made: list[str] = []

    def make(columns: str = "id integer, word text") -> str:
        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(postgres_dsn, autocommit=True) as conn:
            conn.execute(f"CREATE TABLE {name} ({columns})")
        made.append(name)
        return name

    yield make
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        for name in made:
            conn.execute(f"DROP TABLE IF EXISTS {name}")


def rows_of(dsn: str, table: str, order: str = "1") -> list[tuple]:
    import psycopg

    with psycopg.connect(dsn) as conn:
        return list(conn.execute(f"SELECT * FROM {table} ORDER BY {order}"))
