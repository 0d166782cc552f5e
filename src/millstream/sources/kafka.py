"""``from_kafka``: one element per Kafka record, read as part of a consumer group."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._utils import short_repr
from ..core.stream import Stream
from ..kafka.consumer import (
    ConsumerThread,
    consumer_config,
    make_consumer,
    message_record,
    raise_for_error,
    topic_partitions,
)
from ..kafka.log import logger
from .kafka_base import KafkaSource

__all__ = ["from_kafka"]


@Stream.register_api(staticmethod)
class from_kafka(KafkaSource):
    """Emit the value of each record of Kafka ``topics``, reading as part of a consumer group.

    Several pipelines with the same ``group.id`` share the topics' partitions; when one
    joins or leaves, Kafka moves partitions between them (a rebalance) and nothing is
    lost: offsets are committed only up to the completed prefix of each partition
    (ordered at-least-once), and a partition taken away is first committed up to there.
    Unless ``consumer_params`` turns ``enable.auto.commit`` on explicitly, the source
    commits itself after each poll, on ``stop()``, and never past a record whose
    processing raised: that error stops the source, and a restarted pipeline reads the
    record again. Records without a value (tombstones) are counted in ``tombstones``
    and not emitted (with ``keys=True`` they are emitted as records). ``consumer_params``
    is not modified.

    Parameters
    ----------
    topics : str or list of str
    consumer_params : dict
        librdkafka settings; ``bootstrap.servers`` and ``group.id`` are required.
    poll_interval : float or str
        The longest a poll waits for records (seconds or a duration like ``'100ms'``).
    max_in_flight : int
        The most records in the graph at once (held by buffers, async sinks…).
    connect_timeout : float
        Seconds ``start()`` waits for the broker before raising ``KafkaConnectError``.
    drain_timeout : float
        Seconds ``stop()`` waits for the records in flight before the last commit (default
        10); what is still in flight then is not committed, and a warning says so.
    keys : bool
        Emit each record as a dict with ``key``, ``value``, ``topic``, ``partition``,
        ``offset`` and ``timestamp`` (milliseconds since the epoch, None if the record has
        none), tombstones included, as ``from_kafka_batched(keys=True)`` does (not in
        Streamz's ``from_kafka``). ``with_timestamps('kafka')`` reads these records.

    Examples
    --------
    >>> source = Stream.from_kafka('orders', {'bootstrap.servers': 'localhost:9092',
    ...                                       'group.id': 'billing'})
    >>> source.topics, source.stopped
    (['orders'], True)
    >>> Stream.from_kafka('orders', {'bootstrap.servers': 'localhost:9092'})
    Traceback (most recent call last):
    ...
    ValueError: from_kafka: consumer_params needs a 'group.id' ...
    """

    def __init__(
        self,
        topics: str | list[str],
        consumer_params: Mapping[str, Any],
        poll_interval: float | str = 0.1,
        max_in_flight: int = 10000,
        connect_timeout: float = 10.0,
        keys: bool = False,
        **kwargs: Any,
    ):
        self.keys = bool(keys)
        if isinstance(topics, str):
            topics = [topics]
        topics = list(topics)
        if not topics or not all(isinstance(t, str) and t for t in topics):
            raise ValueError(f"from_kafka: topics must be topic names, got {short_repr(topics)}")
        self.topics = topics
        #: the (topic, partition) pairs the consumer group gives this source now
        self.assignment: frozenset[tuple[str, int]] = frozenset()
        config = consumer_config("from_kafka", consumer_params)
        if not config.get("group.id"):
            raise ValueError(
                f"from_kafka: consumer_params needs a 'group.id' (the consumer group whose "
                f"committed offsets it resumes from), got {short_repr(dict(consumer_params))}"
            )
        auto = str(config.get("enable.auto.commit", "false")).lower() in ("true", "1")
        config["enable.auto.commit"] = auto
        self._config = config
        super().__init__(
            consumer_params, poll_interval, max_in_flight, connect_timeout, not auto, **kwargs
        )

    def _connect(self) -> Any:
        consumer = make_consumer("from_kafka", self._config)
        try:
            for topic in self.topics:
                topic_partitions(str(self), consumer, topic, self.connect_timeout, self._servers)
            consumer.subscribe(self.topics, on_assign=self._on_assign, on_revoke=self._on_revoke)
        except BaseException:
            consumer.close()
            raise
        return consumer

    def _on_assign(self, consumer: Any, partitions: list[Any]) -> None:
        self.assignment = self.assignment | {(tp.topic, tp.partition) for tp in partitions}

    def _on_revoke(self, consumer: Any, partitions: list[Any]) -> None:
        """On the consumer thread, inside a poll: commit what is done of the lost partitions."""
        import confluent_kafka

        lost = {(tp.topic, tp.partition) for tp in partitions}
        self.assignment = self.assignment - lost
        offsets = []
        for tp in partitions:
            offset = self.tracker.forget((tp.topic, tp.partition))
            if offset is not None:
                offsets.append(confluent_kafka.TopicPartition(tp.topic, tp.partition, offset))
        if offsets and self._commits_enabled:
            try:
                consumer.commit(offsets=offsets, asynchronous=False)
                self.committed.update({(tp.topic, tp.partition): tp.offset for tp in offsets})
            except confluent_kafka.KafkaException as e:
                logger.warning("%s: commit on rebalance failed: %s", self, e)

    async def _cycle(self, thread: ConsumerThread) -> None:
        room = max(1, min(self.max_in_flight - self.tracker.in_flight, 10000))
        messages = await thread.call(self.consumer.consume, room, self.poll_interval)
        needs_refs = self._needs_refs()
        name = str(self)
        begin = self.tracker.begin
        keys = self.keys
        for msg in messages:
            if msg.error() is not None and raise_for_error(name, msg):
                continue
            value = msg.value()
            if keys:
                value = message_record(msg)
            elif value is None:
                self.tombstones += 1
                continue
            offset = msg.offset()
            rng = begin(msg.topic(), msg.partition(), offset, offset)
            await self._emit_tracked(value, rng, needs_refs)
            if self.stopped:
                break  # the rest is not committed: it is read again after a restart
