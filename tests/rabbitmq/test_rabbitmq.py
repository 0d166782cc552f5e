"""``from_rabbitmq`` and ``to_rabbitmq`` against a real broker (tests/rabbitmq/conftest.py)."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid

import pytest

from millstream import Stream
from millstream.exceptions import (
    RabbitMQConnectError,
    RabbitMQDeliveryError,
    UnknownQueueError,
)
from millstream.testing import wait_for

from ._server import free_port
from .helpers import counts, declare_queue, drain, publish, unacked


def bodies(n: int, tag: str = "m") -> list[bytes]:
    return [f"{tag}-{i}".encode() for i in range(n)]


def test_round_trip_through_two_queues(rabbitmq):
    url = rabbitmq.url
    q_in, q_out = declare_queue(url), declare_queue(url)
    data = bodies(300)
    publish(url, q_in, data)
    source = Stream.from_rabbitmq(url, q_in, prefetch=50)
    out = source.map(lambda b: b.upper()).to_rabbitmq(url, routing_key=q_out)
    source.start()
    try:
        wait_for(lambda: out.confirmed == len(data), 30, period=0.05)
        wait_for(lambda: source.metrics["backlog"] == 0, 10, period=0.05)
    finally:
        source.stop()
    assert sorted(drain(url, q_out, expect=len(data))) == sorted(b.upper() for b in data)
    assert counts(url, q_in) == 0  # every input acknowledged
    assert rabbitmq_unacked(rabbitmq, q_in) == 0
    assert source.acked == len(data)
    out.destroy()


def rabbitmq_unacked(server, queue: str) -> int:
    return unacked(server, queue)[1]


def test_records_carry_headers_and_properties(rabbitmq):
    url = rabbitmq.url
    q_in, q_out = declare_queue(url), declare_queue(url)
    source = Stream.from_rabbitmq(url, q_in, records=True)
    seen = source.sink_to_list()
    first = Stream()
    first_out = first.to_rabbitmq(url, routing_key=q_in)
    first.emit({"body": "hi", "headers": {"k": "v"}, "message_id": "id-1"})
    first_out.destroy()
    source.start()
    try:
        wait_for(lambda: len(seen) == 1, 20, period=0.05)
    finally:
        source.stop()
    record = seen[0]
    assert record["body"] == b"hi"
    assert record["headers"] == {"k": "v"}
    assert record["message_id"] == "id-1"
    assert record["routing_key"] == q_in and record["redelivered"] is False
    assert counts(url, q_out) == 0


def test_ack_only_after_processing_by_a_slow_async_sink(rabbitmq):
    url = rabbitmq.url
    queue = declare_queue(url)
    publish(url, queue, bodies(5))
    gate = threading.Event()
    done: list[bytes] = []

    async def slow(x):
        while not gate.is_set():  # noqa: ASYNC110 (set from the test thread)
            await asyncio.sleep(0.02)
        done.append(x)

    source = Stream.from_rabbitmq(url, queue, prefetch=10)
    source.buffer(10).sink(slow)
    source.start()
    try:
        wait_for(lambda: source.metrics["backlog"] == 5, 20, period=0.05)
        time.sleep(0.3)
        # delivered, in the graph, not acknowledged: the broker says so too
        assert unacked(rabbitmq, queue) == (0, 5)
        assert source.acked == 0
        gate.set()
        wait_for(lambda: len(done) == 5, 20, period=0.05)
        wait_for(lambda: unacked(rabbitmq, queue) == (0, 0), 20, period=0.2)
    finally:
        gate.set()
        source.stop()
    assert source.acked == 5


def test_prefetch_limits_messages_in_flight(rabbitmq):
    url = rabbitmq.url
    queue = declare_queue(url)
    publish(url, queue, bodies(40))
    gate = threading.Event()

    async def held(x):
        while not gate.is_set():  # noqa: ASYNC110 (set from the test thread)
            await asyncio.sleep(0.02)

    source = Stream.from_rabbitmq(url, queue, prefetch=7)
    source.buffer(100).sink(held)
    source.start()
    try:
        wait_for(lambda: source.metrics["backlog"] == 7, 20, period=0.05)
        time.sleep(0.5)
        assert source.metrics["backlog"] == 7  # no more than the prefetch
        assert unacked(rabbitmq, queue) == (33, 7)
        wait_for(lambda: source.metrics["lag"] == 33, 10, period=0.1)
        gate.set()
        wait_for(lambda: source.acked == 40, 30, period=0.05)
    finally:
        gate.set()
        source.stop()


def test_failure_requeues_and_stops_the_source(rabbitmq):
    url = rabbitmq.url
    queue = declare_queue(url)
    publish(url, queue, [b"ok-1", b"bad", b"ok-2"])

    def check(x):
        if x == b"bad":
            raise ValueError("cannot take it")
        return x

    source = Stream.from_rabbitmq(url, queue, prefetch=1)
    seen = source.map(check).sink_to_list()
    source.start()
    wait_for(lambda: source.stopped, 20, period=0.05)
    assert isinstance(source.error, ValueError)
    assert any("delivery tag" in n for n in getattr(source.error, "__notes__", []))
    assert seen == [b"ok-1"]
    assert source.requeued == 1
    # the failed message and the one after it are back in the queue, none acknowledged
    assert sorted(drain(url, queue, expect=2)) == [b"bad", b"ok-2"]


def test_failure_dead_letters_and_goes_on(rabbitmq):
    url = rabbitmq.url
    dead = declare_queue(url)
    queue = f"q-{uuid.uuid4().hex[:10]}"

    def check(x):
        if x.startswith(b"bad"):
            raise ValueError("poison")
        return x

    # the default exchange routes dead letters to the queue named by the routing key
    source = Stream.from_rabbitmq(
        url,
        queue,
        on_failure="dead_letter",
        declare=True,
        dead_letter_exchange="",
        queue_arguments={"x-dead-letter-routing-key": dead},
    )
    seen = source.map(check).sink_to_list()
    source.start()
    try:
        publish(url, queue, [b"a", b"bad-1", b"b", b"bad-2", b"c"])
        wait_for(lambda: len(seen) == 3 and source.dead_lettered == 2, 20, period=0.05)
        assert not source.stopped
    finally:
        source.stop()
    assert seen == [b"a", b"b", b"c"]
    assert sorted(drain(url, dead, expect=2)) == [b"bad-1", b"bad-2"]
    assert counts(url, queue) == 0


def test_missing_queue_is_named(rabbitmq):
    source = Stream.from_rabbitmq(rabbitmq.url, "no-such-queue")
    with pytest.raises(UnknownQueueError, match="'no-such-queue' does not exist"):
        source.start()
    assert source.stopped


def test_declare_creates_the_queue(rabbitmq):
    queue = f"q-{uuid.uuid4().hex[:10]}"
    source = Stream.from_rabbitmq(rabbitmq.url, queue, declare=True)
    source.start()
    source.stop()
    assert counts(rabbitmq.url, queue) == 0


def test_unreachable_broker_is_one_line_naming_it():
    port = free_port()
    source = Stream.from_rabbitmq(f"amqp://guest:guest@127.0.0.1:{port}/", "q", connect_timeout=5)
    with pytest.raises(RabbitMQConnectError) as info:
        source.start()
    message = str(info.value)
    assert f"127.0.0.1:{port}" in message and "\n" not in message
    sink_input = Stream()
    sink_input.to_rabbitmq(f"amqp://127.0.0.1:{port}/", routing_key="q", connect_timeout=5)
    with pytest.raises(RabbitMQConnectError, match=f"127.0.0.1:{port}"):
        sink_input.emit(b"x")


def test_publisher_confirms_release_refs_and_name_failures(rabbitmq):
    url = rabbitmq.url
    queue = declare_queue(url)
    source = Stream()
    out = source.to_rabbitmq(url, routing_key=queue, max_in_flight=3)
    for b in bodies(10):
        source.emit(b)
    out.flush()
    assert out.confirmed == 10 and out.metrics["backlog"] == 0
    assert counts(url, queue) == 10
    # unroutable (no such queue): the broker returns it; the error names the routing key
    bad = Stream()
    bad_out = bad.to_rabbitmq(url, routing_key="nowhere-" + uuid.uuid4().hex[:6])
    with pytest.raises(RabbitMQDeliveryError, match="unroutable"):
        bad.emit(b"lost?")
    bad_out.destroy()
    # an exchange that does not exist
    missing = Stream()
    missing.to_rabbitmq(url, exchange="no-such-exchange", routing_key="k")
    with pytest.raises(UnknownQueueError, match="'no-such-exchange'"):
        missing.emit(b"x")
    with pytest.raises(TypeError, match="to_rabbitmq: elements must be bytes"):
        source.emit(42)
    out.destroy()


def test_sink_refs_released_only_when_confirmed(rabbitmq):
    """A from_rabbitmq -> to_rabbitmq copy acknowledges its input only after the output's
    confirm: an unroutable output leaves the input unacknowledged (requeued)."""
    url = rabbitmq.url
    q_in = declare_queue(url)
    publish(url, q_in, [b"x"])
    source = Stream.from_rabbitmq(url, q_in)
    out = source.to_rabbitmq(url, routing_key="nowhere-" + uuid.uuid4().hex[:6])
    source.start()
    wait_for(lambda: source.stopped, 20, period=0.05)
    out.destroy()
    assert isinstance(source.error, RabbitMQDeliveryError)
    assert drain(url, q_in, expect=1) == [b"x"]
