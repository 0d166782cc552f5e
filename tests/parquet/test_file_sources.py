"""The file sources on fsspec filesystems: ``filenames`` and ``from_textfile`` on URLs,
and the directory-following readers ``from_parquet``, ``from_csv``, ``from_jsonl``
(new files appear while they run; positions restore)."""

from __future__ import annotations

import uuid

import fsspec
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from millstream import Stream
from millstream.testing import run_pipeline, wait_for


@pytest.fixture
def memdir():
    """A fresh directory on the memory filesystem: ``(fs, '/name')``."""
    fs = fsspec.filesystem("memory")
    path = f"/t-{uuid.uuid4().hex[:8]}"
    fs.makedirs(path, exist_ok=True)
    yield fs, path
    fs.rm(path, recursive=True)


def test_filenames_follows_a_memory_directory(memdir):
    fs, d = memdir
    fs.pipe(f"{d}/b.txt", b"")
    fs.pipe(f"{d}/.hidden", b"")
    source = Stream.filenames(f"memory://{d}", poll_interval=0.01)
    got = source.sink_to_list()
    source.start()
    try:
        wait_for(lambda: len(got) == 1, 5)
        fs.pipe(f"{d}/a.txt", b"")
        wait_for(lambda: len(got) == 2, 5)
    finally:
        source.stop()
    expected = [f"memory://{d}/b.txt", f"memory://{d}/a.txt"]
    assert got == expected
    with fsspec.open(got[0]) as f:  # the names are URLs that open
        assert f.read() == b""


def test_filenames_and_from_textfile_on_file_urls(tmp_path):
    (tmp_path / "a.log").write_text("x\ny\n")
    names = Stream.filenames(f"file://{tmp_path}/*.log", poll_interval=0.01)
    got = names.sink_to_list()
    names.start()
    wait_for(lambda: len(got) == 1, 5)
    names.stop()
    lines = Stream.from_textfile(got[0], poll_interval=0.01)
    got = lines.sink_to_list()
    lines.start()
    wait_for(lambda: len(got) == 2, 5)
    with open(tmp_path / "a.log", "a") as f:
        f.write("z\n")
    wait_for(lambda: len(got) == 3, 5)
    lines.stop()
    assert got == ["x\n", "y\n", "z\n"]


def test_from_textfile_tails_a_memory_file(memdir):
    fs, d = memdir
    fs.pipe(f"{d}/log.txt", b"alpha\nbe")
    source = Stream.from_textfile(f"memory://{d}/log.txt", poll_interval=0.01)
    got = source.sink_to_list()
    source.start()
    wait_for(lambda: got == ["alpha\n"], 5)
    fs.pipe(f"{d}/log.txt", b"alpha\nbeta\ngamma\n")
    wait_for(lambda: len(got) == 3, 5)
    source.stop()
    assert got == ["alpha\n", "beta\n", "gamma\n"]
    assert source.snapshot() == {"offset": 17, "buffer": ""}


def test_from_textfile_on_a_missing_url_fails_at_once():
    with pytest.raises(FileNotFoundError):
        Stream.from_textfile(f"memory:///missing-{uuid.uuid4().hex}/x.txt")


def write_parquet(fs, path, values):
    pq.write_table(pa.table({"x": values}), path, filesystem=fs)


@pytest.mark.parametrize("kind", ["local", "memory"])
def test_from_parquet_follows_new_files(kind, tmp_path, memdir):
    if kind == "local":
        fs, d, url = fsspec.filesystem("file"), str(tmp_path), str(tmp_path)
    else:
        fs, d = memdir
        url = f"memory://{d}"
    write_parquet(fs, f"{d}/a.parquet", [1, 2, 3])
    fs.pipe(f"{d}/.b.parquet.inprogress", b"not parquet")  # hidden: never read
    source = Stream.from_parquet(url, poll_interval=0.01, batch_rows=2, output="arrow")
    got = source.sink_to_list()
    source.start()
    try:
        wait_for(lambda: len(got) == 2, 5)
        fs.makedirs(f"{d}/k=1", exist_ok=True)
        write_parquet(fs, f"{d}/k=1/c.parquet", [4])  # in a sub-directory, while it runs
        wait_for(lambda: len(got) == 3, 5)
    finally:
        source.stop()
    assert all(isinstance(b, pa.RecordBatch) for b in got)
    assert [b["x"].to_pylist() for b in got] == [[1, 2], [3], [4]]
    assert source.metrics["position"] == {"files": 2, "chunks": 0}


def test_from_parquet_reads_what_to_parquet_committed(tmp_path):
    out = tmp_path / "out"
    source = Stream.from_iterable([{"i": i, "k": i % 2} for i in range(10)])
    source.to_parquet(out, partition_cols=["k"], rollover_rows=3)
    run_pipeline(source)
    reader = Stream.from_parquet(out, poll_interval=0.01)
    got = reader.sink_to_list()
    reader.start()
    wait_for(lambda: sum(len(df) for df in got) == 10, 5)
    reader.stop()
    assert sorted(i for df in got for i in df["i"]) == list(range(10))


def test_from_csv_and_from_jsonl(memdir):
    fs, d = memdir
    fs.pipe(f"{d}/a.csv", b"x,y\n1,a\n2,b\n3,c\n")
    fs.pipe(f"{d}/a.jsonl", b'{"x": 1}\n{"x": 2}\n')
    csv = Stream.from_csv(f"memory://{d}", poll_interval=0.01, batch_rows=2)
    jsonl = Stream.from_jsonl(f"memory://{d}", poll_interval=0.01, output="arrow")
    C, J = csv.sink_to_list(), jsonl.sink_to_list()
    csv.start()
    jsonl.start()
    try:
        wait_for(lambda: len(C) == 2 and len(J) == 1, 5)
        fs.pipe(f"{d}/b.csv", b"x,y\n4,d\n")
        wait_for(lambda: len(C) == 3, 5)
    finally:
        csv.stop()
        jsonl.stop()
    assert all(isinstance(df, pd.DataFrame) for df in C)
    assert [df["x"].tolist() for df in C] == [[1, 2], [3], [4]]
    assert isinstance(J[0], pa.Table) and J[0]["x"].to_pylist() == [1, 2]


def test_positions_restore_the_files_done_and_the_chunk_in_the_current_file(memdir):
    fs, d = memdir
    for name, values in [("a", [1, 2]), ("b", [3, 4, 5, 6, 7]), ("c", [8])]:
        write_parquet(fs, f"{d}/{name}.parquet", values)
    state = {"files": [f"{d}/a.parquet"], "current": f"{d}/b.parquet", "chunks": 1}
    source = Stream.from_parquet(f"memory://{d}", poll_interval=0.01, batch_rows=2)
    source.restore(state)
    got = source.map(lambda df: df["x"].tolist()).sink_to_list()
    source.start()
    wait_for(lambda: len(got) == 3, 5)
    source.stop()
    assert got == [[5, 6], [7], [8]]
    assert source.snapshot() == {
        "files": [f"{d}/a.parquet", f"{d}/b.parquet", f"{d}/c.parquet"],
        "current": None,
        "chunks": 0,
    }


def test_from_parquet_resumes_from_a_checkpoint(tmp_path, memdir):
    from millstream.checkpoint import enable

    fs, d = memdir
    write_parquet(fs, f"{d}/a.parquet", [1, 2, 3])

    def build():
        source = Stream.from_parquet(f"memory://{d}", poll_interval=0.01, stream_name="in")
        return source, source.map(lambda df: df["x"].tolist()).sink_to_list()

    source, got = build()
    checkpoints = enable(source, tmp_path / "ck", interval=None)
    source.start()
    wait_for(lambda: len(got) == 1, 5)
    checkpoints.checkpoint()
    source.stop()
    checkpoints.close()
    write_parquet(fs, f"{d}/b.parquet", [4])
    source, got = build()
    checkpoints = enable(source, tmp_path / "ck", interval=None)
    source.start()
    wait_for(lambda: len(got) == 1, 5)
    source.stop()
    checkpoints.close()
    assert got == [[4]]


def test_bad_state_and_arguments(memdir):
    _, d = memdir
    with pytest.raises(ValueError, match="output must be 'pandas' or 'arrow'"):
        Stream.from_parquet(f"memory://{d}", output="rows")
    source = Stream.from_parquet(f"memory://{d}")
    with pytest.raises(Exception, match="from_parquet"):
        source.restore({"files": "nope"})
