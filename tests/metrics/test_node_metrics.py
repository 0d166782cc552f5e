"""What each node kind adds to its metrics (``extra_metrics``): the backlog it holds or has
in flight, a source's position, an event-time node's watermark and late count; each value
checked against what the node really holds at that moment."""

from __future__ import annotations

import asyncio
import json

from millstream import ManualClock, Stream
from millstream.testing import wait_for
from millstream.time import Tumbling


def backlog(node):
    return node.metrics["backlog"]


async def until(condition, timeout=5.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.001)


# -- nodes that hold elements -------------------------------------------------------------
def test_buffer_counts_its_queue_and_the_element_downstream_is_busy_with():
    async def main():
        release = asyncio.Event()
        written = []

        async def write(x):
            await release.wait()
            written.append(x)

        source = Stream(asynchronous=True)
        buffered = source.buffer(10)
        out = buffered.sink(write)
        assert backlog(buffered) == 0
        for i in range(5):
            await source.emit(i)
        # one element is downstream, blocked in the write; four wait in the queue
        await until(lambda: backlog(out) == 1)
        assert backlog(buffered) == 5
        assert buffered.queued == 4
        release.set()
        await until(lambda: len(written) == 5)
        await until(lambda: backlog(buffered) == 0)
        assert backlog(out) == 0
        assert buffered.metrics["elements_out"] == 5

    asyncio.run(main())


def test_async_sink_counts_its_writes_in_flight_fused_and_with_an_error_policy():
    async def main():
        release = asyncio.Event()

        async def write(x):
            await release.wait()

        for kwargs in ({}, {"on_error": "skip"}):
            release.clear()
            source = Stream(asynchronous=True)
            out = source.sink(write, **kwargs)
            emits = [asyncio.ensure_future(source.emit(i)) for i in range(3)]
            await until(lambda out=out: backlog(out) == 3)
            release.set()
            await asyncio.gather(*emits)
            assert backlog(out) == 0

    asyncio.run(main())


def test_plain_sink_reports_no_backlog():
    source = Stream()
    out = source.sink(lambda x: None)
    source.emit(1)
    assert backlog(out) is None


def test_map_async_counts_calls_running_and_waiting():
    async def main():
        release = asyncio.Event()

        async def f(x):
            await release.wait()
            return x

        source = Stream(asynchronous=True)
        node = source.map_async(f, parallelism=2)
        L = node.sink_to_list()
        emits = [asyncio.ensure_future(source.emit(i)) for i in range(3)]
        await until(lambda: backlog(node) == 3)  # two running, one waiting for a slot
        release.set()
        await asyncio.gather(*emits)
        await until(lambda: len(L) == 3)
        await until(lambda: backlog(node) == 0)

    asyncio.run(main())


def test_timed_window_and_delay_count_what_they_hold():
    clock = ManualClock()
    source = Stream()
    window = source.timed_window(1, clock=clock)
    delayed = source.delay(2, clock=clock)
    W = window.sink_to_list()
    D = delayed.sink_to_list()
    for i in range(3):
        source.emit(i)
    assert backlog(window) == 3
    wait_for(lambda: backlog(delayed) == 3, 5)
    clock.advance(1)
    wait_for(lambda: W == [[0, 1, 2]], 5)
    assert backlog(window) == 0
    assert backlog(delayed) == 3
    clock.advance(1)
    wait_for(lambda: D == [0, 1, 2], 5)
    wait_for(lambda: backlog(delayed) == 0, 5)


def test_sliding_window_partition_zip_and_collect_count_what_they_hold():
    a, b = Stream(), Stream()
    sliding = a.sliding_window(3)
    parts = a.partition(3)
    zipped = a.zip(b)
    collected = a.collect()
    for node in (sliding, parts, zipped, collected):
        node.sink_to_list()
    for i in range(4):
        a.emit(i)
    assert backlog(sliding) == 3  # the last three elements
    assert backlog(parts) == 1  # 0, 1, 2 went out; 3 waits for two more
    assert backlog(zipped) == 4  # waiting for partners from b
    assert backlog(collected) == 4
    b.emit("x")
    assert backlog(zipped) == 3
    collected.flush()
    assert backlog(collected) == 0
    a.emit(4)
    a.emit(5)
    assert backlog(parts) == 0
    assert backlog(sliding) == 3


def test_partition_unique_counts_one_element_per_key():
    source = Stream()
    node = source.partition_unique(5, key=lambda x: x % 2)
    node.sink_to_list()
    for i in range(3):
        source.emit(i)
    assert backlog(node) == 2  # keys 0 and 1


# -- sources ------------------------------------------------------------------------------
def test_from_iterable_position_is_the_number_of_items_emitted():
    source = Stream.from_iterable(range(7))
    L = source.sink_to_list()
    assert source.metrics["position"] == 0
    source.start()
    wait_for(lambda: len(L) == 7, 5)
    assert source.metrics["position"] == 7
    assert source.metrics["elements_in"] is None


def test_from_textfile_position_is_the_offset_read(tmp_path):
    path = tmp_path / "lines.txt"
    text = "one\ntwo\nthree\n"
    path.write_text(text)
    source = Stream.from_textfile(str(path))
    L = source.sink_to_list()
    source.start()
    wait_for(lambda: len(L) == 3, 5)
    wait_for(lambda: source.metrics["position"] == {"offset": len(text)}, 5)
    source.stop()


# -- event time ---------------------------------------------------------------------------
def test_with_timestamps_reports_the_trackers_watermark():
    source = Stream()
    stamped = source.with_timestamps(lambda x: x, max_out_of_orderness=2)
    stamped.sink_to_list()
    assert stamped.metrics["watermark"] is None  # -inf: nothing seen yet
    source.emit(1_700_000_010.0)
    m = stamped.metrics
    assert m["watermark"] == stamped.tracker.watermark == 1_700_000_008.0
    assert m["watermark_iso"] == "2023-11-14T22:13:28+00:00"
    json.dumps(m)  # plain values


def test_window_reports_its_watermark_and_late_elements():
    source = Stream()
    node = source.window(Tumbling(10), "count", timestamp=lambda t: t, late="side")
    late = node.late.sink_to_list()
    node.sink_to_list()
    for t in (1, 5, 25):
        source.emit(t)
    assert node.metrics["watermark"] == node.watermark == 25.0
    assert "watermark_iso" not in node.metrics  # not seconds since the epoch
    assert node.metrics["late"] == 0
    source.emit(3)
    assert len(late) == 1
    assert node.metrics["late"] == node.late_count == 1


# -- errors and dead letters --------------------------------------------------------------
def test_dead_letters_counted_where_they_come_from_and_where_they_are_written():
    source = Stream()
    dead = Stream()
    node = source.map(lambda x: 10 // x, on_error=dead)
    node.sink_to_list()
    written = dead.sink_to_list()
    writer = dead.sink(lambda letter: None)
    for x in (1, 0, 2, 0):
        source.emit(x)
    assert node.metrics["errors"] == 2
    assert node.metrics["dead_letters"] == 2 == len(written)
    assert writer.metrics["elements_in"] == 2


def test_a_sink_skipping_errors_counts_each_once():
    source = Stream()
    out = source.sink(lambda x: 10 // x, on_error="skip")
    for x in (1, 0, 0):
        source.emit(x)
    assert out.metrics["errors"] == 2
    assert out.metrics["dead_letters"] == 0
