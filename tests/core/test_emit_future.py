"""What an asynchronous ``emit`` returns: a future that can be awaited many times, given
to timeouts and gathers (asyncio and tornado), whose work runs even if nobody awaits it."""

from __future__ import annotations

import asyncio
import gc
import logging
from datetime import timedelta

import pytest
from tornado import gen

from millstream import Stream
from millstream.core.emit_future import EmitFuture


def slow_graph(delay=0.05):
    """An asynchronous source whose async sink takes ``delay`` seconds per element."""
    log = []

    async def slow_sink(x):
        await asyncio.sleep(delay)
        log.append(x)

    source = Stream(asynchronous=True)
    source.sink(slow_sink)
    return source, log


def failing_graph():
    async def failing_sink(x):
        await asyncio.sleep(0.001)
        raise ZeroDivisionError(f"bad {x}")

    source = Stream(asynchronous=True)
    source.sink(failing_sink)
    return source


def run(coro):
    return asyncio.run(coro)


def test_pending_emit_is_an_asyncio_future_awaitable_many_times():
    async def main():
        source, log = slow_graph(0.01)
        f = source.emit(1)
        assert isinstance(f, EmitFuture) and asyncio.isfuture(f)
        assert gen.is_future(f)
        assert not f.done()
        await f
        assert log == [1] and f.done() and f.result() is None
        await f
        await f
        assert log == [1]  # the work ran once

    run(main())


def test_wait_for_timeout_then_await_again_through_shield():
    async def main():
        source, log = slow_graph(0.1)
        f = source.emit(1)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(f), 0.01)
        assert log == [] and not f.done()
        await asyncio.wait_for(f, 5)  # awaited again, with a timeout long enough
        assert log == [1]
        await asyncio.wait_for(f, 0.001)  # done: returns at once
        await asyncio.shield(f)

    run(main())


def test_wait_for_timeout_cancels_the_emit_and_its_work():
    async def main():
        source, log = slow_graph(0.1)
        f = source.emit(1)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(f, 0.01)
        assert f.cancelled()
        with pytest.raises(asyncio.CancelledError):
            await f
        await asyncio.sleep(0.15)
        assert log == []  # the sink was cancelled with the emit

    run(main())


def test_tornado_with_timeout_then_await_again():
    async def main():
        source, log = slow_graph(0.1)
        f = source.emit(1)
        with pytest.raises(gen.TimeoutError):
            # timed out: tornado does not cancel it
            await gen.with_timeout(timedelta(seconds=0.01), f)
        assert not f.done()
        await gen.with_timeout(timedelta(seconds=5), f)
        await f
        assert log == [1]
        await gen.with_timeout(timedelta(seconds=0.01), gen.convert_yielded(f))

    run(main())


def test_gather_many_emits_and_the_same_emit_twice():
    async def main():
        source, log = slow_graph(0.02)
        futures = [source.emit(i) for i in range(5)]
        await asyncio.gather(*futures, futures[0])
        assert sorted(log) == [0, 1, 2, 3, 4]
        await asyncio.gather(*futures)
        await gen.multi(futures)
        assert len(log) == 5

    run(main())


def test_direct_await_runs_inline_without_a_trip_through_the_loop():
    async def main():
        log = []

        async def quick_sink(x):
            log.append(x)

        source = Stream(asynchronous=True)
        source.sink(quick_sink)
        f = source.emit(1)
        assert log == []  # nothing runs before it is awaited or the loop steps
        await f
        assert log == [1] and f.done()

    run(main())


def test_work_runs_even_if_nobody_awaits_the_emit():
    async def main():
        source, log = slow_graph(0.01)
        source.emit(1)
        source.emit(2)
        for _ in range(100):
            await asyncio.sleep(0.01)
            if len(log) == 2:
                break
        assert log == [1, 2]

    run(main())


def test_errors_reach_every_awaiter():
    async def main():
        source = failing_graph()
        f = source.emit(7)
        with pytest.raises(ZeroDivisionError, match="bad 7"):
            await f
        with pytest.raises(ZeroDivisionError, match="bad 7"):
            await f  # again: the same error
        g = source.emit(8)
        with pytest.raises(ZeroDivisionError, match="bad 8"):
            await asyncio.wait_for(g, 5)
        with pytest.raises(ZeroDivisionError, match="bad 8"):
            await gen.with_timeout(timedelta(seconds=5), g)
        h = source.emit(9)
        with pytest.raises(ZeroDivisionError, match="bad 9"):
            await asyncio.gather(h)
        with pytest.raises(ZeroDivisionError, match="bad 9"):
            h.result()

    run(main())


def test_an_awaited_error_is_not_reported_again(caplog):
    async def main():
        source = failing_graph()
        f = source.emit(1)
        with pytest.raises(ZeroDivisionError):
            await f
        g = source.emit(2)
        with pytest.raises(ZeroDivisionError):
            await asyncio.wait_for(g, 5)  # run by the driver task, retrieved by wait_for
        del f, g
        gc.collect()
        await asyncio.sleep(0.01)

    with caplog.at_level(logging.ERROR):
        run(main())
    assert [r for r in caplog.records if "never retrieved" in r.getMessage()] == []


def test_an_error_nobody_awaits_is_reported_once_when_the_future_goes(caplog):
    async def main():
        source = failing_graph()
        source.emit(1)  # fire and forget
        await asyncio.sleep(0.05)
        gc.collect()
        await asyncio.sleep(0)

    with caplog.at_level(logging.ERROR, logger="asyncio"):
        run(main())
    reports = [r for r in caplog.records if "never retrieved" in r.getMessage()]
    assert len(reports) == 1
    message = reports[0].getMessage()
    assert "Future exception was never retrieved" in message  # not a task's
    assert "bad 1" in str(reports[0].exc_info[1])


def test_nothing_pending_gives_a_done_awaitable_accepted_everywhere():
    async def main():
        source = Stream(asynchronous=True)
        L = source.sink_to_list()
        r = source.emit(1)
        assert not isinstance(r, EmitFuture)
        await r
        await r
        await asyncio.wait_for(r, 0.01)
        await asyncio.gather(r, r, source.emit(2))
        await asyncio.shield(r)
        await gen.with_timeout(timedelta(seconds=0.01), r)
        await gen.convert_yielded(r)
        assert L == [1, 2]

    run(main())


def test_many_inline_awaits_without_yielding_keep_no_backlog():
    from millstream.core import emit_future

    async def quick(x):
        pass

    async def main():
        source = Stream(asynchronous=True)
        source.sink(quick)
        for i in range(5000):
            await source.emit(i)
        loop = asyncio.get_running_loop()
        assert len(emit_future._unstarted.get(loop, ())) <= 1001
        await asyncio.sleep(0)
        assert loop not in emit_future._unstarted

    run(main())


def test_emit_with_asynchronous_flag_on_a_thread_loop_graph_returns_a_future():
    async def main():
        log = []

        async def sink(x):
            await asyncio.sleep(0.01)
            log.append(x)

        source = Stream(ensure_io_loop=True)
        source.sink(sink)
        f = source.emit(1, asynchronous=True)
        await asyncio.wait_for(f, 5)
        await f
        assert log == [1]

    run(main())
