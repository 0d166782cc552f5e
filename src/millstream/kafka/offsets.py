"""Ordered at-least-once: which Kafka offsets may be committed.

A Kafka source hands records (or batches of them) to the graph in offset order, one
:class:`OffsetRange` per record or batch. Processing may finish out of order (an async
sink, a buffer, a Dask task), and may fail. :class:`OffsetTracker` commits, per
partition, only the *contiguous completed prefix*: the offset after the last range
such that it and every range before it finished without error. A failed range blocks
its partition for good: nothing at or after it is committed, so a restarted pipeline
reads it again. (Streamz commits each batch as it finishes, so a later batch that
finishes first, or one that follows a failed batch, commits past records that were
never processed.)

The tracker is thread-safe: ranges are begun on the event loop, finished wherever the
last holder of the element let go (a producer callback, a Dask completion), and the
commit offsets are taken on the consumer's thread.

Examples
--------
>>> tracker = OffsetTracker()
>>> a = tracker.begin('t', 0, 0, 9)
>>> b = tracker.begin('t', 0, 10, 19)
>>> tracker.finish(b)          # the later batch finishes first: nothing to commit yet
>>> tracker.take_commits()
{}
>>> tracker.finish(a)          # now both are done: commit offset 20 (the next to read)
>>> tracker.take_commits()
{('t', 0): 20}
>>> c = tracker.begin('t', 0, 20, 29)
>>> tracker.finish(c, error=ValueError('bad record'))
>>> d = tracker.begin('t', 0, 30, 39)
>>> tracker.finish(d)
>>> tracker.take_commits()     # never past the failed range
{}
>>> tracker.failure
(OffsetRange('t', 0, 20, 29, 'failed'), ValueError('bad record'))
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Any

__all__ = ["OffsetRange", "OffsetTracker"]

TopicPartition = tuple[str, int]

_PENDING, _DONE, _FAILED = "pending", "done", "failed"


class OffsetRange:
    """Offsets ``first..last`` (inclusive) of one partition, handed to the graph together."""

    __slots__ = ("_owner", "first", "last", "partition", "state", "topic")

    def __init__(self, topic: str, partition: int, first: int, last: int, owner: _Partition):
        self.topic = topic
        self.partition = partition
        self.first = first
        self.last = last
        self.state = _PENDING
        self._owner = owner

    def __repr__(self) -> str:
        return (
            f"OffsetRange({self.topic!r}, {self.partition}, {self.first}, {self.last}, "
            f"{self.state!r})"
        )


class _Partition:
    __slots__ = ("committed", "next_commit", "ranges")

    def __init__(self) -> None:
        self.ranges: deque[OffsetRange] = deque()
        self.next_commit: int | None = None  # offset after the completed prefix
        self.committed: int | None = None  # last offset handed out by take_commits


class OffsetTracker:
    """Track in-flight offset ranges per partition; commit only the completed prefix."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._partitions: dict[TopicPartition, _Partition] = {}
        self._in_flight = 0
        self.failure: tuple[OffsetRange, BaseException] | None = None
        #: Called (with no argument, from whichever thread finished a range) after each
        #: finish; a source uses it to wake up when it waits for room.
        self.on_finish: Any = None

    @property
    def in_flight(self) -> int:
        """Ranges begun and not yet finished."""
        return self._in_flight

    def begin(self, topic: str, partition: int, first: int, last: int) -> OffsetRange:
        """Record that offsets ``first..last`` of a partition enter the graph (in order)."""
        with self._lock:
            part = self._partitions.get((topic, partition))
            if part is None:
                part = self._partitions[(topic, partition)] = _Partition()
            rng = OffsetRange(topic, partition, first, last, part)
            part.ranges.append(rng)
            self._in_flight += 1
            return rng

    def finish(self, rng: OffsetRange, error: BaseException | None = None) -> None:
        """Record that ``rng`` left the graph: done, or failed with ``error``.

        Finishing a range twice, or one of a partition that was :meth:`forget`-ten
        since (a rebalance gave it to another consumer), has no effect.
        """
        with self._lock:
            if rng.state is not _PENDING:
                return
            self._in_flight -= 1
            part: _Partition = rng._owner
            if self._partitions.get((rng.topic, rng.partition)) is not part:
                rng.state = _FAILED if error is not None else _DONE
                return
            if error is not None:
                rng.state = _FAILED
                if self.failure is None:
                    self.failure = (rng, error)
            else:
                rng.state = _DONE
                ranges = part.ranges
                while ranges and ranges[0].state is _DONE:
                    part.next_commit = ranges.popleft().last + 1
        callback = self.on_finish
        if callback is not None:
            callback()

    def take_commits(self) -> dict[TopicPartition, int]:
        """The offsets to commit now: per partition whose completed prefix grew since last time."""
        out: dict[TopicPartition, int] = {}
        with self._lock:
            for tp, part in self._partitions.items():
                if part.next_commit is not None and part.next_commit != part.committed:
                    out[tp] = part.committed = part.next_commit
        return out

    def retry_commits(self, offsets: dict[TopicPartition, int]) -> None:
        """Give back offsets from :meth:`take_commits` whose commit failed: the next
        :meth:`take_commits` offers them again (or a later offset of the partition).

        >>> tracker = OffsetTracker()
        >>> tracker.finish(tracker.begin('t', 0, 0, 4))
        >>> offsets = tracker.take_commits()
        >>> tracker.retry_commits(offsets)
        >>> tracker.take_commits()
        {('t', 0): 5}
        """
        with self._lock:
            for tp, offset in offsets.items():
                part = self._partitions.get(tp)
                if part is not None and part.committed == offset:
                    part.committed = None

    def committable(self, tp: TopicPartition) -> int | None:
        """The offset after the completed prefix of ``tp`` (None if nothing completed)."""
        with self._lock:
            part = self._partitions.get(tp)
            return None if part is None else part.next_commit

    def forget(self, tp: TopicPartition) -> int | None:
        """Stop tracking ``tp`` (revoked); return its offset still to commit, if any.

        Ranges of ``tp`` still in the graph finish without effect: the partition's new
        owner reads them again from the last commit.
        """
        with self._lock:
            part = self._partitions.pop(tp, None)
            if part is None or part.next_commit is None or part.next_commit == part.committed:
                return None
            return part.next_commit
