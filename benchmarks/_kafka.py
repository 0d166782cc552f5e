"""Kafka helpers of the benchmark scripts: a private broker, fresh topics, fast loading.

Benchmarks do not import from ``tests/``; this module holds the little they need:
start and stop a broker with ``scripts/kafka-broker`` (a temporary state directory,
stopped at exit), create and delete topics, and load a topic quickly with a raw
``confluent_kafka.Producer``.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

__all__ = [
    "BROKER_SCRIPT",
    "broker",
    "create_topic",
    "delete_topics",
    "load_topic",
    "start_broker",
    "stop_broker",
    "unique_name",
]

ROOT = Path(__file__).resolve().parent.parent
BROKER_SCRIPT = ROOT / "scripts" / "kafka-broker"


def _broker_script(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(BROKER_SCRIPT), *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def start_broker(state_dir: Path, heap: str | None = None) -> str:
    """Start a broker in ``state_dir``; return its ``host:port``.

    The broker stops by itself if this process dies (``--owner-pid``).
    """
    args = ["start", "--state-dir", str(state_dir), "--owner-pid", str(os.getpid())]
    if heap:
        args += ["--heap", heap]
    result = _broker_script(*args)
    if result.returncode != 0:
        raise RuntimeError(
            f"scripts/kafka-broker start failed (exit {result.returncode}):\n"
            f"{result.stderr.strip()}"
        )
    return result.stdout.strip()


def stop_broker(state_dir: Path) -> None:
    result = _broker_script("stop", "--state-dir", str(state_dir))
    if result.returncode != 0:
        raise RuntimeError(f"scripts/kafka-broker stop failed:\n{result.stderr.strip()}")


@contextlib.contextmanager
def broker(bootstrap: str | None = None, heap: str | None = None) -> Iterator[str]:
    """Yield ``bootstrap`` if given, else the address of a private broker stopped at exit."""
    if bootstrap:
        yield bootstrap
        return
    with tempfile.TemporaryDirectory(prefix="millstream-bench-kafka-") as tmp:
        state_dir = Path(tmp) / "broker"
        address = start_broker(state_dir, heap)
        try:
            yield address
        finally:
            stop_broker(state_dir)


def unique_name(prefix: str = "millstream-bench") -> str:
    """A topic or group name no other run uses."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def _admin(bootstrap: str) -> Any:
    from confluent_kafka.admin import AdminClient

    return AdminClient({"bootstrap.servers": bootstrap})


def create_topic(bootstrap: str, name: str, partitions: int = 1, timeout: float = 30.0) -> str:
    """Create ``name`` and wait until every partition has a leader."""
    from confluent_kafka.admin import NewTopic

    admin = _admin(bootstrap)
    futures = admin.create_topics(
        [NewTopic(name, num_partitions=partitions, replication_factor=1)],
        operation_timeout=timeout,
    )
    futures[name].result(timeout=timeout)
    deadline = time.monotonic() + timeout
    while True:
        topic = admin.list_topics(topic=name, timeout=timeout).topics.get(name)
        if (
            topic is not None
            and topic.error is None
            and len(topic.partitions) == partitions
            and all(p.leader >= 0 for p in topic.partitions.values())
        ):
            return name
        if time.monotonic() > deadline:
            raise TimeoutError(f"topic {name!r}: a partition has no leader after {timeout} s")
        time.sleep(0.05)


def delete_topics(bootstrap: str, names: list[str], timeout: float = 30.0) -> None:
    """Delete ``names``; a topic already gone is fine, any other failure raises."""
    if not names:
        return
    from confluent_kafka import KafkaError, KafkaException

    admin = _admin(bootstrap)  # kept alive until the answers came (destroying it aborts them)
    for future in admin.delete_topics(names, operation_timeout=timeout).values():
        try:
            future.result(timeout=timeout)
        except KafkaException as error:
            if error.args[0].code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
                raise


def load_topic(
    bootstrap: str,
    topic: str,
    values: Iterable[bytes],
    partitions: int = 1,
    timeout: float = 120.0,
    keyed: bool = False,
    partitioner: Callable[[bytes], int] | None = None,
) -> int:
    """Write ``values`` round robin: value ``i`` to partition ``i % partitions`` (or to
    ``partitioner(value)``); with ``keyed``, each value is its record's key too.

    A raw ``Producer`` with large batches; waits until every message is acknowledged
    and raises on any delivery error. Returns the number of messages written.
    """
    from confluent_kafka import Producer

    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "linger.ms": 20,
            "batch.size": 1_000_000,
            "queue.buffering.max.messages": 1_000_000,
            "acks": 1,
        }
    )
    errors: list[Any] = []

    def delivered(error: Any, _msg: Any) -> None:
        if error is not None:
            errors.append(error)

    produce = producer.produce
    n = 0
    for n, value in enumerate(values, 1):
        while True:
            try:
                produce(
                    topic,
                    value,
                    value if keyed else None,
                    partitioner(value) if partitioner else (n - 1) % partitions,
                    delivered,
                )
                break
            except BufferError:
                producer.poll(0.05)
        if n % 10_000 == 0:
            producer.poll(0)
    left = producer.flush(timeout)
    if left:
        raise TimeoutError(f"load_topic: {left} message(s) of {topic!r} not delivered")
    if errors:
        raise RuntimeError(f"load_topic: {len(errors)} delivery error(s), first: {errors[0]}")
    return n
