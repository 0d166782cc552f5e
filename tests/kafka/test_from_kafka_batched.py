"""from_kafka_batched against a real broker: Streamz's shape and parameters, ordered commits."""

from __future__ import annotations

import time

import pytest
from confluent_kafka.admin import NewPartitions

from millstream import Stream
from millstream.sources.kafka_batched import FromKafkaBatched
from millstream.testing import wait_for

from ._produce import committed, params, produce
from .test_from_kafka import Hold, values


def flat(batches):
    return [x for b in batches for x in b]


def run_until(source, condition, timeout=15):
    source.start()
    try:
        wait_for(condition, timeout)
    finally:
        source.stop()


def test_shape_and_batches_of_one_partition_at_most_max_batch_size(kafka_bootstrap, kafka_topic):
    topic = kafka_topic(2)
    produce(kafka_bootstrap, topic, values(20), partition=lambda i: i % 2)
    config = params(kafka_bootstrap)
    stream = Stream.from_kafka_batched(topic, config, poll_interval=0.05, max_batch_size=3)
    assert isinstance(stream.upstream, FromKafkaBatched)
    L = stream.sink_to_list()
    run_until(stream.upstream, lambda: len(flat(L)) == 20)
    assert all(1 <= len(b) <= 3 for b in L)
    for p in range(2):
        theirs = [b for b in L if int(b[0][1:]) % 2 == p]
        assert all(int(v[1:]) % 2 == p for b in theirs for v in b)  # one partition per batch
        assert flat(theirs) == [v for v in values(20) if int(v[1:]) % 2 == p]
    assert committed(kafka_bootstrap, config["group.id"], topic, 2) == {0: 10, 1: 10}


def test_keys_gives_dicts_with_key_value_partition_offset_timestamp(kafka_bootstrap, kafka_topic):
    topic = kafka_topic(1)
    before = int(time.time() * 1000)
    produce(kafka_bootstrap, topic, [b"x", None, b"y"], partition=0, keys=[b"k1", b"k2", None])
    stream = Stream.from_kafka_batched(
        topic, params(kafka_bootstrap), poll_interval=0.05, keys=True
    )
    L = stream.sink_to_list()
    run_until(stream.upstream, lambda: len(flat(L)) == 3)
    records = flat(L)
    assert [(r["key"], r["value"], r["partition"], r["offset"]) for r in records] == [
        (b"k1", b"x", 0, 0),
        (b"k2", None, 0, 1),  # a tombstone keeps its key: it is the deletion of k2
        (None, b"y", 0, 2),
    ]
    assert all(r["topic"] == topic for r in records)
    assert all(before - 1000 <= r["timestamp"] <= time.time() * 1000 + 1000 for r in records)


def test_values_only_leaves_tombstones_out_and_commits_past_them(kafka_bootstrap, kafka_topic):
    topic = kafka_topic(1)
    produce(kafka_bootstrap, topic, [b"a", None, b"b", None], partition=0)
    config = params(kafka_bootstrap)
    stream = Stream.from_kafka_batched(topic, config, poll_interval=0.05)
    L = stream.sink_to_list()
    run_until(stream.upstream, lambda: stream.upstream.tombstones == 2)
    assert flat(L) == [b"a", b"b"]
    assert committed(kafka_bootstrap, config["group.id"], topic, 1) == {0: 4}


def test_npartitions_limits_the_partitions_read(kafka_bootstrap, kafka_topic):
    topic = kafka_topic(2)
    produce(kafka_bootstrap, topic, values(10), partition=lambda i: i % 2)
    stream = Stream.from_kafka_batched(
        topic, params(kafka_bootstrap), poll_interval=0.05, npartitions=1
    )
    L = stream.sink_to_list()
    run_until(stream.upstream, lambda: len(flat(L)) == 5)
    time.sleep(0.2)
    assert flat(L) == [v for v in values(10) if int(v[1:]) % 2 == 0]
    # more partitions than the topic has: all of them are read
    stream = Stream.from_kafka_batched(
        topic, params(kafka_bootstrap), poll_interval=0.05, npartitions=5
    )
    L = stream.sink_to_list()
    run_until(stream.upstream, lambda: len(flat(L)) == 10)
    assert stream.upstream.partitions == [0, 1]


@pytest.mark.parametrize("n", [0, -1])
def test_npartitions_must_be_positive(n):
    with pytest.raises(ValueError, match="npartitions must be > 0"):
        Stream.from_kafka_batched("t", {"bootstrap.servers": "localhost:9092"}, npartitions=n)


def test_refresh_partitions_reads_new_partitions_from_their_beginning(
    kafka_bootstrap, kafka_topic, kafka_admin
):
    topic = kafka_topic(1)
    produce(kafka_bootstrap, topic, values(3), partition=0)
    stream = Stream.from_kafka_batched(
        topic, params(kafka_bootstrap), poll_interval=0.05, refresh_partitions=True
    )
    L = stream.sink_to_list()
    stream.upstream.start()
    try:
        wait_for(lambda: len(flat(L)) == 3, 15)
        kafka_admin.create_partitions([NewPartitions(topic, 2)])[topic].result(10)
        produce(kafka_bootstrap, topic, values(2, "new"), partition=1)
        wait_for(lambda: len(flat(L)) == 5, 15)
    finally:
        stream.upstream.stop()
    assert flat(L)[3:] == values(2, "new")


def test_a_group_resumes_from_committed_offsets(kafka_bootstrap, kafka_topic):
    topic = kafka_topic(1)
    config = params(kafka_bootstrap)
    produce(kafka_bootstrap, topic, values(6), partition=0)
    first = Stream.from_kafka_batched(topic, config, poll_interval=0.05)
    L = first.sink_to_list()
    run_until(first.upstream, lambda: len(flat(L)) == 6)
    produce(kafka_bootstrap, topic, values(2, "w"), partition=0)
    second = Stream.from_kafka_batched(topic, config, poll_interval=0.05)
    L2 = second.sink_to_list()
    run_until(second.upstream, lambda: len(flat(L2)) == 2)
    time.sleep(0.2)
    assert flat(L2) == values(2, "w")


def test_latest_is_the_default_reset(kafka_bootstrap, kafka_topic):
    topic = kafka_topic(1)
    produce(kafka_bootstrap, topic, values(3, "old"), partition=0)
    config = {"bootstrap.servers": kafka_bootstrap, "group.id": f"g-{topic}"}
    stream = Stream.from_kafka_batched(topic, config, poll_interval=0.05)
    L = stream.sink_to_list()
    stream.upstream.start()
    try:
        time.sleep(0.5)
        produce(kafka_bootstrap, topic, values(2, "new"), partition=0)
        wait_for(lambda: len(flat(L)) == 2, 15)
    finally:
        stream.upstream.stop()
    assert flat(L) == values(2, "new")
    assert config == {"bootstrap.servers": kafka_bootstrap, "group.id": f"g-{topic}"}


def test_a_failed_batch_is_never_committed_past(kafka_bootstrap, kafka_topic):
    topic = kafka_topic(1)
    config = params(kafka_bootstrap)
    produce(kafka_bootstrap, topic, [b"a", b"b", b"c", b"\xff", b"d", b"e"], partition=0)

    def decode(batch):
        return [x.decode() for x in batch]

    stream = Stream.from_kafka_batched(topic, config, poll_interval=0.05, max_batch_size=2)
    L = stream.map(decode).sink_to_list()
    source = stream.upstream
    source.start()
    wait_for(lambda: source.stopped, 15)
    assert L == [["a", "b"]]
    assert isinstance(source.error, UnicodeDecodeError)
    notes = "\n".join(source.error.__notes__)
    assert f"topic {topic!r} partition 0 offset 3" in notes  # the exact record
    assert "decode" in notes
    assert committed(kafka_bootstrap, config["group.id"], topic, 1) == {0: 2}


def test_fully_fused_graphs_skip_ref_counting_and_holding_graphs_use_it(
    kafka_bootstrap, kafka_topic
):
    topic = kafka_topic(1)
    produce(kafka_bootstrap, topic, values(4), partition=0)
    config = params(kafka_bootstrap)
    stream = Stream.from_kafka_batched(topic, config, poll_interval=0.05, max_batch_size=1)
    fused = stream.map(len).sink_to_list()
    assert not stream.upstream._needs_refs_batched()
    hold = Hold(stream)
    assert stream.upstream._needs_refs_batched()
    source = stream.upstream
    source.start()
    try:
        wait_for(lambda: len(hold.held) == 4, 15)
        time.sleep(0.2)
        assert source.committed == {}  # the holding branch has not let go of any batch
        for v in values(4):
            hold.release([v])
        wait_for(lambda: source.committed == {(topic, 0): 4}, 5)
    finally:
        source.stop()
    assert fused == [1, 1, 1, 1]


def test_in_flight_batches_are_capped(kafka_bootstrap, kafka_topic):
    topic = kafka_topic(1)
    produce(kafka_bootstrap, topic, values(12), partition=0)
    stream = Stream.from_kafka_batched(
        topic, params(kafka_bootstrap), poll_interval=0.05, max_batch_size=1, max_in_flight=4
    )
    hold = Hold(stream)
    source = stream.upstream
    source.start()
    try:
        wait_for(lambda: len(hold.held) == 4, 15)
        time.sleep(0.3)
        assert len(hold.held) == 4 and source.tracker.in_flight == 4
        for i in range(12):
            wait_for(lambda i=i: len(hold.held) > i, 5)
            hold.release([f"v{i}".encode()])
        wait_for(lambda: source.committed == {(topic, 0): 12}, 5)
    finally:
        source.stop()


def test_pooled_batch_readers_are_reused_then_closed_when_idle(
    kafka_bootstrap, kafka_topic, monkeypatch
):
    from millstream.kafka import batch as kafka_client
    from millstream.kafka.batch import close_pooled_consumers, get_message_batch

    topic = kafka_topic(1)
    produce(kafka_bootstrap, topic, values(4), partition=0)
    close_pooled_consumers()
    first = {"bootstrap.servers": kafka_bootstrap, "group.id": "reader-a"}
    second = {"bootstrap.servers": kafka_bootstrap, "group.id": "reader-b"}
    assert get_message_batch(first, topic, 0, False, 0, 1) == values(4)[:2]
    [(consumer, _)] = kafka_client._pool[kafka_client._pool_key(first)]
    assert get_message_batch(first, topic, 0, False, 2, 3) == values(4)[2:]
    assert kafka_client._pool[kafka_client._pool_key(first)][0][0] is consumer  # reused
    monkeypatch.setattr(kafka_client, "POOL_IDLE_SECONDS", 0.0)
    time.sleep(0.01)
    assert get_message_batch(second, topic, 0, False, 0, 0) == values(4)[:1]
    assert kafka_client._pool_key(first) not in kafka_client._pool  # idle too long: closed
    with pytest.raises(RuntimeError):  # confluent-kafka refuses calls on a closed consumer
        consumer.assignment()
    assert close_pooled_consumers() == 1  # the second reader's
    assert kafka_client._pool == {}
