"""scripts/kafka-broker restart and stop --keep-data: same port, same data, watcher kept.

Each test runs its own broker in tmp_path (never the session's broker).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from ._helpers import (
    BROKER_SCRIPT,
    FAST_RESTART,
    broker_script,
    create_topic,
    start_broker,
    stop_broker,
    unique_topic_name,
)


@pytest.fixture
def private_broker(tmp_path):
    """``(state_dir, bootstrap)`` of a broker of this test alone, stopped afterwards."""
    state_dir = tmp_path / "broker"
    bootstrap = start_broker(state_dir, FAST_RESTART)
    try:
        yield state_dir, bootstrap
    finally:
        stop_broker(state_dir)


def _state(state_dir):
    return json.loads((state_dir / "broker.json").read_text())


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return False


def _write(bootstrap, topic, values):
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    for value in values:
        producer.produce(topic, value=value)
    assert producer.flush(10) == 0


def _read_all(bootstrap, topic, count, group=None, commit=False, timeout=15.0):
    """Read ``count`` values from the start (or the group's offsets); commit them if asked."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group or f"restart-test-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    values = []
    deadline = time.monotonic() + timeout
    try:
        while len(values) < count and time.monotonic() < deadline:
            for message in consumer.consume(count - len(values), timeout=0.2):
                if message.error() is None:
                    values.append(message.value())
        if commit:
            consumer.commit(asynchronous=False)
    finally:
        consumer.close()
    return values


def _committed(bootstrap, group, topic):
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        (tp,) = consumer.committed([TopicPartition(topic, 0)], timeout=10)
    finally:
        consumer.close()
    return tp.offset


def _check_data_survived(bootstrap, topic, values, group):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    assert topic in admin.list_topics(timeout=10).topics
    assert _read_all(bootstrap, topic, len(values)) == values
    assert _committed(bootstrap, group, topic) == len(values)


def _restart(state_dir, bootstrap, kill):
    """``restart [--kill]``: the same address, a new pid, the old one gone."""
    before = _state(state_dir)
    args = ["restart", "--state-dir", str(state_dir), "--down", "0.5"]
    started = time.monotonic()
    result = broker_script(*args, *(["--kill"] if kill else []))
    took = time.monotonic() - started

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == bootstrap  # the address is all it prints, and unchanged
    how = "killed (SIGKILL)" if kill else "stopped"
    assert f"{how} the broker at {bootstrap} (pid {before['pid']})" in result.stderr
    assert "broker ready again at" in result.stderr
    assert took < 20, f"restart took {took:.1f} s"
    after = _state(state_dir)
    assert not _alive(before["pid"])
    assert after["pid"] != before["pid"] and _alive(after["pid"])
    assert "down" not in after
    assert {k: v for k, v in after.items() if k != "pid"} == {
        k: v for k, v in before.items() if k != "pid"
    }


def test_restart_and_resume_keep_port_topics_records_and_committed_offsets(private_broker):
    state_dir, bootstrap = private_broker
    admin = AdminClient({"bootstrap.servers": bootstrap})
    topic = create_topic(admin, unique_topic_name("restart"))
    values = [f"v{i}".encode() for i in range(50)]
    _write(bootstrap, topic, values)
    group = f"restart-group-{uuid.uuid4().hex[:8]}"
    assert _read_all(bootstrap, topic, 50, group=group, commit=True) == values

    _restart(state_dir, bootstrap, kill=False)  # SIGTERM: a clean shutdown
    _check_data_survived(bootstrap, topic, values, group)

    _write(bootstrap, topic, [b"after"])  # it takes new records
    values.append(b"after")
    assert _read_all(bootstrap, topic, 1, group=group, commit=True) == [b"after"]
    _restart(state_dir, bootstrap, kill=True)  # SIGKILL: a crash
    _check_data_survived(bootstrap, topic, values, group)

    # stop --keep-data, then start: resumed
    stopped = broker_script("stop", "--keep-data", "--state-dir", str(state_dir))
    assert stopped.returncode == 0, stopped.stderr
    assert "data kept" in stopped.stderr
    assert _state(state_dir)["down"] is True
    status = broker_script("status", "--state-dir", str(state_dir))
    assert (status.returncode, status.stdout) == (1, "")
    assert "is down, its data kept" in status.stderr
    started = broker_script("start", "--state-dir", str(state_dir))
    assert started.returncode == 0, started.stderr
    assert started.stdout.strip() == bootstrap
    assert "broker ready again" in started.stderr
    assert "down" not in _state(state_dir)
    _check_data_survived(bootstrap, topic, values, group)


def test_restart_without_a_broker_fails_clearly(tmp_path):
    result = broker_script("restart", "--state-dir", str(tmp_path / "none"))
    assert result.returncode == 1
    assert result.stdout == ""
    assert "no broker in" in result.stderr and "to restart" in result.stderr
    result = broker_script("stop", "--keep-data", "--state-dir", str(tmp_path / "none"))
    assert result.returncode == 1
    assert "to stop with --keep-data" in result.stderr


def test_bad_override_is_rejected(tmp_path):
    result = broker_script("start", "--state-dir", str(tmp_path / "b"), "--override", "novalue")
    assert result.returncode == 1
    assert "--override 'novalue': expected KEY=VALUE" in result.stderr


def test_owner_watcher_survives_a_restart(tmp_path):
    """The broker of an owner that ends is stopped, also when it was restarted meanwhile."""
    state_dir = tmp_path / "broker"
    owner = subprocess.Popen(["sleep", "60"])
    try:
        started = broker_script(
            "start", "--state-dir", str(state_dir), "--owner-pid", str(owner.pid),
            *[arg for setting in FAST_RESTART for arg in ("--override", setting)],
        )  # fmt: skip
        assert started.returncode == 0, started.stderr
        assert _state(state_dir)["owner_pid"] == owner.pid
        restarted = broker_script("restart", "--kill", "--state-dir", str(state_dir))
        assert restarted.returncode == 0, restarted.stderr
        time.sleep(1.5)  # the watcher looks once a second: it saw the new broker
        pid = _state(state_dir)["pid"]
        assert _alive(pid)
    finally:
        owner.kill()
        owner.wait()
    deadline = time.monotonic() + 15
    while (_alive(pid) or state_dir.exists()) and time.monotonic() < deadline:
        time.sleep(0.1)
    try:
        assert not _alive(pid), "the restarted broker outlived its owner"
        assert not state_dir.exists()
    finally:
        if state_dir.exists():
            stop_broker(state_dir)


def test_usage_names_restart():
    result = broker_script("--help")
    assert result.returncode == 0
    assert "start | stop | status | restart" in result.stdout
    assert "--keep-data" in result.stdout and "--kill" in result.stdout
    assert os.path.basename(result.args[1]) == "kafka-broker"


def test_cluster_id_never_starts_with_a_dash():
    """kafka.tools.StorageTool reads ``--cluster-id -abc…`` as an option and fails; a
    URL-safe base64 id starts with "-" once in 64 (a start failed that way)."""
    import importlib.util
    from importlib.machinery import SourceFileLoader

    loader = SourceFileLoader("kafka_broker_script", str(BROKER_SCRIPT))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    script = importlib.util.module_from_spec(spec)
    loader.exec_module(script)
    ids = [script.cluster_id() for _ in range(5000)]
    assert not [i for i in ids if i.startswith("-")]
    assert {len(i) for i in ids} == {22}
    assert len(set(ids)) == 5000
