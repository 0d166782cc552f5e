"""What every Kafka reader shares: consumer configuration, a thread for blocking calls,
clear errors, and the ``keys=True`` record of a message.

``confluent_kafka`` is imported only when a consumer is made, never by ``import millstream``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from .._utils import short_repr
from ..exceptions import KafkaConnectError, UnknownTopicError
from .errors import KafkaNotReady, classify_kafka_error, retry_retriable
from .log import librdkafka_log, logger
from .settings import check_settings

__all__ = [
    "OFFSET_BEGINNING",
    "OFFSET_END",
    "OFFSET_INVALID",
    "OFFSET_STORED",
    "ConsumerThread",
    "call_until_ready",
    "consumer_config",
    "make_consumer",
    "message_record",
    "raise_for_error",
    "topic_partitions",
]

T = TypeVar("T")

#: librdkafka's sentinel offsets
OFFSET_BEGINNING, OFFSET_END, OFFSET_STORED, OFFSET_INVALID = -2, -1, -1000, -1001


def consumer_config(node: str, consumer_params: Mapping[str, Any], **overrides: Any) -> dict:
    """A copy of ``consumer_params`` (never mutated) with ``overrides`` and a logger,
    checked by librdkafka (``ValueError`` naming ``node`` and the setting it rejects).

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
    check_settings(node, config, "consumer", "consumer_params")
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


def call_until_ready(
    node: str, servers: str, what: str, call: Callable[[float], T], timeout: float
) -> T:
    """``call(seconds_left)``: a request to the broker, tried again while Kafka answers with
    a retriable error (``NOT_COORDINATOR`` while a fresh broker creates its offsets topic,
    ``LEADER_NOT_AVAILABLE``...) until ``timeout`` seconds have passed.

    Raises :class:`~millstream.exceptions.KafkaConnectError` saying what happened: no broker
    answered, the broker was not ready in time (with the last error's name), or it answered
    with another error (its name and message); the client's exception is the cause.
    """
    import confluent_kafka

    try:
        return retry_retriable(call, timeout)
    except (confluent_kafka.KafkaException, KafkaNotReady) as e:
        problem = classify_kafka_error(e)
        if problem.kind == "unreachable":
            raise KafkaConnectError(
                f"{node}: no Kafka broker answered at bootstrap.servers={servers!r} within "
                f"{timeout:g} s ({problem.message or e})"
            ) from e
        if isinstance(e, KafkaNotReady):
            raise KafkaConnectError(
                f"{node}: the Kafka broker at bootstrap.servers={servers!r} was not ready for "
                f"{what} within {timeout:g} s: {problem.describe()}"
            ) from e
        raise KafkaConnectError(
            f"{node}: Kafka at bootstrap.servers={servers!r} refused {what}: {problem.describe()}"
        ) from e


def topic_partitions(
    node: str, consumer: Any, topic: str, timeout: float, servers: str = "?"
) -> list[int]:
    """The partition ids of ``topic``; clear errors when the broker or the topic is missing."""
    import confluent_kafka

    metadata = call_until_ready(
        node,
        servers,
        f"the metadata of topic {topic!r}",
        lambda seconds: consumer.list_topics(topic, timeout=seconds),
        timeout,
    )
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

    def submit(self, fn: Callable[..., T], *args: Any) -> concurrent.futures.Future[T]:
        """Queue ``fn(*args)`` on the thread and return at once (after the calls queued
        before it, before those queued after it)."""
        return self._executor.submit(fn, *args)

    def call_blocking(self, timeout: float, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on the thread (after the calls queued before it) and wait for it
        here, at most ``timeout`` seconds (then ``TimeoutError``): for a caller off the loop
        while the loop cannot run (a ``stop()`` that finds the loop blocked)."""
        return self._executor.submit(fn, *args).result(timeout)

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True)


def message_record(msg: Any) -> dict[str, Any]:
    """The ``keys=True`` form of a message: key, value, topic, partition, offset, timestamp
    and headers (a list of ``(name, bytes)`` pairs as librdkafka gives them, None if none)."""
    kind, ts = msg.timestamp()
    return {
        "key": msg.key(),
        "value": msg.value(),
        "topic": msg.topic(),
        "partition": msg.partition(),
        "offset": msg.offset(),
        "timestamp": ts if kind else None,  # milliseconds since the epoch
        "headers": msg.headers(),
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
