"""Exactly-once Kafka output (``enable(..., exactly_once=True)``) on the real broker.

Each test reads the output back with ``isolation.level=read_committed`` (what a downstream
consumer sees) and, where a crash happened, with ``read_uncommitted`` too: aborted
records there are the proof that the crash hit an open transaction.
"""

from __future__ import annotations

import collections
import json
import subprocess
import sys
import time

import pytest
from confluent_kafka import Consumer, TopicPartition

from millstream import Stream
from millstream.checkpoint import enable
from millstream.exceptions import KafkaFencedError
from millstream.kafka.transactions import FAILPOINTS as KAFKA_FAILPOINTS
from millstream.testing import crash_and_recover, wait_for

from ._produce import committed, params, produce


def read_topic(bootstrap, topic, committed_only=True, timeout=30.0):
    """Every record of ``topic`` (all partitions, to their end) as dicts, in partition order."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "reader",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "isolation.level": "read_committed" if committed_only else "read_uncommitted",
        }
    )
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, -2) for p in partitions])
        out, ended = [], set()
        deadline = time.monotonic() + timeout
        while len(ended) < len(partitions):
            assert time.monotonic() < deadline, f"{topic} not read to its end in {timeout} s"
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error() is not None:
                ended.add(msg.partition())
                continue
            out.append(
                {
                    "key": msg.key(),
                    "value": msg.value(),
                    "headers": msg.headers(),
                    "partition": msg.partition(),
                }
            )
        return out
    finally:
        consumer.close()


def end_offsets(bootstrap, topic, partitions):
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "ends"})
    try:
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in range(partitions)
        }
    finally:
        consumer.close()


def copy_pipeline(bootstrap, source_topic, out_topic, group):
    source = Stream.from_kafka(source_topic, params(bootstrap, group), keys=True, stream_name="in")
    out = source.to_kafka(out_topic, {"bootstrap.servers": bootstrap}, keys=True)
    return source, out


def test_a_copy_is_byte_identical_and_commits_offsets_in_the_transaction(
    kafka_bootstrap, kafka_topic, tmp_path
):
    source_topic, out_topic = kafka_topic(3), kafka_topic(3)
    group = f"eos-{out_topic}"
    values = [b"v%d" % i for i in range(300)]
    keys = [b"k%d" % (i % 7) for i in range(300)]
    produce(kafka_bootstrap, source_topic, values, partition=lambda i: i % 3, keys=keys)
    source, _ = copy_pipeline(kafka_bootstrap, source_topic, out_topic, group)
    checkpoints = enable(source, tmp_path, interval="100ms", exactly_once=True)
    source.start()
    wait_for(lambda: len(read_topic(kafka_bootstrap, out_topic)) == 300, 30)
    checkpoints.close()
    source.stop()
    out = read_topic(kafka_bootstrap, out_topic)
    assert sorted((r["key"], r["value"]) for r in out) == sorted(zip(keys, values, strict=True))
    assert committed(kafka_bootstrap, group, source_topic, 3) == end_offsets(
        kafka_bootstrap, source_topic, 3
    )
    assert checkpoints.kafka_output.transaction.commits >= 1
    # nothing was aborted: everything written was committed
    assert len(read_topic(kafka_bootstrap, out_topic, committed_only=False)) == 300


def test_stopping_the_source_before_closing_the_checkpoints_commits_the_offsets_too(
    kafka_bootstrap, kafka_topic, tmp_path
):
    """stop() closes the consumer, whose partitions are revoked: the checkpoint before the
    revoke commits the output with its offsets (else a restart would read it again)."""
    source_topic, out_topic = kafka_topic(2), kafka_topic(2)
    group = f"eos-{out_topic}"
    values = [b"s%d" % i for i in range(100)]
    produce(kafka_bootstrap, source_topic, values, partition=lambda i: i % 2)
    source, _ = copy_pipeline(kafka_bootstrap, source_topic, out_topic, group)
    checkpoints = enable(source, tmp_path, interval=None, exactly_once=True)
    source.start()
    wait_for(lambda: checkpoints.kafka_output.transaction.has_uncommitted(), 20)
    wait_for(lambda: sum(sum(p.values()) for p in source.snapshot().values()) == 100, 20)
    source.stop()
    checkpoints.close()
    assert sorted(r["value"] for r in read_topic(kafka_bootstrap, out_topic)) == sorted(values)
    assert committed(kafka_bootstrap, group, source_topic, 2) == end_offsets(
        kafka_bootstrap, source_topic, 2
    )


def test_output_is_invisible_until_its_checkpoint_commits(kafka_bootstrap, kafka_topic, tmp_path):
    out_topic = kafka_topic(1)
    source = Stream.from_iterable([f"x{i}" for i in range(50)], stream_name="numbers")
    source.map(str.encode).to_kafka(out_topic, {"bootstrap.servers": kafka_bootstrap})
    checkpoints = enable(source, tmp_path, interval=None, exactly_once=True)
    source.start()
    wait_for(lambda: source.stopped, 10)
    # produced into the open transaction, not visible to a read_committed reader
    wait_for(lambda: len(read_topic(kafka_bootstrap, out_topic, committed_only=False)) == 50, 10)
    assert read_topic(kafka_bootstrap, out_topic) == []
    info = checkpoints.checkpoint()
    assert [r["value"] for r in read_topic(kafka_bootstrap, out_topic)] == [
        b"x%d" % i for i in range(50)
    ]
    checkpoints.close()
    # the checkpoint record names the checkpoint that committed the output
    assert checkpoints.kafka_output.transaction.committed_checkpoint() == info.id


def test_a_restart_resumes_from_the_checkpoint_kafka_holds(kafka_bootstrap, kafka_topic, tmp_path):
    """Process 1 commits checkpoint 1, then writes more and dies without committing: the
    restart restores checkpoint 1 (not a newer file) and writes the rest once."""
    out_topic = kafka_topic(1)
    items = [f"r{i}" for i in range(40)]

    def build():
        source = Stream.from_iterable(items, stream_name="rows")
        counted = source.accumulate(lambda n, x: n + 1, start=0, stream_name="n")
        counted.map(lambda n: b"%d" % n).to_kafka(out_topic, {"bootstrap.servers": kafka_bootstrap})
        return source

    source = build()
    first = enable(source, tmp_path, interval=None, exactly_once=True)
    source.start()
    wait_for(lambda: source.stopped, 10)
    assert first.checkpoint().id == 1  # all 40 committed
    # a second graph at the same location: it fences the first one's producer
    items[:] = items + [f"r{i}" for i in range(40, 60)]
    source2 = build()
    second = enable(source2, tmp_path, interval=None, exactly_once=True)
    assert second.restored == 1
    source2.start()
    wait_for(lambda: source2.stopped, 10)
    second.close()
    values = [int(r["value"]) for r in read_topic(kafka_bootstrap, out_topic)]
    assert values == list(range(1, 61))
    with pytest.raises(KafkaFencedError):  # the first one was fenced by the second
        first.kafka_output.transaction.prepare()
        first.kafka_output.transaction.commit(99)
    first.close(final=False)


def test_dead_letters_are_part_of_the_transaction(kafka_bootstrap, kafka_topic, tmp_path):
    source_topic, out_topic, dead_topic = kafka_topic(1), kafka_topic(1), kafka_topic(1)
    values = [b"1", b"2", b"\xffpoison", b"4", b"five", b"6"]
    produce(kafka_bootstrap, source_topic, values, keys=[b"k%d" % i for i in range(6)])
    config = {"bootstrap.servers": kafka_bootstrap}
    source = Stream.from_kafka(source_topic, params(kafka_bootstrap), keys=True, stream_name="in")
    dead = Stream(stream_name="dead")
    dead.to_kafka_dead_letters(dead_topic, config)
    parsed = source.map(lambda r: (r["key"], b"%d" % (2 * int(r["value"]))), on_error=dead)
    parsed.to_kafka(out_topic, config, keys=True)
    checkpoints = enable(source, tmp_path, interval=None, exactly_once=True)
    source.start()
    wait_for(lambda: len(read_topic(kafka_bootstrap, dead_topic, committed_only=False)) == 2, 20)
    assert read_topic(kafka_bootstrap, dead_topic) == []  # not before the checkpoint
    checkpoints.checkpoint()
    letters = read_topic(kafka_bootstrap, dead_topic)
    assert [(r["key"], r["value"]) for r in letters] == [(b"k2", b"\xffpoison"), (b"k4", b"five")]
    headers = dict(letters[0]["headers"])
    assert headers["millstream.error.type"] == b"ValueError"
    assert sorted(r["value"] for r in read_topic(kafka_bootstrap, out_topic)) == [
        b"12",
        b"2",
        b"4",
        b"8",
    ]
    checkpoints.close()
    source.stop()


def wordcount_command(bootstrap, topic, where, out_topic, group, interval="100ms"):
    return [
        sys.executable, "-m", "millstream", "wordcount", "--kafka", bootstrap, "--topic", topic,
        "--group", group, "--checkpoint", str(where), "--checkpoint-interval", interval,
        "--to-topic", out_topic, "--exactly-once", "--exit-at-end", "--json",
    ]  # fmt: skip


def check_running_counts(records):
    """Each word's counts are 1..N, each once; returns {word: N}."""
    per = collections.defaultdict(list)
    for r in records:
        per[r["key"].decode()].append(int(r["value"]))
    duplicated = {w: c for w, c in per.items() if len(c) != len(set(c))}
    assert not duplicated, f"counts written twice: {dict(list(duplicated.items())[:5])}"
    gaps = {w: c for w, c in per.items() if sorted(c) != list(range(1, len(c) + 1))}
    assert not gaps, f"counts missing: {dict(list(gaps.items())[:5])}"
    return {w: len(c) for w, c in per.items()}


@pytest.mark.parametrize(
    "failpoint",
    [
        "after_snapshot",
        "during_checkpoint_write",
        "after_snapshot_write",
        *KAFKA_FAILPOINTS,
        "after_commit",
    ],
)
def test_wordcount_killed_at_each_step_of_the_commit(
    kafka_bootstrap, kafka_topic, tmp_path, failpoint
):
    topic, out_topic = kafka_topic(2), kafka_topic(2)
    lines = [" ".join(f"w{(i * 7 + j) % 23}" for j in range(5)).encode() for i in range(3000)]
    produce(kafka_bootstrap, topic, lines, partition=lambda i: i % 2)
    group = f"wc-{topic}"
    # one checkpoint, at the end: killed there, all 15000 records are in the open transaction
    where = tmp_path / "ck"
    command = wordcount_command(kafka_bootstrap, topic, where, out_topic, group, interval="1h")
    report = crash_and_recover(command, kills=0, failpoints=[f"{failpoint}:kill@1"], timeout=90)
    print(report.describe())
    assert report.final.returncode == 0, report.final.stderr
    counts = json.loads(report.final.stdout)
    assert check_running_counts(read_topic(kafka_bootstrap, out_topic)) == counts
    assert sum(counts.values()) == 15000
    uncommitted = read_topic(kafka_bootstrap, out_topic, committed_only=False)
    if failpoint == "after_commit":  # killed once everything was committed: nothing aborted
        assert len(uncommitted) == 15000
    else:  # killed inside the open transaction: what reached the broker of it was aborted
        assert len(uncommitted) > 15000
    assert committed(kafka_bootstrap, group, topic, 2) == end_offsets(kafka_bootstrap, topic, 2)


def test_wordcount_to_topic_needs_checkpoint_for_exactly_once(kafka_bootstrap):
    run = subprocess.run(
        [sys.executable, "-m", "millstream", "wordcount", "--kafka", kafka_bootstrap,
         "--topic", "t", "--to-topic", "o", "--exactly-once"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert run.returncode == 2
    assert "--exactly-once needs --to-topic OUT and --checkpoint LOCATION" in run.stderr
