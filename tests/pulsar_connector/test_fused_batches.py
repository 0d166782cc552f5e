"""``from_pulsar`` on a fully fused graph emits each received batch at once through the
fused code and acknowledges after it: these tests hold it to the per-element path's
behaviour (a failure in the middle of a batch, positions per partition, ``keys=True``).

The producer batches, so a whole test input arrives in one ``batch_receive``."""

from __future__ import annotations

import json
import urllib.request

import pytest

from millstream import Stream

from ._helpers import produce, wait_for
from .conftest import unique_topic

pytestmark = pytest.mark.timeout(180)


def values(n: int, prefix: str = "m") -> list[bytes]:
    return [f"{prefix}{i}".encode() for i in range(n)]


def partitioned_topic(admin_url: str, partitions: int) -> str:
    topic = unique_topic("parts")
    path = topic.replace("persistent://", "persistent/")
    request = urllib.request.Request(
        f"{admin_url}/admin/v2/{path}/partitions",
        data=json.dumps(partitions).encode(),
        headers={"Content-Type": "application/json"},
        method="PUT",
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        assert answer.status in (200, 204)
    return topic


def test_a_failure_in_the_middle_of_a_batch_nacks_only_that_message(
    pulsar_url, pulsar_client, topic
):
    produce(pulsar_client, topic, values(50), batching=True)
    attempts: dict[bytes, int] = {}

    def flaky(x):
        attempts[x] = attempts.get(x, 0) + 1
        if x == b"m20" and attempts[x] == 1:
            raise ValueError("first try fails")
        return x

    source = Stream.from_pulsar(
        pulsar_url, topic, "mid", initial_position="earliest", nack_redelivery_delay=0.2
    )
    seen = source.map(flaky).sink_to_list()
    assert source._downstream_fully_fused()  # the path under test
    source.start()
    try:
        wait_for(lambda: source.acknowledged == 50, what="50 acknowledgements")
        assert source.nacked == 1
        # each message processed once, m20 twice (its first try failed, then redelivered)
        assert sorted(seen) == sorted(values(50))
        assert attempts[b"m20"] == 2 and all(n == 1 for x, n in attempts.items() if x != b"m20")
        # the messages after the failure went on in order, before the redelivery
        assert seen[:49] == [v for v in values(50) if v != b"m20"]
        assert source.snapshot()[topic]["inclusive"] is False
    finally:
        source.stop()


def test_on_failure_stop_in_a_batch_leaves_the_rest_unacknowledged(
    pulsar_url, pulsar_client, topic
):
    produce(pulsar_client, topic, values(30), batching=True)

    def fail_at_m10(x):
        if x == b"m10":
            raise ValueError("bad m10")
        return x

    source = Stream.from_pulsar(
        pulsar_url, topic, "stop", initial_position="earliest", on_failure="stop"
    )
    seen = source.map(fail_at_m10).sink_to_list()
    source.start()
    wait_for(lambda: source.stopped, what="the source to stop")
    assert isinstance(source.error, ValueError)
    assert any("m10" in str(source.error) or topic in note for note in source.error.__notes__)
    assert seen == values(10)
    assert (source.acknowledged, source.nacked) == (10, 1)
    # its position keeps the failed message, to be read again
    position = source.snapshot()[topic]
    assert position["inclusive"] is True

    again = Stream.from_pulsar(pulsar_url, topic, "stop")
    rest = again.sink_to_list()
    again.start()
    try:
        wait_for(lambda: len(rest) >= 20, what="the 20 messages not acknowledged")
        assert sorted(rest) == sorted(values(30)[10:])
    finally:
        again.stop()


def test_positions_per_partition_match_the_per_element_path(
    pulsar_url, pulsar_admin_url, pulsar_client
):
    topic = partitioned_topic(pulsar_admin_url, 3)
    producer = pulsar_client.create_producer(topic, batching_enabled=True)
    for i, v in enumerate(values(300)):  # keys spread the messages over the partitions
        producer.send_async(v, None, partition_key=str(i))
    producer.flush()
    producer.close()
    snapshots = {}
    for name, build in (
        ("fused", lambda s: s.sink_to_list()),
        ("per element", lambda s: s.buffer(10).sink_to_list()),
    ):
        source = Stream.from_pulsar(pulsar_url, topic, f"p-{name}", initial_position="earliest")
        out = build(source)
        assert source._downstream_fully_fused() is (name == "fused")
        source.start()
        try:
            wait_for(lambda s=source: s.acknowledged == 300, what=f"300 acknowledged ({name})")
        finally:
            source.stop()
        assert sorted(out) == sorted(values(300))
        snapshots[name] = source.snapshot()
    assert len(snapshots["fused"]) == 3 and all("-partition-" in t for t in snapshots["fused"])
    assert snapshots["fused"] == snapshots["per element"]


def test_keys_records_on_the_fused_path(pulsar_url, pulsar_client, topic):
    produce(pulsar_client, topic, values(5), batching=True)
    source = Stream.from_pulsar(pulsar_url, topic, "keys", initial_position="earliest", keys=True)
    records = source.sink_to_list()
    source.start()
    try:
        wait_for(lambda: source.acknowledged == 5, what="5 acknowledgements")
    finally:
        source.stop()
    assert [r["value"] for r in records] == values(5)
    assert {r["topic"] for r in records} == {topic}
    assert len({r["message_id"] for r in records}) == 5
    assert records[-1]["message_id"] == source.snapshot()[topic]["message_id"]
