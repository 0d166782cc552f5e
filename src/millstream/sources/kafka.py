"""``from_kafka``: one element per Kafka record, read as part of a consumer group."""

from __future__ import annotations

from collections.abc import Callable, Mapping
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
from ..kafka.positions import static_member_id
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

    With checkpoints (:func:`millstream.checkpoint.enable`) its position is the next
    offset of each partition after the records emitted; a restored pipeline resumes each
    partition there when the group assigns it, the group's committed offsets follow the
    completed checkpoints, and the source is a static member of its group (a
    ``group.instance.id`` derived from the group, the topics, the checkpoint location and
    the node's id, unless ``consumer_params`` sets one; ``''`` turns it off), so a restart
    after a crash gets its partitions back at once instead of after the dead member's
    session timeout.

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
        ``offset``, ``timestamp`` (milliseconds since the epoch, None if the record has
        none) and ``headers`` (``(name, bytes)`` pairs, None if none), tombstones
        included, as ``from_kafka_batched(keys=True)`` does (not in Streamz's
        ``from_kafka``). ``with_timestamps('kafka')`` reads these records.

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
        *,
        drain_timeout: float | None = None,
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
        self._auto_commit = auto
        super().__init__(
            consumer_params,
            poll_interval,
            max_in_flight,
            connect_timeout,
            not auto,
            drain_timeout=drain_timeout,
            **kwargs,
        )

    def _topics_read(self) -> list[str]:
        return self.topics

    def _may_commit(self, tp: tuple[str, int]) -> bool:
        return tp in self.assignment

    def consumer_settings(self) -> dict[str, Any]:
        """The librdkafka settings the next ``start()`` uses (but the logger): in
        checkpoint mode without auto-commit, and a static member of the group."""
        return {k: v for k, v in self._consumer_config().items() if k != "logger"}

    def _consumer_config(self) -> dict[str, Any]:
        config = dict(self._config)
        if self._checkpointing:
            config["enable.auto.commit"] = False
            if "group.instance.id" not in config:
                config["group.instance.id"] = static_member_id(
                    str(config["group.id"]), self.topics, self._checkpoint_identity
                )
        if "group.instance.id" in config and not config["group.instance.id"]:
            del config["group.instance.id"]  # '' or None: no static membership
        return config

    def _connect(self) -> Any:
        self._commits_enabled = self._checkpointing or not self._auto_commit
        self._group_metadata = None
        consumer = make_consumer("from_kafka", self._consumer_config())
        try:
            for topic in self.topics:
                topic_partitions(str(self), consumer, topic, self.connect_timeout, self._servers)
            hooks: dict[str, Any] = {"on_assign": self._on_assign, "on_revoke": self._on_revoke}
            if self.offsets_in_transaction:
                hooks["on_lost"] = self._on_lost
            consumer.subscribe(self.topics, **hooks)
        except BaseException:
            consumer.close()
            raise
        return consumer

    def _on_assign(self, consumer: Any, partitions: list[Any]) -> None:
        """On the consumer thread, inside a poll: partitions with a known position (restored,
        or in checkpoint mode what was emitted of them) start there."""
        self.assignment = self.assignment | {(tp.topic, tp.partition) for tp in partitions}
        if self.offsets_in_transaction:  # they start at the group's committed offsets
            self._note_group(consumer)
            for tp in partitions:
                self._emitted.pop((tp.topic, tp.partition), None)
        placed = False
        for tp in partitions:
            key = (tp.topic, tp.partition)
            offset = self._resume_offset(key)
            if offset is not None:
                tp.offset = offset
                self._emitted[key] = offset
                placed = True
        if placed:  # assign with offsets (else librdkafka assigns the committed ones)
            if self._incremental():
                consumer.incremental_assign(partitions)
            else:
                consumer.assign(partitions)

    def _incremental(self) -> bool:
        """Whether the group rebalances incrementally (cooperative-sticky, or KIP-848)."""
        config = self._config
        strategy = str(config.get("partition.assignment.strategy", ""))
        protocol = str(config.get("group.protocol", "classic")).lower()
        return "cooperative" in strategy or protocol == "consumer"

    def _on_revoke(self, consumer: Any, partitions: list[Any]) -> None:
        """On the consumer thread, inside a poll: commit what is done of the lost partitions."""
        import confluent_kafka

        lost = {(tp.topic, tp.partition) for tp in partitions}
        if self.offsets_in_transaction:
            # exactly-once: a checkpoint commits the output and offsets of the partitions
            # while this source still owns them; then they are forgotten
            self._note_group(consumer)
            hook = self._revoke_hook
            if hook is not None:  # also when stop() closes the consumer
                hook()
            self._forget(lost)
            return
        if self._checkpointing:  # commit a completed checkpoint while still the owner
            self._commit_checkpoint(consumer)
        self.assignment = self.assignment - lost
        offsets = []
        for tp in partitions:
            offset = self.tracker.forget((tp.topic, tp.partition))
            if offset is not None:
                offsets.append(confluent_kafka.TopicPartition(tp.topic, tp.partition, offset))
        if offsets and self._commits_enabled and not self._checkpointing:
            try:
                consumer.commit(offsets=offsets, asynchronous=False)
                self.committed.update({(tp.topic, tp.partition): tp.offset for tp in offsets})
            except confluent_kafka.KafkaException as e:
                logger.warning("%s: commit on rebalance failed: %s", self, e)

    def _on_lost(self, consumer: Any, partitions: list[Any]) -> None:
        """Exactly-once, on the consumer thread: the group gave the partitions to another
        member while this one was away (paused): nothing of them may be committed now.
        The output stops first: a checkpoint that found them gone would commit without
        their offsets, and so without the group's check that this member is current."""
        hook = self._lost_hook
        if hook is not None:
            hook(f"{self} lost partitions {sorted((tp.topic, tp.partition) for tp in partitions)}")
        self._forget({(tp.topic, tp.partition) for tp in partitions})

    def _forget(self, lost: set[tuple[str, int]]) -> None:
        self.assignment = self.assignment - lost
        for tp in lost:
            self._emitted.pop(tp, None)
            self.tracker.forget(tp)

    # -- exactly-once -------------------------------------------------------------------
    _revoke_hook: Any = None
    _lost_hook: Any = None
    #: the group's metadata (generation, member id) as the consumer thread saw it last
    _group_metadata: Any = None

    def _note_group(self, consumer: Any) -> None:
        """On the consumer thread: keep the group's metadata for :meth:`transaction_offsets`.
        (``consumer_group_metadata()`` called from another thread blocks while this one
        is inside a rebalance callback, where the checkpoint before a revoke waits.)"""
        self._group_metadata = consumer.consumer_group_metadata()

    def _consume_noting_group(self, room: int) -> list[Any]:
        consumer = self.consumer
        messages = consumer.consume(room, self.poll_interval)
        self._group_metadata = consumer.consumer_group_metadata()
        return messages

    def commit_offsets_in_transaction(
        self, on_revoke: Callable[[], Any], on_lost: Callable[[str], Any]
    ) -> None:
        """Exactly-once (:func:`millstream.checkpoint.enable` with ``exactly_once=True``):
        from the next ``start()`` this source commits no offsets itself; the output's
        Kafka transaction does (:meth:`transaction_offsets`). Assigned partitions start at
        the group's committed offsets. Before partitions are revoked, ``on_revoke()``
        (blocking, on the consumer thread) commits a checkpoint while this source still
        owns them; when they are lost (taken while this member was away),
        ``on_lost(why)`` stops the output."""
        self.offsets_in_transaction = True
        self._revoke_hook = on_revoke
        self._lost_hook = on_lost

    def transaction_offsets(self, position: Any) -> tuple[Any, list[Any]] | None:
        """``(group metadata, [TopicPartition])`` to commit in the output's transaction
        for ``position`` (a :meth:`snapshot`), of the partitions assigned now; None when
        no record was read yet. After ``stop()`` the metadata of the last run is used: a
        static member's is still valid; otherwise the broker refuses the offsets and the
        output is fenced (nothing is committed twice)."""
        metadata = self._group_metadata
        if metadata is None:
            return None
        import confluent_kafka

        assigned = self.assignment
        partitions = [
            confluent_kafka.TopicPartition(topic, partition, offset)
            for topic, offsets in position.items()
            for partition, offset in offsets.items()
            if (topic, partition) in assigned
        ]
        return metadata, partitions

    async def _cycle(self, thread: ConsumerThread) -> None:
        room = max(1, min(self.max_in_flight - self.tracker.in_flight, 10000))
        if self.offsets_in_transaction:
            messages = await thread.call(self._consume_noting_group, room)
        else:
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
                # nothing to emit: the position passes it (all before it was emitted)
                self._emitted[(msg.topic(), msg.partition())] = msg.offset() + 1
                continue
            offset = msg.offset()
            rng = begin(msg.topic(), msg.partition(), offset, offset)
            await self._emit_tracked(value, rng, needs_refs)
            if self.stopped:
                break  # the rest is not committed: it is read again after a restart
