"""``to_parquet``: round trips on local and memory filesystems, partitions, every
roll-over, atomic commits with checkpoints, dask reads, refs, errors."""

from __future__ import annotations

import queue
import sys
import time

import fsspec
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from millstream import Stream
from millstream.checkpoint import enable
from millstream.core.refs import RefCounter
from millstream.testing import run_pipeline, wait_for


def rows(n, start=0):
    return [{"i": i, "k": i % 3, "s": f"w{i}"} for i in range(start, start + n)]


def visible(path, filesystem=None):
    """The rows a reader sees now, sorted by ``i`` (committed files only)."""
    dataset = ds.dataset(str(path), partitioning="hive", filesystem=filesystem)
    if not dataset.files:
        return []
    return sorted(dataset.to_table().to_pylist(), key=lambda r: r["i"])


def files(path, pattern="*.parquet"):
    return sorted(p for p in path.rglob(pattern) if not p.name.startswith("."))


def temporaries(path):
    return sorted(path.rglob(".*.inprogress"))


def test_dicts_round_trip_through_pyarrow(tmp_path):
    source = Stream.from_iterable(rows(10))
    source.to_parquet(tmp_path)
    run_pipeline(source)
    assert pq.read_table(tmp_path).to_pylist() == rows(10)
    assert not temporaries(tmp_path)


def test_dataframes_tables_and_record_batches_are_accepted(tmp_path):
    frame = pd.DataFrame(rows(4))
    table = pa.Table.from_pylist(rows(3, 4))
    batch = pa.RecordBatch.from_pylist(rows(2, 7))
    source = Stream.from_iterable([frame, *rows(1, 9)[:1], table, batch])
    source.to_parquet(tmp_path, batch_rows=3)
    run_pipeline(source)
    got = sorted(pq.read_table(tmp_path).to_pylist(), key=lambda r: r["i"])
    assert got == rows(10)


def test_memory_filesystem_round_trip():
    fs = fsspec.filesystem("memory")
    source = Stream.from_iterable(rows(50))
    source.to_parquet("memory://pq-round/out", batch_rows=7, rollover_rows=20)
    run_pipeline(source)
    names = fs.ls("/pq-round/out", detail=False)
    assert len(names) == 3 and all(n.rsplit("/", 1)[1].startswith("part-") for n in names)
    assert visible("/pq-round/out", filesystem=fs) == rows(50)


def test_partition_columns_make_hive_directories(tmp_path):
    data = rows(9) + [{"i": 9, "k": None, "s": "w9"}]
    source = Stream.from_iterable(data)
    source.to_parquet(tmp_path, partition_cols=["k"], batch_rows=4)
    run_pipeline(source)
    dirs = sorted(p.name for p in tmp_path.iterdir() if p.is_dir())
    assert dirs == ["k=0", "k=1", "k=2", "k=__HIVE_DEFAULT_PARTITION__"]
    assert pq.read_table(files(tmp_path / "k=1")[0]).column_names == ["i", "s"]
    got = visible(tmp_path)
    assert [r["i"] for r in got] == list(range(10))
    assert all(r["k"] == r["i"] % 3 for r in got[:9]) and got[9]["k"] is None


def test_two_partition_columns_and_strings_that_need_quoting(tmp_path):
    data = [{"i": i, "a": "x/y" if i % 2 else "z", "b": i % 2} for i in range(6)]
    source = Stream.from_iterable(data)
    source.to_parquet(tmp_path, partition_cols=["a", "b"])
    run_pipeline(source)
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.glob("*/*")) == [
        "a=x%2Fy/b=1",
        "a=z/b=0",
    ]
    got = visible(tmp_path)
    assert [(r["i"], r["a"], r["b"]) for r in got] == [(d["i"], d["a"], d["b"]) for d in data]


def test_rollover_by_rows(tmp_path):
    source = Stream.from_iterable(rows(25))
    source.to_parquet(tmp_path, rollover_rows=10, batch_rows=7)
    run_pipeline(source)
    counts = [pq.read_metadata(p).num_rows for p in files(tmp_path)]
    assert counts == [10, 10, 5]
    assert visible(tmp_path) == rows(25)


def test_rollover_by_bytes(tmp_path):
    source = Stream.from_iterable(rows(4000))
    source.to_parquet(tmp_path, rollover_bytes=4000, batch_rows=500, compression="none")
    run_pipeline(source)
    names = files(tmp_path)
    assert len(names) > 3
    assert all(p.stat().st_size < 4000 + 16000 for p in names)  # at most one write past it
    assert visible(tmp_path) == rows(4000)


def test_rollover_by_time_makes_rows_visible_without_more_input(tmp_path):
    source = Stream()
    sink = source.to_parquet(tmp_path, rollover_interval=0.2, batch_rows=1000)
    for r in rows(5):
        source.emit(r)
    assert visible(tmp_path) == []
    wait_for(lambda: visible(tmp_path) == rows(5), 5)
    for r in rows(3, 5):
        source.emit(r)
    wait_for(lambda: visible(tmp_path) == rows(8), 5)
    assert len(files(tmp_path)) == 2
    sink.destroy()


def test_flush_closes_the_open_files(tmp_path):
    source = Stream()
    sink = source.to_parquet(tmp_path, batch_rows=2)
    for r in rows(5):
        source.emit(r)
    assert visible(tmp_path) == []  # still open: hidden
    assert temporaries(tmp_path)
    sink.flush()
    assert visible(tmp_path) == rows(5) and not temporaries(tmp_path)
    sink.destroy()


def test_refs_are_released_once_the_file_is_closed(tmp_path):
    source = Stream()
    sink = source.to_parquet(tmp_path, partition_cols=["k"], batch_rows=2)
    released = []
    refs = [RefCounter(cb=lambda i=i: released.append(i)) for i in range(4)]
    for r, ref in zip(rows(4), refs, strict=True):
        source.emit(r, metadata=[{"ref": ref}])
    time.sleep(0.2)
    assert released == []  # written, but the files are still open
    sink.flush()
    wait_for(lambda: sorted(released) == [0, 1, 2, 3], 5)
    sink.destroy()


def test_dask_reads_the_dataset(tmp_path):
    dd = pytest.importorskip("dask.dataframe")
    source = Stream.from_iterable(rows(30))
    source.to_parquet(tmp_path, partition_cols=["k"], rollover_rows=4)
    run_pipeline(source)
    frame = dd.read_parquet(str(tmp_path)).compute().sort_values("i")
    assert frame["i"].tolist() == list(range(30))
    assert [int(k) for k in frame["k"]] == [i % 3 for i in range(30)]


# -- checkpoints ---------------------------------------------------------------------------
def test_files_are_committed_atomically_at_each_checkpoint(tmp_path):
    out, q = tmp_path / "out", queue.Queue()
    source = Stream.from_q(q, stream_name="q")
    sink = source.to_parquet(out, partition_cols=["k"], batch_rows=2, stream_name="pq")
    checkpoints = enable(source, tmp_path / "ck", interval=None)
    source.start()
    try:
        for r in rows(10):
            q.put(r)
        wait_for(lambda: sink.metrics["elements_in"] == 10, 5)
        wait_for(lambda: len(temporaries(out)) == 3, 5)  # rows written, files in progress
        assert visible(out) == []
        first = checkpoints.checkpoint()
        assert visible(out) == rows(10) and not temporaries(out)
        for r in rows(10, 10):
            q.put(r)
        wait_for(lambda: len(temporaries(out)) == 3, 5)
        assert visible(out) == rows(10)  # the second checkpoint's rows are not visible
        second = checkpoints.checkpoint()
        assert second.id == first.id + 1
        assert visible(out) == rows(20) and not temporaries(out)
        names = [p.name for p in files(out / "k=0")]
        assert len(names) == 2 and all(n.startswith("part-") for n in names)
        manifests = sorted((out / "_millstream").rglob("commit-*.json"))
        assert [m.name for m in manifests][-1] == f"commit-{second.id:012d}.json"
    finally:
        source.stop()
        checkpoints.close()


def test_a_restart_discards_uncommitted_temporaries(tmp_path):
    out, location, q = tmp_path / "out", tmp_path / "ck", queue.Queue()
    source = Stream.from_q(q, stream_name="q")
    sink = source.to_parquet(out, batch_rows=2, stream_name="pq")
    checkpoints = enable(source, location, interval=None)
    source.start()
    for r in rows(4):
        q.put(r)
    wait_for(lambda: len(temporaries(out)) == 1, 5)
    committed = checkpoints.checkpoint().id
    for r in rows(4, 4):
        q.put(r)
    wait_for(lambda: len(temporaries(out)) == 1, 5)
    source.stop()  # a crash: the second file was never committed
    sink._executor.shutdown(wait=True)
    again = Stream.from_q(queue.Queue(), stream_name="q")
    again.to_parquet(out, batch_rows=2, stream_name="pq")
    restarted = enable(again, location, interval=None)
    assert restarted.restored == committed
    assert not temporaries(out)
    assert visible(out) == rows(4)
    restarted.close()


def test_a_commit_cut_after_its_manifest_is_finished_on_restart(tmp_path, monkeypatch):
    out, location, q = tmp_path / "out", tmp_path / "ck", queue.Queue()
    source = Stream.from_q(q, stream_name="q")
    sink = source.to_parquet(out, partition_cols=["k"], stream_name="pq")
    checkpoints = enable(source, location, interval=None)
    source.start()
    for r in rows(6):
        q.put(r)
    wait_for(lambda: sink.metrics["elements_in"] == 6, 5)
    real_mv = sink.fs.mv
    moved = []

    def mv_once(a, b, **kw):  # the process "dies" after the first rename
        if a.endswith(".inprogress"):
            if moved:
                raise OSError("killed")
            moved.append(a)
        return real_mv(a, b, **kw)

    monkeypatch.setattr(sink.fs, "mv", mv_once)
    with pytest.raises(Exception, match="killed"):
        checkpoints.checkpoint()
    source.stop()
    assert len(visible(out)) < 6 and len(temporaries(out)) == 2
    monkeypatch.setattr(sink.fs, "mv", real_mv)
    again = Stream.from_q(queue.Queue(), stream_name="q")
    again.to_parquet(out, partition_cols=["k"], stream_name="pq")
    restarted = enable(again, location, interval=None)
    assert restarted.restored is not None
    assert visible(out) == rows(6) and not temporaries(out)
    restarted.close()


def test_a_bounded_input_under_checkpoints_ends_committed(tmp_path):
    source = Stream.from_iterable(rows(100), stream_name="src")
    source.to_parquet(tmp_path / "out", rollover_rows=30, batch_rows=16, stream_name="pq")
    checkpoints = enable(source, tmp_path / "ck", interval="50ms")
    run_pipeline(source)
    checkpoints.close()
    assert visible(tmp_path / "out") == rows(100)
    assert not temporaries(tmp_path / "out")


# -- errors ------------------------------------------------------------------------------
def test_an_unwritable_path_fails_when_the_node_is_made(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(OSError, match=r"to_parquet\(.*cannot create the directory"):
        Stream().to_parquet(blocker / "out")


def test_a_bad_element_names_the_node_and_the_element(tmp_path):
    source = Stream()
    sink = source.to_parquet(tmp_path)
    with pytest.raises(TypeError, match=r"to_parquet\(.*must be a dict.*got 'oops'"):
        source.emit("oops")
    sink.destroy()


def test_rows_that_do_not_fit_the_schema_fail_with_the_node_named(tmp_path):
    source = Stream()
    sink = source.to_parquet(tmp_path, batch_rows=1)
    source.emit({"i": 1})
    source.emit({"i": "not a number"})
    with pytest.raises(TypeError, match=r"to_parquet\(.*do not fit the schema"):
        sink.flush()
    sink.destroy()


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="rollover_rows must be an int >= 1"):
        Stream().to_parquet(tmp_path, rollover_rows=0)
    with pytest.raises(ValueError, match="batch_rows"):
        Stream().to_parquet(tmp_path, batch_rows=1.5)


def test_without_pyarrow_the_error_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    with pytest.raises(ImportError, match=r"pip install 'millstream\[parquet\]'"):
        Stream().to_parquet(tmp_path)


def test_import_millstream_imports_neither_pyarrow_nor_fsspec():
    import subprocess

    code = "import sys, millstream; print('pyarrow' in sys.modules, 'fsspec' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
