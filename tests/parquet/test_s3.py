"""Parquet and the file sources on an S3-compatible URL: ``s3://`` through s3fs against
moto's S3 server (an S3 API emulator) started on loopback by the fixture below.

No real S3 or MinIO is reachable here; moto implements the calls s3fs makes (PUT, GET
with ranges, LIST, HEAD, COPY, DELETE, multipart uploads) and, like S3, has no rename:
``fs.mv`` is a server-side COPY then a DELETE.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import uuid

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from millstream import Stream
from millstream.checkpoint import enable
from millstream.testing import run_pipeline, wait_for

INSTALL = "pip install 's3fs>=2024.2' 'moto[server]>=5'  (both are in millstream[test])"


def rows(n, start=0):
    return [{"i": i, "k": i % 3, "s": f"w{i}"} for i in range(start, start + n)]


@pytest.fixture(scope="session")
def s3_endpoint():
    """The URL of a moto S3 server on 127.0.0.1 (a free port), stopped at the end."""
    try:
        import s3fs  # noqa: F401
        from moto.server import ThreadedMotoServer
    except ImportError as e:
        pytest.fail(f"the S3 tests need s3fs and moto's server ({e}): {INSTALL}")
    saved = {k: os.environ.get(k) for k in ("AWS_DEFAULT_REGION",)}
    # a bucket made in us-east-1 needs no location constraint
    os.environ["AWS_DEFAULT_REGION"] = "us-east-1"
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    try:
        server.start()
    except Exception as e:
        pytest.fail(f"moto's S3 server did not start on 127.0.0.1: {e!r}")
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture
def options(s3_endpoint):
    return {"client_kwargs": {"endpoint_url": s3_endpoint}, "key": "testing", "secret": "testing"}


def other_client(options):
    """An s3fs filesystem of its own (no shared listing cache): another writer/reader."""
    import s3fs

    return s3fs.S3FileSystem(skip_instance_cache=True, **options)


@pytest.fixture
def bucket(options):
    name = f"t-{uuid.uuid4().hex[:12]}"
    other_client(options).mkdir(name)
    return name


def keys(fs, prefix):
    fs.invalidate_cache()
    return sorted(fs.find(prefix))


def visible_keys(fs, prefix):
    """The keys a reader that skips ``.``/``_`` names reads."""
    return [
        k
        for k in keys(fs, prefix)
        if not any(p.startswith((".", "_")) for p in k[len(prefix) :].split("/"))
    ]


def temporaries(fs, prefix):
    return [k for k in keys(fs, prefix) if k.endswith(".inprogress")]


def visible_rows(fs, prefix):
    """The rows a pyarrow reader sees now (committed files only), sorted by ``i``."""
    found = visible_keys(fs, prefix)
    if not found:
        return []
    dataset = ds.dataset(prefix, filesystem=fs, partitioning="hive")
    return sorted(dataset.to_table().to_pylist(), key=lambda r: r["i"])


# -- to_parquet -----------------------------------------------------------------------------
def test_partitions_and_rollover_on_s3_read_by_pyarrow_and_dask(bucket, options):
    out = f"s3://{bucket}/table"
    source = Stream.from_iterable(rows(50))
    source.to_parquet(
        out, partition_cols=["k"], rollover_rows=7, batch_rows=5, storage_options=options
    )
    run_pipeline(source)
    fs = other_client(options)
    found = visible_keys(fs, f"{bucket}/table")
    assert {k.split("/")[2] for k in found} == {"k=0", "k=1", "k=2"}
    assert len(found) == 9  # 17, 17, 16 rows by 7: three files a partition
    assert not temporaries(fs, f"{bucket}/table")
    got = visible_rows(fs, f"{bucket}/table")
    assert [r["i"] for r in got] == list(range(50))
    assert all(r["k"] == r["i"] % 3 and r["s"] == f"w{r['i']}" for r in got)
    assert pq.ParquetFile(fs.open(found[0], "rb")).metadata.num_rows == 7

    import dask.dataframe as dd

    frame = dd.read_parquet(out, storage_options=options).compute()
    assert sorted(frame["i"].tolist()) == list(range(50))


def test_checkpoints_commit_by_copy_and_delete_with_no_partial_or_duplicate_file(
    bucket, options, tmp_path
):
    out, prefix, q = f"s3://{bucket}/cp", f"{bucket}/cp", queue.Queue()
    source = Stream.from_q(q, stream_name="q")
    sink = source.to_parquet(
        out, partition_cols=["k"], batch_rows=2, storage_options=options, stream_name="pq"
    )
    checkpoints = enable(source, tmp_path / "ck", interval=None)
    reader = other_client(options)
    seen: list[list[int]] = []
    errors: list[BaseException] = []
    done = threading.Event()

    def watch():  # a reader polling while the commits happen
        while not done.is_set():
            try:
                seen.append([r["i"] for r in visible_rows(reader, prefix)])
            except FileNotFoundError:
                pass  # a key listed, then deleted before it was read: the temporary
            except BaseException as e:  # a partial file would fail to parse here
                errors.append(e)

    source.start()
    watcher = threading.Thread(target=watch, daemon=True)
    try:
        for r in rows(30):
            q.put(r)
        wait_for(lambda: sink.metrics["elements_in"] == 30, 10)
        # an open file is uploaded at its close (multipart parts beyond s3fs's block size):
        # until the checkpoint closes it, nothing at all is under the prefix
        assert keys(reader, prefix) == []
        watcher.start()
        checkpoints.checkpoint()
        assert visible_rows(reader, prefix) == rows(30)
        for r in rows(30, 30):
            q.put(r)
        wait_for(lambda: sink.metrics["elements_in"] == 60, 10)
        assert visible_rows(reader, prefix) == rows(30)
        checkpoints.checkpoint()
        assert visible_rows(reader, prefix) == rows(60)
        assert not temporaries(reader, prefix)
    finally:
        done.set()
        if watcher.is_alive():
            watcher.join(10)
        source.stop()
        checkpoints.close()
    assert not errors, errors
    assert seen
    for observed in seen:
        assert len(observed) == len(set(observed)), "a row was visible twice"
    manifests = [k for k in keys(reader, prefix) if "/_millstream/" in k]
    assert manifests and all(k.endswith(".json") for k in manifests)


def test_a_restart_after_a_copy_without_its_delete_leaves_no_duplicate(
    bucket, options, tmp_path, monkeypatch
):
    """Killed between the COPY and the DELETE of a commit's first file: the final object
    and its temporary both exist; the restart copies again over the same final name and
    deletes the temporary, and discards what no manifest names."""
    out, prefix, location, q = f"s3://{bucket}/cut", f"{bucket}/cut", tmp_path / "ck", queue.Queue()
    source = Stream.from_q(q, stream_name="q")
    sink = source.to_parquet(out, partition_cols=["k"], storage_options=options, stream_name="pq")
    checkpoints = enable(source, location, interval=None)
    source.start()
    for r in rows(6):
        q.put(r)
    wait_for(lambda: sink.metrics["elements_in"] == 6, 10)
    real_mv = sink.fs.mv

    def copy_then_die(a, b, **kw):
        if a.endswith(".inprogress"):
            sink.fs.copy(a, b)
            raise OSError("killed between the copy and the delete")
        return real_mv(a, b, **kw)

    monkeypatch.setattr(sink.fs, "mv", copy_then_die)
    with pytest.raises(Exception, match="killed"):
        checkpoints.checkpoint()
    source.stop()
    reader = other_client(options)
    assert len(temporaries(reader, prefix)) == 3  # all three still there
    partial = visible_rows(reader, prefix)
    assert 0 < len(partial) < 6 and len({r["i"] for r in partial}) == len(partial)
    monkeypatch.setattr(sink.fs, "mv", real_mv)
    # rows written after the checkpoint by the dead run: in a temporary no manifest names
    token = temporaries(reader, prefix)[0].rsplit("/", 1)[1].split("-")[1]  # the pipeline's
    sink.fs.pipe(f"{prefix}/k=0/.part-{token}-dead-000001.parquet.inprogress", b"x")

    again = Stream.from_q(queue.Queue(), stream_name="q")
    again.to_parquet(out, partition_cols=["k"], storage_options=options, stream_name="pq")
    restarted = enable(again, location, interval=None)
    try:
        assert restarted.restored is not None
        assert visible_rows(reader, prefix) == rows(6)
        assert not temporaries(reader, prefix)
        assert len(visible_keys(reader, prefix)) == 3
    finally:
        restarted.close()


def test_a_bounded_input_under_checkpoints_ends_committed_on_s3(bucket, options, tmp_path):
    source = Stream.from_iterable(rows(200), stream_name="numbers")
    source.to_parquet(f"s3://{bucket}/b", storage_options=options, batch_rows=16, stream_name="out")
    checkpoints = enable(source, tmp_path / "ck", interval="100ms")
    run_pipeline(source, timeout=30)
    checkpoints.close()
    reader = other_client(options)
    assert visible_rows(reader, f"{bucket}/b") == rows(200)
    assert not temporaries(reader, f"{bucket}/b")


# -- sources --------------------------------------------------------------------------------
def test_from_parquet_follows_new_objects_written_by_another_client(bucket, options):
    writer = other_client(options)
    pq.write_table(pa.table({"x": [1, 2, 3]}), f"{bucket}/in/a.parquet", filesystem=writer)
    source = Stream.from_parquet(
        f"s3://{bucket}/in", poll_interval=0.05, batch_rows=2, storage_options=options
    )
    got = source.map(lambda df: df["x"].tolist()).sink_to_list()
    source.start()
    try:
        wait_for(lambda: got == [[1, 2], [3]], 10)
        writer.pipe(f"{bucket}/in/.b.parquet.inprogress", b"not parquet")  # hidden
        pq.write_table(pa.table({"x": [4]}), f"{bucket}/in/sub/b.parquet", filesystem=writer)
        wait_for(lambda: got == [[1, 2], [3], [4]], 10)
    finally:
        source.stop()
    assert source.snapshot()["files"] == [f"{bucket}/in/a.parquet", f"{bucket}/in/sub/b.parquet"]


def test_from_parquet_on_a_glob_sees_new_objects(bucket, options):
    writer = other_client(options)
    pq.write_table(pa.table({"x": [1]}), f"{bucket}/g/a.parquet", filesystem=writer)
    source = Stream.from_parquet(
        f"s3://{bucket}/g/*.parquet", poll_interval=0.05, storage_options=options
    )
    got = source.map(lambda df: df["x"].tolist()).sink_to_list()
    source.start()
    try:
        wait_for(lambda: got == [[1]], 10)
        pq.write_table(pa.table({"x": [2]}), f"{bucket}/g/b.parquet", filesystem=writer)
        wait_for(lambda: got == [[1], [2]], 10)
    finally:
        source.stop()


def test_from_jsonl_and_from_csv_follow_new_objects(bucket, options):
    writer = other_client(options)
    writer.pipe(f"{bucket}/j/a.jsonl", b'{"x": 1}\n{"x": 2}\n')
    writer.pipe(f"{bucket}/c/a.csv", b"x,y\n1,a\n")
    jsonl = Stream.from_jsonl(f"s3://{bucket}/j", poll_interval=0.05, storage_options=options)
    csv = Stream.from_csv(f"s3://{bucket}/c", poll_interval=0.05, storage_options=options)
    got_j = jsonl.map(lambda df: df["x"].tolist()).sink_to_list()
    got_c = csv.map(lambda df: df.to_dict("records")).sink_to_list()
    jsonl.start()
    csv.start()
    try:
        wait_for(lambda: got_j == [[1, 2]] and len(got_c) == 1, 10)
        writer.pipe(f"{bucket}/j/b.jsonl", b'{"x": 3}\n')
        writer.pipe(f"{bucket}/c/b.csv", b"x,y\n2,b\n")
        wait_for(lambda: got_j == [[1, 2], [3]] and len(got_c) == 2, 10)
    finally:
        jsonl.stop()
        csv.stop()
    assert got_c == [[{"x": 1, "y": "a"}], [{"x": 2, "y": "b"}]]


def test_filenames_follows_new_objects(bucket, options):
    writer = other_client(options)
    writer.pipe(f"{bucket}/f/a.csv", b"1")
    source = Stream.filenames(f"s3://{bucket}/f", poll_interval=0.05, storage_options=options)
    got = source.sink_to_list()
    source.start()
    try:
        wait_for(lambda: got == [f"s3://{bucket}/f/a.csv"], 10)
        writer.pipe(f"{bucket}/f/.hidden", b"1")
        writer.pipe(f"{bucket}/f/b.csv", b"2")
        wait_for(lambda: got == [f"s3://{bucket}/f/a.csv", f"s3://{bucket}/f/b.csv"], 10)
    finally:
        source.stop()


def test_from_textfile_follows_an_object_rewritten_longer(bucket, options):
    """S3 objects cannot be appended to: a "growing" log is re-uploaded whole; each poll
    reads the bytes past the last offset."""
    writer = other_client(options)
    key = f"{bucket}/logs/app.log"
    writer.pipe(key, b"alpha\nbeta\ngam")
    source = Stream.from_textfile(f"s3://{key}", poll_interval=0.05, storage_options=options)
    got = source.sink_to_list()
    source.start()
    try:
        wait_for(lambda: got == ["alpha\n", "beta\n"], 10)
        writer.pipe(key, b"alpha\nbeta\ngamma\ndelta\n")
        wait_for(lambda: got == ["alpha\n", "beta\n", "gamma\n", "delta\n"], 10)
    finally:
        source.stop()
    assert source.snapshot() == {"offset": 23, "buffer": ""}
