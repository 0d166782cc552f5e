"""What the Pulsar tests share: producing input, reading output."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any


def produce(client: Any, topic: str, values: Iterable[bytes], batching: bool = False) -> list[Any]:
    """Send ``values`` to ``topic`` and wait for every acknowledgement; their message ids."""
    producer = client.create_producer(topic, batching_enabled=batching, block_if_queue_full=True)
    ids = [producer.send(v) for v in values] if not batching else _send_batched(producer, values)
    producer.close()
    return ids


def _send_batched(producer: Any, values: Iterable[bytes]) -> list[Any]:
    import pulsar

    ids: list[Any] = []
    failures: list[Any] = []

    def sent(result: Any, message_id: Any) -> None:
        (ids if result == pulsar.Result.Ok else failures).append(message_id)

    for v in values:
        producer.send_async(v, sent)
    producer.flush()
    assert not failures, f"{len(failures)} test messages were not sent"
    return ids


def read_all(client: Any, topic: str, count: int, timeout: float = 30.0) -> list[bytes]:
    """The first ``count`` messages of ``topic`` (from the earliest), through a fresh
    subscription."""
    import pulsar

    consumer = client.subscribe(
        topic, f"reader-{time.monotonic_ns()}", initial_position=pulsar.InitialPosition.Earliest
    )
    values: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while len(values) < count and time.monotonic() < deadline:
            try:
                message = consumer.receive(500)
            except pulsar.Timeout:
                continue
            values.append(message.data())
            consumer.acknowledge(message)
    finally:
        consumer.close()
    return values


def wait_for(condition: Any, timeout: float = 30.0, what: str = "the condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)
