"""What the Kafka sources share: consumer configuration, a thread for blocking calls,
clear errors, and the batch fetch that runs wherever a range is read (loop or Dask worker).

``confluent_kafka`` is imported only when a consumer is made, never by ``import millstream``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any, TypeVar, cast

from .._utils import short_repr
from ..exceptions import KafkaConnectError, UnknownTopicError

__all__ = [
    "ConsumerThread",
    "close_pooled_consumers",
    "consumer_config",
    "get_message_batch",
    "message_record",
    "topic_partitions",
]

logger = logging.getLogger("millstream.kafka")


class LibrdkafkaLog:
    """Where librdkafka's own log lines go: the ``millstream.kafka`` logger, with lost
    connections (``FAIL``, which librdkafka logs as errors and retries by itself) logged as
    warnings, and a line repeating within ``interval`` seconds logged once, with a count.

    confluent-kafka calls ``log(level, fmt, facility, client, text)`` from its poll calls.

    >>> import logging
    >>> records = []
    >>> handler = logging.Handler(); handler.emit = records.append
    >>> target = logging.getLogger('librdkafka-doctest'); target.addHandler(handler)
    >>> log = LibrdkafkaLog(target, interval=60)
    >>> for _ in range(3):
    ...     log.log(logging.ERROR, '%s [%s] %s', 'FAIL', 'rdkafka#consumer-1',
    ...             'Connect to 127.0.0.1:9 failed: Connection refused (after 0ms)')
    >>> [(r.levelname, r.getMessage()[:9]) for r in records]
    [('WARNING', 'FAIL [rdk')]
    """

    def __init__(self, target: logging.Logger, interval: float = 10.0):
        self.target = target
        self.interval = interval
        self._last: dict[tuple[Any, ...], list[float]] = {}
        self._lock = threading.Lock()

    def log(self, level: int, msg: str, *args: Any, **kwargs: Any) -> None:
        import re
        import time

        facility = args[0] if args else ""
        if facility == "FAIL" and level > logging.WARNING:
            level = logging.WARNING
        key = (level, msg, *(re.sub(r"\d+", "#", str(a)) for a in args))
        now = time.monotonic()
        with self._lock:
            seen = self._last.get(key)
            if seen is not None and now - seen[0] < self.interval:
                seen[1] += 1
                return
            repeats = int(seen[1]) if seen is not None else 0
            self._last[key] = [now, 0]
        if repeats:
            msg = f"{msg} (and {repeats} more like it)"
        self.target.log(level, msg, *args, **kwargs)


librdkafka_log = LibrdkafkaLog(logger)

T = TypeVar("T")

#: librdkafka's sentinel offsets
OFFSET_BEGINNING, OFFSET_END, OFFSET_STORED, OFFSET_INVALID = -2, -1, -1000, -1001


def consumer_config(node: str, consumer_params: Mapping[str, Any], **overrides: Any) -> dict:
    """A copy of ``consumer_params`` (never mutated) with ``overrides`` and a logger.

    librdkafka's own log lines go to the ``millstream.kafka`` logger instead of stderr.
    """
    if not isinstance(consumer_params, Mapping):
        raise TypeError(
            f"{node}: consumer_params must be a dict of librdkafka settings, "
            f"got {short_repr(consumer_params)}"
        )
    config = dict(consumer_params)
    if not config.get("bootstrap.servers") and not config.get("metadata.broker.list"):
        raise ValueError(
            f"{node}: consumer_params needs 'bootstrap.servers' (e.g. 'localhost:9092'), "
            f"got {short_repr(consumer_params)}"
        )
    config.update(overrides)
    config.setdefault("logger", librdkafka_log)
    # librdkafka pauses a partition's fetching for 1 s whenever its prefetch queue is full;
    # the sources keep their own bound (max_in_flight), so resume after 10 ms instead
    config.setdefault("fetch.queue.backoff.ms", 10)
    return config


def make_consumer(node: str, config: dict) -> Any:
    """``confluent_kafka.Consumer(config)``, with a clear error for a bad setting."""
    try:
        import confluent_kafka
    except ImportError as e:  # pragma: no cover - the kafka extra is part of the test extra
        raise ImportError(f"{node} needs confluent-kafka: pip install 'millstream[kafka]'") from e
    try:
        return confluent_kafka.Consumer(config)
    except confluent_kafka.KafkaException as e:
        shown = {k: v for k, v in config.items() if k != "logger"}
        raise ValueError(f"{node}: librdkafka rejected consumer_params {shown}: {e}") from e


def topic_partitions(
    node: str, consumer: Any, topic: str, timeout: float, servers: str = "?"
) -> list[int]:
    """The partition ids of ``topic``; clear errors when the broker or the topic is missing."""
    import confluent_kafka

    try:
        metadata = consumer.list_topics(topic, timeout=timeout)
    except confluent_kafka.KafkaException as e:
        raise KafkaConnectError(
            f"{node}: no Kafka broker answered at bootstrap.servers={servers!r} within "
            f"{timeout:g} s ({e.args[0].str() if e.args else e})"
        ) from e
    info = metadata.topics.get(topic)
    if info is None or info.error is not None:
        # the answer above names only the missing topic: ask for all of them for the hint
        try:
            listed = consumer.list_topics(timeout=timeout).topics
        except confluent_kafka.KafkaException:
            listed = {}
        known = sorted(t for t, i in listed.items() if i.error is None and not t.startswith("__"))
        reason = info.error.str() if info is not None and info.error is not None else "not listed"
        raise UnknownTopicError(
            f"{node}: Kafka topic {topic!r} does not exist at {servers!r} ({reason}); "
            f"create it first (topics there: {known[:20]})"
        )
    return sorted(info.partitions)


class ConsumerThread:
    """One thread that makes every blocking call of one consumer, off the event loop.

    librdkafka consumers are not meant to be used from several threads at once; running
    all of one consumer's calls on one thread serialises them and keeps the loop free.
    """

    def __init__(self, name: str):
        self._executor = concurrent.futures.ThreadPoolExecutor(
            1, thread_name_prefix=f"millstream-{name}"
        )

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn(*args, **kwargs)`` on the thread and wait for it without blocking the loop."""
        future = self._executor.submit(fn, *args, **kwargs)
        return await asyncio.wrap_future(future)

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True)


def message_record(msg: Any) -> dict[str, Any]:
    """The ``keys=True`` form of a message: key, value, topic, partition, offset, timestamp."""
    kind, ts = msg.timestamp()
    return {
        "key": msg.key(),
        "value": msg.value(),
        "topic": msg.topic(),
        "partition": msg.partition(),
        "offset": msg.offset(),
        "timestamp": ts if kind else None,  # milliseconds since the epoch
    }


def raise_for_error(node: str, msg: Any) -> bool:
    """Handle an error message from ``consume``: raise if fatal, else log it; True if one."""
    error = msg.error()
    if error is None:
        return False
    import confluent_kafka

    code = error.code()
    if code == confluent_kafka.KafkaError._PARTITION_EOF:
        return True
    if code in (
        confluent_kafka.KafkaError.UNKNOWN_TOPIC_OR_PART,
        confluent_kafka.KafkaError._UNKNOWN_TOPIC,
    ):
        raise UnknownTopicError(f"{node}: Kafka topic {msg.topic()!r}: {error.str()}")
    if error.fatal():
        raise confluent_kafka.KafkaException(error)
    # transient (a broker restarting, a connection dropped): librdkafka retries by itself
    logger.warning("%s: Kafka reports %s (retrying)", node, error.str())
    return True


# -- reading one range of offsets (loop thread or Dask worker) ----------------------------

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
