"""Poison records from a real broker go to a dead-letter stream byte-identical; the rest is
processed once, and the group's committed offsets move past the poison records."""

from __future__ import annotations

import json
import time
import uuid

from confluent_kafka import Consumer, Producer, TopicPartition

from millstream import Stream
from millstream.testing import wait_for

N = 40
POISON = {5, 6, 17, 33}  # indexes of records whose value is not JSON


def _record(i):
    key = f"k{i}".encode()
    poison = b"\xff\xfe not json \x00" + bytes([i])
    value = poison if i in POISON else json.dumps({"n": i}).encode()
    headers = [("trace", f"t{i}".encode()), ("bin", bytes([0, i, 255]))]
    return key, value, headers


def _produce(bootstrap, topic, partitions):
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
    errors = []
    for i in range(N):
        key, value, headers = _record(i)
        producer.produce(
            topic,
            value=value,
            key=key,
            headers=headers,
            partition=i % partitions,
            on_delivery=lambda e, m: e and errors.append(e),
        )
    assert producer.flush(10) == 0 and errors == []


def _committed(bootstrap, group, topic, partitions):
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        tps = consumer.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
    finally:
        consumer.close()
    return {tp.partition: tp.offset for tp in tps}


def _decode(record):
    return json.loads(record["value"])["n"]


def test_poison_records_are_dead_lettered_byte_identical(kafka_bootstrap, kafka_topic):
    partitions = 2
    topic = kafka_topic(partitions)
    _produce(kafka_bootstrap, topic, partitions)
    group = f"millstream-errors-{uuid.uuid4().hex[:10]}"
    config = {
        "bootstrap.servers": kafka_bootstrap,
        "group.id": group,
        "auto.offset.reset": "earliest",
    }
    source = Stream.from_kafka(topic, config, poll_interval=0.05, keys=True)
    dead = Stream()
    letters = dead.sink_to_list()
    decode = source.map(_decode, on_error=dead)
    out = decode.sink_to_list()
    source.start()
    try:
        wait_for(lambda: len(out) + len(letters) == N, 20)
    finally:
        source.stop()

    assert sorted(out) == sorted(set(range(N)) - POISON)  # the rest, each once
    assert len(out) == N - len(POISON)
    assert decode.errors.dead_lettered == len(POISON)
    by_key = {}
    for letter in letters:
        record = letter.record
        assert record is letter.element
        by_key[record["key"]] = letter
    assert sorted(by_key) == sorted(f"k{i}".encode() for i in POISON)
    for i in POISON:
        letter = by_key[f"k{i}".encode()]
        key, value, headers = _record(i)
        record = letter.record
        assert record["key"] == key
        assert record["value"] == value and type(record["value"]) is bytes
        assert record["headers"] == headers
        assert record["topic"] == topic and record["partition"] == i % partitions
        assert record["offset"] == i // partitions
        assert letter.positions == (
            {"topic": topic, "partition": i % partitions, "offset": i // partitions},
        )
        assert letter.error_type == "JSONDecodeError" or letter.error_type == "UnicodeDecodeError"
        assert letter.function == "_decode" and letter.node == str(decode)
        assert "Traceback" in letter.traceback
    # the partitions moved on: committed past every record, poison ones included
    ends = {p: len(range(p, N, partitions)) for p in range(partitions)}
    wait_for(lambda: _committed(kafka_bootstrap, group, topic, partitions) == ends, 10)


def _read_all(bootstrap, topic, count, timeout=20.0):
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"millstream-reader-{uuid.uuid4().hex[:10]}",
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([topic])
    messages = []
    try:
        deadline = time.monotonic() + timeout
        while len(messages) < count and time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is not None and msg.error() is None:
                messages.append(msg)
        # nothing more arrives
        extra = consumer.poll(1.0)
        assert extra is None or extra.error() is not None
    finally:
        consumer.close()
    return messages


def test_dead_letters_to_a_kafka_topic(kafka_bootstrap, kafka_topic):
    partitions = 2
    topic = kafka_topic(partitions)
    dead_topic = kafka_topic(1)
    _produce(kafka_bootstrap, topic, partitions)
    group = f"millstream-errors-{uuid.uuid4().hex[:10]}"
    config = {
        "bootstrap.servers": kafka_bootstrap,
        "group.id": group,
        "auto.offset.reset": "earliest",
    }
    source = Stream.from_kafka(topic, config, poll_interval=0.05, keys=True)
    dead = Stream()
    writer = dead.to_kafka_dead_letters(dead_topic, {"bootstrap.servers": kafka_bootstrap})
    out = source.map(_decode, on_error=dead).sink_to_list()
    ends = {p: len(range(p, N, partitions)) for p in range(partitions)}
    source.start()
    try:
        wait_for(lambda: len(out) == N - len(POISON), 20)
        wait_for(lambda: _committed(kafka_bootstrap, group, topic, partitions) == ends, 10)
    finally:
        source.stop()
    assert str(writer) == f"<to_kafka_dead_letters: {dead_topic}>"
    messages = _read_all(kafka_bootstrap, dead_topic, len(POISON))
    assert len(messages) == len(POISON)
    for msg in messages:
        i = int(msg.key()[1:])
        assert i in POISON
        key, value, headers = _record(i)
        assert msg.key() == key and msg.value() == value
        got = msg.headers()
        assert got[: len(headers)] == headers  # the original headers first, unchanged
        extra = dict(got[len(headers) :])
        assert extra["millstream.function"] == b"_decode"
        assert extra["millstream.source.topic"] == topic.encode()
        assert extra["millstream.source.partition"] == str(i % partitions).encode()
        assert extra["millstream.source.offset"] == str(i // partitions).encode()
        assert extra["millstream.error.type"] in (b"JSONDecodeError", b"UnicodeDecodeError")
