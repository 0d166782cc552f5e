"""The public test kit (millstream.testing)."""

from __future__ import annotations

import asyncio
import logging
import threading
import time

import pytest

import millstream.core.clock as clock_mod
from millstream import RefCounter, Stream
from millstream.testing import (
    ManualClock,
    TestingAbort,
    TestingSource,
    await_for,
    captured_logger,
    metadata,
    run_pipeline,
    use_clock,
    wait_for,
)

PAUSE, ABORT, EOF = TestingSource.PAUSE, TestingSource.ABORT, TestingSource.EOF


# -- wait_for / await_for ---------------------------------------------------------------


def test_wait_for_returns_when_true():
    box = []
    threading.Timer(0.01, box.append, [1]).start()
    wait_for(lambda: box, 5)
    assert box == [1]


def test_wait_for_timeout_calls_fail_func():
    failed = []
    t0 = time.monotonic()
    with pytest.raises(TimeoutError, match=r"within 0\.05 s"):
        wait_for(lambda: False, 0.05, fail_func=lambda: failed.append(True), period=0.01)
    assert failed == [True]
    assert time.monotonic() - t0 >= 0.05


def test_await_for():
    async def main():
        box = []
        asyncio.get_running_loop().call_later(0.01, box.append, 1)
        await await_for(lambda: box, 5)
        failed = []
        with pytest.raises(TimeoutError):
            await await_for(lambda: False, 0.02, fail_func=lambda: failed.append(1))
        return box, failed

    assert asyncio.run(main()) == ([1], [1])


# -- TestingSource ----------------------------------------------------------------------


def test_not_collected_by_pytest():
    assert TestingSource.__test__ is False
    assert TestingAbort.__test__ is False
    assert metadata.__test__ is False


def test_re_exports():
    assert ManualClock is clock_mod.ManualClock
    assert use_clock is clock_mod.use_clock


def test_emits_items_in_order_through_the_graph():
    source = TestingSource(range(5))
    L = source.map(lambda x: x * 2).sink_to_list()
    assert source.loop is not None  # a source always has a loop
    run_pipeline(source)
    assert L == [0, 2, 4, 6, 8]
    assert source.stopped and source.done and source.snapshot() == 5
    run_pipeline(source)  # nothing left: a quick, clean run
    assert L == [0, 2, 4, 6, 8]


def test_registered_as_from_testing():
    source = Stream.from_testing(["a"])
    assert type(source) is TestingSource
    L = source.sink_to_list()
    run_pipeline(source)
    assert L == ["a"]


def test_abort_fires_once_and_restart_continues():
    source = TestingSource([1, ABORT(), 2, ABORT(), 3])
    L = source.sink_to_list()
    with (
        captured_logger("millstream", logging.ERROR) as log,
        pytest.raises(TestingAbort, match="injected failure at item 1"),
    ):
        run_pipeline(source)
    assert "TestingAbort" in log.getvalue()
    assert L == [1] and source.snapshot() == 2
    assert isinstance(source.error, TestingAbort)
    with pytest.raises(TestingAbort, match="item 3"):
        run_pipeline(source)
    assert L == [1, 2]
    run_pipeline(source)
    assert source.error is None
    assert L == [1, 2, 3]


def test_eof_ends_run_and_start_continues():
    source = TestingSource(["a", EOF(), "b", EOF(), EOF(), "c"])
    L = source.sink_to_list()
    run_pipeline(source)
    assert L == ["a"] and source.snapshot() == 2
    run_pipeline(source)
    assert L == ["a", "b"]
    run_pipeline(source)
    assert L == ["a", "b"]
    run_pipeline(source)
    assert L == ["a", "b", "c"]


def test_pause_waits_on_manual_clock(manual_clock):
    source = TestingSource([1, PAUSE(5), 2, PAUSE(1), 3])
    L = source.sink_to_list()
    source.start()
    wait_for(lambda: manual_clock.pending == 1, 5)
    assert L == [1]
    manual_clock.advance(4)
    assert L == [1]
    manual_clock.advance(1)
    assert L == [1, 2]
    wait_for(lambda: manual_clock.pending == 1, 5)
    manual_clock.advance(1)
    wait_for(lambda: source.stopped, 5)
    assert L == [1, 2, 3]
    assert manual_clock.now() == 6


def test_pause_uses_node_clock():
    clock = ManualClock()
    source = TestingSource([PAUSE(10), "late"], clock=clock)
    L = source.sink_to_list()
    source.start()
    wait_for(lambda: clock.pending == 1, 5)
    with pytest.raises(TimeoutError):
        run_pipeline(source, timeout=0.05)  # the pause never ends by itself
    clock.advance(10)
    wait_for(lambda: source.stopped, 5)
    assert L == ["late"]


def test_snapshot_restore_resumes_in_new_pipeline():
    items = [1, 2, ABORT(), 3, 4]
    first = TestingSource(items)
    L1 = first.accumulate(lambda a, x: a + x, start=0).sink_to_list()
    with pytest.raises(TestingAbort):
        run_pipeline(first)
    position = first.snapshot()
    assert position == 3

    second = TestingSource(items)
    second.restore(position)
    L2 = second.sink_to_list()
    run_pipeline(second)
    assert L1 == [1, 3]
    assert L2 == [3, 4]


def test_stop_mid_run_and_resume():
    gate = threading.Event()
    seen = []

    def slow(x):
        seen.append(x)
        if x == 2:
            gate.wait(5)

    source = TestingSource([1, 2, 3, 4])
    source.sink(slow)
    source.start()
    wait_for(lambda: seen == [1, 2], 5)
    source.stop()
    gate.set()
    wait_for(lambda: source.work_task is not None and source.work_task.done(), 5)
    assert seen == [1, 2] and source.snapshot() == 2
    run_pipeline(source)
    assert seen == [1, 2, 3, 4]


def test_downstream_error_is_reraised_with_note_and_item_retried():
    calls = []

    def check(x):
        calls.append(x)
        if x == 2 and calls.count(2) == 1:
            raise ValueError("bad 2")
        return x

    source = TestingSource([1, 2, 3])
    L = source.map(check).sink_to_list()
    with (
        captured_logger("millstream", logging.CRITICAL + 1),
        pytest.raises(ValueError, match="bad 2") as info,
    ):
        run_pipeline(source)
    assert any("<map: check>" in n for n in info.value.__notes__)
    assert source.snapshot() == 1  # the failed item was not processed
    run_pipeline(source)  # at least once: it is tried again
    assert L == [1, 2, 3]
    assert calls == [1, 2, 2, 3]


def test_backpressure_from_async_sink():
    running = []
    peak = []

    async def write(x):
        running.append(x)
        peak.append(len(running))
        await asyncio.sleep(0.001)
        running.remove(x)

    source = TestingSource(range(5))
    source.sink(write)
    run_pipeline(source)
    assert peak == [1, 1, 1, 1, 1]  # the next item waits for the sink


def test_asynchronous_source_in_running_loop():
    async def main():
        source = TestingSource([1, EOF(), 2], asynchronous=True)
        L = source.sink_to_list()
        source.start()
        await await_for(lambda: source.stopped and L, 5)
        source.start()
        await await_for(lambda: L == [1, 2], 5)
        return L

    assert asyncio.run(main()) == [1, 2]


def test_markers_repr_and_equality():
    assert repr(PAUSE(2)) == "TestingSource.PAUSE(2.0)"
    assert repr(ABORT()) == "TestingSource.ABORT()"
    assert repr(EOF()) == "TestingSource.EOF()"
    assert PAUSE(1) == PAUSE(1.0) and PAUSE(1) != PAUSE(2) and ABORT() == ABORT()
    assert EOF() != ABORT()
    assert len({PAUSE(1), PAUSE(1), EOF()}) == 2


def test_str():
    assert str(TestingSource([])) == "<TestingSource>"
    assert str(TestingSource([], stream_name="feed")) == "<feed; TestingSource>"


def test_run_pipeline_on_a_running_source_waits_for_it():
    clock = ManualClock()
    source = TestingSource([PAUSE(1), "x"], clock=clock)
    L = source.sink_to_list()
    source.start()
    wait_for(lambda: clock.pending == 1, 5)
    threading.Timer(0.02, clock.advance, [1]).start()
    run_pipeline(source)
    assert L == ["x"]


# -- metadata node ----------------------------------------------------------------------


def test_metadata_node_emits_metadata_without_holding_refs():
    ref = RefCounter()
    source = Stream()
    seen = []
    metadata(source).sink(lambda md: seen.append((md, ref.count)))
    source.emit("v", metadata=[{"ref": ref}, {"n": 1}])
    source.emit("w")
    assert seen == [([{"ref": ref}, {"n": 1}], 1)]
    assert ref.count == 0


# -- captured_logger --------------------------------------------------------------------


def test_captured_logger_levels_and_restore():
    logger = logging.getLogger("millstream.test_kit")
    logger.setLevel(logging.ERROR)
    logger.propagate = True
    with captured_logger("millstream.test_kit", logging.WARNING, propagate=False) as out:
        assert logger.level == logging.WARNING and logger.propagate is False
        logger.info("hidden")
        logger.warning("shown %d", 1)
    logger.warning("after")
    assert out.getvalue() == "shown 1\n"
    assert logger.level == logging.ERROR and logger.propagate is True
    assert logger.handlers == []


def test_captured_logger_accepts_logger_object():
    logger = logging.getLogger("millstream.test_kit2")
    with captured_logger(logger) as out:
        logger.info("hello")
    assert out.getvalue() == "hello\n"
