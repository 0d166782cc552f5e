"""The consumer lag that ``wordcount --kafka`` shows: records in the topic not counted yet.

The Kafka source's own metrics give it when its class reports ``lag_by_partition`` in
``extra_metrics()``; otherwise :class:`LagProbe` measures it apart from the source, with
a consumer of its own that asks the broker for each partition's end (high watermark)
about once a second, in a thread of its own (the live table never waits on the broker).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

from ._kafka_client import client_config

__all__ = ["LAG_REFRESH", "LagProbe", "lag_from_metrics", "lag_of"]

logger = logging.getLogger("millstream.cli")

LAG_REFRESH = 1.0
"""Seconds between two measures of the lag by :class:`LagProbe`."""


def lag_of(ends: Mapping[int, int], starts: Mapping[int, int]) -> dict[int, int]:
    """partition -> records from ``starts`` (the next offset to count) to ``ends``.

    >>> lag_of({0: 10, 1: 4}, {0: 7, 1: 9})
    {0: 3, 1: 0}
    """
    return {p: max(end - starts.get(p, 0), 0) for p, end in ends.items()}


def lag_from_metrics(source: Any) -> dict[int, int] | None:
    """partition -> lag as ``source``'s metrics report it (``lag_by_partition``, keyed
    ``"topic/partition"``), or None when its class does not report one.

    >>> class Source:
    ...     metrics = {"lag_by_partition": {"words/0": 3, "words/1": 0}}
    >>> lag_from_metrics(Source())
    {0: 3, 1: 0}
    """
    try:
        by_partition = source.metrics.get("lag_by_partition")
    except Exception:  # metrics are a view: never let them break the display
        return None
    if not isinstance(by_partition, Mapping) or not by_partition:
        return None  # not reported, or not measured yet
    if by_partition and isinstance(next(iter(by_partition.values())), Mapping):
        # keyed by topic, then partition: the word count reads one topic
        by_partition = {p: n for parts in by_partition.values() for p, n in parts.items()}
    # the Kafka sources key it "topic/partition" (millstream.kafka.lag): one topic here
    return {int(str(p).rpartition("/")[2]): int(n) for p, n in by_partition.items()}


class LagProbe:
    """Measure a consumer's lag on ``topic``: each partition's end minus the next offset
    to count (``progress()``: partition -> offset of the last record counted; for a
    partition with none yet, the ``group``'s committed offset or the partition's start),
    for the ``partitions()`` the consumer reads (all of the topic's while it reads none).

    :meth:`refresh` measures now (blocking, up to ``timeout``); :meth:`start` measures
    every :data:`LAG_REFRESH` seconds in a thread until :meth:`stop`; :attr:`lag` is the
    newest measure (None before the first).
    """

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        group: str | None,
        partitions: Callable[[], list[int]],
        progress: Callable[[], Mapping[int, int]],
        timeout: float = 5.0,
    ) -> None:
        self.topic = topic
        self.group = group
        self.partitions = partitions
        self.progress = progress
        self.timeout = timeout
        self.lag: dict[int, int] | None = None
        from confluent_kafka import Consumer

        config = {"group.id": group} if group is not None else {"group.id": "millstream-lag"}
        self._consumer: Any = Consumer(client_config(bootstrap, **config))
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def refresh(self) -> dict[int, int] | None:
        """Measure the lag now; return it (None if the broker did not answer)."""
        from confluent_kafka import TopicPartition

        with self._lock:
            if self._consumer is None:
                return self.lag
            try:
                partitions = sorted(set(self.partitions()) | set(self.progress()))
                if not partitions:  # not assigned yet: the topic's partitions
                    metadata = self._consumer.list_topics(self.topic, timeout=self.timeout)
                    partitions = sorted(metadata.topics[self.topic].partitions)
                tps = [TopicPartition(self.topic, p) for p in partitions]
                committed: dict[int, int] = {}
                if self.group is not None:
                    for tp in self._consumer.committed(tps, timeout=self.timeout):
                        committed[tp.partition] = tp.offset
                ends, starts = {}, {}
                done = dict(self.progress())
                for tp in tps:
                    low, high = self._consumer.get_watermark_offsets(tp, timeout=self.timeout)
                    ends[tp.partition] = high
                    starts[tp.partition] = max(
                        done.get(tp.partition, -1) + 1, committed.get(tp.partition, -1), low
                    )
            except Exception as e:  # the lag is shown when known; the count goes on
                logger.debug("cannot measure the consumer lag of %s: %s", self.topic, e)
                return self.lag
            self.lag = lag_of(ends, starts)
            return self.lag

    def start(self) -> None:
        """Measure every :data:`LAG_REFRESH` seconds in a daemon thread."""
        self._thread = threading.Thread(target=self._loop, name="millstream-lag", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while True:
            self.refresh()
            if self._stopping.wait(LAG_REFRESH):
                return

    def stop(self) -> None:
        """Stop measuring and close the consumer (the last :attr:`lag` stays)."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(self.timeout + LAG_REFRESH)
        with self._lock:
            consumer, self._consumer = self._consumer, None
        if consumer is not None:
            consumer.close()
