"""Tests of the processing-time and asynchronous nodes (millstream.operators.timing).

Time-based nodes run on a ManualClock (the ``manual_clock`` fixture) in two modes:

* thread-loop mode: the graph runs on the background loop, the test thread emits
  (blocking) and calls ``clock.advance(dt)``, which returns once the loop is idle;
* asynchronous mode: the test is a coroutine run with ``asyncio.run``, nodes are built
  with ``asynchronous=True`` and time moves with ``await clock.advance_async(dt)``.

Expected outputs that match Streamz 0.6.6 were checked by running streamz.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import logging
import threading
import weakref
from typing import Any

import pytest

from millstream import RefCounter, Stream
from millstream.core.loop import sync
from millstream.operators.asynchronous import map_async
from millstream.operators.timing import (
    buffer,
    delay,
    latest,
    rate_limit,
    timed_window,
    timed_window_unique,
)
from millstream.sources.base import Source
from millstream.testing import wait_for


async def until(predicate: Any, timeout: float = 1.0) -> None:
    """Asynchronous mode: poll until ``predicate()`` holds (real time, short)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise TimeoutError("condition not reached")
        await asyncio.sleep(0.001)


def settle(node: Stream) -> None:
    """Thread-loop mode: wait until the loop has run what was scheduled so far."""
    sync(node.loop, asyncio.sleep, 0)


class collect_metadata(Stream):
    """Emit the metadata list of each element that has some (like streamz.utils_test.metadata)."""

    def update(self, x: Any, who: Stream | None = None, metadata: Any = None) -> Any:
        if metadata:
            return self._emit(metadata)
        return None


def blocking_sink(upstream: Stream, out: list[Any], gate: asyncio.Event) -> None:
    """An async sink that records x at once but finishes only when ``gate`` is set."""

    async def write(x: Any) -> None:
        out.append(x)
        await gate.wait()

    upstream.sink(write)


# -- construction, str, shapes ----------------------------------------------------------
def test_str_forms() -> None:
    source = Stream()
    assert str(source.timed_window(0.05)) == "<timed_window: 0.05>"
    assert str(source.timed_window(1)) == "<timed_window: 1>"
    assert str(source.timed_window("500ms")) == "<timed_window: 0.5>"
    assert str(source.timed_window_unique(2.0)) == "<timed_window_unique: 2.0>"
    assert str(source.delay(0.2)) == "<delay: 0.2>"
    assert str(source.rate_limit(0.05)) == "<rate_limit: 0.05>"
    assert str(source.buffer(5)) == "<buffer: 5>"
    assert str(source.latest()) == "<latest>"

    async def double(x: int) -> int:
        return 2 * x

    assert str(source.map_async(double)) == "<map_async: double>"
    assert str(source.buffer(3, stream_name="buf")) == "<buf; buffer: 3>"


def test_intervals_accept_strings() -> None:
    source = Stream()
    assert source.timed_window("1min 30s")._seconds == 90.0
    assert source.delay("250ms")._seconds == 0.25
    assert source.rate_limit("2s")._seconds == 2.0
    assert source.delay(0).interval == 0


def test_graphviz_shapes() -> None:
    source = Stream()
    shapes = {
        "octagon": [
            source.timed_window(1),
            source.timed_window_unique(1),
            source.delay(1),
            source.rate_limit(1),
            source.latest(),
        ],
        "diamond": [source.buffer(1)],
    }
    for shape, nodes in shapes.items():
        for node in nodes:
            assert node._graphviz_shape == shape, node


def test_registered_and_importable() -> None:
    import millstream

    for cls in (timed_window, timed_window_unique, delay, rate_limit, buffer, latest, map_async):
        assert getattr(Stream, cls.__name__).__name__ == cls.__name__
        assert getattr(millstream, cls.__name__) is cls
        assert "Examples" in (cls.__doc__ or "")


@pytest.mark.parametrize(
    ("build", "error", "match"),
    [
        (lambda s: s.timed_window(-1), ValueError, r"^timed_window: bad interval: .*negative"),
        (lambda s: s.timed_window(0), ValueError, r"^timed_window: interval must be greater"),
        (lambda s: s.timed_window("soon"), ValueError, r"^timed_window: bad interval"),
        (lambda s: s.timed_window(None), TypeError, r"^timed_window: bad interval"),
        (lambda s: s.timed_window_unique(-0.5), ValueError, r"^timed_window_unique: bad interval"),
        (lambda s: s.timed_window_unique(1, keep="middle"), ValueError, r"keep must be"),
        (lambda s: s.delay(-1), ValueError, r"^delay: bad interval"),
        (lambda s: s.delay("1 fortnight"), ValueError, r"^delay: bad interval"),
        (lambda s: s.delay(1, maxsize=0), ValueError, r"^delay: maxsize must be a positive"),
        (lambda s: s.rate_limit(-2), ValueError, r"^rate_limit: bad interval"),
        (lambda s: s.rate_limit("x"), ValueError, r"^rate_limit: bad interval"),
        (lambda s: s.buffer(0), ValueError, r"^buffer: n must be a positive integer, got 0$"),
        (lambda s: s.buffer(-3), ValueError, r"^buffer: n must be a positive integer"),
        (lambda s: s.buffer(2.5), ValueError, r"^buffer: n must be a positive integer"),
        (lambda s: s.map_async(42), TypeError, r"^map_async: func must be callable, got 42$"),
        (
            lambda s: s.map_async(asyncio.sleep, parallelism=0),
            ValueError,
            r"^map_async: parallelism must be a positive integer, got 0$",
        ),
    ],
)
def test_constructor_errors(build: Any, error: type[Exception], match: str) -> None:
    source = Stream()
    with pytest.raises(error, match=match):
        build(source)
    assert source.downstreams == []  # nothing half-built was wired in


def test_negative_timedelta_rejected() -> None:
    import datetime

    with pytest.raises(ValueError, match=r"^delay: interval must not be negative"):
        Stream().delay(datetime.timedelta(seconds=-1))


# -- timed_window ----------------------------------------------------------------------
def test_timed_window_thread_mode(manual_clock: Any) -> None:
    source = Stream()
    w = source.timed_window(1)
    L = w.sink_to_list()
    assert w.loop is not None and source.loop is w.loop
    for i in range(3):
        source.emit(i)
    manual_clock.advance(0.5)
    assert L == []
    manual_clock.advance(0.5)
    assert L == [[0, 1, 2]]
    source.emit(3)
    manual_clock.advance(1)
    assert L == [[0, 1, 2], [3]]
    manual_clock.advance(2)  # Streamz too emits [] for each idle window
    assert L == [[0, 1, 2], [3], [], []]


def test_timed_window_no_window_at_creation(manual_clock: Any) -> None:
    # Streamz emits an (always empty) window the moment the node is created; we do not.
    source = Stream()
    L = source.timed_window(1).sink_to_list()
    settle(source)
    manual_clock.advance(0.99)
    assert L == []
    manual_clock.advance(0.01)
    assert L == [[]]


def test_timed_window_emit_empty_false(manual_clock: Any) -> None:
    source = Stream()
    L = source.timed_window(1, emit_empty=False).sink_to_list()
    source.emit("a")
    manual_clock.advance(3)
    source.emit("b")
    manual_clock.advance(1)
    assert L == [["a"], ["b"]]


def test_timed_window_async_mode(manual_clock: Any) -> None:
    async def main() -> list[Any]:
        source = Stream(asynchronous=True)
        w = source.timed_window("100ms")
        L = w.sink_to_list()
        assert w.loop.asyncio_loop is asyncio.get_running_loop()
        await source.emit(1)
        await source.emit(2)
        await manual_clock.advance_async(0.1)
        await source.emit(3)
        await manual_clock.advance_async(0.05)
        assert L == [[1, 2]]
        await manual_clock.advance_async(0.05)
        return L

    assert asyncio.run(main()) == [[1, 2], [3]]


def test_timed_window_fixed_grid(manual_clock: Any) -> None:
    """Windows close at t0 + k*interval; one advance past several ticks fires each of them."""
    source = Stream()
    L = source.timed_window(1).sink_to_list()
    times: list[float] = []
    source.timed_window(1).sink(lambda _: times.append(manual_clock.now()))
    source.emit(1)
    manual_clock.advance(3.5)
    assert L == [[1], [], []]
    assert times == [1.0, 2.0, 3.0]


def test_timed_window_metadata_and_refs(manual_clock: Any) -> None:
    async def main() -> None:
        source = Stream(asynchronous=True)
        w = source.timed_window(1)
        metas: list[Any] = []
        collect_metadata(w).sink(metas.append)
        gate = asyncio.Event()
        out: list[Any] = []
        blocking_sink(w, out, gate)
        r1, r2 = RefCounter(), RefCounter()
        await source.emit(0)
        await source.emit(1, metadata=[{"v": 1, "ref": r1}])
        await source.emit(2, metadata=[{"v": 2, "ref": r2}, {"v": 22}])
        assert (r1.count, r2.count) == (1, 1)  # held by the open window
        await manual_clock.advance_async(1)
        assert out == [[0, 1, 2]]
        assert metas == [[{"v": 1, "ref": r1}, {"v": 2, "ref": r2}, {"v": 22}]]
        # held by the window node and by the async sink until it finishes
        assert (r1.count, r2.count) == (2, 2)
        gate.set()
        await asyncio.sleep(0)
        await manual_clock.advance_async(0)
        assert (r1.count, r2.count) == (0, 0)
        assert not r1.failed

    asyncio.run(main())


def test_timed_window_streamz_metadata_case(manual_clock: Any) -> None:
    # streamz test_timed_window_metadata, on a manual clock
    source = Stream()
    L = collect_metadata(source.timed_window(0.06)).sink_to_list()
    source.emit(0)
    source.emit(1, metadata=[{"v": 1}])
    manual_clock.advance(0.1)
    source.emit(2, metadata=[{"v": 2}])
    source.emit(3, metadata=[{"v": 3}])
    manual_clock.advance(0.1)
    assert L == [[{"v": 1}], [{"v": 2}, {"v": 3}]]


def test_timed_window_downstream_error_releases_failed_and_keeps_running(
    manual_clock: Any, caplog: Any
) -> None:
    source = Stream()
    w = source.timed_window(1)
    good: list[Any] = []

    def explode(window: list[Any]) -> None:
        if window == ["bad"]:
            raise ZeroDivisionError("boom")
        good.append(window)

    w.sink(explode)
    ref = RefCounter()
    source.emit("bad", metadata=[{"ref": ref}])
    with caplog.at_level(logging.ERROR, logger="millstream"):
        manual_clock.advance(1)
    assert ref.count == 0 and ref.failed
    assert isinstance(ref.errors[0], ZeroDivisionError)
    assert "downstream failed" in caplog.text
    source.emit("ok")
    manual_clock.advance(1)  # Streamz's window loop dies on the first error; ours goes on
    assert good == [["ok"]]


def test_timed_window_backpressure(manual_clock: Any) -> None:
    """While a window is being emitted downstream, emitters wait (as in Streamz)."""

    async def main() -> None:
        source = Stream(asynchronous=True)
        w = source.timed_window(1)
        gate = asyncio.Event()
        out: list[Any] = []
        blocking_sink(w, out, gate)
        await source.emit(1)
        await manual_clock.advance_async(1)
        assert out == [[1]]
        pending = asyncio.ensure_future(source.emit(2))
        await manual_clock.advance_async(0)
        assert not pending.done()
        gate.set()
        await manual_clock.advance_async(0)
        assert pending.done()
        await manual_clock.advance_async(1)
        assert out == [[1], [2]]

    asyncio.run(main())


def test_timed_window_not_starved_by_a_busy_source() -> None:
    """A source that emits without ever yielding still sees windows fire (real clock).

    Streamz's window callback cannot run until such a source is exhausted; here an
    element arriving after the window is due makes the emitter wait for that window.
    """
    windows: list[list[int]] = []
    cap = 5_000_000
    emitted = [0]

    class busy(Source):
        async def run(self) -> None:
            i = 0
            while not any(windows) and i < cap:
                pending = self._emit(i)
                if pending:
                    await asyncio.gather(*pending)
                i += 1
            emitted[0] = i
            self.stopped = True

    source = busy()
    w = source.timed_window(0.01)
    out = w.sink(windows.append)
    source.start()
    try:
        wait_for(lambda: source.stopped and emitted[0], 3)
    finally:
        w.stop()  # no real-clock timer left ticking for the rest of the session
        out.destroy()
    first = next(w for w in windows if w)
    assert emitted[0] < cap
    assert first == list(range(len(first)))  # the first elements, in order


def test_timed_window_stop_flushes_and_start_resumes(manual_clock: Any) -> None:
    source = Stream()
    w = source.timed_window(1)
    L = w.sink_to_list()
    source.emit(1)
    manual_clock.advance(0.5)
    w.stop()
    settle(w)
    assert L == [[1]]  # what the window held is emitted at stop
    manual_clock.advance(5)
    assert L == [[1]]  # no timer while stopped
    source.emit(2)
    w.start()
    settle(w)  # start() schedules the timer on the loop
    manual_clock.advance(0.99)
    assert L == [[1]]
    manual_clock.advance(0.01)
    assert L == [[1], [2]]


def test_timed_window_snapshot_roundtrip(manual_clock: Any) -> None:
    import pickle

    reference = Stream()
    L_ref = reference.timed_window(1, emit_empty=False).sink_to_list()
    for x in range(3):
        reference.emit(x)
    manual_clock.advance(1)
    for x in range(3, 6):
        reference.emit(x)
    manual_clock.advance(1)
    assert L_ref == [[0, 1, 2], [3, 4, 5]]

    first = Stream()
    w1 = first.timed_window(1, emit_empty=False)
    L1 = w1.sink_to_list()
    for x in range(3):
        first.emit(x)
    manual_clock.advance(1)
    first.emit(3)
    first.emit(4)
    state = pickle.loads(pickle.dumps(w1.snapshot()))
    assert state == {"buffer": [3, 4], "closes_in": 1.0}

    second = Stream()
    w2 = second.timed_window(1, emit_empty=False)
    L2 = w2.sink_to_list()
    w2.restore(state)
    second.emit(5)
    manual_clock.advance(1)
    assert L1[:1] + L2 == L_ref


def test_timed_window_graph_is_freed(manual_clock: Any) -> None:
    source = Stream()
    w = source.timed_window(1)
    w.map(str)  # (a sink would pin the graph: sinks stay in _global_sinks until destroyed)
    source.emit(1)
    manual_clock.advance(1)
    ref = weakref.ref(w)
    del source, w
    gc.collect()
    assert ref() is None  # the timer task does not keep an unreachable graph alive


# -- timed_window_unique ----------------------------------------------------------------
@pytest.mark.parametrize(
    ("keep", "key", "data", "expected"),
    [
        ("first", None, [1, 2, 3, 3, 2, 1], (1, 2, 3)),
        ("last", None, [1, 2, 3, 3, 2, 1], (3, 2, 1)),
        ("first", len, ["f", "b", "fo", "ba", "foo", "bar"], ("f", "fo", "foo")),
        ("last", len, ["f", "b", "fo", "ba", "foo", "bar"], ("b", "ba", "bar")),
        ("first", "a", [{"a": 1, "b": 1}, {"a": 1, "b": 2}], ({"a": 1, "b": 1},)),
        ("last", 0, [(1, "x"), (2, "y"), (1, "z")], ((2, "y"), (1, "z"))),
    ],
)
def test_timed_window_unique(
    manual_clock: Any, keep: str, key: Any, data: list[Any], expected: tuple[Any, ...]
) -> None:
    # outputs of the non-empty window as given by streamz 0.6.6 (its docstring examples)
    source = Stream()
    kwargs = {} if key is None else {"key": key}
    out = source.timed_window_unique(1, keep=keep, **kwargs).sink_to_list()
    for x in data:
        source.emit(x)
    manual_clock.advance(2)
    assert out == [expected, ()]


def test_timed_window_unique_async_mode(manual_clock: Any) -> None:
    async def main() -> list[Any]:
        source = Stream(asynchronous=True)
        L = source.timed_window_unique(1, emit_empty=False).sink_to_list()
        for x in "abracadabra":
            await source.emit(x)
        await manual_clock.advance_async(1)
        await source.emit("z")
        await manual_clock.advance_async(2)
        return L

    assert asyncio.run(main()) == [("a", "b", "r", "c", "d"), ("z",)]


def test_timed_window_unique_refs(manual_clock: Any) -> None:
    for keep, kept, dropped in (("first", 0, 1), ("last", 1, 0)):
        source = Stream()
        metas: list[Any] = []
        collect_metadata(source.timed_window_unique(1, keep=keep)).sink(metas.append)
        refs = [RefCounter(), RefCounter()]
        source.emit("k", metadata=[{"ref": refs[0]}])
        source.emit("k", metadata=[{"ref": refs[1]}])
        # the duplicate that is dropped is released at once (Streamz leaks it)
        assert refs[kept].count == 1 and refs[dropped].count == 0
        assert not refs[dropped].failed
        manual_clock.advance(1)
        assert refs[kept].count == 0
        assert metas == [[{"ref": refs[kept]}]]


def test_timed_window_unique_key_error(manual_clock: Any) -> None:
    source = Stream()
    source.timed_window_unique(1, key="missing").sink_to_list()
    with pytest.raises(KeyError) as info:
        source.emit({"a": 1})
    assert "timed_window_unique" in "".join(getattr(info.value, "__notes__", []))
    with pytest.raises(TypeError):
        source.emit({"missing": []})  # unhashable key


def test_timed_window_unique_snapshot_roundtrip(manual_clock: Any) -> None:
    import pickle

    source = Stream()
    w = source.timed_window_unique(1, key=len, keep="last", emit_empty=False)
    for word in ["a", "bb", "c"]:
        source.emit(word)
    state = pickle.loads(pickle.dumps(w.snapshot()))
    assert state == {"buffer": [(2, "bb"), (1, "c")], "closes_in": 1.0}

    fresh_source = Stream()
    fresh = fresh_source.timed_window_unique(1, key=len, keep="last", emit_empty=False)
    L = fresh.sink_to_list()
    fresh.restore(state)
    fresh_source.emit("dd")
    manual_clock.advance(1)

    uninterrupted = Stream()
    L_ref = uninterrupted.timed_window_unique(
        1, key=len, keep="last", emit_empty=False
    ).sink_to_list()
    for word in ["a", "bb", "c", "dd"]:
        uninterrupted.emit(word)
    manual_clock.advance(1)
    assert L == L_ref == [("c", "dd")]


# -- delay -----------------------------------------------------------------------------
def test_delay_really_delays_each_element(manual_clock: Any) -> None:
    source = Stream()
    L = source.delay(2).sink_to_list()
    source.emit("a")
    manual_clock.advance(1)
    source.emit("b")
    manual_clock.advance(1)
    assert L == ["a"]
    manual_clock.advance(1)
    assert L == ["a", "b"]
    # after an idle period the next element is still delayed (Streamz lets it through)
    manual_clock.advance(100)
    source.emit("c")
    settle(source)
    manual_clock.advance(1.999)
    assert L == ["a", "b"]
    manual_clock.advance(0.001)
    assert L == ["a", "b", "c"]


def test_delay_burst_keeps_its_shape(manual_clock: Any) -> None:
    # Streamz spaces a burst out by `interval`; a delay shifts it as a whole
    source = Stream()
    times: list[tuple[float, int]] = []
    source.delay(0.5).sink(lambda x: times.append((manual_clock.now(), x)))
    for i in range(3):
        source.emit(i)
    manual_clock.advance(0.5)
    assert times == [(0.5, 0), (0.5, 1), (0.5, 2)]


def test_delay_async_mode(manual_clock: Any) -> None:
    async def main() -> list[Any]:
        source = Stream(asynchronous=True)
        L = source.delay("20ms").sink_to_list()
        for i in range(5):
            await source.emit(i)
        assert L == []
        await manual_clock.advance_async(0.019)
        assert L == []
        await manual_clock.advance_async(0.001)
        return L

    assert asyncio.run(main()) == [0, 1, 2, 3, 4]


def test_delay_queue_is_bounded(manual_clock: Any) -> None:
    async def main() -> None:
        source = Stream(asynchronous=True)
        L = source.delay(1, maxsize=2).sink_to_list()
        await source.emit(1)
        await source.emit(2)
        third = asyncio.ensure_future(source.emit(3))
        await manual_clock.advance_async(0)
        assert not third.done()  # two elements wait already
        await manual_clock.advance_async(1)
        assert third.done()
        assert L == [1, 2, 3]  # 3 arrived at 0 too: its delay counts from its arrival

    asyncio.run(main())


def test_delay_refs(manual_clock: Any) -> None:
    async def main() -> None:
        source = Stream(asynchronous=True)
        d = source.delay(1)
        gate = asyncio.Event()
        out: list[Any] = []
        blocking_sink(d, out, gate)
        metas: list[Any] = []
        collect_metadata(d).sink(metas.append)
        refs = [RefCounter() for _ in range(3)]
        for i, r in enumerate(refs):
            await source.emit(i, metadata=[{"ref": r, "i": i}])
        assert [r.count for r in refs] == [1, 1, 1]
        await manual_clock.advance_async(1)
        assert out == [0]  # waiting for the blocking sink (which holds a ref of its own)
        assert [r.count for r in refs] == [2, 1, 1]
        gate.set()
        await manual_clock.advance_async(0)
        await asyncio.sleep(0.001)
        assert out == [0, 1, 2]
        assert [r.count for r in refs] == [0, 0, 0]
        assert metas == [[{"ref": r, "i": i}] for i, r in enumerate(refs)]

    asyncio.run(main())


def test_delay_downstream_failure_releases_with_error(manual_clock: Any, caplog: Any) -> None:
    source = Stream()
    seen: list[Any] = []

    def fragile(x: Any) -> None:
        if x == 0:
            raise ValueError("no zeros")
        seen.append(x)

    source.delay(1).sink(fragile)
    r0, r1 = RefCounter(), RefCounter()
    source.emit(0, metadata=[{"ref": r0}])
    source.emit(1, metadata=[{"ref": r1}])
    with caplog.at_level(logging.ERROR, logger="millstream"):
        manual_clock.advance(1)
    assert (r0.count, r0.failed) == (0, True)
    assert (r1.count, r1.failed) == (0, False)
    assert seen == [1]  # the failure did not stop the delay


def test_delay_snapshot_roundtrip(manual_clock: Any) -> None:
    import pickle

    def timeline(node: Stream, t0: float, out: list[Any]) -> None:
        node.sink(lambda x: out.append((manual_clock.now() - t0, x)))

    reference = Stream()
    ref_times: list[Any] = []
    t0 = manual_clock.now()
    timeline(reference.delay(2), t0 + 1, ref_times)  # times counted from the snapshot point
    reference.emit("a")
    manual_clock.advance(1)
    reference.emit("b")
    manual_clock.advance(3)
    assert ref_times == [(1.0, "a"), (2.0, "b")]

    first = Stream()
    d1 = first.delay(2)
    first.emit("a")
    manual_clock.advance(1)
    first.emit("b")
    state = pickle.loads(pickle.dumps(d1.snapshot()))
    assert state == {"pending": [(2.0 - 1.0, "a"), (2.0, "b")]}

    second = Stream()
    d2 = second.delay(2)
    times: list[Any] = []
    timeline(d2, manual_clock.now(), times)
    d2.restore(state)
    manual_clock.advance(3)
    assert times == ref_times


# -- buffer ----------------------------------------------------------------------------
def test_buffer_backpressure_when_full() -> None:
    async def main() -> None:
        source = Stream(asynchronous=True)
        b = source.buffer(2)
        gate = asyncio.Event()
        out: list[Any] = []
        blocking_sink(b, out, gate)
        await source.emit(1)
        await asyncio.sleep(0.001)
        assert out == [1]  # taken by the consumer, which waits on downstream
        await source.emit(2)
        await source.emit(3)  # two elements wait: the buffer is full
        fourth = asyncio.ensure_future(source.emit(4))
        await asyncio.sleep(0.005)
        assert not fourth.done()
        assert b.snapshot() == {"pending": [2, 3, 4]}
        gate.set()
        await asyncio.wait_for(fourth, 1)
        await until(lambda: len(out) >= 4)
        assert out == [1, 2, 3, 4]

    asyncio.run(main())


def test_buffer_streamz_timing_case(manual_clock: Any) -> None:
    # streamz test_buffer: buffer(10) absorbs 10 emits at once; then rate_limit slows emitters
    async def main() -> None:
        source = Stream(asynchronous=True)
        L = source.map(lambda x: x + 1).buffer(10).map(lambda x: x + 1).rate_limit(1)
        out = L.sink_to_list()
        for i in range(10):
            await source.emit(i)  # never waits
        assert out == []
        await source.emit(10)  # room as soon as the consumer takes the first element
        assert out == [2]
        await source.emit(11)  # the consumer took the second one and waits on rate_limit
        thirteenth = asyncio.ensure_future(source.emit(12))
        await manual_clock.advance_async(0)
        assert not thirteenth.done()  # 10 elements wait: full
        await manual_clock.advance_async(1)
        assert thirteenth.done()
        assert out == [2, 3]
        await manual_clock.advance_async(11)
        assert out == list(range(2, 15))

    asyncio.run(main())


def test_buffer_thread_mode_and_refs() -> None:
    source = Stream()
    out: list[Any] = []
    source.buffer(5).sink(out.append)
    refs = [RefCounter() for _ in range(5)]
    for i, r in enumerate(refs):
        source.emit(i, metadata=[{"ref": r}])
    wait_for(lambda: len(out) == 5, 2)
    wait_for(lambda: all(r.count == 0 for r in refs), 2)
    assert out == [0, 1, 2, 3, 4]
    assert not any(r.failed for r in refs)


def test_buffer_holds_refs_until_downstream_done() -> None:
    async def main() -> None:
        source = Stream(asynchronous=True)
        gate = asyncio.Event()
        out: list[Any] = []
        blocking_sink(source.buffer(3), out, gate)
        r = RefCounter()
        await source.emit("x", metadata=[{"ref": r}])
        await asyncio.sleep(0.001)
        assert out == ["x"] and r.count == 2  # the buffer's hold and the async sink's
        gate.set()
        await asyncio.sleep(0.001)
        assert r.count == 0

    asyncio.run(main())


def test_buffer_snapshot_roundtrip() -> None:
    import pickle

    async def main() -> None:
        source = Stream(asynchronous=True)
        gate = asyncio.Event()
        out: list[Any] = []
        b = source.buffer(10)
        blocking_sink(b, out, gate)
        for i in range(4):
            await source.emit(i)
        await asyncio.sleep(0.001)
        state = pickle.loads(pickle.dumps(b.snapshot()))
        assert state == {"pending": [1, 2, 3]}  # 0 is with downstream already

        source2 = Stream(asynchronous=True)
        b2 = source2.buffer(10)
        out2 = b2.sink_to_list()
        b2.restore(state)
        await source2.emit(4)
        await until(lambda: len(out2) >= 4)
        assert out[:1] + out2 == [0, 1, 2, 3, 4]
        gate.set()

    asyncio.run(main())


# -- rate_limit ------------------------------------------------------------------------
def test_rate_limit_async_mode(manual_clock: Any) -> None:
    async def main() -> list[Any]:
        source = Stream(asynchronous=True)
        times: list[tuple[float, int]] = []
        source.rate_limit(0.5).sink(lambda x: times.append((manual_clock.now(), x)))
        await source.emit(0)  # the first element passes at once
        second = asyncio.ensure_future(source.emit(1))
        await manual_clock.advance_async(0)
        assert not second.done()  # the emitter waits its turn (backpressure)
        await manual_clock.advance_async(0.5)
        assert second.done()
        third = asyncio.ensure_future(source.emit(2))
        await manual_clock.advance_async(0.5)
        await third
        await manual_clock.advance_async(5)
        await source.emit(3)  # after a quiet interval: at once
        return times

    assert asyncio.run(main()) == [(0.0, 0), (0.5, 1), (1.0, 2), (6.0, 3)]


def test_rate_limit_streamz_case(manual_clock: Any) -> None:
    # streamz test_rate_limit: 5 awaited emits through rate_limit(0.05) take >= 0.2 s
    async def main() -> float:
        source = Stream(asynchronous=True)
        L = source.rate_limit(0.05).sink_to_list()

        async def emit_all() -> None:
            for i in range(5):
                await source.emit(i)

        task = asyncio.ensure_future(emit_all())
        while not task.done():
            await manual_clock.advance_async(0.01)
        assert L == [0, 1, 2, 3, 4]
        return manual_clock.now()

    assert asyncio.run(main()) == pytest.approx(0.2)


def test_rate_limit_thread_mode(manual_clock: Any) -> None:
    source = Stream()
    out = source.rate_limit(1).sink_to_list()
    settle(source)
    emitter = threading.Thread(target=lambda: [source.emit(i) for i in range(3)])
    emitter.start()
    wait_for(lambda: out == [0], 2)
    for expected in ([0, 1], [0, 1, 2]):
        wait_for(lambda: manual_clock.pending, 2)  # the next element waits on the clock
        manual_clock.advance(1)
        wait_for(lambda expected=expected: out == expected, 2)
    emitter.join(2)
    assert not emitter.is_alive()


def test_rate_limit_holds_refs_while_waiting(manual_clock: Any) -> None:
    async def main() -> None:
        source = Stream(asynchronous=True)
        metas: list[Any] = []
        collect_metadata(source.rate_limit(1)).sink(metas.append)
        r0, r1 = RefCounter(), RefCounter()
        await source.emit(0, metadata=[{"ref": r0}])
        waiting = asyncio.ensure_future(source.emit(1, metadata=[{"ref": r1}]))
        await manual_clock.advance_async(0)
        assert (r0.count, r1.count) == (0, 1)  # Streamz: 0, the ref is not held
        await manual_clock.advance_async(1)
        await waiting
        assert r1.count == 0 and not r1.failed
        assert metas == [[{"ref": r0}], [{"ref": r1}]]

    asyncio.run(main())


def test_rate_limit_failure_releases_with_error(manual_clock: Any) -> None:
    async def main() -> None:
        source = Stream(asynchronous=True)
        rl = source.rate_limit(1)
        rl.sink(lambda x: 1 / x)
        await source.emit(1)
        r = RefCounter()
        waiting = asyncio.ensure_future(source.emit(0, metadata=[{"ref": r}]))
        await manual_clock.advance_async(1)
        with pytest.raises(ZeroDivisionError):
            await waiting  # the error reaches the emitter, as in Streamz
        assert r.count == 0 and r.failed

    asyncio.run(main())


def test_rate_limit_snapshot_roundtrip(manual_clock: Any) -> None:
    import pickle

    async def main() -> None:
        source = Stream(asynchronous=True)
        rl = source.rate_limit(2)
        await source.emit("a")
        await manual_clock.advance_async(0.5)
        state = pickle.loads(pickle.dumps(rl.snapshot()))
        assert state == {"next_in": 1.5}

        source2 = Stream(asynchronous=True)
        rl2 = source2.rate_limit(2)
        times: list[Any] = []
        rl2.sink(lambda x: times.append((manual_clock.now(), x)))
        rl2.restore(state)
        waiting = asyncio.ensure_future(source2.emit("b"))
        await manual_clock.advance_async(1.49)
        assert times == []
        await manual_clock.advance_async(0.01)
        await waiting
        assert times == [(2.0, "b")]  # as if the node had not been interrupted
        rl2.restore({"next_in": 0.0})
        await source2.emit("c")
        assert times[-1] == (2.0, "c")

    asyncio.run(main())


# -- latest ----------------------------------------------------------------------------
def test_latest_drops_intermediate_values_and_refs() -> None:
    async def main() -> None:
        source = Stream(asynchronous=True)
        gate = asyncio.Event()
        out: list[Any] = []
        lt = source.latest()
        blocking_sink(lt, out, gate)
        refs = [RefCounter() for _ in range(4)]
        await source.emit(0, metadata=[{"ref": refs[0]}])
        await asyncio.sleep(0.001)
        assert out == [0]
        for i in (1, 2, 3):
            await source.emit(i, metadata=[{"ref": refs[i]}])  # never waits
        # 1 and 2 were replaced before downstream was free: released at once, not failed
        assert [r.count for r in refs] == [2, 0, 0, 1]  # 0: latest's and the sink's holds
        assert not any(r.failed for r in refs)
        assert lt.snapshot() == {"pending": [3]}
        gate.set()
        await until(lambda: len(out) >= 2)
        await asyncio.sleep(0.001)
        assert out == [0, 3]
        assert [r.count for r in refs] == [0, 0, 0, 0]  # Streamz keeps 3's ref until replaced

    asyncio.run(main())


def test_latest_streamz_case() -> None:
    # streamz test_latest: map(inc).latest() before a slow writer gives [2, 4]
    async def main() -> list[Any]:
        source = Stream(asynchronous=True)
        L: list[Any] = []

        async def slow_write(x: Any) -> None:
            await asyncio.sleep(0.02)
            L.append(x)

        source.map(lambda x: x + 1).latest().sink(slow_write)
        source.emit(1)
        await asyncio.sleep(0.005)
        source.emit(2)
        source.emit(3)
        await until(lambda: len(L) >= 2)
        await asyncio.sleep(0.03)
        return L

    assert asyncio.run(main()) == [2, 4]


def test_latest_thread_mode() -> None:
    source = Stream()
    L = source.latest().sink_to_list()
    for i in range(3):
        source.emit(i)
        wait_for(lambda i=i: L[-1:] == [i], 2)
    assert L == [0, 1, 2]


def test_latest_snapshot_roundtrip() -> None:
    import pickle

    async def main() -> None:
        source = Stream(asynchronous=True)
        lt = source.latest()
        assert lt.snapshot() == {"pending": []}
        source.emit("a")
        source.emit("b")  # the worker has not run yet: 'b' is pending
        state = pickle.loads(pickle.dumps(lt.snapshot()))
        assert state == {"pending": ["b"]}

        source2 = Stream(asynchronous=True)
        lt2 = source2.latest()
        L = lt2.sink_to_list()
        lt2.restore(state)
        await asyncio.sleep(0.001)
        assert L == ["b"]

    asyncio.run(main())


# -- map_async -------------------------------------------------------------------------
def test_map_async_preserves_order() -> None:
    async def main() -> list[Any]:
        events = {i: asyncio.Event() for i in range(4)}

        async def wait_then_double(x: int) -> int:
            await events[x].wait()
            return 2 * x

        source = Stream(asynchronous=True)
        L = source.map_async(wait_then_double, parallelism=4).sink_to_list()
        for i in range(4):
            await source.emit(i)
        for i in (3, 2, 1):  # finish in reverse order
            events[i].set()
            await asyncio.sleep(0.001)
        assert L == []  # 0 is not done: nothing can be emitted
        events[0].set()
        await until(lambda: len(L) >= 4)
        return L

    assert asyncio.run(main()) == [0, 2, 4, 6]


@pytest.mark.parametrize("parallelism", [1, 2, 3])
def test_map_async_parallelism_bound(parallelism: int) -> None:
    async def main() -> tuple[int, list[Any], float]:
        running = [0]
        peak = [0]

        async def work(x: int) -> int:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
            await asyncio.sleep(0.02)
            running[0] -= 1
            return x

        source = Stream(asynchronous=True)
        L = source.map_async(work, parallelism=parallelism).sink_to_list()
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        for i in range(6):
            await source.emit(i)
        await until(lambda: len(L) >= 6)
        return peak[0], L, loop.time() - t0

    peak, out, elapsed = asyncio.run(main())
    assert out == list(range(6))
    # at most `parallelism` calls at once (Streamz allows parallelism + 1)
    assert peak == parallelism
    assert elapsed >= 0.02 * (6 / parallelism) - 0.005


def test_map_async_streamz_case() -> None:
    # streamz test_map_async (kwargs go to func, tornado-style and native coroutines),
    # with parallelism=3 so that 3 calls of 0.05 s overlap as in Streamz with parallelism=2
    async def main() -> tuple[list[Any], float]:
        async def add(x: int = 0, y: int = 0) -> int:
            return x + y

        async def add_slow(x: int = 0, y: int = 0) -> int:
            await asyncio.sleep(0.05)
            return x + y

        source = Stream(asynchronous=True)
        L = source.map_async(add, y=1).map_async(add_slow, parallelism=3, y=2).sink_to_list()
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        for i in range(3):
            await source.emit(i)
        await until(lambda: len(L) >= 3)
        return L, loop.time() - t0

    L, elapsed = asyncio.run(main())
    assert L == [3, 4, 5]
    assert 0.05 <= elapsed < 0.09


def test_map_async_backpressure() -> None:
    async def main() -> None:
        gate = asyncio.Event()

        async def wait(x: int) -> int:
            await gate.wait()
            return x

        source = Stream(asynchronous=True)
        L = source.map_async(wait, parallelism=2).sink_to_list()
        await source.emit(0)
        await source.emit(1)
        third = asyncio.ensure_future(source.emit(2))
        await asyncio.sleep(0.005)
        assert not third.done()  # both slots busy
        gate.set()
        await asyncio.wait_for(third, 1)
        await until(lambda: len(L) >= 3)
        assert L == [0, 1, 2]

    asyncio.run(main())


def test_map_async_exception_logs_and_drops(caplog: Any) -> None:
    async def main() -> tuple[list[Any], list[RefCounter]]:
        async def inverse(x: int) -> float:
            return 1 / x

        source = Stream(asynchronous=True)
        L = source.map_async(inverse).sink_to_list()
        refs = [RefCounter() for _ in range(3)]
        for x, r in zip([1, 0, 2], refs, strict=True):
            await source.emit(x, metadata=[{"ref": r}])
        await until(lambda: len(L) >= 2)
        return L, refs

    with caplog.at_level(logging.ERROR, logger="millstream"):
        L, refs = asyncio.run(main())
    assert L == [1.0, 0.5]
    assert [r.count for r in refs] == [0, 0, 0]
    assert [r.failed for r in refs] == [False, True, False]
    assert isinstance(refs[1].errors[0], ZeroDivisionError)
    assert "map_async" in caplog.text and "ZeroDivisionError" in caplog.text
    assert "millstream:" in "".join(getattr(refs[1].errors[0], "__notes__", []))


def test_map_async_stop_on_exception_and_restart(caplog: Any) -> None:
    # streamz test_map_async_restart, with a plain Stream as input
    async def main() -> None:
        async def flake_out(x: int) -> int:
            if x == 2:
                raise RuntimeError("I fail on 2.")
            if x > 4:
                raise RuntimeError("I fail on > 4.")
            return x

        source = Stream(asynchronous=True)
        mapped = source.map_async(flake_out, stop_on_exception=True)
        results = mapped.sink_to_list()
        emits = [asyncio.ensure_future(source.emit(i)) for i in range(4)]
        for _ in range(20):
            await asyncio.sleep(0)
        assert results == [0, 1]
        assert mapped.stopped and not mapped.work_task
        assert not emits[3].done()  # waits for a slot until restarted
        mapped.start()
        await asyncio.wait_for(asyncio.gather(*emits), 1)
        await source.emit(4)
        await source.emit(5)
        for _ in range(20):
            await asyncio.sleep(0)
        assert results == [0, 1, 3, 4]
        assert mapped.stopped

    with caplog.at_level(logging.ERROR, logger="millstream"):
        asyncio.run(main())


def test_map_async_stop_on_exception_stops_source() -> None:
    async def fail_on_three(x: int) -> int:
        if x == 3:
            raise ValueError("three")
        return x

    source = Stream.from_iterable(itertools.count(), chunk_size=1)
    mapped = source.map_async(fail_on_three, stop_on_exception=True)
    results = mapped.sink_to_list()
    source.start()
    wait_for(lambda: mapped.stopped and source.stopped, 2)
    wait_for(lambda: results == [0, 1, 2], 2)


def test_map_async_thread_mode_and_refs() -> None:
    async def slow_square(x: int) -> int:
        await asyncio.sleep(0.001)
        return x * x

    source = Stream()
    metas: list[Any] = []
    m = source.map_async(slow_square, parallelism=2)
    L = m.sink_to_list()
    collect_metadata(m).sink(metas.append)
    refs = [RefCounter() for _ in range(4)]
    for i, r in enumerate(refs):
        source.emit(i, metadata=[{"ref": r, "i": i}])
    wait_for(lambda: len(L) == 4, 2)
    wait_for(lambda: all(r.count == 0 for r in refs), 2)
    assert L == [0, 1, 4, 9]
    assert metas == [[{"ref": r, "i": i}] for i, r in enumerate(refs)]


def test_map_async_holds_refs_until_downstream_done() -> None:
    async def main() -> None:
        async def ident(x: int) -> int:
            return x

        source = Stream(asynchronous=True)
        gate = asyncio.Event()
        out: list[Any] = []
        blocking_sink(source.map_async(ident), out, gate)
        r = RefCounter()
        await source.emit(7, metadata=[{"ref": r}])
        await asyncio.sleep(0.001)
        assert out == [7] and r.count == 2  # map_async's hold and the async sink's
        gate.set()
        await asyncio.sleep(0.001)
        assert r.count == 0 and not r.failed

    asyncio.run(main())


def test_map_async_args_and_stream_name() -> None:
    async def main() -> list[Any]:
        async def scale(x: int, factor: int, offset: int = 0) -> int:
            return x * factor + offset

        source = Stream(asynchronous=True)
        node = source.map_async(scale, 10, offset=1, stream_name="scaler")
        assert str(node) == "<scaler; map_async: scale>"
        L = node.sink_to_list()
        for i in range(3):
            await source.emit(i)
        await until(lambda: len(L) >= 3)
        return L

    assert asyncio.run(main()) == [1, 11, 21]


def test_map_async_snapshot_roundtrip() -> None:
    import pickle

    async def main() -> None:
        gate = asyncio.Event()

        async def gated(x: int) -> int:
            await gate.wait()
            return x + 100

        source = Stream(asynchronous=True)
        m = source.map_async(gated, parallelism=2)
        emits = [asyncio.ensure_future(source.emit(i)) for i in range(3)]
        await asyncio.sleep(0.001)
        state = pickle.loads(pickle.dumps(m.snapshot()))
        assert state == {"pending": [0, 1, 2]}

        async def quick(x: int) -> int:
            return x + 100

        source2 = Stream(asynchronous=True)
        m2 = source2.map_async(quick, parallelism=2)
        L = m2.sink_to_list()
        m2.restore(state)
        await asyncio.sleep(0.001)
        await source2.emit(3)
        await until(lambda: len(L) >= 4)
        assert L == [100, 101, 102, 103]
        gate.set()
        await asyncio.gather(*emits)

    asyncio.run(main())


def test_map_async_accepts_plain_functions(caplog: Any) -> None:
    # Streamz fails (create_task on a non-coroutine); a plain result is emitted as is,
    # and a plain exception is logged and the element dropped like an async one
    async def main() -> list[Any]:
        source = Stream(asynchronous=True)
        L = source.map_async(lambda x: 10 // x).sink_to_list()
        for x in (1, 0, 5):
            await source.emit(x)
        await until(lambda: len(L) >= 2)
        return L

    with caplog.at_level(logging.ERROR, logger="millstream"):
        assert asyncio.run(main()) == [10, 2]
    assert "ZeroDivisionError" in caplog.text
