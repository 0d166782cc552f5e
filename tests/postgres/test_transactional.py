"""The transactional sink protocol with ``to_postgres``, step by step in one process: the
checkpoint restored is the one PostgreSQL holds, not the newest file."""

from __future__ import annotations

import pytest

from millstream import Stream
from millstream.checkpoint import CheckpointStore, enable
from millstream.core import failpoints
from millstream.exceptions import FailpointError
from millstream.testing import run_pipeline

from .conftest import rows_of


def run(dsn, table, location, n, fail=""):
    """Numbers 0..n-1 into ``table`` with checkpoints at ``location``; returns the
    ``Checkpoints`` (closed) and the error of the last checkpoint, if any."""
    source = Stream.from_iterable(range(n), stream_name="numbers")
    source.map(lambda i: (i, f"w{i}")).to_postgres(table, dsn, stream_name="out")
    checkpoints = enable(source, location, interval=None)
    run_pipeline(source)
    failpoints.configure(fail)
    try:
        checkpoints.close()
        error = None
    except FailpointError as e:
        error = e
    finally:
        failpoints.configure("")
    return checkpoints, error


def test_a_crash_before_the_sql_commit_restores_the_checkpoint_before(
    postgres_dsn, pg_table, tmp_path
):
    table = pg_table("id integer, word text")
    location = tmp_path / "ck"
    first, error = run(postgres_dsn, table, location, 5)
    assert error is None and first.last.id == 1
    second, error = run(postgres_dsn, table, location, 10, "postgres_before_commit:raise")
    assert second.restored == 1 and error is not None
    assert CheckpointStore(location).ids()[0] == 2  # file 2 is durable, PostgreSQL holds 1
    assert len(rows_of(postgres_dsn, table)) == 5
    third, error = run(postgres_dsn, table, location, 10)
    assert error is None
    assert third.restored == 1  # not 2: the rows of 2 are written again, under id 3
    assert third.last.id == 3
    assert rows_of(postgres_dsn, table) == [(i, f"w{i}") for i in range(10)]


def test_a_crash_after_the_sql_commit_restores_that_checkpoint(postgres_dsn, pg_table, tmp_path):
    table = pg_table("id integer, word text")
    location = tmp_path / "ck"
    run(postgres_dsn, table, location, 5)
    _, error = run(postgres_dsn, table, location, 10, "postgres_after_commit:raise")
    assert error is not None
    third, error = run(postgres_dsn, table, location, 12)
    assert error is None and third.restored == 2
    assert rows_of(postgres_dsn, table) == [(i, f"w{i}") for i in range(12)]


def test_rows_wait_for_the_checkpoint(postgres_dsn, pg_table, tmp_path):
    table = pg_table("id integer, word text")
    source = Stream.from_iterable(range(3), stream_name="numbers")
    out = source.map(lambda i: (i, "x")).to_postgres(table, postgres_dsn, stream_name="out")
    checkpoints = enable(source, tmp_path / "ck", interval=None)
    run_pipeline(source)
    assert out.has_uncommitted()
    assert rows_of(postgres_dsn, table) == []  # nothing visible before the checkpoint
    checkpoints.close()
    assert not out.has_uncommitted()
    assert len(rows_of(postgres_dsn, table)) == 3


def test_a_missing_file_of_the_committed_checkpoint_is_an_error(postgres_dsn, pg_table, tmp_path):
    from millstream.exceptions import CheckpointError

    table = pg_table("id integer, word text")
    location = tmp_path / "ck"
    run(postgres_dsn, table, location, 3)
    for k in CheckpointStore(location).ids():
        CheckpointStore(location).delete(k)
    (location / "checkpoint-0000000009.ckpt").write_bytes(b"x")
    with pytest.raises(CheckpointError, match="hold checkpoint 1"):
        run(postgres_dsn, table, location, 3)
