"""from_textfile, filenames and sink_to_file.

Expected outputs where Streamz is right were checked against streamz 0.6.6:
from_textfile parts (with delimiter, universal newlines, custom delimiter) and filenames order.
"""

from __future__ import annotations

import asyncio
import glob
import io
import os
import threading

import pytest

from millstream import Stream
from millstream.sources import files as files_module
from millstream.sources import sink_to_file
from millstream.testing import wait_for


def write(path, text, mode="a"):
    with open(path, mode, newline="") as f:
        f.write(text)


def read_all(path, **kwargs):
    source = Stream.from_textfile(path, poll_interval=0.005, **kwargs)
    L = source.sink_to_list()
    return source, L


# -- from_textfile ------------------------------------------------------------------------
def test_textfile_emits_parts_with_delimiter_and_buffers_the_tail(tmp_path):
    path = tmp_path / "log.txt"
    write(path, "one\ntwo\nthr", "w")
    source, L = read_all(str(path))
    source.start()
    wait_for(lambda: len(L) == 2, 2)
    assert source.buffer == "thr"
    write(path, "ee\nfour\n")
    wait_for(lambda: len(L) == 4, 2)
    source.stop()
    assert L == ["one\n", "two\n", "three\n", "four\n"]


def test_textfile_custom_delimiter_and_pathlike(tmp_path):
    path = tmp_path / "data.txt"
    write(path, "a;b;;c;d", "w")
    source, L = read_all(path, delimiter=";")
    source.start()
    wait_for(lambda: len(L) == 4, 2)
    source.stop()
    assert L == ["a;", "b;", ";", "c;"]
    assert source.buffer == "d"


def test_textfile_from_end_skips_existing_content(tmp_path):
    path = tmp_path / "log.txt"
    write(path, "old\nlines\n", "w")
    source, L = read_all(str(path), from_end=True)
    source.start()
    write(path, "new\n")
    wait_for(lambda: len(L) == 1, 2)
    source.stop()
    assert L == ["new\n"]


def test_textfile_translates_newlines_like_open(tmp_path):
    path = tmp_path / "dos.txt"
    write(path, "a\r\nb\rc\n", "w")
    source, L = read_all(str(path))
    source.start()
    wait_for(lambda: len(L) == 3, 2)
    source.stop()
    assert L == ["a\n", "b\n", "c\n"]


def test_textfile_missing_file_fails_at_construction(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope\.txt"):
        Stream.from_textfile(str(tmp_path / "nope.txt"))


def test_textfile_bad_arguments(tmp_path):
    path = tmp_path / "x.txt"
    write(path, "", "w")
    with pytest.raises(ValueError, match="delimiter must not be empty"):
        Stream.from_textfile(str(path), delimiter="")
    with pytest.raises(TypeError, match="delimiter must be str"):
        Stream.from_textfile(str(path), delimiter=b"\n")
    with open(path, "rb") as f, pytest.raises(TypeError, match="binary mode"):
        Stream.from_textfile(f, delimiter="\n")


def test_textfile_stop_closes_the_file_it_opened_and_restart_resumes(tmp_path):
    path = tmp_path / "log.txt"
    write(path, "a\nb", "w")
    source, L = read_all(str(path))
    opened = source.file
    source.start()
    wait_for(lambda: len(L) == 1, 2)
    source.stop()
    assert opened.closed and source.file is None
    write(path, "c\nd\n")
    source.start()
    wait_for(lambda: len(L) == 3, 2)
    source.stop()
    assert L == ["a\n", "bc\n", "d\n"]
    assert source.file is None


def test_textfile_leaves_a_given_file_open(tmp_path):
    path = tmp_path / "log.txt"
    write(path, "x\ny\n", "w")
    with open(path) as f:
        source = Stream.from_textfile(f, poll_interval=0.005)
        L = source.sink_to_list()
        source.start()
        wait_for(lambda: len(L) == 2, 2)
        source.stop()
        assert not f.closed
    assert L == ["x\n", "y\n"]


def test_textfile_binary_file_with_bytes_delimiter(tmp_path):
    path = tmp_path / "log.bin"
    path.write_bytes(b"\x00\x01|\x02|rest")
    with open(path, "rb") as f:
        source = Stream.from_textfile(f, delimiter=b"|", poll_interval=0.005)
        L = source.sink_to_list()
        source.start()
        wait_for(lambda: len(L) == 2, 2)
        source.stop()
    assert L == [b"\x00\x01|", b"\x02|"]
    assert source.snapshot() == {"offset": 9, "buffer": b"rest"}


class RecordingFile(io.StringIO):
    """A text file that records the thread of each read."""

    def __init__(self, text):
        super().__init__(text)
        self.threads = []

    def read(self, size=-1):
        self.threads.append(threading.current_thread().name)
        return super().read(size)


def test_textfile_reads_off_the_event_loop():
    f = RecordingFile("a\nb\n")
    source = Stream.from_textfile(f, poll_interval=0.005)
    L = source.sink_to_list()
    source.start()
    wait_for(lambda: len(L) == 2 and len(f.threads) >= 2, 2)
    source.stop()
    assert f.threads and "millstream-loop" not in f.threads


def test_textfile_polls_on_the_nodes_clock(tmp_path, manual_clock):
    path = tmp_path / "log.txt"
    write(path, "a\n", "w")
    source = Stream.from_textfile(str(path), poll_interval=10)
    L = source.sink_to_list()
    source.start()
    wait_for(lambda: len(L) == 1 and manual_clock.pending == 1, 2)
    write(path, "b\n")
    manual_clock.advance(5)
    assert L == ["a\n"]  # still sleeping
    manual_clock.advance(5)
    wait_for(lambda: len(L) == 2, 2)
    source.stop()
    assert L == ["a\n", "b\n"]
    assert manual_clock.pending == 0


def run_until(source, L, n):
    source.start()
    wait_for(lambda: len(L) == n, 2)
    source.stop()


def test_textfile_snapshot_restore_round_trip(tmp_path):
    path = tmp_path / "log.txt"
    write(path, "a\nb\nc", "w")
    first, out = read_all(str(path))
    run_until(first, out, 2)
    state = first.snapshot()
    assert state == {"offset": 5, "buffer": "c"}
    write(path, "d\ne\n")
    second = Stream.from_textfile(str(path), poll_interval=0.005)
    second.restore(state)
    second.sink(out.append)
    run_until(second, out, 4)
    assert out == ["a\n", "b\n", "cd\n", "e\n"]  # the same as one uninterrupted run


def test_textfile_snapshot_between_parts_of_one_read(tmp_path):
    path = tmp_path / "log.txt"
    write(path, "a\nb\nc\nd", "w")
    source = Stream.from_textfile(str(path), poll_interval=0.005)
    gate = threading.Event()

    async def hold_b(x):
        if x == "b\n":
            await asyncio.to_thread(gate.wait, 5)

    out = source.sink_to_list()
    source.sink(hold_b)
    source.start()
    wait_for(lambda: out == ["a\n", "b\n"], 2)
    state = source.snapshot()  # taken while 'b' is still being processed
    gate.set()
    wait_for(lambda: len(out) == 3, 2)
    source.stop()
    assert state == {"offset": 7, "buffer": "c\nd"}
    resumed = Stream.from_textfile(str(path), poll_interval=0.005)
    resumed.restore(state)
    L = resumed.sink_to_list()
    write(path, "e\n")
    run_until(resumed, L, 2)
    assert out[:2] + L == ["a\n", "b\n", "c\n", "de\n"]


def test_textfile_snapshot_excludes_bytes_not_decoded_yet(tmp_path, monkeypatch):
    monkeypatch.setattr(files_module, "_READ_SIZE", 2)  # many small reads
    path = tmp_path / "log.txt"
    path.write_bytes("x\né".encode()[:-1])  # ends inside the two bytes of 'é'
    first, out = read_all(str(path))
    run_until(first, out, 1)
    assert first.snapshot() == {"offset": 2, "buffer": ""}
    with open(path, "ab") as f:
        f.write("é\n".encode()[1:] + "ü\r".encode())
    second = Stream.from_textfile(str(path), poll_interval=0.005)
    second.restore(first.snapshot())
    second.sink(out.append)
    run_until(second, out, 2)
    # the pending '\r' may start a '\r\n': it is not counted as consumed either
    assert second.snapshot() == {"offset": len("x\né\nü".encode()), "buffer": "ü"}
    with open(path, "ab") as f:
        f.write(b"\n")
    third = Stream.from_textfile(str(path), poll_interval=0.005)
    third.restore(second.snapshot())
    third.sink(out.append)
    run_until(third, out, 3)
    assert out == ["x\n", "é\n", "ü\n"]


def test_textfile_restore_needs_a_stopped_source(tmp_path):
    path = tmp_path / "log.txt"
    write(path, "", "w")
    source = Stream.from_textfile(str(path), poll_interval=0.005)
    source.start()
    with pytest.raises(RuntimeError, match="restore\\(\\) needs a stopped source"):
        source.restore({"offset": 0, "buffer": ""})
    source.stop()


# -- filenames ----------------------------------------------------------------------------
def touch(*paths):
    for p in paths:
        open(p, "w").close()


def test_filenames_directory_sorted_then_new_files(tmp_path):
    touch(tmp_path / "b", tmp_path / "a")
    source = Stream.filenames(str(tmp_path), poll_interval=0.005)
    got = source.sink_to_list()
    source.start()
    wait_for(lambda: len(got) == 2, 2)
    touch(tmp_path / "c")
    wait_for(lambda: len(got) == 3, 2)
    source.stop()
    assert got == [str(tmp_path / n) for n in ("a", "b", "c")]


def test_filenames_glob_and_modified_files_not_repeated(tmp_path):
    touch(tmp_path / "1.csv", tmp_path / "2.txt")
    source = Stream.filenames(str(tmp_path / "*.csv"), poll_interval=0.005)
    got = source.sink_to_list()
    source.start()
    wait_for(lambda: len(got) == 1, 2)
    write(tmp_path / "1.csv", "changed")
    touch(tmp_path / "3.csv")
    wait_for(lambda: len(got) == 2, 2)
    source.stop()
    assert got == [str(tmp_path / "1.csv"), str(tmp_path / "3.csv")]


def test_filenames_globs_off_the_event_loop(tmp_path, monkeypatch):
    threads = []
    real_glob = glob.glob

    def recording_glob(pattern):
        threads.append(threading.current_thread().name)
        return real_glob(pattern)

    monkeypatch.setattr(glob, "glob", recording_glob)
    source = Stream.filenames(str(tmp_path), poll_interval=0.005)
    source.start()
    wait_for(lambda: len(threads) >= 2, 2)
    source.stop()
    assert "millstream-loop" not in threads


def test_filenames_snapshot_restore_round_trip(tmp_path):
    touch(tmp_path / "a", tmp_path / "b")
    first = Stream.filenames(str(tmp_path), poll_interval=0.005)
    out = first.map(os.path.basename).sink_to_list()
    run_until(first, out, 2)
    state = first.snapshot()
    assert state == [str(tmp_path / "a"), str(tmp_path / "b")]
    touch(tmp_path / "c")
    second = Stream.filenames(str(tmp_path), poll_interval=0.005)
    second.restore(state)
    second.map(os.path.basename).sink(out.append)
    run_until(second, out, 3)
    assert out == ["a", "b", "c"]


def test_filenames_stop_interrupts_the_poll(tmp_path, manual_clock):
    source = Stream.filenames(str(tmp_path), poll_interval=3600)
    source.start()
    wait_for(lambda: manual_clock.pending == 1, 2)
    source.stop()
    assert source.work_task.done() and manual_clock.pending == 0


# -- sink_to_file -------------------------------------------------------------------------
def test_sink_to_file_writes_prefix_and_suffix_and_closes(tmp_path):
    path = tmp_path / "out.txt"
    source = Stream()
    with sink_to_file(str(path), source, prefix="[", suffix="]\n") as f:
        source.emit("a")
        source.emit("b")
    assert f.closed
    assert path.read_text() == "[a]\n[b]\n"


def test_sink_to_file_flush_and_append_mode(tmp_path):
    path = tmp_path / "out.txt"
    path.write_text("old\n")
    source = Stream()
    f = sink_to_file(str(path), source, mode="a", flush=True)
    source.emit("new")
    assert path.read_text() == "old\nnew\n"  # visible before closing
    f.close()
