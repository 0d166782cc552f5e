"""The Stream core: emit regimes, loops, graph editing, registration, delivery order, errors."""

from __future__ import annotations

import asyncio
import threading
from operator import add

import pytest

from millstream import RefCounter, Stream
from millstream.core.loop import EventLoop, get_io_loop
from millstream.operators.elementwise import map as map_node
from millstream.testing import wait_for


def inc(x):
    return x + 1


# -- emit regimes ---------------------------------------------------------------------


def test_loopless_emit_returns_none_and_runs_inline():
    source = Stream()
    threads = []
    L = source.map(lambda x: threads.append(threading.get_ident()) or x).sink_to_list()
    assert source.loop is None
    assert source.emit(1) is None
    assert L == [1]
    assert threads == [threading.get_ident()]


def test_asynchronous_emit_returns_awaitable():
    log = []

    async def slow_sink(x):
        await asyncio.sleep(0.01)
        log.append(x)

    async def main():
        source = Stream(asynchronous=True)
        source.sink(slow_sink)
        result = source.emit(1)
        assert hasattr(result, "__await__")
        assert log == []  # the sink has not finished yet
        await result
        assert log == [1]
        # nothing pending: still an awaitable, already done
        other = Stream(asynchronous=True)
        L = other.sink_to_list()
        r = other.emit(2)
        assert hasattr(r, "__await__")
        await r
        assert L == [2]
        # emit(..., asynchronous=True) on a stream that has a loop
        assert source.loop is not None
        await source.emit(3, asynchronous=True)
        assert log == [1, 3]

    asyncio.run(main())


def test_thread_loop_emit_blocks_until_absorbed_and_runs_on_loop_thread():
    log = []
    threads = []

    async def slow_sink(x):
        await asyncio.sleep(0.02)
        threads.append(threading.get_ident())
        log.append(x)

    source = Stream(ensure_io_loop=True)
    assert source.asynchronous is False
    assert source.loop is get_io_loop(False)
    source.sink(slow_sink)
    assert source.emit(1) is None
    assert log == [1]  # emit returned only after the async sink finished
    assert threads[0] != threading.get_ident()
    assert threads[0] == source.loop._thread.ident


def test_thread_loop_emit_reraises():
    source = Stream(ensure_io_loop=True)
    source.map(lambda x: 1 / x).sink_to_list()
    with pytest.raises(ZeroDivisionError):
        source.emit(0)
    source.emit(1)  # the loop survives


def test_emit_from_loop_thread_does_not_deadlock():
    source = Stream(ensure_io_loop=True)
    L = source.map(inc).sink_to_list()
    source.loop.add_callback(lambda: source.emit(1))
    wait_for(lambda: L == [2], 5)

    # a coroutine on the loop can await emit as well
    async def push():
        await source.emit(10)

    source.loop.add_callback(push)
    wait_for(lambda: L == [2, 11], 5)


def test_async_sink_on_loopless_stream_runs():
    """Streamz drops the coroutine of an async sink on a loop-less stream (it never runs)."""
    log = []

    async def write(x):
        await asyncio.sleep(0)
        log.append(x)

    source = Stream()
    source.sink(write)
    source.emit(1)
    source.emit(2)
    assert source.loop is None
    assert log == [1, 2]


def test_async_sink_on_loopless_stream_inside_running_loop():
    log = []

    async def write(x):
        log.append(x)

    async def main():
        source = Stream()  # no loop: emit returns None, the coroutine is scheduled
        source.sink(write)
        assert source.emit(1) is None
        await asyncio.sleep(0.01)
        return log

    assert asyncio.run(main()) == [1]


# -- loops and the asynchronous flag --------------------------------------------------


def test_loop_percolates_through_graph():
    a = Stream()
    b = a.map(inc)
    c = b.sink_to_list()
    d = Stream()
    b.connect(d)
    assert a.loop is None and d.loop is None
    e = Stream(ensure_io_loop=True)
    e.connect(a)  # upstream with a loop gives it to everything connected
    loop = get_io_loop(False)
    assert e.loop is loop and a.loop is loop and b.loop is loop and d.loop is loop
    assert isinstance(c, list)


def test_loop_percolates_upstream_from_time_based_node():
    a = Stream()
    b = a.map(inc)
    Stream(upstream=b, ensure_io_loop=True)
    assert a.loop is get_io_loop(False)
    assert a.asynchronous is False


def test_two_different_loops_raise():
    l1 = EventLoop.wrap(asyncio.new_event_loop())
    l2 = EventLoop.wrap(asyncio.new_event_loop())
    try:
        a = Stream(loop=l1)
        b = Stream(loop=l2)
        with pytest.raises(ValueError, match="Two different event loops active"):
            a.connect(b)
        with pytest.raises(ValueError, match="Two different event loops active"):
            Stream(upstream=a, loop=l2)
    finally:
        l1.close()
        l2.close()


def test_mixed_asynchronous_raises():
    loop = EventLoop.wrap(asyncio.new_event_loop())
    try:
        a = Stream(loop=loop, asynchronous=False)
        b = Stream(loop=loop, asynchronous=True)
        with pytest.raises(ValueError, match="both asynchronous and synchronous"):
            a.connect(b)
        with pytest.raises(ValueError, match="both asynchronous and synchronous"):
            Stream(upstream=a, asynchronous=True)
    finally:
        loop.close()


# -- graph editing --------------------------------------------------------------------


def test_connect_disconnect():
    a = Stream()
    b = Stream()
    L = b.map(inc).sink_to_list()
    a.emit(0)  # compiles a's (empty) graph
    a.connect(b)
    assert b in a.downstreams and a in b.upstreams
    a.emit(1)
    a.disconnect(b)
    assert b not in a.downstreams and a not in b.upstreams
    a.emit(2)
    b.emit(3)
    assert L == [2, 4]


def test_connect_after_fused_emit_invalidates_compiled_graph():
    a = Stream()
    L1 = a.map(inc).sink_to_list()
    a.emit(1)
    L2 = a.map(lambda x: -x).sink_to_list()
    a.emit(2)
    assert L1 == [2, 3]
    assert L2 == [-2]


def test_destroy():
    a = Stream()
    b = a.map(inc)
    L = b.sink_to_list()
    a.emit(1)
    b.destroy()
    assert b.upstreams == [] and a.downstreams == []
    a.emit(2)
    assert L == [2]


def test_destroy_given_streams():
    a, b = Stream(), Stream()
    c = Stream()
    a.connect(c)
    b.connect(c)
    L = c.sink_to_list()
    c.destroy([a])
    a.emit("a")
    b.emit("b")
    assert L == ["b"]
    assert c.upstreams == [b]


def test_upstream_property():
    a = Stream()
    assert a.upstream is None
    b = a.map(inc)
    assert b.upstream is a
    c = Stream()
    a.connect(c)
    b.connect(c)
    with pytest.raises(ValueError):
        c.upstream


class _Recorder(Stream):
    def __init__(self, name, log, **kwargs):
        super().__init__(stream_name=name, **kwargs)
        self.log = log

    def start(self):
        self.log.append(("start", self.name))

    def stop(self):
        self.log.append(("stop", self.name))


def test_start_stop_propagate_upstream_only():
    log = []
    s1, s2 = _Recorder("s1", log), _Recorder("s2", log)
    joined = Stream()
    s1.connect(joined)
    s2.connect(joined)
    tail = joined.map(inc)
    below = tail.map(inc)
    side = _Recorder("side", log)
    tail.connect(side)  # a downstream recorder must not be started
    tail.start()
    assert log == [("start", "s1"), ("start", "s2")]
    log.clear()
    below.stop()
    assert log == [("stop", "s1"), ("stop", "s2")]


# -- str / repr -----------------------------------------------------------------------


def test_str():
    source = Stream()
    assert str(source.map(add, 1)) == "<map: add>"
    assert str(Stream(stream_name="this is not a stream")) == "<this is not a stream; Stream>"
    assert str(source.sink(print)) == "<sink: print>"
    assert repr(source.filter(inc)) == "<filter: inc>"
    assert str(source) == "<Stream>"
    assert str(source.map(add, 1, stream_name="adder")) == "<adder; map: add>"


# -- register_api -----------------------------------------------------------------------


def test_register_api_keeps_class_and_metadata():
    assert Stream.map.__name__ == "map"
    assert Stream.map.__doc__ == map_node.__doc__
    assert map_node.__name__ == "map" and isinstance(map_node, type)

    @Stream.register_api()
    class double(Stream):
        """Double each element."""

        def update(self, x, who=None, metadata=None):
            return self._emit(2 * x, metadata=metadata)

    try:
        assert isinstance(double, type)
        assert Stream.double.__name__ == "double"
        assert Stream.double.__doc__ == "Double each element."
        s = Stream()
        node = s.double()
        assert type(node) is double
        L = node.sink_to_list()
        s.emit(3)
        assert L == [6]
        # direct construction works as well
        L2 = double(s).sink_to_list()
        s.emit(1)
        assert L2 == [2]
    finally:
        del Stream.double


def test_register_api_on_subclass_does_not_touch_stream():
    class MyStream(Stream):
        pass

    @MyStream.register_api()
    class only_mine(Stream):
        def update(self, x, who=None, metadata=None):
            return self._emit(x, metadata=metadata)

    assert not hasattr(Stream, "only_mine")
    assert hasattr(MyStream(), "only_mine")
    assert hasattr(MyStream(), "map")  # registrations on Stream are inherited


def test_register_api_staticmethod_and_attribute_name():
    class Sub(Stream):
        pass

    @Sub.register_api(staticmethod, attribute_name="from_thing")
    class thing(Stream):
        pass

    node = Sub.from_thing()
    assert type(node) is thing
    assert Sub.from_thing.__name__ == "thing"


# -- delivery order -------------------------------------------------------------------


def _logger(log, name):
    def f(x):
        log.append((name, x))
        return x

    f.__name__ = name
    return f


@pytest.mark.parametrize("with_metadata", [False, True])
def test_fan_out_order_depth_first(with_metadata):
    log = []
    source = Stream()
    a = source.map(_logger(log, "a"))
    a.map(_logger(log, "a1")).sink(_logger(log, "a1s"))
    a.map(_logger(log, "a2"))
    b = source.map(_logger(log, "b"))
    b.sink(_logger(log, "bs"))
    md = [{"k": 1}] if with_metadata else None
    source.emit(1, metadata=md)
    source.emit(2, metadata=md)
    assert log == [
        ("a", 1),
        ("a1", 1),
        ("a1s", 1),
        ("a2", 1),
        ("b", 1),
        ("bs", 1),
        ("a", 2),
        ("a1", 2),
        ("a1s", 2),
        ("a2", 2),
        ("b", 2),
        ("bs", 2),
    ]


@pytest.mark.parametrize("with_metadata", [False, True])
def test_diamond_order(with_metadata):
    log = []
    source = Stream()
    left = source.map(_logger(log, "left"))
    right = source.map(_logger(log, "right"))
    join = Stream()
    left.connect(join)
    right.connect(join)
    join.sink(_logger(log, "join"))
    md = [{"k": 1}] if with_metadata else None
    source.emit("x", metadata=md)
    assert log == [("left", "x"), ("join", "x"), ("right", "x"), ("join", "x")]


@pytest.mark.parametrize("with_metadata", [False, True])
def test_cycle_through_connect(with_metadata):
    """A feedback loop: values go round until the filter stops them, depth first."""
    log = []
    source = Stream()
    step = source.map(_logger(log, "step"))
    again = step.filter(lambda x: x < 3).map(inc)
    again.connect(step)
    out = step.sink_to_list()
    md = [{"k": 1}] if with_metadata else None
    source.emit(0, metadata=md)
    assert log == [("step", 0), ("step", 1), ("step", 2), ("step", 3)]
    # the sink was created after the filter, so inner values reach it first
    assert out == [3, 2, 1, 0]


def test_cycle_with_plain_stream_node():
    source = Stream()
    hub = Stream()
    source.connect(hub)
    L = hub.sink_to_list()
    hub.filter(lambda x: x > 0).map(lambda x: x - 1).connect(hub)
    source.emit(2)
    assert L == [2, 1, 0]


# -- errors ---------------------------------------------------------------------------


@pytest.mark.parametrize("with_ref", [False, True])
def test_exception_stops_later_siblings_and_fails_refs(with_ref):
    source = Stream()
    first = source.sink_to_list()
    source.map(lambda x: 1 / x).sink_to_list()
    later = source.sink_to_list()
    ref = RefCounter()
    md = [{"ref": ref}] if with_ref else None
    with pytest.raises(ZeroDivisionError):
        source.emit(0, metadata=md)
    assert first == [0]
    assert later == []  # as Streamz: siblings after the failing one never see it
    source.emit(1, metadata=md)
    assert later == [1]
    if with_ref:
        assert ref.count == 0
        assert ref.failed
        assert isinstance(ref.errors[0], ZeroDivisionError)


def test_exception_deep_in_chain_releases_refs():
    done = []
    ref = RefCounter(cb=lambda: done.append(True))
    source = Stream()
    a = source.map(inc)
    a.map(inc).map(lambda x: x / 0).sink_to_list()
    a.sink_to_list()
    source.sink_to_list()
    with pytest.raises(ZeroDivisionError):
        source.emit(1, metadata=[{"ref": ref}])
    assert ref.count == 0
    assert ref.failed
    assert done == [True]


def test_ref_not_failed_on_success():
    ref = RefCounter()
    source = Stream()
    source.map(inc).sink_to_list()
    source.sink_to_list()
    source.emit(1, metadata=[{"ref": ref}])
    assert ref.count == 0 and not ref.failed


def test_from_iterable_stop_takes_effect_after_the_current_element_and_resumes():
    from millstream.testing import run_pipeline

    for fused in (True, False):
        source = Stream.from_iterable(range(10))
        out = []

        def record(x, source=source, out=out):
            out.append(x)
            if x == 3:
                source.stop()

        # a bare Stream is an identity node that never fuses: it forces the per-element path
        node = source.map(lambda x: x) if fused else Stream(upstream=source)
        node.sink(record)
        run_pipeline(source)
        assert out == [0, 1, 2, 3]
        run_pipeline(source)
        assert out == list(range(10))


def test_source_start_while_a_stopped_run_still_waits_does_not_start_a_second_run():
    import asyncio
    import threading

    release = threading.Event()

    async def slow(x):
        await asyncio.get_running_loop().run_in_executor(None, release.wait)

    source = Stream.from_iterable(range(3))
    out = []
    source.sink(slow)
    source.sink(out.append)
    source.start()
    from millstream.testing import wait_for

    wait_for(lambda: out == [0], 5)
    source.stop()
    first_task = source.work_task
    source.start()
    release.set()
    wait_for(lambda: source.work_task.done(), 5)
    assert source.work_task is first_task
    assert out == [0, 1, 2]


def test_an_unreferenced_branch_keeps_working_because_the_graph_owns_its_nodes():
    import gc

    source = Stream()
    out = []
    source.map(lambda x: x * 2).sink(out.append)  # no variable holds the map node
    gc.collect()
    source.emit(21)
    assert out == [42]


def test_a_destroyed_branch_is_detached_and_collected():
    import gc
    import weakref

    source = Stream()
    node = source.map(lambda x: x)
    ref = weakref.ref(node)
    node.destroy()
    del node
    gc.collect()
    assert ref() is None
    assert source.downstreams == []


def test_to_dataframe_and_to_batch_resolve_to_their_layers():
    import pandas as pd

    from millstream.batch import Batch
    from millstream.dataframe import DataFrame

    source = Stream()
    assert source.gather() is source  # scatter() itself is tested in tests/dask
    assert isinstance(source.to_dataframe(example=pd.DataFrame({"x": [1]})), DataFrame)
    assert isinstance(source.to_batch(), Batch)
