"""An exactly-once ``from_kafka`` -> ``to_kafka`` pipeline while its consumer group
rebalances: the checkpoint before the revoke commits, the new member gets its partitions,
and the pipeline goes on (T8 runs this with two instances and faults)."""

from __future__ import annotations

import time

from confluent_kafka import Consumer

from millstream import Stream
from millstream.checkpoint import enable
from millstream.testing import wait_for

from ._produce import committed, params, produce


def test_a_member_joining_gets_partitions_while_the_pipeline_commits_before_the_revoke(
    kafka_bootstrap, kafka_topic, tmp_path
):
    source_topic, target_topic = kafka_topic(2), kafka_topic(2)
    config = params(kafka_bootstrap, **{"group.instance.id": ""})
    produce(kafka_bootstrap, source_topic, [b"%d" % i for i in range(200)], lambda i: i % 2)
    source = Stream.from_kafka(source_topic, config, poll_interval=0.05, keys=True)
    source.map(lambda r: (r["key"], r["value"])).to_kafka(
        target_topic, {"bootstrap.servers": kafka_bootstrap}, keys=True
    )
    checkpoints = enable(source, tmp_path / "ckpt", interval=0.1, exactly_once=True)
    group = config["group.id"]
    source.start()
    joined: Consumer | None = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": group})
    try:
        wait_for(lambda: committed(kafka_bootstrap, group, source_topic, 2) == {0: 100, 1: 100}, 30)
        transaction = checkpoints.kafka_output.transaction
        before = transaction.commits

        joined.subscribe([source_topic])
        deadline = time.monotonic() + 20
        while not joined.assignment():  # the rebalance completes: the revoke did not hang
            assert time.monotonic() < deadline, "the new member got no partition within 20 s"
            joined.poll(0.1)
        assert len(source.assignment) == 1
        assert transaction.commits > before  # the checkpoint before the revoke
        assert checkpoints.error is None

        joined.close()  # it leaves: the pipeline gets both partitions back and reads on
        joined = None
        wait_for(lambda: len(source.assignment) == 2, 20)
        more = [b"%d" % i for i in range(200, 220)]
        produce(kafka_bootstrap, source_topic, more, lambda i: i % 2)
        wait_for(lambda: committed(kafka_bootstrap, group, source_topic, 2) == {0: 110, 1: 110}, 30)
        assert checkpoints.error is None
    finally:
        if joined is not None:
            joined.close()
        checkpoints.close()
        source.stop()
