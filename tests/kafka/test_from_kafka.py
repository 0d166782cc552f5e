"""from_kafka against a real broker: reading, ordered at-least-once commits, rebalances."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from millstream import Stream
from millstream.core.refs import release_refs, retain_refs
from millstream.testing import await_for, wait_for

from ._produce import committed, params, produce


class Hold(Stream):
    """Keeps every element (and its refs) until the test lets it go."""

    def __init__(self, upstream, **kwargs):
        self.held: list = []
        super().__init__(upstream, **kwargs)

    def update(self, x, who=None, metadata=None):
        retain_refs(metadata)
        self.held.append((x, metadata))
        return self._emit(x)

    def release(self, value: bytes, error: BaseException | None = None) -> None:
        for x, metadata in self.held:
            if x == value:
                release_refs(metadata, error=error)
                return
        raise AssertionError(f"{value!r} is not held")


def values(n, prefix="v"):
    return [f"{prefix}{i}".encode() for i in range(n)]


def test_reads_every_record_in_partition_order_and_commits(kafka_bootstrap, kafka_topic):
    topic = kafka_topic(3)
    produce(kafka_bootstrap, topic, values(30), partition=lambda i: i % 3)
    config = params(kafka_bootstrap)
    source = Stream.from_kafka(topic, config, poll_interval=0.05)
    L = source.sink_to_list()
    source.start()
    try:
        wait_for(lambda: len(L) == 30, 15)
    finally:
        source.stop()
    assert sorted(L) == sorted(values(30))
    for p in range(3):
        mine = [int(v[1:]) for v in L if int(v[1:]) % 3 == p]
        assert mine == sorted(mine)  # partition order kept
    assert source.committed == {(topic, 0): 10, (topic, 1): 10, (topic, 2): 10}
    assert committed(kafka_bootstrap, config["group.id"], topic, 3) == {0: 10, 1: 10, 2: 10}
    assert source.consumer is None  # closed by stop()


def test_consumer_params_are_not_modified(kafka_bootstrap, kafka_topic):
    topic = kafka_topic(1)
    config = params(kafka_bootstrap)
    before = dict(config)
    source = Stream.from_kafka([topic], config, poll_interval=0.05)
    source.start()
    source.stop()
    assert config == before


def test_commits_only_the_completed_prefix_when_records_finish_out_of_order(
    kafka_bootstrap, kafka_topic
):
    topic = kafka_topic(1)
    produce(kafka_bootstrap, topic, values(5), partition=0)
    config = params(kafka_bootstrap)
    source = Stream.from_kafka(topic, config, poll_interval=0.05)
    hold = Hold(source)
    source.start()
    try:
        wait_for(lambda: len(hold.held) == 5, 15)
        hold.release(b"v3")
        hold.release(b"v2")
        time.sleep(0.3)  # several poll cycles: none may commit while v0 is in flight
        assert source.committed == {}
        hold.release(b"v0")
        wait_for(lambda: source.committed == {(topic, 0): 1}, 5)
        hold.release(b"v1")
        wait_for(lambda: source.committed == {(topic, 0): 4}, 5)
        assert committed(kafka_bootstrap, config["group.id"], topic, 1) == {0: 4}
        hold.release(b"v4")
        wait_for(lambda: source.committed == {(topic, 0): 5}, 5)
    finally:
        source.stop()
    assert committed(kafka_bootstrap, config["group.id"], topic, 1) == {0: 5}


def test_a_record_whose_processing_raised_is_never_committed_past(kafka_bootstrap, kafka_topic):
    topic = kafka_topic(1)
    data = [b"a", b"b", b"bad", b"c", b"d"]
    produce(kafka_bootstrap, topic, data, partition=0)
    config = params(kafka_bootstrap)

    def check(x):
        if x == b"bad":
            raise ValueError("cannot use this record")
        return x

    source = Stream.from_kafka(topic, config, poll_interval=0.05)
    L = source.map(check).sink_to_list()
    source.start()
    wait_for(lambda: source.stopped, 15)
    assert L == [b"a", b"b"]
    assert isinstance(source.error, ValueError)
    notes = "\n".join(source.error.__notes__)
    assert f"topic {topic!r} partition 0 offset 2" in notes
    assert "check" in notes
    assert committed(kafka_bootstrap, config["group.id"], topic, 1) == {0: 2}

    # a new pipeline in the same group reads the failed record again (at least once)
    again = Stream.from_kafka(topic, config, poll_interval=0.05)
    L2 = again.sink_to_list()
    again.start()
    try:
        wait_for(lambda: len(L2) == 3, 15)
    finally:
        again.stop()
    assert L2 == [b"bad", b"c", b"d"]
    assert committed(kafka_bootstrap, config["group.id"], topic, 1) == {0: 5}


def test_a_failure_released_later_by_a_holding_node_blocks_commits(kafka_bootstrap, kafka_topic):
    topic = kafka_topic(1)
    produce(kafka_bootstrap, topic, values(4), partition=0)
    config = params(kafka_bootstrap)
    source = Stream.from_kafka(topic, config, poll_interval=0.05)
    hold = Hold(source)
    source.start()
    wait_for(lambda: len(hold.held) == 4, 15)
    hold.release(b"v0")
    wait_for(lambda: source.committed == {(topic, 0): 1}, 5)
    hold.release(b"v1", error=RuntimeError("sink failed"))
    hold.release(b"v2")
    hold.release(b"v3")
    wait_for(lambda: source.stopped, 10)
    assert isinstance(source.error, RuntimeError)
    assert any("offset 1" in n for n in source.error.__notes__)
    assert committed(kafka_bootstrap, config["group.id"], topic, 1) == {0: 1}


def test_tombstones_are_counted_not_emitted_and_committed_past(kafka_bootstrap, kafka_topic):
    topic = kafka_topic(1)
    produce(kafka_bootstrap, topic, [b"a", None, b"", None, b"b"], partition=0)
    config = params(kafka_bootstrap)
    source = Stream.from_kafka(topic, config, poll_interval=0.05)
    L = source.sink_to_list()
    source.start()
    try:
        wait_for(lambda: len(L) == 3, 15)
    finally:
        source.stop()
    assert L == [b"a", b"", b"b"]  # an empty value is a value; None is a tombstone
    assert source.tombstones == 2
    assert committed(kafka_bootstrap, config["group.id"], topic, 1) == {0: 5}


def test_keys_emits_whole_records_with_timestamps_tombstones_included(kafka_bootstrap, kafka_topic):
    topic = kafka_topic(2)
    before = time.time()
    produce(
        kafka_bootstrap,
        topic,
        [b"a", None, b"b"],
        partition=lambda i: i % 2,
        keys=[b"k0", b"k1", None],
    )
    config = params(kafka_bootstrap)
    source = Stream.from_kafka(topic, config, poll_interval=0.05, keys=True)
    L = source.sink_to_list()
    source.start()
    try:
        wait_for(lambda: len(L) == 3, 15)
    finally:
        source.stop()
    records = sorted(L, key=lambda r: (r["partition"], r["offset"]))
    assert [(r["key"], r["value"], r["topic"], r["partition"], r["offset"]) for r in records] == [
        (b"k0", b"a", topic, 0, 0),
        (None, b"b", topic, 0, 1),
        (b"k1", None, topic, 1, 0),
    ]
    assert all(before - 5 <= r["timestamp"] / 1000 <= time.time() + 5 for r in records)
    assert source.tombstones == 0
    assert committed(kafka_bootstrap, config["group.id"], topic, 2) == {0: 2, 1: 1}


def test_in_flight_records_are_bounded(kafka_bootstrap, kafka_topic):
    topic = kafka_topic(1)
    produce(kafka_bootstrap, topic, values(10), partition=0)
    source = Stream.from_kafka(topic, params(kafka_bootstrap), poll_interval=0.05, max_in_flight=3)
    hold = Hold(source)
    source.start()
    try:
        wait_for(lambda: len(hold.held) == 3, 15)
        time.sleep(0.3)
        assert len(hold.held) == 3  # no room: the source waits instead of reading on
        hold.release(b"v0")
        wait_for(lambda: len(hold.held) == 4, 5)
        for i in range(1, 10):
            wait_for(lambda i=i: len(hold.held) > i, 5)
            hold.release(f"v{i}".encode())
        wait_for(lambda: source.committed == {(topic, 0): 10}, 5)
    finally:
        source.stop()
    assert [x for x, _ in hold.held] == values(10)


def test_stop_waits_for_records_in_flight_then_commits_and_closes(kafka_bootstrap, kafka_topic):
    topic = kafka_topic(1)
    produce(kafka_bootstrap, topic, values(3), partition=0)
    config = params(kafka_bootstrap)
    source = Stream.from_kafka(topic, config, poll_interval=0.05)
    hold = Hold(source)
    source.start()
    wait_for(lambda: len(hold.held) == 3, 15)
    stopper = threading.Thread(target=source.stop)
    stopper.start()
    time.sleep(0.3)
    assert stopper.is_alive()  # draining
    for v in values(3):
        hold.release(v)
    stopper.join(10)
    assert not stopper.is_alive()
    assert source.consumer is None
    assert committed(kafka_bootstrap, config["group.id"], topic, 1) == {0: 3}


def test_the_event_loop_stays_free_while_the_consumer_waits(kafka_bootstrap, kafka_topic):
    topic = kafka_topic(1)
    source = Stream.from_kafka(topic, params(kafka_bootstrap), poll_interval=1.0)
    source.start()
    try:
        worst = 0.0
        deadline = time.monotonic() + 2.5
        while time.monotonic() < deadline:
            t0 = time.monotonic()
            asyncio.run_coroutine_threadsafe(asyncio.sleep(0), source.loop.asyncio_loop).result(5)
            worst = max(worst, time.monotonic() - t0)
            time.sleep(0.05)
    finally:
        source.stop()
    assert worst < 0.2, f"the loop was blocked for {worst:.2f} s"


def test_two_pipelines_in_one_group_split_the_partitions_and_lose_nothing(
    kafka_bootstrap, kafka_topic
):
    topic = kafka_topic(4)
    config = params(kafka_bootstrap)
    first = Stream.from_kafka(topic, config, poll_interval=0.05)
    second = Stream.from_kafka(topic, config, poll_interval=0.05)
    A, B = first.sink_to_list(), second.sink_to_list()
    first.start()
    produce(kafka_bootstrap, topic, values(200, "a"), partition=lambda i: i % 4)
    wait_for(lambda: len(A) >= 50, 15)
    second.start()  # a rebalance: some partitions move to the second pipeline
    try:
        wait_for(lambda: second.assignment and len(first.assignment) < 4, 30)
        assert not first.assignment & second.assignment
        produce(kafka_bootstrap, topic, values(200, "b"), partition=lambda i: i % 4)
        wait_for(lambda: set(A) | set(B) >= set(values(200, "a") + values(200, "b")), 30)
        assert B  # the second pipeline read its partitions
    finally:
        first.stop()
        second.stop()
    assert committed(kafka_bootstrap, config["group.id"], topic, 4) == {p: 100 for p in range(4)}


def test_a_group_resumes_from_its_committed_offsets(kafka_bootstrap, kafka_topic):
    topic = kafka_topic(1)
    config = params(kafka_bootstrap)
    produce(kafka_bootstrap, topic, values(5), partition=0)
    source = Stream.from_kafka(topic, config, poll_interval=0.05)
    L = source.sink_to_list()
    source.start()
    wait_for(lambda: len(L) == 5, 15)
    source.stop()
    produce(kafka_bootstrap, topic, values(3, "w"), partition=0)
    source.start()  # restart: a new consumer resumes after the committed offset
    try:
        wait_for(lambda: len(L) == 8, 15)
    finally:
        source.stop()
    assert values(5) + values(3, "w") == L


@pytest.mark.asyncio
async def test_works_on_the_callers_event_loop(kafka_bootstrap, kafka_topic):
    topic = kafka_topic(1)
    produce(kafka_bootstrap, topic, values(4), partition=0)
    source = Stream.from_kafka(
        topic, params(kafka_bootstrap), poll_interval=0.05, asynchronous=True
    )
    L = source.sink_to_list()
    source.start()
    await await_for(lambda: len(L) == 4, 15)
    source.stop()
    await source.work_task
    assert values(4) == L
    assert source.committed == {(topic, 0): 4}


def test_a_start_error_is_raised_not_also_logged(unused_port):
    import logging

    from millstream.exceptions import KafkaConnectError
    from millstream.testing import captured_logger

    source = Stream.from_kafka(
        "t", {"bootstrap.servers": f"127.0.0.1:{unused_port}", "group.id": "g"}, connect_timeout=0.5
    )
    with captured_logger("millstream", logging.ERROR) as log:
        with pytest.raises(KafkaConnectError, match=f"127.0.0.1:{unused_port}"):
            source.start()
        time.sleep(0.1)
    assert log.getvalue() == ""
    assert source.stopped and isinstance(source.error, KafkaConnectError)
