"""from_periodic: timing on a ManualClock, stop, errors, restart, snapshot."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from millstream import Stream
from millstream.testing import wait_for


def test_emits_on_each_interval(manual_clock):
    counter = itertools.count()
    source = Stream.from_periodic(lambda: next(counter), poll_interval=0.5)
    L = source.map(lambda x: (x, manual_clock.now())).sink_to_list()
    source.start()
    wait_for(lambda: len(L) == 1 and manual_clock.pending == 1, 2)  # asleep
    manual_clock.advance(1.2)
    assert L == [(0, 0.0), (1, 0.5), (2, 1.0)]
    manual_clock.advance(0.3)
    assert L[-1] == (3, 1.5)
    source.stop()
    assert source.work_task.done()


def test_interval_string(manual_clock):
    source = Stream.from_periodic(manual_clock.now, poll_interval="250ms")
    assert source.poll_interval == 0.25
    L = source.sink_to_list()
    source.start()
    wait_for(lambda: len(L) == 1 and manual_clock.pending == 1, 2)  # asleep
    manual_clock.advance(1)
    source.stop()
    assert L == [0.0, 0.25, 0.5, 0.75, 1.0]


def test_stop_interrupts_the_sleep_and_cancels_the_timer(manual_clock):
    source = Stream.from_periodic(lambda: 1, poll_interval=3600)
    L = source.sink_to_list()
    source.start()
    wait_for(lambda: len(L) == 1 and manual_clock.pending == 1, 2)
    source.stop()  # returns at once, although the sleep had an hour to go
    assert source.stopped and source.work_task.done()
    assert manual_clock.pending == 0
    manual_clock.advance(7200)
    assert L == [1]


def test_restart_after_stop(manual_clock):
    counter = itertools.count()
    source = Stream.from_periodic(lambda: next(counter), poll_interval=1)
    L = source.sink_to_list()
    source.start()
    wait_for(lambda: len(L) == 1, 2)
    source.stop()
    source.start()
    wait_for(lambda: len(L) == 2 and manual_clock.pending == 1, 2)  # asleep
    manual_clock.advance(1)
    source.stop()
    assert L == [0, 1, 2]


def test_awaitable_callback_is_awaited(manual_clock):
    async def read():
        await asyncio.sleep(0)
        return "value"

    source = Stream.from_periodic(read, poll_interval=1)
    L = source.sink_to_list()
    source.start()
    wait_for(lambda: len(L) == 1, 2)
    source.stop()
    assert L == ["value"]


def test_callback_error_stops_the_source_and_is_kept(manual_clock, caplog):
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) == 2:
            raise ZeroDivisionError("boom")
        return len(calls)

    source = Stream.from_periodic(flaky, poll_interval=1)
    L = source.sink_to_list()
    source.start()
    wait_for(lambda: len(L) == 1 and manual_clock.pending == 1, 2)  # asleep
    manual_clock.advance(1)
    wait_for(lambda: source.stopped, 2)
    assert L == [1]
    assert isinstance(source.error, ZeroDivisionError)
    assert any("from_periodic" in note and "flaky" in note for note in source.error.__notes__)


def test_waits_for_downstream_before_sleeping(manual_clock):
    # the period is poll_interval plus processing time, as in Streamz
    source = Stream.from_periodic(manual_clock.now, poll_interval=1)

    async def slow(x):
        await manual_clock.sleep(0.5)

    source.sink(slow)
    L = source.sink_to_list()
    source.start()
    wait_for(lambda: len(L) == 1 and manual_clock.pending == 1, 2)  # asleep
    manual_clock.advance(3.5)
    source.stop()
    assert L == [0.0, 1.5, 3.0]


def test_asynchronous_on_the_callers_loop(manual_clock):
    async def main():
        source = Stream.from_periodic(manual_clock.now, poll_interval=2, asynchronous=True)
        L = source.sink_to_list()
        source.start()
        await manual_clock.advance_async(4)
        source.stop()  # on the loop thread: cannot block, the task ends on the next yield
        await source.work_task
        return L

    assert asyncio.run(main()) == [0.0, 2.0, 4.0]


def test_snapshot_is_empty_and_round_trips(manual_clock):
    counter = itertools.count()
    first = Stream.from_periodic(lambda: next(counter), poll_interval=1)
    L = first.sink_to_list()
    first.start()
    wait_for(lambda: len(L) == 1, 2)
    first.stop()
    state = first.snapshot()
    assert state is None
    second = Stream.from_periodic(lambda: next(counter), poll_interval=1)
    second.restore(state)
    second.sink(L.append)
    second.start()
    wait_for(lambda: len(L) == 2, 2)
    second.stop()
    assert L == [0, 1]


def test_bad_arguments():
    with pytest.raises(TypeError, match="from_periodic: callback must be callable"):
        Stream.from_periodic(42)
    with pytest.raises(ValueError, match="cannot read interval"):
        Stream.from_periodic(lambda: 1, poll_interval="often")


def test_periodic_callback_is_deprecated_and_passes_kwargs(manual_clock):
    from millstream.sources import PeriodicCallback

    with pytest.warns(DeprecationWarning, match="use Stream.from_periodic"):
        source = PeriodicCallback(lambda base, step: base + step, 2, base=10, step=1)
    L = source.sink_to_list()
    source.start()
    wait_for(lambda: len(L) == 1 and manual_clock.pending == 1, 2)  # asleep
    manual_clock.advance(2)
    source.stop()
    assert L == [11, 11]


def test_wait_first_sleeps_one_interval_before_the_first_call(manual_clock):
    source = Stream.from_periodic(manual_clock.now, poll_interval=2, wait_first=True)
    L = source.sink_to_list()
    source.start()
    wait_for(lambda: manual_clock.pending == 1, 2)
    assert L == []
    manual_clock.advance(4)
    wait_for(lambda: len(L) == 2, 2)
    source.stop()
    assert L == [2.0, 4.0] and source.work_task.done()
