"""``from_kafka_batched``: lists of records of one topic, one list per partition and poll."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from typing import Any

from .._utils import check_positive_int, short_repr
from ..core.stream import Stream
from ..kafka.batch import get_message_batch
from ..kafka.consumer import (
    OFFSET_BEGINNING,
    OFFSET_END,
    ConsumerThread,
    call_until_ready,
    consumer_config,
    make_consumer,
    message_record,
    raise_for_error,
    topic_partitions,
)
from ..kafka.log import logger
from ..operators.elementwise import starmap
from .kafka_base import KafkaSource
from .kafka_frames import JsonLinesFrame, ReadJsonLinesFrame, frame_package

__all__ = ["FromKafkaBatched", "from_kafka_batched", "get_message_batch"]


class _FetchedRange(tuple):
    """``(consumer_params, topic, partition, keys, low, high)`` whose records were read already."""

    records: list[Any]


class _read_batch(starmap):
    """``starmap(get_message_batch)``, the node ``from_kafka_batched`` returns.

    Ranges read by the source itself arrive with their records and are passed on as
    they are (or as one frame, with ``to_frame``: ``engine='cudf'``/``'pandas'``); a plain
    range tuple is read here with the starmap's function.
    """

    def __init__(self, upstream: Stream, func: Any, to_frame: JsonLinesFrame | None = None):
        super().__init__(upstream, func)
        self.to_frame = to_frame

    def update(self, x: Any, who: Stream | None = None, metadata: list[dict] | None = None) -> Any:
        if type(x) is _FetchedRange:
            to_frame = self.to_frame
            if to_frame is None:
                return self._emit(x.records, metadata=metadata)
            return self._emit(to_frame(x.records), metadata=metadata)
        return super().update(x, who, metadata)


class FromKafkaBatched(KafkaSource):
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
        if engine is not None:
            frame_package(engine)  # a ValueError for an unknown engine, an ImportError to install
            keys = False  # a frame holds the values (Streamz's cudf path ignores keys too)
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
    def _topics_read(self) -> list[str]:
        return [self.topic]

    def _connect(self) -> Any:
        self.positions = {}  # placed again: restored, committed, or auto.offset.reset
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
            stored = call_until_ready(
                str(self),
                self._servers,
                f"the committed offsets of group {self._config['group.id']!r}",
                lambda seconds: consumer.committed(tps, timeout=seconds),
                self.connect_timeout,
            )
            for tp in stored:
                if tp.offset >= 0:
                    committed[tp.partition] = tp.offset
        reset = str(self._config.get("auto.offset.reset", "latest")).lower()
        for tp in tps:
            resume = self._resume_offset((self.topic, tp.partition))
            if resume is not None:
                tp.offset = resume
            elif tp.partition in committed:
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
        for tp in tps:  # where reading starts, when known: the position until a batch
            start = self.positions[tp.partition]
            if start >= 0:
                self._emitted[(self.topic, tp.partition)] = start
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
        for partition, records, offsets, first, last in batches:
            if self.tracker.in_flight >= self.max_in_flight:
                await self._wait_for_room()  # a read can give more batches than there was room for
            rng = begin(topic, partition, first, last)
            x = _FetchedRange((self.kafka_params, topic, partition, self.keys, first, last))
            x.records = records
            await self._emit_tracked(x, rng, needs_refs, records, offsets, len(records))
            self._commit_soon()  # what is done is committed while later batches go on
            if self.stopped:
                break

    def _fetch(self, n: int) -> list[tuple[int, list[Any], Sequence[int], int, int]]:
        """On the consumer thread: consume up to ``n`` records, cut into per-partition batches.

        Each batch: (partition, records, the offset of each record, first offset, last offset).
        The messages themselves are not kept (a batch held by a buffer holds only its values).
        """
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
        out: list[tuple[int, list[Any], Sequence[int], int, int]] = []
        for partition, msgs in by_partition.items():
            for start in range(0, len(msgs), size):
                chunk = msgs[start : start + size] if len(msgs) > size else msgs
                records: list[Any]
                if keys:
                    records = [message_record(m) for m in chunk]
                else:
                    records = [m.value() for m in chunk]
                    if None in records:  # tombstones: left out of a values-only batch
                        kept = [v for v in records if v is not None]
                        self.tombstones += len(records) - len(kept)
                        records = kept
                first, last = chunk[0].offset(), chunk[-1].offset()
                offsets: Sequence[int]
                if last - first + 1 == len(records):
                    offsets = range(first, last + 1)
                else:  # gaps (compaction, transaction markers) or tombstones left out
                    offsets = [m.offset() for m in chunk if keys or m.value() is not None]
                out.append((partition, records, offsets, first, last))
                self.positions[partition] = last + 1
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
            await self._emit_tracked(x, rng, needs_refs, count=high - low + 1)
            self._commit_soon()
            if self.stopped:
                break

    def _next_ranges(self) -> list[tuple[int, int, int]]:
        import confluent_kafka

        out = []
        for partition in self.partitions:
            tp = confluent_kafka.TopicPartition(self.topic, partition)
            try:
                low, high = self.consumer.get_watermark_offsets(
                    tp, timeout=max(self.poll_interval, 2.0)
                )
            except confluent_kafka.KafkaException as e:
                logger.warning("%s: watermarks of partition %d: %s", self, partition, e)
                continue
            lowest = max(self.positions.get(partition, low), low)
            end = min(high, lowest + self.max_batch_size)
            if end > lowest:
                out.append((partition, lowest, end - 1))
                self.positions[partition] = end
        return out

    def _lag_partitions(self, consumer: Any) -> list[Any]:
        """The partitions read (planned ones too: a planning consumer is assigned none)."""
        import confluent_kafka

        return [confluent_kafka.TopicPartition(self.topic, p) for p in self.partitions]

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
    every batch before it in its partition have been fully processed (each batch as it
    finishes, while later ones are in flight); a batch whose processing raised is never
    committed past, and the error stops the source. With checkpoints
    (:func:`millstream.checkpoint.enable`) the source's position is the next offset of
    each partition after the batches (or ranges) emitted, a restored pipeline plans or
    reads from there, and only the offsets of completed checkpoints are committed. Reading
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
        Emit dicts (key, value, topic, partition, offset, timestamp, headers) instead of
        values (ignored with an ``engine``).
    engine : None, 'cudf' or 'pandas'
        Emit each batch as one frame: the values must be JSON objects, one per record,
        read with ``cudf.read_json(..., lines=True)`` into a cuDF DataFrame (as Streamz's
        cuStreamz path) or with ``pandas.read_json`` (see
        :mod:`millstream.sources.kafka_frames`). A batch that cannot be read stops the
        source like any error of the pipeline, and is not committed past.

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

    With ``engine='pandas'`` (or ``'cudf'``) each batch of JSON lines is one frame:

    >>> frames = Stream.from_kafka_batched('clicks', {'bootstrap.servers': 'localhost:9092'},
    ...                                    engine='pandas')
    >>> frames.to_frame
    JsonLinesFrame('pandas')
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
    read: Any = get_message_batch if engine is None else ReadJsonLinesFrame(engine)
    if dask:
        stream = source.scatter().starmap(read)
    else:
        to_frame = None if engine is None else JsonLinesFrame(engine)
        stream = _read_batch(source, read, to_frame)
    if start:
        source.start()
    return stream


Stream.register_api(staticmethod)(from_kafka_batched)
