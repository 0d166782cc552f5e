"""``stop()`` of a Kafka source keeps its promise: it drains what is in flight for at most
``drain_timeout``, commits the completed prefix and closes the consumer before it returns;
when the drain does not finish in time it says so (how many records, not committed) and
still closes. After ``stop()`` has returned nothing more is emitted or committed."""

from __future__ import annotations

import asyncio
import logging
import threading
import time

import pytest

from millstream import Stream

from ._produce import committed, params, produce

#: a sink slower than any drain bound of these tests
SLOW = 60.0


def values(n):
    return [f"v{i}".encode() for i in range(n)]


def make_source(kind, topic, config, **kwargs):
    """(the source, the stream its records come out of)."""
    if kind == "from_kafka":
        source = Stream.from_kafka(topic, config, poll_interval=0.05, **kwargs)
        return source, source
    stream = Stream.from_kafka_batched(
        topic, config, poll_interval=0.05, max_batch_size=1, **kwargs
    )
    return stream.upstream, stream.flatten()


def consumer_threads(source):
    prefix = f"millstream-{type(source).__name__}"
    return {t for t in threading.enumerate() if t.name.startswith(prefix)}


@pytest.mark.parametrize("kind", ["from_kafka", "from_kafka_batched"])
def test_stop_with_a_sink_slower_than_the_drain_bound_warns_then_closes(
    kafka_bootstrap, kafka_topic, kind, caplog
):
    topic = kafka_topic(1)
    produce(kafka_bootstrap, topic, values(4), partition=0)
    config = params(kafka_bootstrap)
    source, out = make_source(kind, topic, config, drain_timeout=1.0)
    assert source.drain_timeout == 1.0
    started: list[bytes] = []
    finished: list[bytes] = []

    async def write(x):
        started.append(x)
        if x == b"v1":
            await asyncio.sleep(SLOW)  # the slow write: longer than the drain bound
        finished.append(x)

    out.sink(write)
    before = consumer_threads(source)
    source.start()
    deadline = time.monotonic() + 15
    while b"v1" not in started:
        assert time.monotonic() < deadline, started
        time.sleep(0.01)
    t0 = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="millstream"):
        source.stop()
    took = time.monotonic() - t0
    assert 0.9 <= took < 1.0 + 5  # the drain bound, then commit and close
    assert source.consumer is None
    assert source.work_task.done()
    assert consumer_threads(source) <= before  # the consumer thread is gone
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(
        "1 record(s) or batch(es) still in flight" in m and "not committed" in m for m in warnings
    ), warnings
    # v0 was done: committed; v1 was not: nothing at or past it is
    assert source.committed == {(topic, 0): 1}
    assert committed(kafka_bootstrap, config["group.id"], topic, 1) == {0: 1}
    seen = list(started)
    time.sleep(1.5)
    assert started == seen == [b"v0", b"v1"]  # nothing emitted after stop()
    assert committed(kafka_bootstrap, config["group.id"], topic, 1) == {0: 1}
    assert source.committed == {(topic, 0): 1}


def test_a_restarted_source_reads_the_undrained_records_again(kafka_bootstrap, kafka_topic):
    topic = kafka_topic(1)
    produce(kafka_bootstrap, topic, values(3), partition=0)
    config = params(kafka_bootstrap)
    source = Stream.from_kafka(topic, config, poll_interval=0.05, drain_timeout=0.5)
    seen: list[bytes] = []
    slow = [True]

    async def write(x):
        seen.append(x)
        if x == b"v1" and slow[0]:
            await asyncio.sleep(SLOW)

    source.sink(write)
    source.start()
    deadline = time.monotonic() + 15
    while b"v1" not in seen:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    source.stop()
    slow[0] = False
    source.start()
    deadline = time.monotonic() + 15
    while len(seen) < 4:
        assert time.monotonic() < deadline, seen
        time.sleep(0.01)
    source.stop()
    assert seen == [b"v0", b"v1", b"v1", b"v2"]  # v1 again, in order, nothing lost
    assert committed(kafka_bootstrap, config["group.id"], topic, 1) == {0: 3}


def test_stop_waiting_for_room_does_not_wait_for_a_record_to_finish(kafka_bootstrap, kafka_topic):
    topic = kafka_topic(1)
    produce(kafka_bootstrap, topic, values(5), partition=0)
    config = params(kafka_bootstrap)
    source = Stream.from_kafka(
        topic, config, poll_interval=0.05, max_in_flight=2, drain_timeout=0.5
    )
    gate = asyncio.Event()
    started: list[bytes] = []

    async def write(x):
        started.append(x)
        await gate.wait()  # never set: both records stay in flight

    source.buffer(10).sink(write)
    source.start()
    deadline = time.monotonic() + 15
    while len(started) < 1:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    time.sleep(0.2)  # the source waits for room now
    t0 = time.monotonic()
    source.stop()
    assert time.monotonic() - t0 < 0.5 + 5
    assert source.consumer is None
    assert committed(kafka_bootstrap, config["group.id"], topic, 1) == {0: None}


def test_the_stop_bound_follows_the_drain_bound(kafka_bootstrap):
    source = Stream.from_kafka("t", params(kafka_bootstrap))
    assert source.drain_timeout == 10.0
    assert source._stop_timeout > source.drain_timeout
    source.drain_timeout = 120.0
    assert source._stop_timeout > 120.0  # stop() never gives up before the drain bound
    with pytest.raises(ValueError, match="drain_timeout"):
        Stream.from_kafka("t", params(kafka_bootstrap), drain_timeout=-1)


def test_stop_with_the_event_loop_blocked_closes_the_consumer_and_commits_nothing_after(
    kafka_bootstrap, kafka_topic, caplog
):
    topic = kafka_topic(1)
    produce(kafka_bootstrap, topic, values(3), partition=0)
    config = params(kafka_bootstrap)
    source = Stream.from_kafka(topic, config, poll_interval=0.05, drain_timeout=0.2)
    source._close_timeout = 1.0  # how long stop() then waits for the last commit and close
    started: list[bytes] = []
    unblocked = threading.Event()

    def write(x):  # synchronous: it blocks the event loop
        started.append(x)
        if x == b"v1":
            time.sleep(4)
            unblocked.set()

    source.sink(write)
    before = consumer_threads(source)
    source.start()
    deadline = time.monotonic() + 15
    while b"v1" not in started:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    t0 = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="millstream"):
        source.stop()
    assert time.monotonic() - t0 < 0.2 + 1.0 + 2
    assert not unblocked.is_set()  # stop() returned while the loop was still blocked
    assert source.consumer is None
    assert any("event loop was blocked" in r.getMessage() for r in caplog.records)
    at_stop = committed(kafka_bootstrap, config["group.id"], topic, 1)
    assert at_stop in ({0: None}, {0: 1})  # v0 may have been committed before v1 came
    ours = dict(source.committed)
    assert unblocked.wait(10)
    deadline = time.monotonic() + 10
    while not source.work_task.done():
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert source.error is None
    assert started == [b"v0", b"v1"]  # nothing emitted once the loop was free again
    assert committed(kafka_bootstrap, config["group.id"], topic, 1) == at_stop  # not v1
    assert source.committed == ours
    assert consumer_threads(source) <= before


@pytest.mark.asyncio
async def test_stop_on_the_loop_ends_the_run_within_the_drain_bound(kafka_bootstrap, kafka_topic):
    topic = kafka_topic(1)
    produce(kafka_bootstrap, topic, values(2), partition=0)
    config = params(kafka_bootstrap)
    source = Stream.from_kafka(
        topic, config, poll_interval=0.05, drain_timeout=0.5, asynchronous=True
    )
    started: list[bytes] = []

    async def write(x):
        started.append(x)
        await asyncio.sleep(SLOW)

    source.sink(write)
    source.start()
    deadline = time.monotonic() + 15
    while not started:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)
    t0 = time.monotonic()
    source.stop()  # on the loop: cannot wait here; the run ends by itself
    await asyncio.wait_for(source.work_task, 5)  # ends normally, not as cancelled
    assert 0.4 <= time.monotonic() - t0 < 0.5 + 5
    assert source.consumer is None and source.error is None
    assert started == [b"v0"]
    assert committed(kafka_bootstrap, config["group.id"], topic, 1) == {0: None}
