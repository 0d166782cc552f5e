"""Kafka sources in checkpoints, against a real broker: exact positions while records flow,
group commits that follow completed checkpoints, restore, and per-batch commits."""

from __future__ import annotations

import asyncio
import threading
import uuid

import pytest

from millstream import Stream
from millstream.checkpoint import enable
from millstream.exceptions import StateError
from millstream.kafka.positions import static_member_id
from millstream.testing import wait_for

from ._checkpoints import PARTITIONS, crash_and_resume, slow_sink, slower_sink
from ._produce import committed, params, produce
from .test_from_kafka import values


def decode(b: bytes) -> str:
    return b.decode()


def decode_batch(batch: list[bytes]) -> list[str]:
    return [b.decode() for b in batch]


class Passthrough(Stream):
    """A node fusion does not know: records below it are tracked with refs."""

    def update(self, x, who=None, metadata=None):
        return self._emit(x, metadata=metadata)


# -- position exactness: checkpoint while records flow, crash, restore ------------------------
@pytest.mark.parametrize("refs", [False, True], ids=["fused", "with-refs"])
def test_from_kafka_checkpoints_are_exact_while_records_flow(
    kafka_bootstrap, kafka_topic, tmp_path, refs
):
    topic = kafka_topic(PARTITIONS)
    config = params(kafka_bootstrap)

    def build():
        source = Stream.from_kafka(topic, config, poll_interval=0.02, max_in_flight=50)
        words = source.map(decode)
        if refs:
            words = Passthrough(words)
        words.sink(slow_sink)  # the source awaits it: checkpoints find records in hand
        return source, words.frequencies()

    seen = crash_and_resume(kafka_bootstrap, topic, config["group.id"], tmp_path, build)
    assert len({str(p) for p in seen["positions"]}) >= 2  # taken while records flowed
    assert 0 < seen["restored_total"] <= seen["counted_before_crash"]


def test_from_kafka_batched_checkpoints_are_exact_while_records_flow(
    kafka_bootstrap, kafka_topic, tmp_path
):
    topic = kafka_topic(PARTITIONS)
    config = params(kafka_bootstrap)

    def build():
        stream = Stream.from_kafka_batched(topic, config, poll_interval=0.02, max_batch_size=7)
        batches = stream.map(decode_batch)
        batches.sink(slower_sink)
        return stream.upstream, batches.flatten().frequencies()

    seen = crash_and_resume(kafka_bootstrap, topic, config["group.id"], tmp_path, build)
    assert len({str(p) for p in seen["positions"]}) >= 2
    assert 0 < seen["restored_total"] <= seen["counted_before_crash"]


def test_every_n_counts_records_of_a_kafka_source(kafka_bootstrap, kafka_topic, tmp_path):
    topic = kafka_topic(1)
    produce(kafka_bootstrap, topic, values(40), partition=0)
    config = params(kafka_bootstrap)
    stream = Stream.from_kafka_batched(topic, config, poll_interval=0.02, max_batch_size=5)
    counts = stream.flatten().frequencies()
    checkpoints = enable(stream.upstream, tmp_path, interval=None, every=5)
    stream.upstream.start()
    try:
        wait_for(lambda: checkpoints.last is not None, 15)
        wait_for(lambda: committed(kafka_bootstrap, config["group.id"], topic, 1) == {0: 40}, 15)
    finally:
        stream.upstream.stop()
        checkpoints.close(final=False)
    assert stream.upstream.hold.passed == 40  # records, not batches
    assert sum(counts.snapshot()["counts"].values()) == 40


# -- restore ---------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["from_kafka", "from_kafka_batched"])
def test_restore_resumes_each_named_partition_there_and_others_from_the_group(
    kafka_bootstrap, kafka_topic, kind
):
    topic = kafka_topic(2)
    produce(kafka_bootstrap, topic, values(10), partition=lambda i: i % 2)  # 5 in each
    config = params(kafka_bootstrap)
    if kind == "from_kafka":
        source = Stream.from_kafka(topic, config, poll_interval=0.02)
        out = source
    else:
        out = Stream.from_kafka_batched(topic, config, poll_interval=0.02).flatten()
        source = out.upstream.upstream
    L = out.sink_to_list()
    source.restore({topic: {0: 3}})  # partition 1: no commit yet, auto.offset.reset
    assert source.snapshot() == {topic: {0: 3}}
    source.start()
    try:
        wait_for(lambda: len(L) == 7, 15)
        wait_for(lambda: source.snapshot() == {topic: {0: 5, 1: 5}}, 5)
    finally:
        source.stop()
    assert sorted(L) == sorted([b"v6", b"v8"] + [b"v%d" % i for i in range(1, 10, 2)])
    assert committed(kafka_bootstrap, config["group.id"], topic, 2) == {0: 5, 1: 5}


@pytest.mark.parametrize(
    "position, problem",
    [
        (None, "expected a dict {topic: {partition: next offset}}"),
        ([["t", 0, 3]], "expected a dict"),
        ({"t": {0: -1}}, "the offset of topic 't' partition 0 must be an int >= 0, got -1"),
        ({"t": {0: "3"}}, "must be an int >= 0, got '3'"),
        ({"t": {0: True}}, "must be an int >= 0, got True"),
        ({"t": {"0": 3}}, "a partition of topic 't' must be an int >= 0, got '0'"),
        ({"t": [3]}, "topic 't' must map partitions to offsets"),
        ({"other": {0: 3}}, "it names topic 'other', which this source does not read"),
        ({"": {0: 3}}, "a topic must be a name"),
    ],
)
@pytest.mark.parametrize("kind", ["from_kafka", "from_kafka_batched"])
def test_restore_refuses_a_bad_position_and_keeps_the_old_one(kind, position, problem):
    config = {"bootstrap.servers": "localhost:9", "group.id": "g"}
    if kind == "from_kafka":
        source = Stream.from_kafka("t", config)
    else:
        source = Stream.from_kafka_batched("t", config).upstream
    source.restore({"t": {0: 7, 1: 2}})
    with pytest.raises(StateError) as info:
        source.restore(position)
    assert str(source) in str(info.value)
    assert problem in str(info.value)
    assert source.snapshot() == {"t": {0: 7, 1: 2}}


def test_restore_needs_a_stopped_source(kafka_bootstrap, kafka_topic):
    topic = kafka_topic(1)
    source = Stream.from_kafka(topic, params(kafka_bootstrap), poll_interval=0.02)
    source.start()
    try:
        with pytest.raises(StateError, match="restore\\(\\) needs a stopped source"):
            source.restore({topic: {0: 0}})
    finally:
        source.stop()


def test_a_snapshot_is_plain_data_detached_from_the_source(kafka_bootstrap, kafka_topic):
    topic = kafka_topic(1)
    produce(kafka_bootstrap, topic, values(3), partition=0)
    source = Stream.from_kafka(topic, params(kafka_bootstrap), poll_interval=0.02)
    L = source.sink_to_list()
    source.start()
    try:
        wait_for(lambda: len(L) == 3, 15)
        first = source.snapshot()
        produce(kafka_bootstrap, topic, values(2, "w"), partition=0)
        wait_for(lambda: len(L) == 5, 15)
    finally:
        source.stop()
    assert first == {topic: {0: 3}}
    assert source.snapshot() == {topic: {0: 5}}


def test_the_position_passes_tombstones_left_out(kafka_bootstrap, kafka_topic, tmp_path):
    topic = kafka_topic(1)
    produce(kafka_bootstrap, topic, [b"a", None, b"b", None], partition=0)
    config = params(kafka_bootstrap)
    source = Stream.from_kafka(topic, config, poll_interval=0.02)
    L = source.sink_to_list()
    checkpoints = enable(source, tmp_path, interval=None)
    source.start()
    try:
        wait_for(lambda: source.snapshot() == {topic: {0: 4}}, 15)
        checkpoints.checkpoint()
    finally:
        source.stop()
        checkpoints.close(final=False)
    assert L == [b"a", b"b"]
    assert committed(kafka_bootstrap, config["group.id"], topic, 1) == {0: 4}


# -- checkpoint mode: commits ----------------------------------------------------------------
def test_checkpoint_mode_commits_only_completed_checkpoints(kafka_bootstrap, kafka_topic, tmp_path):
    topic = kafka_topic(1)
    produce(kafka_bootstrap, topic, values(6), partition=0)
    config = params(kafka_bootstrap)
    source = Stream.from_kafka(topic, config, poll_interval=0.02)
    L = source.sink_to_list()
    checkpoints = enable(source, tmp_path, interval=None)
    source.start()
    try:
        wait_for(lambda: len(L) == 6, 15)
        assert committed(kafka_bootstrap, config["group.id"], topic, 1) == {0: None}
        checkpoints.checkpoint()
        assert committed(kafka_bootstrap, config["group.id"], topic, 1) == {0: 6}
        produce(kafka_bootstrap, topic, values(2, "w"), partition=0)
        wait_for(lambda: len(L) == 8, 15)
    finally:
        source.stop()
        checkpoints.close(final=False)
    # stop() in checkpoint mode commits nothing beyond the last checkpoint
    assert committed(kafka_bootstrap, config["group.id"], topic, 1) == {0: 6}


def test_a_checkpoint_completed_while_stopped_is_committed_at_the_next_start(
    kafka_bootstrap, kafka_topic, tmp_path
):
    topic = kafka_topic(1)
    produce(kafka_bootstrap, topic, values(4), partition=0)
    config = params(kafka_bootstrap)
    stream = Stream.from_kafka_batched(topic, config, poll_interval=0.02)
    source = stream.upstream
    L = stream.flatten().sink_to_list()
    checkpoints = enable(source, tmp_path, interval=None)
    source.start()
    wait_for(lambda: len(L) == 4, 15)
    source.stop()
    assert checkpoints.close().id == 1  # the last checkpoint, taken after stop()
    assert committed(kafka_bootstrap, config["group.id"], topic, 1) == {0: None}
    source.start()
    try:
        wait_for(lambda: committed(kafka_bootstrap, config["group.id"], topic, 1) == {0: 4}, 15)
    finally:
        source.stop()
    assert len(L) == 4  # resumed after what it had emitted


def test_a_failed_checkpoint_commit_is_logged_not_raised_and_made_at_the_next(
    kafka_bootstrap, kafka_topic, tmp_path, caplog
):
    topic = kafka_topic(1)
    produce(kafka_bootstrap, topic, values(3), partition=0)
    config = params(kafka_bootstrap)
    source = Stream.from_kafka(topic, config, poll_interval=0.02)
    L = source.sink_to_list()
    checkpoints = enable(source, tmp_path, interval=None)
    source.start()
    try:
        wait_for(lambda: len(L) == 3, 15)
        real = source.consumer
        source.consumer = _FailingCommit(real)
        with caplog.at_level("WARNING", logger="millstream.kafka"):
            assert checkpoints.checkpoint() is not None
        assert "commit of the checkpoint's offsets" in caplog.text
        assert committed(kafka_bootstrap, config["group.id"], topic, 1) == {0: None}
        source.consumer = real
        produce(kafka_bootstrap, topic, values(1, "w"), partition=0)
        wait_for(lambda: len(L) == 4, 15)
        checkpoints.checkpoint()
        assert committed(kafka_bootstrap, config["group.id"], topic, 1) == {0: 4}
    finally:
        source.stop()
        checkpoints.close(final=False)
    assert source.error is None


class _FailingCommit:
    def __init__(self, consumer):
        self._consumer = consumer

    def commit(self, *args, **kwargs):
        from confluent_kafka import KafkaError, KafkaException

        raise KafkaException(KafkaError(KafkaError._TIMED_OUT, "injected commit failure"))

    def __getattr__(self, name):
        return getattr(self._consumer, name)


def test_checkpoint_mode_makes_from_kafka_a_static_member(tmp_path):
    config = {"bootstrap.servers": "localhost:9", "group.id": "g", "enable.auto.commit": True}
    source = Stream.from_kafka(["b", "a"], config, stream_name="orders")
    assert "group.instance.id" not in source.consumer_settings()
    enable(source, tmp_path, interval=None)
    settings = source.consumer_settings()
    expected = static_member_id("g", ["a", "b"], f"{tmp_path}#orders")
    assert settings["group.instance.id"] == expected
    assert settings["enable.auto.commit"] is False
    own = Stream.from_kafka("a", {**config, "group.instance.id": "mine"})
    own.checkpoint_mode(True, identity="x")
    assert own.consumer_settings()["group.instance.id"] == "mine"
    off = Stream.from_kafka("a", {**config, "group.instance.id": ""})
    off.checkpoint_mode(True, identity="x")
    assert "group.instance.id" not in off.consumer_settings()


# -- per-batch commits (without checkpoints) --------------------------------------------------
def test_batched_commits_each_finished_batch_while_later_ones_are_in_flight(
    kafka_bootstrap, kafka_topic
):
    """One fetch gives batches of both partitions; the second is held by a slow sink: the
    first one's offsets are committed meanwhile (not once the whole fetch is done)."""
    topic = kafka_topic(2)
    produce(kafka_bootstrap, topic, values(20), partition=lambda i: i % 2)
    config = params(kafka_bootstrap)
    stream = Stream.from_kafka_batched(topic, config, poll_interval=0.5, max_batch_size=10)
    source = stream.upstream
    gate = threading.Event()
    seen: list[list[bytes]] = []

    async def slow(batch):
        seen.append(batch)
        if len(seen) == 2:
            await asyncio.to_thread(gate.wait, 30)

    stream.sink(slow)
    source.start()
    try:
        wait_for(lambda: len(seen) == 2, 15)
        first = int(seen[0][0][1:]) % 2
        wait_for(lambda: committed(kafka_bootstrap, config["group.id"], topic, 2)[first] == 10, 10)
        assert committed(kafka_bootstrap, config["group.id"], topic, 2)[1 - first] is None
        assert source.tracker.in_flight == 1  # the held batch
    finally:
        gate.set()
        source.stop()
    assert committed(kafka_bootstrap, config["group.id"], topic, 2) == {0: 10, 1: 10}


def test_restarting_a_batched_source_resumes_from_its_commits(kafka_bootstrap, kafka_topic):
    topic = kafka_topic(1)
    produce(kafka_bootstrap, topic, values(3), partition=0)
    config = params(kafka_bootstrap, group=f"g-{uuid.uuid4().hex[:8]}")
    stream = Stream.from_kafka_batched(topic, config, poll_interval=0.02)
    got = stream.flatten().sink_to_list()
    stream.upstream.start()
    wait_for(lambda: len(got) == 3, 15)
    stream.upstream.stop()
    produce(kafka_bootstrap, topic, values(2, "w"), partition=0)
    stream.upstream.start()
    try:
        wait_for(lambda: len(got) == 5, 15)
    finally:
        stream.upstream.stop()
    assert got == [*values(3), *values(2, "w")]
