"""A checkpointed ``from_kafka`` pipeline killed with ``kill -9`` and started again: it
gets its partitions back at once (static group membership), from the checkpoint's offsets."""

from __future__ import annotations

import json
import os
import pickle
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import millstream
from millstream.checkpoint import CheckpointStore
from millstream.testing import wait_for

from ._produce import params, produce
from .test_from_kafka import values

CHILD = Path(__file__).with_name("_restart_child.py")


def start_child(bootstrap, topic, group, where, delay):
    env = dict(os.environ)
    src = str(Path(millstream.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in [src, env.get("PYTHONPATH")] if p)
    return subprocess.Popen(
        [sys.executable, str(CHILD), bootstrap, topic, group, str(where), str(delay)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
        text=True,
    )


def first_record(child, timeout=60.0):
    """The child's JSON line about its first record."""
    ready, _, _ = select.select([child.stdout], [], [], timeout)
    assert ready, f"no first record from the child within {timeout} s"
    line = child.stdout.readline()  # a whole line (the child flushes each), or EOF
    assert line, f"the child exited with {child.wait(10)} before its first record"
    return json.loads(line)


def newest_position(where, topic):
    """The position the newest checkpoint at ``where`` holds for the source of ``topic``."""
    _, body = CheckpointStore(where).latest()
    states = [e["state"] for e in pickle.loads(body)["nodes"].values()]
    (position,) = [s for s in states if isinstance(s, dict) and topic in s]
    return position


def test_a_restart_after_kill_9_gets_its_first_record_within_5_s(
    kafka_bootstrap, kafka_topic, tmp_path
):
    topic = kafka_topic(2)
    produce(kafka_bootstrap, topic, values(400), partition=lambda i: i % 2)
    group = params(kafka_bootstrap)["group.id"]
    where = tmp_path / "checkpoints"
    first = start_child(kafka_bootstrap, topic, group, where, delay=0.01)
    try:
        first_record(first)
        wait_for(lambda: len(CheckpointStore(where).ids()) >= 2, 30)
    finally:
        os.kill(first.pid, signal.SIGKILL)
        first.wait(10)
    position = newest_position(where, topic)
    assert sum(position[topic].values()) > 0

    started = time.monotonic()
    second = start_child(kafka_bootstrap, topic, group, where, delay=0)
    try:
        got = first_record(second)
        took = time.monotonic() - started
    finally:
        second.kill()
        second.wait(10)
    print(f"first record {got['after_start']:.2f} s after start(), {took:.2f} s after spawn")
    assert got["after_start"] < 5.0, f"first record {got['after_start']:.1f} s after start()"
    assert took < 15.0, f"first record {took:.1f} s after the process was started"
    # it resumed from the checkpoint: exactly the offset after the records emitted
    assert got["offset"] == position[topic][got["partition"]]
