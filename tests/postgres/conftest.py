"""A real PostgreSQL server for the tests of ``to_postgres``.

Without ``$MILLSTREAM_POSTGRES_DSN`` the session starts a server of its own
(:mod:`tests.postgres.server`: ``initdb`` in a temporary directory, ``pg_ctl`` on a free
loopback port, no system service) and stops it at the end. When no server can be had the
tests FAIL with the reason: they never skip. ``scripts/test`` installs the Debian package
``postgresql``.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import uuid
from collections.abc import Iterator

import pytest

from .server import PostgresServer, PostgresUnavailable, private_server, rows_of

__all__ = ["ENV", "own_server", "rows_of"]

ENV = "MILLSTREAM_POSTGRES_DSN"


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
    with contextlib.ExitStack() as stack:
        try:
            server = stack.enter_context(private_server())
        except (PostgresUnavailable, subprocess.TimeoutExpired, OSError) as error:
            pytest.fail(f"no PostgreSQL server for the tests: {error}", pytrace=False)
        yield server


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
