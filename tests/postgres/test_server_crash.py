"""PostgreSQL crashed mid-stream (``pg_ctl stop -m immediate``) and started again while an
exactly-once pipeline writes to it: the checkpoints that fail meanwhile keep their rows,
and the table ends equal to an uninterrupted run."""

from __future__ import annotations

import subprocess
import sys
import time

import psycopg

from millstream.testing import wait_for

from .conftest import own_server, rows_of
from .exactly_once_child import command
from .progress import committed_count

N = 20000


def test_the_server_killed_and_restarted_mid_stream(tmp_path):
    with own_server() as server:
        dsn = server.dsn
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("CREATE TABLE words (id integer, word text)")
        process = subprocess.Popen(
            command(dsn, "words", tmp_path / "ck", "insert", N),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            wait_for(lambda: committed_count(dsn, "words") > 0, timeout=30)
            server.crash()
            during = committed_count(dsn, "words")
            time.sleep(1.0)  # checkpoints fail meanwhile; their rows wait
            server.start()
            after_restart = committed_count(dsn, "words")
            _, stderr = process.communicate(timeout=120)
        finally:
            if process.poll() is None:
                process.kill()
        print(stderr[-3000:], file=sys.stderr)
        assert during == -1  # the server really was down
        assert 0 < after_restart < N, "the crash did not happen mid-stream"
        assert process.returncode == 0, stderr
        assert "checkpoint failed" in stderr  # commits failed while it was down
        got = rows_of(dsn, "words", order="id")
        assert got == [(i, f"w{i % 7}") for i in range(N)]
