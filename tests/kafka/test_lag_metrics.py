"""The Kafka sources' metrics against a real broker: ``position`` per partition, and ``lag``
(records behind the high watermarks, read on the consumer thread once a second)."""

from __future__ import annotations

import asyncio

from millstream import Stream
from millstream.core.loop import in_loop_thread
from millstream.kafka.lag import LAG_REFRESH
from millstream.testing import wait_for

from ._produce import params, produce

N = 20


class Gate:
    """An async write that lets through ``allowed`` elements, then waits."""

    def __init__(self, allowed: int):
        self.allowed = allowed
        self.done: list = []

    async def write(self, x):
        # polled: the test thread opens the gate (an asyncio.Event is for one loop)
        while len(self.done) >= self.allowed:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        self.done.append(x)


def values(n):
    return [f"v{i}".encode() for i in range(n)]


def check_lag_while_slow_then_zero(source, gate, topic, emitted_of, k):
    """``k`` records written, one more blocked in the write: lag == N - emitted."""
    wait_for(lambda: len(gate.done) == k, 20)
    emitted = emitted_of()
    wait_for(lambda: source.metrics["lag"] == N - emitted, 3 * LAG_REFRESH + 5)
    m = source.metrics
    assert sum(m["position"].values()) == emitted
    assert set(m["lag_by_partition"]) == {f"{topic}/0", f"{topic}/1"}
    assert sum(m["lag_by_partition"].values()) == m["lag"]
    gate.allowed = 10**9
    wait_for(lambda: source.metrics["lag"] == 0, 3 * LAG_REFRESH + 15)
    m = source.metrics
    assert m["position"] == {f"{topic}/0": N // 2, f"{topic}/1": N // 2}
    assert m["lag_by_partition"] == {f"{topic}/0": 0, f"{topic}/1": 0}


def test_from_kafka_lag_and_position(kafka_bootstrap, kafka_topic):
    topic = kafka_topic(2)
    produce(kafka_bootstrap, topic, values(N), partition=lambda i: i % 2)
    source = Stream.from_kafka(topic, params(kafka_bootstrap), poll_interval=0.05)
    gate = Gate(allowed=5)
    source.sink(gate.write)
    assert source.metrics["lag"] is None and source.metrics["position"] == {}
    source.start()
    try:
        # the source waits for each write: the blocked record is the last one emitted
        check_lag_while_slow_then_zero(source, gate, topic, lambda: 5 + 1, 5)
    finally:
        source.stop()


def test_from_kafka_batched_lag_and_position(kafka_bootstrap, kafka_topic):
    topic = kafka_topic(2)
    produce(kafka_bootstrap, topic, values(N), partition=lambda i: i % 2)
    stream = Stream.from_kafka_batched(
        topic, params(kafka_bootstrap), poll_interval=0.05, max_batch_size=2
    )
    source = stream.upstream
    gate = Gate(allowed=3)
    stream.sink(gate.write)
    source.start()
    try:
        # three batches of two written, a fourth blocked in the write
        check_lag_while_slow_then_zero(source, gate, topic, lambda: 4 * 2, 3)
    finally:
        source.stop()


def test_the_lag_watcher_asks_for_the_partitions_on_the_consumer_thread(
    kafka_bootstrap, kafka_topic
):
    # consumer.assignment() blocks while the consumer thread is in a rebalance callback,
    # where the checkpoint before a revoke waits for the loop: asked on the loop, it
    # deadlocked (the T8 reliability test hung at a rebalance)
    topic = kafka_topic(1)
    produce(kafka_bootstrap, topic, values(2))
    source = Stream.from_kafka(topic, params(kafka_bootstrap), poll_interval=0.05)
    source.sink(lambda x: None)
    on_loop: list[bool] = []
    asked = source._lag_partitions

    def recording(consumer):
        on_loop.append(in_loop_thread(source.loop))
        return asked(consumer)

    source._lag_partitions = recording
    source.start()
    try:
        wait_for(lambda: len(on_loop) >= 2, 3 * LAG_REFRESH + 5)
    finally:
        source.stop()
    assert not any(on_loop)
