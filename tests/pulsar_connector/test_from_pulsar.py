"""``from_pulsar`` and ``to_pulsar`` against a real standalone Pulsar."""

from __future__ import annotations

import asyncio
import time

import pytest

from millstream import Stream

from ._helpers import produce, read_all, wait_for
from .conftest import unique_topic

pytestmark = pytest.mark.timeout(180)


def values(n: int, prefix: str = "m") -> list[bytes]:
    return [f"{prefix}{i}".encode() for i in range(n)]


def test_round_trip_through_to_pulsar(pulsar_url, pulsar_client, topic):
    out_topic = unique_topic("out")
    produce(pulsar_client, topic, values(200), batching=True)
    source = Stream.from_pulsar(pulsar_url, topic, "rt", initial_position="earliest")
    sink = source.map(bytes.upper).to_pulsar(pulsar_url, out_topic)
    source.start()
    try:
        wait_for(lambda: source.acknowledged == 200, what="200 acknowledgements")
        assert sink.sent == 200
        assert sink.metrics["backlog"] == 0
        metrics = source.metrics
        assert metrics["backlog"] == 0 and metrics["acknowledged"] == 200
        assert list(metrics["position"]) == [topic]
    finally:
        source.stop()
        sink.close()
    assert read_all(pulsar_client, out_topic, 200) == [v.upper() for v in values(200)]


def test_flush_returns_once_every_send_callback_has_run(pulsar_url, pulsar_client):
    # the client's own flush() can return before its last send callbacks have run; the
    # sink's flush() waits for them, so `sent` is whole when it returns (CI once saw less)
    for _ in range(5):
        out_topic = unique_topic("flush")
        source = Stream.from_iterable(values(3000))
        sink = source.to_pulsar(pulsar_url, out_topic)
        source.start()
        wait_for(lambda s=source: s.stopped, what="the source to finish")
        sink.flush()
        sent, backlog = sink.sent, sink.metrics["backlog"]
        sink.close()
        assert (sent, backlog) == (3000, 0)


def test_acknowledged_only_after_processing(pulsar_url, pulsar_client, topic):
    produce(pulsar_client, topic, values(3))
    gate = asyncio.Event()
    done: list[bytes] = []

    async def slow_write(x):
        await gate.wait()
        done.append(x)

    source = Stream.from_pulsar(
        pulsar_url, topic, "ack", initial_position="earliest", max_in_flight=2
    )
    source.sink(slow_write)
    source.buffer(10).sink(lambda x: None)
    source.start()
    try:
        wait_for(lambda: source.metrics["backlog"] == 1, what="one message in flight")
        time.sleep(0.3)
        assert source.acknowledged == 0 and done == []
        source.loop.add_callback(gate.set)
        wait_for(lambda: source.acknowledged == 3, what="3 acknowledgements")
        assert done == values(3)
    finally:
        source.stop()


def test_unacknowledged_messages_come_again(pulsar_url, pulsar_client, topic):
    produce(pulsar_client, topic, values(5))

    async def never(x):
        await asyncio.Event().wait()

    first = Stream.from_pulsar(pulsar_url, topic, "again", initial_position="earliest")
    first.drain_timeout = 0.2
    first.sink(never)
    first.start()
    wait_for(lambda: first.metrics["backlog"] == 1, what="the first message in the graph")
    first.stop()
    assert first.acknowledged == 0
    second = Stream.from_pulsar(pulsar_url, topic, "again")
    seen = second.sink_to_list()
    second.start()
    try:
        wait_for(lambda: len(seen) == 5, what="the 5 messages again")
        assert seen == values(5)
    finally:
        second.stop()


def test_failed_message_is_negatively_acknowledged_and_redelivered(
    pulsar_url, pulsar_client, topic, caplog
):
    produce(pulsar_client, topic, values(5))
    attempts: dict[bytes, int] = {}

    def flaky(x):
        attempts[x] = attempts.get(x, 0) + 1
        if x == b"m2" and attempts[x] == 1:
            raise ValueError("first try fails")
        return x

    source = Stream.from_pulsar(
        pulsar_url, topic, "nack", initial_position="earliest", nack_redelivery_delay=0.2
    )
    seen = source.map(flaky).sink_to_list()
    source.start()
    try:
        wait_for(lambda: len(seen) == 5, what="5 processed messages")
        wait_for(lambda: source.acknowledged == 5, what="5 acknowledgements")
        assert sorted(seen) == values(5)
        assert attempts[b"m2"] == 2 and source.nacked == 1
        assert not source.stopped
    finally:
        source.stop()
    assert "negatively acknowledged" in caplog.text


def test_on_failure_stop_stops_the_source_naming_the_message(pulsar_url, pulsar_client, topic):
    produce(pulsar_client, topic, values(3))

    def fail(x):
        raise ValueError("bad")

    source = Stream.from_pulsar(
        pulsar_url, topic, "stop", initial_position="earliest", on_failure="stop"
    )
    source.map(fail).sink(lambda x: None)
    source.start()
    wait_for(lambda: source.stopped, what="the source to stop")
    assert isinstance(source.error, ValueError)
    assert any(topic in note for note in source.error.__notes__)
    assert source.nacked == 1


def test_backpressure_bounds_messages_in_flight(pulsar_url, pulsar_client, topic):
    produce(pulsar_client, topic, values(50), batching=True)
    gate = asyncio.Event()

    async def held(x):
        await gate.wait()

    source = Stream.from_pulsar(
        pulsar_url, topic, "bp", initial_position="earliest", max_in_flight=5
    )
    source.buffer(100).sink(held)
    source.start()
    try:
        wait_for(lambda: source.metrics["backlog"] == 5, what="5 messages in flight")
        time.sleep(0.5)
        assert source.metrics["backlog"] == 5
        source.loop.add_callback(gate.set)
        wait_for(lambda: source.acknowledged == 50, what="50 acknowledgements")
    finally:
        source.stop()


def test_replay_by_message_id_and_by_time(pulsar_url, pulsar_client, topic):
    produce(pulsar_client, topic, values(3, "a"))
    time.sleep(0.05)
    cut = time.time()
    time.sleep(0.05)
    produce(pulsar_client, topic, values(3, "b"))
    source = Stream.from_pulsar(pulsar_url, topic, "replay", initial_position="earliest", keys=True)
    records = source.sink_to_list()
    source.start()
    wait_for(lambda: source.acknowledged == 6, what="6 acknowledgements")
    source.stop()
    assert [r["value"] for r in records] == values(3, "a") + values(3, "b")

    by_time = Stream.from_pulsar(pulsar_url, topic, "replay", start_time=cut)
    again = by_time.sink_to_list()
    by_time.start()
    wait_for(lambda: len(again) == 3, what="the 3 messages after the time")
    by_time.stop()
    assert again == values(3, "b")

    earliest = Stream.from_pulsar(pulsar_url, topic, "replay", start_message_id="earliest")
    everything = earliest.sink_to_list()
    earliest.start()
    wait_for(lambda: len(everything) == 6, what="all 6 messages")
    earliest.stop()
    assert everything == values(3, "a") + values(3, "b")

    after = records[3]["message_id"]  # b0's id: the seek goes back to it
    by_id = Stream.from_pulsar(pulsar_url, topic, "replay", start_message_id=after)
    from_id = by_id.sink_to_list()
    by_id.start()
    wait_for(lambda: len(from_id) >= 2, what="the messages from the id")
    by_id.stop()
    assert from_id[-2:] == values(3, "b")[1:]


def test_checkpoint_position_resumes_after_the_last_message(pulsar_url, pulsar_client, topic):
    produce(pulsar_client, topic, values(10))
    source = Stream.from_pulsar(pulsar_url, topic, "cp", initial_position="earliest")
    positions: list[object] = []
    seen: list[bytes] = []

    def record(x):
        seen.append(x)
        if x == b"m4":
            positions.append(source.snapshot())

    source.sink(record)
    source.start()
    wait_for(lambda: source.acknowledged == 10, what="10 acknowledgements")
    source.stop()
    position = positions[0]
    assert list(position) == [topic] and position[topic]["inclusive"] is False

    resumed = Stream.from_pulsar(pulsar_url, topic, "cp")
    resumed.restore(position)
    after = resumed.sink_to_list()
    resumed.start()
    try:
        wait_for(lambda: len(after) == 5, what="the 5 messages after the position")
        time.sleep(0.3)
        assert after == values(10)[5:]
    finally:
        resumed.stop()
