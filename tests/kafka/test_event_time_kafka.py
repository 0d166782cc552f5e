"""Event time over a real topic: Kafka message timestamps, a watermark per partition,
tumbling windows, a late record sent aside, and commits that wait for the windows."""

from __future__ import annotations

import collections

from confluent_kafka import Producer

from millstream import Stream
from millstream.testing import wait_for
from millstream.time import Tumbling, Window, watermark

from ._produce import committed, params

BASE = 1_700_000_000  # seconds, a multiple of the window size: windows start at BASE + 10 k

# (partition, key, event time in seconds after BASE): out of order by at most 5 s per partition
ON_TIME = [
    (0, "a", 1),
    (1, "b", 4),
    (0, "b", 3),
    (0, "a", 2),
    (1, "a", 14),
    (0, "a", 12),
    (1, "b", 13),
    (0, "b", 11),
    (1, "a", 27),
    (0, "a", 25),
    (0, "b", 31),
    (1, "b", 33),
]


def produce_at(bootstrap: str, topic: str, events: list[tuple[int, str, int]]) -> None:
    """Write each event with its event time as the Kafka message timestamp (ms)."""
    errors: list = []
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
    for partition, key, t in events:
        producer.produce(
            topic,
            value=f"{key}@{t}".encode(),
            key=key.encode(),
            partition=partition,
            timestamp=(BASE + t) * 1000,
            on_delivery=lambda e, m: e and errors.append(e),
        )
    assert producer.flush(10) == 0 and errors == []


def test_kafka_timestamps_drive_windows_and_late_records_go_aside(kafka_bootstrap, kafka_topic):
    topic = kafka_topic(2)
    produce_at(kafka_bootstrap, topic, ON_TIME)
    config = params(kafka_bootstrap)
    source = Stream.from_kafka(topic, config, poll_interval=0.05, keys=True)
    events = source.with_timestamps("kafka", max_out_of_orderness=5, partitions=range(2))
    counts = events.window(Tumbling(10), "count", key=lambda r: r["key"].decode(), late="side")
    results = counts.sink_to_list()
    late = counts.late.sink_to_list()
    source.start()
    try:
        # partition 0 reaches 31, partition 1 reaches 33: the watermark is min(26, 28)
        wait_for(lambda: events.watermark == BASE + 26, 15)
        assert watermark(counts) == BASE + 26
        closed = {(r.key, r.window.start - BASE): r.value for r in results}
        assert closed == {("a", 0): 2, ("b", 0): 2, ("a", 10): 2, ("b", 10): 2}
        # everything read, but the open windows [20, 30) and [30, 40) hold their records
        # (offsets 5, 6 of partition 0 and 3, 4 of partition 1): commits stop before them
        wait_for(lambda: source.committed == {(topic, 0): 5, (topic, 1): 3}, 15)

        produce_at(kafka_bootstrap, topic, [(0, "a", 2)])  # window [0, 10) closed at 26
        wait_for(lambda: len(late) == 1, 15)
        window, record = late[0]
        assert window == Window(BASE, BASE + 10) and record["value"] == b"a@2"
        assert counts.late_count == 1

        # the topic is bounded here: close them all (from this thread: it runs on the loop)
        assert events.end_of_input() == []
        wait_for(lambda: len(results) == 6, 15)
        wait_for(lambda: source.committed == {(topic, 0): 8, (topic, 1): 5}, 15)
    finally:
        source.stop()
    expected = collections.Counter((key, (t // 10) * 10) for _, key, t in ON_TIME)
    assert {(r.key, r.window.start - BASE): r.value for r in results} == dict(expected)
    assert all(r.kind == "final" for r in results)
    assert [r.window.end for r in results] == sorted(r.window.end for r in results)
    assert committed(kafka_bootstrap, config["group.id"], topic, 2) == {0: 8, 1: 5}
