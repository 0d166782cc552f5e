"""``to_postgres`` without checkpoints: insert (COPY), upsert, batches, refs, errors."""

from __future__ import annotations

import subprocess
import sys

import psycopg
import pytest

from millstream import Stream
from millstream.core.refs import RefCounter
from millstream.testing import TestingSource, run_pipeline, wait_for

from .conftest import rows_of


def test_insert_dicts_and_tuples(postgres_dsn, pg_table):
    table = pg_table("id integer, word text")
    source = Stream()
    out = source.to_postgres(table, postgres_dsn)
    source.emit({"id": 1, "word": "a"})
    source.emit({"word": "b", "id": 2})  # by column name, in any order
    out.flush()
    other = Stream()
    by_tuple = other.to_postgres(table, postgres_dsn)  # columns: the table's, in order
    other.emit((3, "c"))
    other.emit([4, None])
    by_tuple.flush()
    assert rows_of(postgres_dsn, table) == [(1, "a"), (2, "b"), (3, "c"), (4, None)]
    out.destroy()
    by_tuple.destroy()


def test_upsert_updates_on_the_key(postgres_dsn, pg_table):
    table = pg_table("word text PRIMARY KEY, n integer, seen text")
    source = Stream()
    out = source.to_postgres(
        table, postgres_dsn, columns=["word", "n"], mode="upsert", key="word", batch_size=3
    )
    for word, n in [("a", 1), ("b", 1), ("a", 2), ("c", 1), ("a", 3), ("b", 2)]:
        source.emit((word, n))
    out.flush()
    assert rows_of(postgres_dsn, table) == [("a", 3, None), ("b", 2, None), ("c", 1, None)]
    out.destroy()


def test_rows_are_written_in_batches_of_batch_size(postgres_dsn, pg_table):
    table = pg_table("id integer")
    source = Stream()
    out = source.to_postgres(table, postgres_dsn, batch_size=10, flush_interval=3600)
    for i in range(25):
        source.emit((i,))
    # two full batches written at once; five rows wait for the next batch or flush()
    assert len(rows_of(postgres_dsn, table)) == 20
    out.flush()
    assert [r[0] for r in rows_of(postgres_dsn, table)] == list(range(25))
    out.destroy()


def test_a_partial_batch_is_written_after_flush_interval(postgres_dsn, pg_table):
    table = pg_table("id integer")
    source = TestingSource([(1,), (2,), (3,)])
    source.to_postgres(table, postgres_dsn, batch_size=1000, flush_interval=0.1)
    run_pipeline(source)
    wait_for(lambda: len(rows_of(postgres_dsn, table)) == 3, timeout=10)


def test_refs_are_released_once_the_batch_is_committed(postgres_dsn, pg_table):
    table = pg_table("id integer")
    released = []
    source = Stream()
    out = source.to_postgres(table, postgres_dsn, batch_size=2, flush_interval=3600)
    refs = [RefCounter(cb=lambda i=i: released.append(i)) for i in range(3)]
    for i, ref in enumerate(refs):
        source.emit((i,), metadata=[{"ref": ref}])
    assert released == [0, 1]  # the first batch is committed; row 2 waits
    out.flush()
    assert released == [0, 1, 2]
    out.destroy()


def test_at_least_once_from_a_source_through_map(postgres_dsn, pg_table):
    table = pg_table("id integer, square integer")
    source = TestingSource(range(1000))
    out = source.map(lambda i: {"id": i, "square": i * i}).to_postgres(
        table, postgres_dsn, batch_size=64
    )
    run_pipeline(source)
    out.flush()
    assert rows_of(postgres_dsn, table) == [(i, i * i) for i in range(1000)]
    out.destroy()


def test_a_failed_write_is_raised_by_flush(postgres_dsn, pg_table):
    table = pg_table("id integer NOT NULL")
    source = Stream()
    out = source.to_postgres(table, postgres_dsn)
    source.emit((None,))
    with pytest.raises(psycopg.errors.NotNullViolation):
        out.flush()
    out.destroy()


def test_bad_arguments_and_elements():
    source = Stream()
    with pytest.raises(ValueError, match="needs key="):
        source.to_postgres("t", "host=x", mode="upsert")
    with pytest.raises(ValueError, match="mode must be"):
        source.to_postgres("t", "host=x", mode="merge")
    out = source.to_postgres("t", "host=x")
    with pytest.raises(TypeError, match=r"to_postgres\(table='t'\).*got 5"):
        source.emit(5)
    out.destroy()


def test_without_psycopg_the_error_says_what_to_install():
    code = (
        "import sys; sys.modules['psycopg'] = None\n"
        "from millstream import Stream\n"
        "Stream().to_postgres('t', 'host=x')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last == (
        "ImportError: to_postgres needs psycopg 3: pip install 'psycopg[binary]' "
        "(or pip install 'millstream[postgres]')"
    )
