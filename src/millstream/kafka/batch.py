"""Reading one range of offsets of one partition, wherever a range is read: on the
graph's loop (``from_kafka_batched``) or on a Dask worker (``dask=True``), with consumers
kept per configuration and reused.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any, cast

from .consumer import message_record, raise_for_error
from .log import librdkafka_log, logger

__all__ = ["POOL_IDLE_SECONDS", "close_pooled_consumers", "get_message_batch"]

_pool_lock = threading.Lock()
_pool: dict[tuple, list[tuple[Any, float]]] = {}
"""Idle consumers per configuration, with the ``time.monotonic()`` they were put back."""

POOL_IDLE_SECONDS = 60.0
"""A pooled consumer unused for this long is closed at the next read in the process."""


def _prune_locked(now: float) -> list[Any]:
    """Take the consumers idle for longer than :data:`POOL_IDLE_SECONDS` out of the pool."""
    stale = []
    for key in list(_pool):
        keep = []
        for consumer, since in _pool[key]:
            if now - since > POOL_IDLE_SECONDS:
                stale.append(consumer)
            else:
                keep.append((consumer, since))
        if keep:
            _pool[key] = keep
        else:
            del _pool[key]
    return stale


def _close_all(consumers: list[Any]) -> None:
    for consumer in consumers:
        try:
            consumer.close()
        except Exception as e:  # a consumer that cannot close cleanly is gone all the same
            logger.debug("closing a pooled Kafka consumer failed: %s", e)


def close_pooled_consumers() -> int:
    """Close every idle consumer kept by :func:`get_message_batch` in this process.

    Returns how many were closed. On a Dask cluster: ``client.run(close_pooled_consumers)``
    closes the workers' ones once a pipeline reading Kafka on them is over (otherwise they
    are closed after :data:`POOL_IDLE_SECONDS` unused, at the next read).

    >>> close_pooled_consumers()
    0
    """
    with _pool_lock:
        consumers = [c for idle in _pool.values() for c, _ in idle]
        _pool.clear()
    _close_all(consumers)
    return len(consumers)


def _pool_key(params: Mapping[str, Any]) -> tuple:
    return tuple(sorted((k, repr(v)) for k, v in params.items()))


def get_message_batch(
    kafka_params: Mapping[str, Any],
    topic: str,
    partition: int,
    keys: bool,
    low: int,
    high: int,
    timeout: float | None = None,
) -> list[Any]:
    """Read offsets ``low..high`` (inclusive) of one partition: the values, or dicts with ``keys``.

    This is what the ranges planned by ``from_kafka_batched(..., dask=True)`` become on
    the Dask workers. Consumers are kept per configuration and reused (Streamz makes and
    closes one per batch); one unused for :data:`POOL_IDLE_SECONDS` is closed at the next
    read, and :func:`close_pooled_consumers` closes them all. The read ends at ``high``
    whatever the records are: a tombstone (``None`` value) at the end does not make it
    wait forever, and offsets
    missing from the log (compaction, transaction markers) are passed over. With
    ``keys=False`` tombstones are left out, as in Streamz; with ``keys=True`` they are
    dicts whose value is ``None``. ``timeout`` (seconds, ``None`` for no limit) bounds
    how long it waits for records that are not there yet.
    """
    import time

    import confluent_kafka

    key = _pool_key(kafka_params)
    with _pool_lock:
        stale = _prune_locked(time.monotonic())
        idle = _pool.get(key)
        consumer = idle.pop()[0] if idle else None
    _close_all(stale)
    if consumer is None:
        config = dict(kafka_params)
        config.update({"enable.auto.commit": False, "enable.partition.eof": True})
        # a reused consumer otherwise waits librdkafka's default 500 ms on each new range
        config.setdefault("fetch.wait.max.ms", 10)
        config.setdefault("group.id", "millstream-batch-reader")
        config.setdefault("logger", librdkafka_log)
        consumer = confluent_kafka.Consumer(config)
    out: list[Any] = []
    deadline = None if timeout is None else time.monotonic() + timeout
    tp = confluent_kafka.TopicPartition(topic, partition, low)
    try:
        consumer.assign([tp])
        done = high < low
        while not done:
            wait = 0.1 if deadline is None else max(0.0, min(0.1, deadline - time.monotonic()))
            for msg in consumer.consume(min(10000, high - low + 1), timeout=wait):
                error = msg.error()
                if error is not None:
                    if error.code() == confluent_kafka.KafkaError._PARTITION_EOF:
                        done = done or cast(int, msg.offset()) > high
                        continue
                    raise_for_error("get_message_batch", msg)
                    continue
                offset = cast(int, msg.offset())
                if offset > high:
                    done = True
                    break
                if keys:
                    out.append(message_record(msg))
                else:
                    value = msg.value()
                    if value is not None:
                        out.append(value)
                if offset >= high:
                    done = True
                    break
            if not done and deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(
                    f"get_message_batch: topic {topic!r} partition {partition}: offsets "
                    f"{low}..{high} not all readable within {timeout} s (got {len(out)})"
                )
        consumer.unassign()
    except BaseException:
        consumer.close()
        raise
    with _pool_lock:
        _pool.setdefault(key, []).append((consumer, time.monotonic()))
    return out
