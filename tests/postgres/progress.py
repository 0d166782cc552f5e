"""What an exactly-once pipeline has committed to PostgreSQL, read from outside: its
checkpoint record and the rows of a table (the crash tests poll these)."""

from __future__ import annotations

from typing import Any

import psycopg

from millstream.sinks.postgres import CHECKPOINT_TABLE

__all__ = ["checkpoint_record", "committed_count"]


def checkpoint_record(dsn: str, pipeline: str, timeout: float = 10) -> tuple[int, Any] | None:
    """``(checkpoint_id, positions)`` that PostgreSQL holds for ``pipeline``, or None
    (none yet, or the server does not answer within ``timeout`` seconds)."""
    try:
        with psycopg.connect(dsn, connect_timeout=max(1, int(timeout))) as conn:
            row = conn.execute(
                f"SELECT checkpoint_id, positions FROM {CHECKPOINT_TABLE} WHERE pipeline = %s",
                (pipeline,),
            ).fetchone()
    except psycopg.Error:
        return None
    return None if row is None else (int(row[0]), row[1])


def committed_count(dsn: str, table: str) -> int:
    """The number of rows of ``table``, or -1 while the server does not answer."""
    try:
        with psycopg.connect(dsn, connect_timeout=2) as conn:
            return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
    except psycopg.OperationalError:
        return -1
