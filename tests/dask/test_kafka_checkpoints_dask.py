"""``from_kafka_batched(dask=True)`` in checkpoints: the client plans ``(partition, low,
high)`` ranges, the workers read them, and the position is exact while ranges flow."""

from __future__ import annotations

from kafka._checkpoints import PARTITIONS, crash_and_resume, slower_sink
from kafka._produce import params
from millstream import Stream
from millstream.sources.kafka_batched import FromKafkaBatched


def decode_batch(batch):
    return [b.decode() for b in batch]


def test_dask_ranges_checkpoints_are_exact_while_records_flow(
    client, kafka_bootstrap, kafka_topic, tmp_path
):
    topic = kafka_topic(PARTITIONS)
    config = params(kafka_bootstrap)

    def build():
        stream = Stream.from_kafka_batched(
            topic, config, dask=True, poll_interval=0.02, max_batch_size=7
        )
        source = stream.upstream.upstream
        assert isinstance(source, FromKafkaBatched)
        batches = stream.gather().map(decode_batch)
        batches.sink(slower_sink)
        return source, batches.flatten().frequencies()

    seen = crash_and_resume(kafka_bootstrap, topic, config["group.id"], tmp_path, build)
    assert len({str(p) for p in seen["positions"]}) >= 2
    assert 0 < seen["restored_total"] <= seen["counted_before_crash"]
