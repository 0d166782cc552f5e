"""The test broker itself: a real Kafka broker that stores and serves messages exactly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections import defaultdict

import pytest
from confluent_kafka import Consumer, KafkaError, Message, Producer

from ._helpers import (
    BOOTSTRAP_ENV,
    BROKER_SCRIPT,
    ROOT,
    KafkaUnavailable,
    bootstrap_from_env,
    broker_script,
    delete_topics,
    resolve_bootstrap,
    unique_topic_name,
)


def produce(bootstrap, topic, messages):
    """Send (partition, key, value) triples and wait until every one is acknowledged."""
    errors: list[KafkaError] = []

    def delivered(error: KafkaError | None, message: Message) -> None:
        if error is not None:
            errors.append(error)

    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
    for partition, key, value in messages:
        kwargs = {} if partition is None else {"partition": partition}
        producer.produce(topic, value=value, key=key, on_delivery=delivered, **kwargs)
    assert producer.flush(10) == 0
    assert errors == []


def consume(bootstrap, topic, count, timeout=10.0):
    """Read ``count`` messages in a fresh consumer group from the earliest offset."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"millstream-test-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    messages: list[Message] = []
    deadline = time.monotonic() + timeout
    try:
        while len(messages) < count and time.monotonic() < deadline:
            for message in consumer.consume(count - len(messages), timeout=0.2):
                assert message.error() is None, message.error()
                messages.append(message)
    finally:
        consumer.close()
    return messages


def test_produce_and_consume_100_messages_over_3_partitions(kafka_bootstrap, kafka_topic):
    topic = kafka_topic(partitions=3)
    triples = [(i % 3, f"k{i}".encode(), f"v{i}".encode()) for i in range(100)]
    produce(kafka_bootstrap, topic, triples)

    messages = consume(kafka_bootstrap, topic, 100)

    by_partition = defaultdict(list)
    for m in messages:
        by_partition[m.partition()].append((m.offset(), m.key(), m.value()))
    assert len(messages) == 100
    assert {m.topic() for m in messages} == {topic}
    for partition in range(3):
        sent = [i for i in range(100) if i % 3 == partition]
        assert by_partition[partition] == [
            (offset, f"k{i}".encode(), f"v{i}".encode()) for offset, i in enumerate(sent)
        ]


def test_keyed_messages_keep_their_partition_and_order(kafka_bootstrap, kafka_topic):
    topic = kafka_topic(partitions=3)
    keys = [b"alpha", b"beta", b"gamma", b"delta"]
    produce(kafka_bootstrap, topic, [(None, keys[i % 4], str(i).encode()) for i in range(40)])

    messages = consume(kafka_bootstrap, topic, 40)

    per_key = defaultdict(list)
    partitions = defaultdict(set)
    for m in sorted(messages, key=lambda m: (m.partition(), m.offset())):
        per_key[m.key()].append(int(m.value()))
        partitions[m.key()].add(m.partition())
    assert len(messages) == 40
    assert all(len(p) == 1 for p in partitions.values())  # one key, one partition
    assert per_key == {key: list(range(k, 40, 4)) for k, key in enumerate(keys)}


def test_topic_helpers_create_and_delete(kafka_admin, kafka_topic):
    topic = kafka_topic(partitions=2)
    metadata = kafka_admin.list_topics(topic=topic, timeout=5).topics[topic]
    assert sorted(metadata.partitions) == [0, 1]
    assert unique_topic_name() != unique_topic_name()

    delete_topics(kafka_admin, [topic])
    assert topic not in kafka_admin.list_topics(timeout=5).topics
    delete_topics(kafka_admin, [])  # nothing to do


# -- where the broker comes from ---------------------------------------------------------------


def test_bootstrap_from_env():
    assert bootstrap_from_env({}) is None
    assert bootstrap_from_env({BOOTSTRAP_ENV: "  "}) is None
    assert bootstrap_from_env({BOOTSTRAP_ENV: " 10.0.0.1:9092 "}) == "10.0.0.1:9092"


def test_resolve_bootstrap_prefers_the_environment(kafka_bootstrap):
    def start():
        raise AssertionError("must not start a broker")

    assert resolve_bootstrap({BOOTSTRAP_ENV: kafka_bootstrap}, start) == (kafka_bootstrap, False)
    assert resolve_bootstrap({}, lambda: "127.0.0.1:1") == ("127.0.0.1:1", True)


def test_resolve_bootstrap_rejects_an_unreachable_broker(unused_port):
    with pytest.raises(KafkaUnavailable, match="nothing accepts connections"):
        resolve_bootstrap({BOOTSTRAP_ENV: f"127.0.0.1:{unused_port}"}, lambda: "unused")


def test_session_broker_matches_the_environment(kafka_bootstrap):
    configured = bootstrap_from_env(os.environ)
    if configured is not None:
        assert kafka_bootstrap == configured
    else:
        host, port = kafka_bootstrap.split(":")
        assert host == "127.0.0.1" and int(port) > 0


def run_child_pytest(bootstrap):
    """This file's test_session_broker_matches_the_environment in a child pytest session."""
    test = f"{__file__}::test_session_broker_matches_the_environment"
    return subprocess.run(
        [sys.executable, "-m", "pytest", test, "-q", "-p", "no:cacheprovider"],
        cwd=ROOT,
        env=dict(os.environ, **{BOOTSTRAP_ENV: bootstrap}),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_fixture_uses_the_broker_in_the_environment(kafka_bootstrap):
    result = run_child_pytest(kafka_bootstrap)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout
    assert "kafka-broker: broker ready" not in result.stdout + result.stderr


def test_fixture_fails_rather_than_skips_without_a_broker(unused_port):
    result = run_child_pytest(f"127.0.0.1:{unused_port}")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "1 error" in result.stdout and "skipped" not in result.stdout
    assert "no Kafka broker for the tests" in result.stdout
    assert "nothing accepts connections" in result.stdout


# -- scripts/kafka-broker ----------------------------------------------------------------------


def test_script_start_status_stop(tmp_path):
    state_dir = tmp_path / "broker"
    started = broker_script("start", "--state-dir", str(state_dir))
    assert started.returncode == 0, started.stderr
    bootstrap = started.stdout.strip()
    state = json.loads((state_dir / "broker.json").read_text())
    try:
        assert bootstrap == f"127.0.0.1:{state['port']}"
        assert "broker ready at" in started.stderr
        status = broker_script("status", "--state-dir", str(state_dir))
        assert (status.returncode, status.stdout.strip()) == (0, bootstrap)
        again = broker_script("start", "--state-dir", str(state_dir))  # already running
        assert (again.returncode, again.stdout.strip()) == (0, bootstrap)
        assert "already running" in again.stderr
    finally:
        stopped = broker_script("stop", "--state-dir", str(state_dir))
    assert stopped.returncode == 0, stopped.stderr
    assert not os.path.exists(f"/proc/{state['pid']}") or _is_zombie(state["pid"])
    assert not state_dir.exists()
    status = broker_script("status", "--state-dir", str(state_dir))
    assert (status.returncode, status.stdout) == (1, "")
    assert broker_script("stop", "--state-dir", str(state_dir)).returncode == 0  # idempotent


def _is_zombie(pid):
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[-1].split()[0] == "Z"


def test_script_reports_a_broker_that_cannot_start(tmp_path):
    state_dir = tmp_path / "broker"
    result = broker_script(
        "start", "--state-dir", str(state_dir), "--heap", "1m", "--timeout", "30"
    )
    assert result.returncode == 1
    assert result.stdout == ""
    assert "error: the Kafka broker exited with code 1 while starting" in result.stderr
    assert "Too small maximum heap" in result.stderr  # the log tail
    broker_script("stop", "--state-dir", str(state_dir))


def test_script_usage():
    result = subprocess.run(
        [str(BROKER_SCRIPT), "--help"], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 0
    assert "start | stop | status" in result.stdout
