"""Tests for zip, combine_latest, zip_latest and union.

Expected outputs marked "Streamz 0.6.6" were obtained by running the same graph
with streamz 0.6.6.
"""

from __future__ import annotations

import asyncio
import pickle
import threading

import pytest

from millstream import RefCounter, Stream
from millstream.core.fusion import is_fusible
from millstream.operators.combine import combine_latest, union, zip, zip_latest


class MetaList(Stream):
    """Record the metadata list of every element (like streamz.utils_test.metadata)."""

    def __init__(self, upstream: Stream):
        self.seen: list = []
        super().__init__(upstream)

    def update(self, x, who=None, metadata=None):
        self.seen.append(list(metadata) if metadata else [])


def refs(n):
    return [RefCounter() for _ in range(n)]


# -- zip ------------------------------------------------------------------------------------
def test_zip_basic_order():
    a, b = Stream(), Stream()
    out = zip(a, b).sink_to_list()
    a.emit(1)
    a.emit(2)
    assert out == []
    b.emit("x")
    assert out == [(1, "x")]
    b.emit("y")
    b.emit("z")
    a.emit(3)
    assert out == [(1, "x"), (2, "y"), (3, "z")]


def test_zip_method_and_three_inputs():
    a, b, c = Stream(), Stream(), Stream()
    out = a.zip(b, c).sink_to_list()
    for i in range(3):
        c.emit(f"c{i}")
        b.emit(f"b{i}")
        a.emit(i)
    assert out == [(0, "b0", "c0"), (1, "b1", "c1"), (2, "b2", "c2")]


def test_zip_literals():
    # Streamz 0.6.6: zip(a, 123, b) -> [(1, 123, 2)]
    a, b = Stream(), Stream()
    out = zip(a, 123, b).sink_to_list()
    a.emit(1)
    b.emit(2)
    assert out == [(1, 123, 2)]
    a, b = Stream(), Stream()
    out = zip("first", a, b, None, "last").sink_to_list()
    a.emit(1)
    b.emit(2)
    assert out == [("first", 1, 2, None, "last")]


def test_zip_same_stream_twice():
    # Streamz 0.6.6: [(1, 1), (2, 2)]
    a = Stream()
    z = zip(a, a)
    out = z.sink_to_list()
    a.emit(1)
    a.emit(2)
    assert out == [(1, 1), (2, 2)]
    assert sum(d is z for d in a.downstreams) == 1
    assert z.upstreams == [a, a]


def test_zip_single_stream():
    a = Stream()
    out = zip(a).sink_to_list()
    a.emit(1)
    assert out == [(1,)]


def test_zip_connect_mid_stream():
    # Streamz 0.6.6: [(1, 2), (3, 4, 5)]
    a, b, c = Stream(), Stream(), Stream()
    z = zip(a, b)
    out = z.sink_to_list()
    a.emit(1)
    b.emit(2)
    c.connect(z)
    a.emit(3)
    b.emit(4)
    assert out == [(1, 2)]
    c.emit(5)
    assert out == [(1, 2), (3, 4, 5)]


def test_zip_disconnect_releases_ready_tuple():
    # Streamz 0.6.6 emits nothing here, ever: after c leaves, a's buffer holds two
    # elements and Streamz only checks for a full row when a buffer goes from 0 to 1.
    a, b, c = Stream(), Stream(), Stream()
    z = zip(a, b, c)
    out = z.sink_to_list()
    a.emit(1)
    b.emit(2)
    c.disconnect(z)
    assert z.upstreams == [a, b]
    a.emit(3)
    assert out == [(1, 2)]
    b.emit(4)
    assert out == [(1, 2), (3, 4)]
    c.emit("ignored")
    assert out == [(1, 2), (3, 4)]


def test_zip_disconnect_drops_buffer_and_refs():
    a, b = Stream(), Stream()
    z = zip(a, b)
    out = z.sink_to_list()
    (r,) = refs(1)
    a.emit(1, metadata=[{"ref": r}])
    assert r.count == 1
    a.disconnect(z)
    assert r.count == 0
    b.emit(2)
    assert out == [(2,)]


def test_zip_connect_same_stream_again():
    a, b = Stream(), Stream()
    z = zip(a, b)
    out = z.sink_to_list()
    a.connect(z)
    assert z.upstreams == [a, b, a]
    assert sum(d is z for d in a.downstreams) == 1
    a.emit(1)
    b.emit(2)
    assert out == [(1, 2, 1)]
    a.disconnect(z)
    assert z.upstreams == [b, a]
    assert sum(d is z for d in a.downstreams) == 1
    a.emit(3)
    b.emit(4)
    assert out == [(1, 2, 1), (4, 3)]
    a.disconnect(z)
    assert all(d is not z for d in a.downstreams)


def test_zip_destroy_with_repeated_stream():
    a = Stream()
    z = zip(a, a)
    out = z.sink_to_list()
    z.destroy()
    a.emit(1)
    assert out == []
    assert z.upstreams == []
    assert all(d is not z for d in a.downstreams)


def test_zip_literal_after_disconnect_of_later_stream():
    # Streamz 0.6.6 raises IndexError packing literals here.
    a, b = Stream(), Stream()
    z = zip(a, b, "lit")
    out = z.sink_to_list()
    b.disconnect(z)
    a.emit(1)
    assert out == [(1, "lit")]


def test_zip_metadata():
    # Streamz 0.6.6: [[{'v': 1}, {'v': 'x'}], [{'v': 2}]]
    a, b = Stream(), Stream()
    M = MetaList(zip(a, b))
    a.emit(1, metadata=[{"v": 1}])
    a.emit(2, metadata=[{"v": 2}])
    b.emit("x", metadata=[{"v": "x"}])
    b.emit("y")
    assert M.seen == [[{"v": 1}, {"v": "x"}], [{"v": 2}]]


def test_zip_no_metadata_emits_none():
    a, b = Stream(), Stream()
    z = zip(a, b)
    seen = []
    plain_emit = z._emit

    def spy(x, metadata=None):
        seen.append(metadata)
        return plain_emit(x, metadata)

    z._emit = spy
    a.emit(1)
    b.emit(2)
    a.emit(3, metadata=[])
    b.emit(4)
    assert seen == [None, None]


def test_zip_ref_counts():
    # Streamz 0.6.6: count 1 while buffered, 0 once the tuple is emitted
    a, b = Stream(), Stream()
    zip(a, b).sink_to_list()
    r1, r2, r3 = refs(3)
    a.emit(1, metadata=[{"ref": r1}])
    a.emit(2, metadata=[{"ref": r2}])
    assert (r1.count, r2.count) == (1, 1)
    b.emit(3, metadata=[{"ref": r3}])
    assert (r1.count, r2.count, r3.count) == (0, 1, 0)
    b.emit(4)
    assert r2.count == 0


def test_zip_ref_held_while_downstream_runs():
    a, b = Stream(), Stream()
    r1, r2 = refs(2)
    seen = []
    zip(a, b).sink(lambda x: seen.append((r1.count, r2.count)))
    a.emit(1, metadata=[{"ref": r1}])
    b.emit(2, metadata=[{"ref": r2}])
    # r1: zip's buffer + zip's edge to the sink; r2: also b's edge to zip, still on the stack
    assert seen == [(2, 3)]
    assert (r1.count, r2.count) == (0, 0)


def test_zip_same_stream_twice_refs():
    a = Stream()
    M = MetaList(zip(a, a))
    (r,) = refs(1)
    a.emit(1, metadata=[{"ref": r}])
    assert M.seen == [[{"ref": r}, {"ref": r}]]
    assert r.count == 0


def test_zip_error_downstream_releases_refs_failed():
    a, b = Stream(), Stream()
    zip(a, b).map(lambda t: 1 / 0)
    r1, r2 = refs(2)
    a.emit(1, metadata=[{"ref": r1}])
    with pytest.raises(ZeroDivisionError):
        b.emit(2, metadata=[{"ref": r2}])
    assert (r1.count, r2.count) == (0, 0)
    assert r1.failed and r2.failed


def test_zip_without_loop_buffer_grows():
    # No loop: nothing can wait, so the buffer grows past maxsize (as in Streamz).
    a, b = Stream(), Stream()
    z = zip(a, b, maxsize=2)
    out = z.sink_to_list()
    for i in range(5):
        assert a.emit(i) is None
    assert len(z.buffers[a]) == 5
    for i in range(5):
        b.emit(-i)
    assert out == [(i, -i) for i in range(5)]


@pytest.mark.asyncio
async def test_zip_backpressure_async():
    a = Stream(asynchronous=True)
    b = Stream(asynchronous=True)
    out = zip(a, b, maxsize=2).sink_to_list()
    await asyncio.wait_for(a.emit(1), 1)
    await asyncio.wait_for(a.emit(2), 1)
    pending = asyncio.ensure_future(a.emit(3))  # a's buffer now holds 3 > maxsize
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(asyncio.shield(pending), 0.05)
    assert not pending.done()
    await asyncio.wait_for(b.emit("x"), 1)  # a tuple leaves: a's buffer is back to 2
    await asyncio.wait_for(pending, 1)
    assert out == [(1, "x")]
    # a waiter that was cancelled (its emit abandoned) does not break later ones
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(a.emit(4), 0.05)
    await b.emit("y")
    await asyncio.wait_for(b.emit("z"), 1)
    assert out == [(1, "x"), (2, "y"), (3, "z")]


@pytest.mark.asyncio
async def test_zip_backpressure_released_by_disconnect():
    a = Stream(asynchronous=True)
    b = Stream(asynchronous=True)
    z = zip(a, b, maxsize=1)
    await a.emit(1)
    pending = asyncio.ensure_future(a.emit(2))
    await asyncio.sleep(0.01)
    assert not pending.done()
    a.disconnect(z)
    await asyncio.wait_for(pending, 1)


def test_zip_backpressure_thread_loop():
    # A loop in a background thread: a blocking emit into an overfull input waits
    # until the other input lets a tuple out.
    a = Stream(ensure_io_loop=True)
    b = Stream(ensure_io_loop=True)
    out = zip(a, b, maxsize=1).sink_to_list()
    a.emit(1)
    t = threading.Thread(target=a.emit, args=(2,), daemon=True)
    t.start()
    t.join(0.1)
    assert t.is_alive()
    b.emit("x")
    t.join(2)
    assert not t.is_alive()
    b.emit("y")
    assert out == [(1, "x"), (2, "y")]


def test_zip_str_and_graphviz():
    a, b = Stream(), Stream()
    z = zip(a, b)
    assert str(z) == "<zip>"
    assert repr(z) == "<zip>"
    assert str(zip(a, b, stream_name="zz")) == "<zz; zip>"
    assert (z._graphviz_shape, z._graphviz_orientation) == ("triangle", 270)
    assert Stream.zip.__name__ == "zip"


def test_zip_errors():
    with pytest.raises(ValueError, match="zip: needs at least one upstream stream"):
        zip()
    with pytest.raises(ValueError, match="zip: needs at least one upstream stream"):
        zip(1, 2)
    with pytest.raises(ValueError, match="zip: maxsize must be a positive integer"):
        zip(Stream(), Stream(), maxsize=0)
    a, b = Stream(), Stream()
    z = zip(a, b)
    with pytest.raises(ValueError, match="not one of its upstreams"):
        z.update(1, who=Stream())


def test_zip_snapshot_round_trip():
    def build():
        a, b = Stream(), Stream()
        z = zip(a, "lit", b)
        return a, b, z, z.sink_to_list()

    a, b, z, full = build()
    for i in range(3):
        a.emit(i)
    b.emit("x")
    state = z.snapshot()
    assert state == {"buffers": [[1, 2], []], "literals": [(1, "lit")]}
    state = pickle.loads(pickle.dumps(state))
    b.emit("y")
    b.emit("z")

    _a2, b2, z2, resumed = build()
    z2.restore(state)
    b2.emit("y")
    b2.emit("z")
    assert full == [(0, "lit", "x"), (1, "lit", "y"), (2, "lit", "z")]
    assert resumed == full[1:]


def test_zip_restore_wrong_shape():
    a, b = Stream(), Stream()
    z = zip(a, b)
    with pytest.raises(ValueError, match="2 input positions"):
        z.restore({"buffers": [[1]], "literals": []})


# -- combine_latest ---------------------------------------------------------------------------
def test_combine_latest_default():
    # Streamz 0.6.6: [(1, 2), (3, 2), (3, 4), (5, 4)]
    a, b = Stream(), Stream()
    out = combine_latest(a, b).sink_to_list()
    a.emit(1)
    b.emit(2)
    a.emit(3)
    b.emit(4)
    a.emit(5)
    assert out == [(1, 2), (3, 2), (3, 4), (5, 4)]


def test_combine_latest_waits_for_all_inputs():
    a, b = Stream(), Stream()
    out = a.combine_latest(b).sink_to_list()
    a.emit(1)
    a.emit(2)
    assert out == []
    b.emit("x")
    assert out == [(2, "x")]


@pytest.mark.parametrize(
    "emit_on, expected",
    [
        # Streamz 0.6.6 for the stream and index forms
        ("a", [(3, 2), (5, 4)]),
        (0, [(3, 2), (5, 4)]),
        (1, [(1, 2), (3, 4)]),
        (-1, [(1, 2), (3, 4)]),
        ("b-list", [(1, 2), (3, 4)]),
        ("both", [(1, 2), (3, 2), (3, 4), (5, 4)]),
    ],
)
def test_combine_latest_emit_on(emit_on, expected):
    a, b = Stream(), Stream()
    emit_on = {"a": a, "b-list": [b], "both": [a, 1]}.get(emit_on, emit_on)
    out = combine_latest(a, b, emit_on=emit_on).sink_to_list()
    a.emit(1)
    b.emit(2)
    a.emit(3)
    b.emit(4)
    a.emit(5)
    assert out == expected


def test_combine_latest_emit_on_mixed_list():
    # Streamz 0.6.6: [(1, 2, 3), (5, 4, 3), (5, 4, 6)]
    a, b, c = Stream(), Stream(), Stream()
    out = combine_latest(a, b, c, emit_on=[a, 2]).sink_to_list()
    a.emit(1)
    b.emit(2)
    c.emit(3)
    b.emit(4)
    a.emit(5)
    c.emit(6)
    assert out == [(1, 2, 3), (5, 4, 3), (5, 4, 6)]


def test_combine_latest_same_stream_twice():
    # Streamz 0.6.6 raises TypeError here.
    a, b = Stream(), Stream()
    out = combine_latest(a, b, a).sink_to_list()
    a.emit(1)
    b.emit("x")
    a.emit(2)
    assert out == [(1, "x", 1), (2, "x", 2)]


def test_combine_latest_connect_mid_stream():
    # Streamz 0.6.6: [(1, 2), (3, 2, 4), (5, 2, 4)]
    a, b, c = Stream(), Stream(), Stream()
    z = combine_latest(a, b)
    out = z.sink_to_list()
    a.emit(1)
    b.emit(2)
    c.connect(z)
    a.emit(3)
    assert out == [(1, 2)]
    c.emit(4)
    a.emit(5)
    assert out == [(1, 2), (3, 2, 4), (5, 2, 4)]
    assert z.emit_on == (a, b, c)


def test_combine_latest_disconnect_mid_stream():
    # Streamz 0.6.6: [(3, 2)]
    a, b, c = Stream(), Stream(), Stream()
    z = combine_latest(a, b, c)
    out = z.sink_to_list()
    a.emit(1)
    b.emit(2)
    c.disconnect(z)
    a.emit(3)
    assert out == [(3, 2)]
    assert z.emit_on == (a, b)


def test_combine_latest_disconnect_last_emit_on_raises():
    # Streamz 0.6.6 meant to raise, but compares a tuple to a stream and never does.
    a, b = Stream(), Stream()
    z = combine_latest(a, b, emit_on=a)
    out = z.sink_to_list()
    with pytest.raises(RuntimeError, match="last emit_on stream"):
        a.disconnect(z)
    # the graph is unchanged
    assert z.upstreams == [a, b]
    assert any(d is z for d in a.downstreams)
    a.emit(1)
    b.emit(2)
    a.emit(3)
    assert out == [(3, 2)]
    # another emit_on stream left: fine
    z.emit_on = (a, b)
    a.disconnect(z)
    b.emit(4)
    assert out == [(3, 2), (4,)]


def test_combine_latest_destroy_with_emit_on():
    a, b = Stream(), Stream()
    z = combine_latest(a, b, emit_on=a)
    z.destroy()
    assert z.upstreams == []
    assert all(d is not z for d in a.downstreams)
    assert all(d is not z for d in b.downstreams)


def test_combine_latest_metadata():
    # Streamz 0.6.6: [[{'v': 1}, {'v': 'x'}], [{'v': 2}, {'v': 'x'}]]
    a, b = Stream(), Stream()
    M = MetaList(combine_latest(a, b))
    a.emit(1, metadata=[{"v": 1}])
    b.emit("x", metadata=[{"v": "x"}])
    a.emit(2, metadata=[{"v": 2}])
    assert M.seen == [[{"v": 1}, {"v": "x"}], [{"v": 2}, {"v": "x"}]]


def test_combine_latest_ref_counts():
    # Streamz 0.6.6: held (1, 1); after a's new value (0, 1, 1)
    a, b = Stream(), Stream()
    combine_latest(a, b).sink_to_list()
    r1, r2, r3 = refs(3)
    a.emit(1, metadata=[{"ref": r1}])
    b.emit(2, metadata=[{"ref": r2}])
    assert (r1.count, r2.count) == (1, 1)
    a.emit(3, metadata=[{"ref": r3}])
    assert (r1.count, r2.count, r3.count) == (0, 1, 1)
    b.emit(4)
    assert r2.count == 0


def test_combine_latest_refs_released_on_disconnect():
    a, b = Stream(), Stream()
    z = combine_latest(a, b)
    (r,) = refs(1)
    b.emit(2, metadata=[{"ref": r}])
    assert r.count == 1
    b.disconnect(z)
    assert r.count == 0


def test_combine_latest_str_and_graphviz():
    a, b = Stream(), Stream()
    z = combine_latest(a, b)
    assert str(z) == "<combine_latest>"
    assert (z._graphviz_shape, z._graphviz_orientation) == ("triangle", 270)


def test_combine_latest_errors():
    a, b = Stream(), Stream()
    with pytest.raises(ValueError, match="emit_on index 5 is out of range"):
        combine_latest(a, b, emit_on=5)
    with pytest.raises(ValueError, match=r"emit_on stream .* is not one of the upstreams"):
        combine_latest(a, b, emit_on=Stream())
    with pytest.raises(ValueError, match="emit_on is empty"):
        combine_latest(a, b, emit_on=[])
    with pytest.raises(TypeError, match="emit_on must be a stream"):
        combine_latest(a, b, emit_on="a")
    with pytest.raises(TypeError, match="emit_on must be a stream"):
        combine_latest(a, b, emit_on=[a, 1.5])
    with pytest.raises(TypeError, match="emit_on must be a stream"):
        combine_latest(a, b, emit_on=True)
    with pytest.raises(TypeError, match="combine_latest: upstreams must be streams"):
        combine_latest(a, 3)
    with pytest.raises(ValueError, match="combine_latest: needs at least one upstream"):
        combine_latest()


def test_combine_latest_snapshot_round_trip():
    def build():
        a, b, c = Stream(), Stream(), Stream()
        z = combine_latest(a, b, c, emit_on=[0, 2])
        return a, b, c, z, z.sink_to_list()

    def rest(a, b, c):
        c.emit("c1")
        a.emit(2)
        b.emit("b2")
        c.emit("c2")

    a, b, c, z, full = build()
    a.emit(1)
    b.emit("b1")
    state = z.snapshot()
    assert state == {"last": [1, "b1", None], "arrived": [True, True, False]}
    state = pickle.loads(pickle.dumps(state))
    rest(a, b, c)

    a2, b2, c2, z2, resumed = build()
    z2.restore(state)
    rest(a2, b2, c2)
    assert full == [(1, "b1", "c1"), (2, "b1", "c1"), (2, "b2", "c2")]
    assert resumed == full


# -- zip_latest ---------------------------------------------------------------------------------
def test_zip_latest():
    # Streamz 0.6.6: [(1, 'b', 'c'), (2, 'b', 'c'), (3, 'b', 'c'), (4, 'bb', 'c')]
    a, b, c = Stream(), Stream(), Stream()
    z = zip_latest(a, b, c)
    out = z.sink_to_list()
    a.emit(1)
    a.emit(2)
    b.emit("b")
    assert out == []
    c.emit("c")
    a.emit(3)
    b.emit("bb")
    a.emit(4)
    assert out == [(1, "b", "c"), (2, "b", "c"), (3, "b", "c"), (4, "bb", "c")]
    assert str(z) == "<zip_latest>"
    assert Stream.zip_latest.__name__ == "zip_latest"


def test_zip_latest_lossless_repeated():
    a, b = Stream(), Stream()
    out = zip_latest(a, b, a).sink_to_list()
    a.emit(1)
    b.emit("x")
    a.emit(2)
    assert out == [(1, "x", 1), (2, "x", 2)]


def test_zip_latest_metadata_and_refs():
    # Streamz 0.6.6 metadata: [[{'v': 1}, {'v': 'x'}], [{'v': 2}, {'v': 'x'}], [{'v': 'y'}]]
    a, b = Stream(), Stream()
    M = MetaList(zip_latest(a, b))
    a.emit(1, metadata=[{"v": 1}])
    b.emit("x", metadata=[{"v": "x"}])
    a.emit(2, metadata=[{"v": 2}])
    b.emit("y", metadata=[{"v": "y"}])
    a.emit(3)
    assert M.seen == [[{"v": 1}, {"v": "x"}], [{"v": 2}, {"v": "x"}], [{"v": "y"}]]

    # Streamz 0.6.6 ref counts: 1; then (0, 1); then (0, 0, 1)
    a, b = Stream(), Stream()
    zip_latest(a, b).sink_to_list()
    r1, r2, r3 = refs(3)
    a.emit(1, metadata=[{"ref": r1}])
    assert r1.count == 1
    b.emit(2, metadata=[{"ref": r2}])
    assert (r1.count, r2.count) == (0, 1)
    b.emit(3, metadata=[{"ref": r3}])
    assert (r1.count, r2.count, r3.count) == (0, 0, 1)


def test_zip_latest_connect_disconnect():
    a, b, c = Stream(), Stream(), Stream()
    z = zip_latest(a, b)
    out = z.sink_to_list()
    b.emit("b")
    a.emit(1)
    c.connect(z)
    a.emit(2)
    assert out == [(1, "b")]
    c.emit("c")
    assert out == [(1, "b"), (2, "b", "c")]
    b.disconnect(z)
    a.emit(3)
    assert out == [(1, "b"), (2, "b", "c"), (3, "c")]


def test_zip_latest_disconnect_lossless_releases_buffer():
    a, b = Stream(), Stream()
    z = zip_latest(a, b)
    out = z.sink_to_list()
    (r,) = refs(1)
    a.emit(1, metadata=[{"ref": r}])
    assert r.count == 1
    a.disconnect(z)
    assert r.count == 0
    b.emit("x")
    assert out == []


def test_zip_latest_snapshot_round_trip():
    def build():
        a, b = Stream(), Stream()
        z = zip_latest(a, b)
        return a, b, z, z.sink_to_list()

    def rest(a, b):
        b.emit("x")
        a.emit(3)
        b.emit("y")
        a.emit(4)

    a, b, z, full = build()
    a.emit(1)
    a.emit(2)
    state = z.snapshot()
    assert state == {"buffer": [1, 2], "last": [None, None], "arrived": [True, False]}
    state = pickle.loads(pickle.dumps(state))
    rest(a, b)

    a2, b2, z2, resumed = build()
    z2.restore(state)
    rest(a2, b2)
    assert full == [(1, "x"), (2, "x"), (3, "x"), (4, "y")]
    assert resumed == full


def test_zip_latest_errors():
    with pytest.raises(TypeError, match="zip_latest: upstreams must be streams"):
        zip_latest(Stream(), 1)
    with pytest.raises(ValueError, match="2 upstreams"):
        zip_latest(Stream(), Stream()).restore({"buffer": [], "last": [1], "arrived": [True]})


# -- union ----------------------------------------------------------------------------------------
def test_union():
    # Streamz 0.6.6: [1, 2], '<union>'
    a, b, c = Stream(), Stream(), Stream()
    u = union(a, b, c)
    out = u.sink_to_list()
    a.emit(1)
    b.emit(2)
    c.emit(3)
    a.emit(4)
    assert out == [1, 2, 3, 4]
    assert str(u) == "<union>"
    assert Stream.union.__name__ == "union"


def test_union_metadata_passes_through():
    # Streamz 0.6.6: [[{'v': 1}]] and the ref is free once the element has passed
    a, b = Stream(), Stream()
    M = MetaList(union(a, b))
    (r,) = refs(1)
    a.emit(1, metadata=[{"v": 1}, {"ref": r}])
    assert M.seen == [[{"v": 1}, {"ref": r}]]
    assert r.count == 0


def test_union_same_stream_twice_emits_once():
    a = Stream()
    out = union(a, a).sink_to_list()
    a.emit(1)
    assert out == [1]


def test_union_fused_matches_plain_path():
    a, b = Stream(), Stream()
    u = union(a, b)
    assert is_fusible(u)
    out = u.map(lambda x: x * 10).filter(lambda x: x != 20).sink_to_list()
    assert a._compile() is not None
    assert b._compile() is not None
    for i in range(4):
        (a if i % 2 else b).emit(i)
    assert out == [0, 10, 30]
    assert u.current_value == 3
    # the same through the per-element path (metadata disables fusion)
    a.emit(5, metadata=[{"v": 5}])
    b.emit(6, metadata=[])
    assert out == [0, 10, 30, 50, 60]
    # batch path of each upstream
    for pending in a._emit_batch([7, 8]):
        assert not pending
    assert out == [0, 10, 30, 50, 60, 70, 80]


def test_union_fused_error_is_annotated():
    a, b = Stream(), Stream()
    union(a, b).map(lambda x: 1 / x)
    with pytest.raises(ZeroDivisionError) as info:
        b.emit(0)
    assert any("map" in note for note in getattr(info.value, "__notes__", []))


def test_union_connect_disconnect():
    a, b = Stream(), Stream()
    u = union(a)
    out = u.sink_to_list()
    b.connect(u)
    b.emit(1)
    b.disconnect(u)
    b.emit(2)
    a.emit(3)
    assert out == [1, 3]
    assert union(a).snapshot() is None
