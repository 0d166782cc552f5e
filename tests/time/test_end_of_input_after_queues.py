"""The end of a bounded input reaches ``with_timestamps`` only after the nodes on the way
that hold elements in a task of their own (``delay``, ``buffer``, ``map_async``) have
passed them all on: before, the watermark jumped to +inf while elements still waited in
a queue, and they arrived late and were dropped."""

from __future__ import annotations

import asyncio

import pytest

from millstream import Stream
from millstream.testing import run_pipeline, wait_for
from millstream.time import Tumbling

EVENTS = [(i % 3, i * 0.1) for i in range(500)]


async def slow_identity(x):
    await asyncio.sleep(0.0005)
    return x


@pytest.mark.parametrize(
    "between",
    [
        lambda s: s.delay(0.01),
        lambda s: s.delay(0.005).buffer(10),
        lambda s: s.map_async(slow_identity, parallelism=4),
    ],
    ids=["delay", "delay-buffer", "map_async"],
)
def test_no_element_is_late_at_the_end_of_input(between):
    source = Stream.from_iterable(EVENTS)
    timed = between(source).with_timestamps(lambda e: e[1])
    counts = timed.window(Tumbling(5), "count", key=0)
    late = timed.window(Tumbling(5), "count", key=0, late="side").late.sink_to_list()
    out = counts.sink_to_list()
    run_pipeline(source, timeout=30)
    wait_for(lambda: sum(r.value for r in out) == len(EVENTS), 10)
    assert late == []
    assert {r.kind for r in out} == {"final"}


def test_stopped_is_set_after_the_end_of_input_closed_the_windows():
    """Whoever waits for ``source.stopped`` finds the last windows emitted (the end of input
    runs first; the window crash job exited before them now and then)."""
    for _ in range(20):
        source = Stream.from_iterable(EVENTS)
        between = source.delay(0.001)
        out = between.with_timestamps(lambda e: e[1]).window(Tumbling(5), "count").sink_to_list()
        source.start()
        wait_for(lambda s=source: s.stopped, 10, period=0.0001)
        assert sum(r.value for r in out) == len(EVENTS)
