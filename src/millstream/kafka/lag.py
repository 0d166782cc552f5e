"""Consumer lag: how many records a Kafka reader is behind the end of its partitions.

A partition's lag is its high watermark (the offset after its newest record) minus the
offset after the last record the reader emitted. The high watermarks are read on the
reader's own consumer thread (:class:`~millstream.kafka.consumer.ConsumerThread`), never
on the event loop, at most once a period: :func:`high_watermarks` takes librdkafka's
cached values (updated by every fetch response, no request to the broker) and asks the
broker only for a partition it has not fetched yet. :func:`lag_metrics` turns them and
the reader's position into metrics, in whatever thread reads them.

Examples
--------
>>> lag_metrics({('orders', 0): 7, ('orders', 1): 3}, {('orders', 0): (10, None),
...             ('orders', 1): (3, None), ('orders', 2): (5, 2)})
{'lag': 6, 'lag_by_partition': {'orders/0': 3, 'orders/1': 0, 'orders/2': 3}}
>>> lag_metrics({}, None)
{'lag': None, 'lag_by_partition': {}}
>>> partition_label(('orders', 2))
'orders/2'
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .log import logger

__all__ = ["LAG_REFRESH", "high_watermarks", "lag_metrics", "partition_label"]

#: seconds between two readings of the high watermarks
LAG_REFRESH = 1.0

TopicPartition = tuple[str, int]


def partition_label(tp: TopicPartition) -> str:
    """``'topic/partition'``: how metrics name a partition."""
    return f"{tp[0]}/{tp[1]}"


def high_watermarks(
    node: Any,
    consumer: Any,
    partitions: Iterable[Any],
    starts: dict[TopicPartition, int],
    emitted: Mapping[TopicPartition, int],
    reset_to_end: bool,
    timeout: float = 1.0,
) -> dict[TopicPartition, tuple[int, int | None]]:
    """On the consumer's thread: ``{(topic, partition): (high watermark, start)}`` for
    ``partitions`` (``confluent_kafka.TopicPartition`` objects).

    ``start`` is where the reader starts a partition it has emitted nothing from yet (not
    in ``emitted``): the group's committed offset, else the low watermark, or the high one
    with ``reset_to_end`` (``auto.offset.reset`` latest); asked once per partition and
    kept in ``starts``. A cached high watermark is used where librdkafka has one; otherwise
    the broker is asked (at most ``timeout`` seconds). A partition whose watermark cannot
    be had is left out.
    """
    import confluent_kafka

    out: dict[TopicPartition, tuple[int, int | None]] = {}
    for tp in partitions:
        key = (tp.topic, tp.partition)
        try:
            low, high = consumer.get_watermark_offsets(tp, cached=True)
            if high is None or high < 0:
                low, high = consumer.get_watermark_offsets(tp, timeout=timeout)
            if key not in emitted and key not in starts:
                start = consumer.committed([tp], timeout=timeout)[0].offset
                if start < 0:
                    if not reset_to_end and (low is None or low < 0):
                        low, high = consumer.get_watermark_offsets(tp, timeout=timeout)
                    start = high if reset_to_end else low
                starts[key] = start
        except confluent_kafka.KafkaException as e:
            logger.debug("%s: no watermark for %s [%d]: %s", node, tp.topic, tp.partition, e)
            continue
        if high is None or high < 0:
            continue
        out[key] = (high, starts.get(key))
    return out


def lag_metrics(
    emitted: Mapping[TopicPartition, int],
    highs: Mapping[TopicPartition, tuple[int, int | None]] | None,
) -> dict[str, Any]:
    """``lag`` (records behind, summed over the partitions; None before the first reading)
    and ``lag_by_partition`` (``{'topic/partition': records behind}``) from the offsets
    after the records emitted and the last :func:`high_watermarks`."""
    if highs is None:
        return {"lag": None, "lag_by_partition": {}}
    by_partition: dict[str, int] = {}
    for tp, (high, start) in sorted(highs.items()):
        at = emitted.get(tp, start)
        if at is not None:
            by_partition[partition_label(tp)] = max(high - at, 0)
    return {"lag": sum(by_partition.values()), "lag_by_partition": by_partition}
