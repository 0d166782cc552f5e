"""Kafka sources: ``from_kafka`` (one element per record) and ``from_kafka_batched``.

Both commit offsets themselves, in order: an offset is committed only once every record
before it in its partition has been fully processed by every branch of the graph (see
:mod:`.kafka_offsets`). Every blocking librdkafka call runs on a thread of the source,
never on the event loop; the number of records (or batches) in the graph at once is
capped, so a slow pipeline slows the reading down instead of filling memory; ``stop()``
drains what is in flight, commits and closes the consumer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Any

from .._utils import check_positive_int, convert_interval, short_repr
from ..core.refs import RefCounter
from ..core.stream import Stream
from ..operators.elementwise import starmap
from .kafka_client import (
    OFFSET_BEGINNING,
    OFFSET_END,
    ConsumerThread,
    consumer_config,
    get_message_batch,
    make_consumer,
    message_record,
    raise_for_error,
    topic_partitions,
)
from .kafka_offsets import OffsetRange, OffsetTracker
from .periodic import _ManagedSource

__all__ = ["FromKafkaBatched", "from_kafka", "from_kafka_batched", "get_message_batch"]

logger = logging.getLogger("millstream.kafka")


def _add_position_note(error: BaseException, rng: OffsetRange, exact: int | None = None) -> None:
    if exact is not None:
        where = f"offset {exact}"
    elif rng.first == rng.last:
        where = f"offset {rng.first}"
    else:
        where = f"offsets {rng.first}..{rng.last}"
    note = f"kafka: while processing topic {rng.topic!r} partition {rng.partition} {where}"
    notes = getattr(error, "__notes__", None) or []
    if any(n.startswith("kafka: while processing") for n in notes):
        return
    if hasattr(error, "add_note"):
        error.add_note(note)
    else:  # Python 3.10
        try:
            error.__notes__ = [*notes, note]  # type: ignore[attr-defined]
        except Exception:
            pass


class _KafkaSource(_ManagedSource):
    """Consumer thread, offset tracking, ordered commits, bounded in-flight, drain on stop."""

    _wait_ready_on_start = True
    _start_timeout = 30.0
    _stop_timeout = 30.0
    #: seconds ``stop()`` waits for in-flight records to finish before the last commit
    drain_timeout = 10.0

    def __init__(
        self,
        consumer_params: Mapping[str, Any],
        poll_interval: float | str,
        max_in_flight: int,
        connect_timeout: float,
        commits_enabled: bool,
        **kwargs: Any,
    ):
        name = type(self).__name__
        self.consumer_params = consumer_params
        self.poll_interval = convert_interval(poll_interval)
        check_positive_int(name, "max_in_flight", max_in_flight)
        self.max_in_flight = max_in_flight
        self.connect_timeout = float(connect_timeout)
        #: offsets of records handed to the graph and not yet committed
        self.tracker = OffsetTracker()
        #: the offsets this source committed last, per (topic, partition)
        self.committed: dict[tuple[str, int], int] = {}
        #: records without a value (tombstones) left out of a values-only stream
        self.tombstones = 0
        self.consumer: Any = None
        self._thread: ConsumerThread | None = None
        self._commits_enabled = commits_enabled
        self._servers = str(
            consumer_params.get("bootstrap.servers") or consumer_params.get("metadata.broker.list")
        )
        super().__init__(**kwargs)

    # -- the run ------------------------------------------------------------------------
    async def run(self) -> None:
        self.tracker = OffsetTracker()
        thread = self._thread = ConsumerThread(type(self).__name__)
        try:
            self.consumer = await thread.call(self._connect)
            self._set_ready()
            while not self.stopped:
                self._raise_if_failed()
                await self._wait_for_room()
                if self.stopped:
                    break
                await self._cycle(thread)
                await self._commit(thread)
        finally:
            try:
                await self._drain()
                if self.consumer is not None:
                    await self._commit(thread, final=True)
            finally:
                consumer, self.consumer = self.consumer, None
                if consumer is not None:
                    await thread.call(consumer.close)
                self._thread = None
                thread.shutdown()
        self._raise_if_failed()

    def _connect(self) -> Any:
        raise NotImplementedError

    async def _cycle(self, thread: ConsumerThread) -> None:
        raise NotImplementedError

    def _raise_if_failed(self) -> None:
        failure = self.tracker.failure
        if failure is not None:
            rng, error = failure
            _add_position_note(error, rng)
            raise error

    async def _wait_for_room(self) -> None:
        tracker = self.tracker
        await self._wait_until(
            lambda: tracker.in_flight < self.max_in_flight or tracker.failure is not None
        )

    async def _drain(self) -> None:
        tracker = self.tracker
        # also after a failure: the records before it that are still in the graph (in a
        # buffer...) finish, so the last commit reaches the failed record itself
        await self._wait_until(lambda: not tracker.in_flight, time.monotonic() + self.drain_timeout)
        if tracker.in_flight and tracker.failure is None:
            logger.warning(
                "%s: %d record(s) or batch(es) still in flight after %g s; their offsets "
                "are not committed (they will be read again)",
                self,
                tracker.in_flight,
                self.drain_timeout,
            )

    async def _wait_until(self, condition: Any, deadline: float | None = None) -> None:
        """Wait until ``condition()`` holds (re-checked each time a range finishes, in any
        thread) or ``deadline`` (``time.monotonic()``) passes."""
        if condition():
            return
        event = asyncio.Event()
        asyncio_loop = asyncio.get_running_loop()
        self.tracker.on_finish = lambda: asyncio_loop.call_soon_threadsafe(event.set)
        try:
            while not condition():
                wait = 1.0 if deadline is None else min(1.0, deadline - time.monotonic())
                if wait <= 0:
                    return
                try:
                    await asyncio.wait_for(event.wait(), wait)
                except asyncio.TimeoutError:
                    pass
                event.clear()
        finally:
            self.tracker.on_finish = None

    async def _commit(self, thread: ConsumerThread, final: bool = False) -> None:
        if not self._commits_enabled:
            return
        offsets = self.tracker.take_commits()
        if not offsets:
            return
        import confluent_kafka

        tps = [confluent_kafka.TopicPartition(t, p, o) for (t, p), o in offsets.items()]
        consumer = self.consumer
        try:
            await thread.call(consumer.commit, offsets=tps, asynchronous=False)
        except confluent_kafka.KafkaException as e:
            # a rebalance took the partition away (then it is forgotten), or the broker
            # did not answer in time: the offsets are offered again at the next commit
            logger.warning("%s: commit of %s failed (retried later): %s", self, offsets, e)
            self.tracker.retry_commits(offsets)
            return
        self.committed.update(offsets)

    # -- handing records to the graph ---------------------------------------------------
    def _needs_refs(self) -> bool:
        """False when nothing below can hold an element past its update (all fused)."""
        return not self._downstream_fully_fused()

    async def _emit_tracked(
        self, x: Any, rng: OffsetRange, needs_refs: bool, values: list[Any] | None = None
    ) -> None:
        """Emit ``x`` for the records of ``rng``; finish ``rng`` once every holder let go."""
        tracker = self.tracker
        if not needs_refs:
            try:
                pending = self._emit(x)
                if pending:
                    await asyncio.gather(*pending)
            except Exception as e:
                tracker.finish(rng, e)
                _add_position_note(e, rng, _locate(e, rng, values))
                raise
            tracker.finish(rng)
            return
        ref = RefCounter(initial=1)

        def finished() -> None:  # in whichever thread let go last
            error = ref.errors[0] if ref.errors else None
            if error is not None and values is not None:  # name the record in the batch
                _add_position_note(error, rng, _locate(error, rng, values))
            tracker.finish(rng, error)

        ref.cb = finished
        metadata = [
            {"ref": ref, "topic": rng.topic, "partition": rng.partition, "offset": rng.last}
        ]
        try:
            pending = self._emit(x, metadata=metadata)
            if pending:
                await asyncio.gather(*pending)
        except Exception as e:
            ref.fail(e)
            ref.release()
            _add_position_note(e, rng, _locate(e, rng, values))
            raise
        ref.release()


def _locate(error: BaseException, rng: OffsetRange, values: list[Any] | None) -> int | None:
    """The offset of the record a decode error names (its ``object``), if it is in ``values``."""
    if values is None:
        return None
    culprit = getattr(error, "object", None)
    if culprit is None:
        return None
    offsets = getattr(values, "offsets", None)
    for i, v in enumerate(values):
        if isinstance(v, dict):  # keys=True: the record's value
            v = v.get("value")
        # bytes.decode() puts a copy of the bytes in the error: compare by value (the
        # first equal record is the first to fail when the batch is decoded in order)
        if v is culprit or (isinstance(v, bytes) and isinstance(culprit, bytes) and v == culprit):
            return offsets[i] if offsets is not None else None
    return None


@Stream.register_api(staticmethod)
class from_kafka(_KafkaSource):
    """Emit the value of each record of Kafka ``topics``, reading as part of a consumer group.

    Several pipelines with the same ``group.id`` share the topics' partitions; when one
    joins or leaves, Kafka moves partitions between them (a rebalance) and nothing is
    lost: offsets are committed only up to the completed prefix of each partition
    (ordered at-least-once), and a partition taken away is first committed up to there.
    Unless ``consumer_params`` turns ``enable.auto.commit`` on explicitly, the source
    commits itself after each poll, on ``stop()``, and never past a record whose
    processing raised: that error stops the source, and a restarted pipeline reads the
    record again. Records without a value (tombstones) are counted in ``tombstones``
    and not emitted. ``consumer_params`` is not modified.

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
        **kwargs: Any,
    ):
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
        for msg in messages:
            if msg.error() is not None and raise_for_error(name, msg):
                continue
            value = msg.value()
            if value is None:
                self.tombstones += 1
                continue
            offset = msg.offset()
            rng = begin(msg.topic(), msg.partition(), offset, offset)
            await self._emit_tracked(value, rng, needs_refs)
            if self.stopped:
                break  # the rest is not committed: it is read again after a restart


class _Batch(list):
    """The values of one batch, with the offset of each (to name a failing record)."""

    __slots__ = ("offsets",)
    offsets: list[int]


class _FetchedRange(tuple):
    """``(consumer_params, topic, partition, keys, low, high)`` whose records were read already."""

    records: list[Any]


class _read_batch(starmap):
    """``starmap(get_message_batch)``, the node ``from_kafka_batched`` returns.

    Ranges read by the source itself arrive with their records and are passed on as
    they are; a plain range tuple is read here with :func:`get_message_batch`.
    """

    def update(self, x: Any, who: Stream | None = None, metadata: list[dict] | None = None) -> Any:
        if type(x) is _FetchedRange:
            return self._emit(x.records, metadata=metadata)
        return super().update(x, who, metadata)


class FromKafkaBatched(_KafkaSource):
    """The source under ``from_kafka_batched``: reads or plans one batch per partition at a time.

    It emits ``(consumer_params, topic, partition, keys, low, high)`` range tuples, as in
    Streamz. Without Dask it reads them itself, with one long-lived consumer assigned the
    partitions, so that the ``starmap`` below only passes the records on. With
    ``dask=True`` it only plans the ranges (from the partitions' watermarks) and the
    workers read them.
    """

    def __init__(
        self,
        topic: str,
        consumer_params: Mapping[str, Any],
        poll_interval: float | str = "1s",
        npartitions: int | None = None,
        refresh_partitions: bool = False,
        max_batch_size: int = 10000,
        keys: bool = False,
        engine: str | None = None,
        plan_only: bool = False,
        max_in_flight: int = 8,
        connect_timeout: float = 10.0,
        **kwargs: Any,
    ):
        if not isinstance(topic, str) or not topic:
            raise ValueError(
                f"from_kafka_batched: topic must be one topic name, got {short_repr(topic)}"
            )
        if npartitions is not None and npartitions <= 0:
            raise ValueError(f"from_kafka_batched: npartitions must be > 0, got {npartitions}")
        check_positive_int("from_kafka_batched", "max_batch_size", max_batch_size)
        if engine not in (None, "cudf"):
            raise ValueError(f"from_kafka_batched: engine must be None or 'cudf', got {engine!r}")
        if engine == "cudf":
            raise NotImplementedError(
                "from_kafka_batched: engine='cudf' is not supported yet (it needs the GPU path)"
            )
        self.topic = topic
        self.npartitions = npartitions
        self.refresh_partitions = refresh_partitions
        self.max_batch_size = max_batch_size
        self.keys = keys
        self.engine = engine
        self.plan_only = plan_only
        config = consumer_config(
            "from_kafka_batched",
            consumer_params,
            **{
                "enable.auto.commit": False,
            },
        )
        config.setdefault("auto.offset.reset", "latest")
        config.setdefault("group.id", None)
        if config["group.id"] is None:
            del config["group.id"]
        self._config = config
        #: the consumer_params the range tuples carry (what a worker reads with)
        self.kafka_params = {k: v for k, v in config.items() if k != "logger"}
        self.partitions: list[int] = []
        self.positions: dict[int, int] = {}
        self._last_refresh = 0.0
        super().__init__(
            consumer_params,
            poll_interval,
            max_in_flight,
            connect_timeout,
            "group.id" in config,
            **kwargs,
        )

    # -- setup --------------------------------------------------------------------------
    def _connect(self) -> Any:
        config = self._config
        if "group.id" not in config:
            # librdkafka's Consumer needs a group.id; without one in consumer_params this
            # source commits nothing and never joins the group (it assigns partitions itself)
            config = {**config, "group.id": "millstream-batch-reader"}
        consumer = make_consumer("from_kafka_batched", config)
        try:
            self._add_partitions(consumer, first=True)
        except BaseException:
            consumer.close()
            raise
        self._last_refresh = time.monotonic()
        return consumer

    def _add_partitions(self, consumer: Any, first: bool = False) -> None:
        """Find the topic's partitions (``0..npartitions-1`` of them) and start reading new ones."""
        import confluent_kafka

        existing = topic_partitions(
            str(self), consumer, self.topic, self.connect_timeout, self._servers
        )
        wanted = [p for p in existing if self.npartitions is None or p < self.npartitions]
        new = [p for p in wanted if p not in self.positions]
        if not new:
            return
        tps = [confluent_kafka.TopicPartition(self.topic, p) for p in new]
        committed: dict[int, int] = {}
        if "group.id" in self._config:
            for tp in consumer.committed(tps, timeout=self.connect_timeout):
                if tp.offset >= 0:
                    committed[tp.partition] = tp.offset
        reset = str(self._config.get("auto.offset.reset", "latest")).lower()
        for tp in tps:
            if tp.partition in committed:
                tp.offset = committed[tp.partition]
            elif first and reset in ("latest", "end", "largest"):
                tp.offset = OFFSET_END
            else:
                # partitions found later start from their beginning, as in Streamz
                tp.offset = OFFSET_BEGINNING
        if self.plan_only:
            for tp in tps:
                low, high = consumer.get_watermark_offsets(tp, timeout=self.connect_timeout)
                if tp.offset == OFFSET_END:
                    self.positions[tp.partition] = high
                elif tp.offset == OFFSET_BEGINNING:
                    self.positions[tp.partition] = low
                else:
                    self.positions[tp.partition] = tp.offset
        else:
            consumer.incremental_assign(tps)
            for tp in tps:
                self.positions[tp.partition] = tp.offset
        self.partitions = sorted(self.positions)

    # -- each cycle ---------------------------------------------------------------------
    async def _cycle(self, thread: ConsumerThread) -> None:
        if self.refresh_partitions and time.monotonic() - self._last_refresh >= max(
            self.poll_interval, 0.5
        ):
            self._last_refresh = time.monotonic()
            await thread.call(self._add_partitions, self.consumer)
        if self.plan_only:
            await self._plan(thread)
        else:
            await self._read(thread)

    async def _read(self, thread: ConsumerThread) -> None:
        room = self.max_in_flight - self.tracker.in_flight
        want = max(1, min(room * self.max_batch_size, len(self.partitions) * self.max_batch_size))
        batches = await thread.call(self._fetch, min(want, 1_000_000))
        if not batches:
            return
        needs_refs = self._needs_refs_batched()
        begin = self.tracker.begin
        topic = self.topic
        for partition, records, first, last in batches:
            rng = begin(topic, partition, first, last)
            x = _FetchedRange((self.kafka_params, topic, partition, self.keys, first, last))
            x.records = records
            await self._emit_tracked(x, rng, needs_refs, records)
            if self.stopped:
                break

    def _fetch(self, n: int) -> list[tuple[int, _Batch, int, int]]:
        """On the consumer thread: consume up to ``n`` records, cut into per-partition batches."""
        messages = self.consumer.consume(n, self.poll_interval)
        by_partition: dict[int, list[Any]] = {}
        name = str(self)
        for msg in messages:
            if msg.error() is not None and raise_for_error(name, msg):
                continue
            part = by_partition.get(msg.partition())
            if part is None:
                part = by_partition[msg.partition()] = []
            part.append(msg)
        size = self.max_batch_size
        keys = self.keys
        out = []
        for partition, msgs in by_partition.items():
            for start in range(0, len(msgs), size):
                chunk = msgs[start : start + size]
                records = _Batch()
                if keys:
                    records.extend(message_record(m) for m in chunk)
                    records.offsets = [m.offset() for m in chunk]
                else:
                    offsets = []
                    for m in chunk:
                        v = m.value()
                        if v is None:
                            self.tombstones += 1
                        else:
                            records.append(v)
                            offsets.append(m.offset())
                    records.offsets = offsets
                out.append((partition, records, chunk[0].offset(), chunk[-1].offset()))
                self.positions[partition] = chunk[-1].offset() + 1
        return out

    async def _plan(self, thread: ConsumerThread) -> None:
        """Dask: emit the next range of each partition that has new records."""
        ranges = await thread.call(self._next_ranges)
        if not ranges:
            await asyncio.sleep(self.poll_interval)
            return
        needs_refs = True  # the Dask nodes below hold futures
        for partition, low, high in ranges:
            rng = self.tracker.begin(self.topic, partition, low, high)
            x = (self.kafka_params, self.topic, partition, self.keys, low, high)
            await self._emit_tracked(x, rng, needs_refs)
            if self.stopped:
                break

    def _next_ranges(self) -> list[tuple[int, int, int]]:
        import confluent_kafka

        out = []
        for partition in self.partitions:
            tp = confluent_kafka.TopicPartition(self.topic, partition)
            try:
                low, high = self.consumer.get_watermark_offsets(tp, timeout=self.poll_interval)
            except confluent_kafka.KafkaException as e:
                logger.warning("%s: watermarks of partition %d: %s", self, partition, e)
                continue
            lowest = max(self.positions.get(partition, low), low)
            end = min(high, lowest + self.max_batch_size)
            if end > lowest:
                out.append((partition, lowest, end - 1))
                self.positions[partition] = end
        return out

    def _needs_refs_batched(self) -> bool:
        """Refs are needed unless every branch below is the reader with an all-fused graph."""
        for d in self.downstreams:
            if type(d) is not _read_batch or (d.downstreams and not d._downstream_fully_fused()):
                return True
        return False


def from_kafka_batched(
    topic: str,
    consumer_params: Mapping[str, Any],
    poll_interval: float | str = "1s",
    npartitions: int | None = None,
    refresh_partitions: bool = False,
    start: bool = False,
    dask: bool = False,
    max_batch_size: int = 10000,
    keys: bool = False,
    engine: str | None = None,
    **kwargs: Any,
) -> Stream:
    """Emit lists of records of one Kafka topic, one list per partition and poll.

    The returned node is ``source.starmap(get_message_batch)`` as in Streamz, so
    ``stream.upstream`` is the source (``stream.upstream.upstream`` with ``dask=True``).
    Each element is a list of at most ``max_batch_size`` values of one partition (bytes),
    or with ``keys=True`` of dicts with ``key``, ``value``, ``topic``, ``partition``,
    ``offset`` and ``timestamp`` (milliseconds).

    Offsets are committed for the consumer group ``group.id`` (if given) once a batch and
    every batch before it in its partition have been fully processed; a batch whose
    processing raised is never committed past, and the error stops the source. Reading
    resumes from the committed offsets, or, with none, from the end of each partition
    (``'auto.offset.reset': 'latest'``, the default) or its beginning (``'earliest'``).
    Partitions found later with ``refresh_partitions`` start from their beginning. At
    most ``max_in_flight`` (default 8) batches are in the graph at once.

    Parameters
    ----------
    topic : str
    consumer_params : dict
        librdkafka settings (``bootstrap.servers``; ``group.id`` to commit); not modified.
    poll_interval : float or str
        The longest one poll waits for records (default one second).
    npartitions : int, optional
        Read only partitions ``0..npartitions-1``; ``None`` reads them all.
    refresh_partitions : bool
        Look for new partitions while running.
    start : bool
        Start reading at once.
    dask : bool
        Read the ranges on the workers of the default Dask client; the stream carries futures.
    max_batch_size : int
        The most records of one partition in one batch.
    keys : bool
        Emit dicts (key, value, topic, partition, offset, timestamp) instead of values.
    engine : None
        ``'cudf'`` is not supported yet.

    Examples
    --------
    >>> stream = Stream.from_kafka_batched('clicks', {'bootstrap.servers': 'localhost:9092',
    ...                                               'group.id': 'counter'})
    >>> type(stream).__name__, type(stream.upstream).__name__
    ('_read_batch', 'FromKafkaBatched')
    >>> Stream.from_kafka_batched('clicks', {'bootstrap.servers': 'localhost:9092'},
    ...                           npartitions=0)
    Traceback (most recent call last):
    ...
    ValueError: from_kafka_batched: npartitions must be > 0, got 0
    """
    source = FromKafkaBatched(
        topic,
        consumer_params,
        poll_interval=poll_interval,
        npartitions=npartitions,
        refresh_partitions=refresh_partitions,
        max_batch_size=max_batch_size,
        keys=keys,
        engine=engine,
        plan_only=dask,
        **kwargs,
    )
    if dask:
        stream = source.scatter().starmap(get_message_batch)  # type: ignore[attr-defined]
    else:
        stream = _read_batch(source, get_message_batch)
    if start:
        source.start()
    return stream


Stream.register_api(staticmethod)(from_kafka_batched)
