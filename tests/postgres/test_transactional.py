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


def checkpointed(dsn, table, items, location, **kwargs):
    """``items`` -> to_postgres with checkpoints (a last one at close); returns the
    ``Checkpoints``."""
    source = Stream.from_iterable(items, stream_name="items")
    source.to_postgres(table, dsn, stream_name="out", **kwargs)
    checkpoints = enable(source, location, interval=None)
    run_pipeline(source)
    return checkpoints


def test_dicts_lists_and_tuples_under_checkpoints(postgres_dsn, pg_table, tmp_path):
    """The first dict names the columns; later dicts, lists and tuple subclasses become
    tuples in their order; tuples are written as they are."""
    from collections import namedtuple

    Row = namedtuple("Row", "id word")
    table = pg_table("word text, id integer, extra text")
    items = [{"id": 1, "word": "a"}, (2, "b"), [3, "c"], Row(4, "d"), {"word": "e", "id": 5}]
    checkpointed(postgres_dsn, table, items, tmp_path / "ck").close()
    assert rows_of(postgres_dsn, table, order="id") == [
        (w, i, None) for i, w in [(1, "a"), (2, "b"), (3, "c"), (4, "d"), (5, "e")]
    ]


def test_tuples_first_then_dicts_take_the_tables_columns(postgres_dsn, pg_table, tmp_path):
    table = pg_table("id integer, word text")
    items = [(1, "a"), {"word": "b", "id": 2}, [3, "c"]]
    checkpointed(postgres_dsn, table, items, tmp_path / "ck").close()
    assert rows_of(postgres_dsn, table) == [(1, "a"), (2, "b"), (3, "c")]


def test_a_tuple_of_the_wrong_width_fails_the_commit_and_names_the_row(
    postgres_dsn, pg_table, tmp_path
):
    table = pg_table("id integer, word text")
    checkpoints = checkpointed(postgres_dsn, table, [(1, "a"), (2, "b", "x")], tmp_path / "ck")
    with pytest.raises(ValueError, match=r"the row \(2, 'b', 'x'\) has 3 values for the 2"):
        checkpoints.close()
    assert rows_of(postgres_dsn, table) == []  # nothing committed


def test_an_element_that_is_no_row_fails_at_the_element(postgres_dsn, pg_table, tmp_path):
    table = pg_table("id integer, word text")
    source = Stream.from_iterable([(1, "a"), 7], stream_name="items")
    source.to_postgres(table, postgres_dsn, stream_name="out")
    checkpoints = enable(source, tmp_path / "ck", interval=None)
    with pytest.raises(TypeError, match=r"to_postgres\(table='t_\w+'\).*got 7"):
        run_pipeline(source)
    checkpoints.close(final=False)


def test_the_table_always_holds_the_rows_of_the_recorded_position(postgres_dsn, pg_table, tmp_path):
    """Rows keep arriving while a checkpoint commits (slowed by a fail-point): every
    snapshot of the table holds exactly the rows up to the position committed with them."""
    import threading
    import time

    import psycopg

    from millstream.sinks.postgres import CHECKPOINT_TABLE

    table = pg_table("id integer, word text")
    n = 6000

    def row(i):
        time.sleep(0.00005)
        return (i, f"w{i}")

    source = Stream.from_iterable(range(n), chunk_size=100, stream_name="numbers")
    source.map(row).to_postgres(table, postgres_dsn, stream_name="out")
    checkpoints = enable(source, tmp_path / "ck", interval="20ms")
    seen: list[tuple[int, int]] = []
    done = threading.Event()

    def watch():
        with psycopg.connect(postgres_dsn, autocommit=True) as conn:
            while not done.is_set():
                got = conn.execute(
                    f"SELECT (positions->>'numbers')::int, (SELECT count(*) FROM {table}) "
                    f"FROM {CHECKPOINT_TABLE} WHERE pipeline = %s",
                    (f"{tmp_path / 'ck'}#out",),
                ).fetchone()
                if got is not None:
                    seen.append(got)
                time.sleep(0.002)

    watcher = threading.Thread(target=watch)
    watcher.start()
    failpoints.configure("postgres_before_commit:sleep(0.05)")
    try:
        run_pipeline(source, timeout=60)
        checkpoints.close()
    finally:
        failpoints.configure("")
        done.set()
        watcher.join()
    assert rows_of(postgres_dsn, table) == [(i, f"w{i}") for i in range(n)]
    assert all(position == count for position, count in seen), seen
    assert len({position for position, _ in seen}) >= 3  # several checkpoints were seen
    assert len(checkpoints.history) >= 3


def test_a_commit_that_happened_but_reported_an_error_is_not_written_again(
    postgres_dsn, pg_table, tmp_path
):
    """The connection may fail after the server committed (the reply lost): the next
    checkpoint reads the record committed with the rows and does not write them twice."""
    table = pg_table("id integer, word text")
    source = Stream.from_iterable([(i, "x") for i in range(5)], stream_name="items")
    source.to_postgres(table, postgres_dsn, stream_name="out")
    checkpoints = enable(source, tmp_path / "ck", interval=None)
    run_pipeline(source)
    failpoints.configure("postgres_after_commit:raise")
    try:
        with pytest.raises(FailpointError):
            checkpoints.checkpoint()
    finally:
        failpoints.configure("")
    assert len(rows_of(postgres_dsn, table)) == 5  # committed, though it raised
    checkpoints.close()
    assert rows_of(postgres_dsn, table) == [(i, "x") for i in range(5)]


def test_without_the_copy_formatter_rows_go_through_write_row(
    postgres_dsn, pg_table, tmp_path, monkeypatch
):
    import millstream.sinks.postgres as sink_module

    monkeypatch.setattr(sink_module, "copy_row_writer", lambda copy: (None, None))
    table = pg_table("id integer, word text")
    checkpointed(postgres_dsn, table, [(1, "a"), (2, "b")], tmp_path / "ck").close()
    assert rows_of(postgres_dsn, table) == [(1, "a"), (2, "b")]
