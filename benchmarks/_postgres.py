"""The PostgreSQL server of the benchmark scripts: a running one (``--dsn``) or a private
one for the run.

The private server is the tests' own recipe, ``tests/postgres/server.py`` (``initdb`` in a
temporary directory, ``pg_ctl`` on a free loopback port, stopped and removed after),
loaded by its path: one recipe for both, not a copy. It needs the Debian package
``postgresql`` (``scripts/test`` installs it).
"""

from __future__ import annotations

import contextlib
import importlib.util
from collections.abc import Iterator
from pathlib import Path

__all__ = ["postgres"]

SERVER = Path(__file__).resolve().parent.parent / "tests" / "postgres" / "server.py"


@contextlib.contextmanager
def postgres(dsn: str | None) -> Iterator[str]:
    """``dsn`` itself, or the DSN of a private server started for the ``with`` block."""
    if dsn:
        yield dsn
        return
    spec = importlib.util.spec_from_file_location("millstream_bench_pg_server", SERVER)
    assert spec is not None and spec.loader is not None
    server = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(server)
    with server.private_server() as started:
        yield started.dsn
