"""Small producer/consumer-group helpers for the source tests."""

from __future__ import annotations

import uuid

from confluent_kafka import Consumer, Producer, TopicPartition


def produce(bootstrap, topic, values, partition=None, keys=None):
    """Write ``values`` (bytes or None) in order; wait until every one is acknowledged."""
    errors = []
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
    for i, value in enumerate(values):
        kwargs = {}
        if partition is not None:
            kwargs["partition"] = partition(i) if callable(partition) else partition
        if keys is not None:
            kwargs["key"] = keys[i]
        producer.produce(
            topic, value=value, on_delivery=lambda e, m: e and errors.append(e), **kwargs
        )
    assert producer.flush(10) == 0
    assert errors == []


def committed(bootstrap, group, topic, partitions):
    """The group's committed offset per partition (None where nothing is committed)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        tps = consumer.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
    finally:
        consumer.close()
    return {tp.partition: (tp.offset if tp.offset >= 0 else None) for tp in tps}


def params(bootstrap, group=None, **extra):
    """Consumer params for a fresh group reading from the earliest offset."""
    out = {
        "bootstrap.servers": bootstrap,
        "group.id": group or f"millstream-test-{uuid.uuid4().hex[:10]}",
        "auto.offset.reset": "earliest",
    }
    out.update(extra)
    return out
