"""What both Kafka sources share: the consumer thread, offset tracking, ordered commits of
the completed prefix, bounded in-flight records, drain/commit/close on stop, and their
part in checkpoints (position, holds, commits that follow completed checkpoints).

An offset is committed only once every record before it in its partition has been fully
processed by every branch of the graph (see :mod:`millstream.kafka.offsets`). Every blocking
librdkafka call runs on a thread of the source, never on the event loop; the number of
records (or batches) in the graph at once is capped, so a slow pipeline slows the reading
down instead of filling memory; ``stop()`` drains what is in flight, commits and closes
the consumer.

Checkpoints (:mod:`millstream.core.state`): ``snapshot()`` is the source's position,
``{topic: {partition: next offset}}`` after the records emitted into the graph, exact at
every await point of the run; ``restore(position)`` makes the next start resume there. In
checkpoint mode the ref-based commits stop: ``checkpoint_complete(position)`` commits the
offsets of each completed checkpoint, and nothing beyond the last one is ever committed.

``stop()`` keeps to ``drain_timeout``: records still in the graph when it runs out stay
uncommitted (they are read again), and a run still held up in the graph by one of them
(a slow asynchronous sink awaited by the emit) is cancelled there, so that the last
commit and the close happen before ``stop()`` returns, and the source emits and commits
nothing afterwards. If the event loop itself is blocked (a slow synchronous node),
``stop()`` closes the consumer from its own thread, without the last commit.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections.abc import Mapping, Sequence
from typing import Any

from .._utils import add_note, check_positive_int, convert_interval
from ..core.refs import RefCounter
from ..exceptions import StateError
from ..kafka.consumer import ConsumerThread
from ..kafka.lag import LAG_REFRESH, high_watermarks, lag_metrics, partition_label
from ..kafka.log import logger
from ..kafka.offsets import OffsetRange, OffsetTracker
from ..kafka.positions import position_of, position_offsets
from .base import ManagedSource

__all__ = ["KafkaSource"]


def _add_position_note(error: BaseException, rng: OffsetRange, exact: int | None = None) -> None:
    if exact is not None:
        where = f"offset {exact}"
    elif rng.first == rng.last:
        where = f"offset {rng.first}"
    else:
        where = f"offsets {rng.first}..{rng.last}"
    note = f"kafka: while processing topic {rng.topic!r} partition {rng.partition} {where}"
    add_note(error, note, unless="kafka: while processing")


class KafkaSource(ManagedSource):
    """Consumer thread, offset tracking, ordered commits, bounded in-flight, drain on stop."""

    _wait_ready_on_start = True
    _start_timeout = 30.0
    #: seconds ``stop()`` waits, after the drain, for the last commit and the close
    _close_timeout = 20.0
    #: seconds ``stop()`` waits for in-flight records to finish before the last commit
    drain_timeout = 10.0
    #: the format of :meth:`snapshot`: ``{topic: {partition: next offset}}``
    snapshot_version = 1

    def __init__(
        self,
        consumer_params: Mapping[str, Any],
        poll_interval: float | str,
        max_in_flight: int,
        connect_timeout: float,
        commits_enabled: bool,
        drain_timeout: float | None = None,
        **kwargs: Any,
    ):
        name = type(self).__name__
        if drain_timeout is not None:
            if not isinstance(drain_timeout, (int, float)) or not drain_timeout >= 0:
                raise ValueError(
                    f"{name}: drain_timeout must be a number of seconds >= 0, got {drain_timeout!r}"
                )
            self.drain_timeout = float(drain_timeout)
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
        self._commit_failures = 0
        self._commit_warned = float("-inf")
        self._servers = str(
            consumer_params.get("bootstrap.servers") or consumer_params.get("metadata.broker.list")
        )
        self._background_commit: concurrent.futures.Future[None] | None = None
        # -- checkpoints --
        #: the offset after the last record emitted, per (topic, partition): the position
        self._emitted: dict[tuple[str, int], int] = {}
        #: offsets from restore() where partitions start when next assigned or planned
        self._resume_at: dict[tuple[str, int], int] = {}
        self._checkpointing = False
        self._checkpoint_identity: str | None = None
        #: the offsets of the last completed checkpoint (committed when the consumer can)
        self._checkpoint_offsets: dict[tuple[str, int], int] = {}
        self._checkpoint_commit_due = False
        #: exactly-once: the group's offsets are committed in the output's Kafka transaction
        self.offsets_in_transaction = False
        self._closing = False  # run() has left its loop: it drains, commits and closes
        self._wake: asyncio.Event | None = None  # the event a _wait_until sleeps on
        #: the last high watermarks read (see :mod:`millstream.kafka.lag`); None before
        self._highs: dict[tuple[str, int], tuple[int, int | None]] | None = None
        super().__init__(**kwargs)

    # -- the run ------------------------------------------------------------------------
    async def run(self) -> None:
        self.tracker = OffsetTracker()
        self._closing = False
        thread = self._thread = ConsumerThread(type(self).__name__)
        watch: asyncio.Future[None] | None = None
        try:
            self.consumer = await thread.call(self._connect)
            self._set_ready()
            watch = asyncio.ensure_future(self._watch_lag(thread, self.consumer))
            while not self.stopped:
                self._raise_if_failed()
                await self._wait_for_room()
                if self.stopped:
                    break
                await self._cycle(thread)
                await self._commit(thread)
        finally:
            self._closing = True
            if watch is not None:
                watch.cancel()
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
                self._disarm_drain_cut()
        self._raise_if_failed()

    def _connect(self) -> Any:
        raise NotImplementedError

    # -- metrics --------------------------------------------------------------------------
    async def _watch_lag(self, thread: ConsumerThread, consumer: Any) -> None:
        """Read the high watermarks on the consumer thread every ``LAG_REFRESH`` seconds
        (the first time one period after the start: the first reads go first)."""
        starts: dict[tuple[str, int], int] = {}
        while True:
            await asyncio.sleep(LAG_REFRESH)
            try:
                self._highs = await thread.call(
                    self._read_highs, consumer, starts, dict(self._emitted)
                )
            except Exception as e:  # a closing consumer: the last reading stays
                logger.debug("%s: reading the high watermarks failed: %s", self, e)

    def _read_highs(
        self, consumer: Any, starts: dict[tuple[str, int], int], emitted: dict[Any, int]
    ) -> dict[tuple[str, int], tuple[int, int | None]]:
        """On the consumer thread (never on the loop: while the consumer thread is in a
        rebalance callback, ``assignment()`` blocks, and the checkpoint before a revoke
        needs the loop): the high watermarks of the partitions assigned."""
        partitions = self._lag_partitions(consumer)
        return high_watermarks(self, consumer, partitions, starts, emitted, self._starts_at_end())

    def _lag_partitions(self, consumer: Any) -> list[Any]:
        """On the consumer thread: the partitions whose lag is reported (those assigned)."""
        return list(consumer.assignment())

    def _starts_at_end(self) -> bool:
        """Whether a partition without committed offset is read from its end."""
        reset = str(self.consumer_params.get("auto.offset.reset", "largest")).lower()
        return reset in ("latest", "largest", "end")

    def extra_metrics(self) -> dict[str, Any]:
        """``position`` (``{'topic/partition': next offset}`` after the records emitted),
        ``lag`` and ``lag_by_partition`` (records behind the high watermarks read last, at
        most ``LAG_REFRESH`` seconds ago; see :mod:`millstream.kafka.lag`)."""
        emitted = dict(self._emitted)
        position = {partition_label(tp): offset for tp, offset in sorted(emitted.items())}
        return {"position": position, **lag_metrics(emitted, self._highs)}

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
            lambda: (
                tracker.in_flight < self.max_in_flight
                or tracker.failure is not None
                or self.stopped
            )
        )

    # -- stop: drain, commit, close -----------------------------------------------------
    def _drain_bound(self) -> float:
        return self.drain_timeout

    def _request_stop(self) -> None:
        """On the loop: wake the run, and cut it short if it is still held up in the graph
        when the drain runs out (it then commits the completed prefix, closes and ends)."""
        super()._request_stop()
        if self._wake is not None:
            self._wake.set()
        self._arm_drain_cut()

    def _held_up(self) -> bool:
        """Not yet draining (bounded by the deadline too), nor still connecting."""
        return not self._closing and self.consumer is not None

    def _stop_timed_out(self) -> None:
        """The loop is blocked (a slow synchronous node): close the consumer from here,
        without the last commit, so that nothing is committed after ``stop()`` returns."""
        thread, consumer = self._thread, self.consumer
        if thread is None or consumer is None:
            super()._stop_timed_out()
            return
        self.consumer = None  # the run, once the loop is free, neither commits nor closes
        try:
            thread.call_blocking(self._close_timeout, consumer.close)
        except Exception as e:  # a close that hangs or fails: say so, do not raise from stop()
            logger.warning("%s: stop(): closing the consumer failed: %r", self, e)
        logger.warning(
            "%s: stop(): the event loop was blocked for %g s (a slow synchronous node?); "
            "the consumer is closed without a last commit: %d record(s) or batch(es) in "
            "flight and the records done since the last commit are not committed (they "
            "will be read again)",
            self,
            self._stop_timeout,
            self.tracker.in_flight,
        )

    async def _drain(self) -> None:
        tracker = self.tracker
        deadline = self._drain_deadline()
        # also after a failure: the records before it that are still in the graph (in a
        # buffer...) finish, so the last commit reaches the failed record itself
        await self._wait_until(lambda: not tracker.in_flight, deadline)
        if tracker.in_flight and tracker.failure is None and self.consumer is not None:
            logger.warning(
                "%s: %d record(s) or batch(es) still in flight after drain_timeout=%g s; "
                "their offsets are not committed (they will be read again)",
                self,
                tracker.in_flight,
                self.drain_timeout,
            )

    async def _wait_until(self, condition: Any, deadline: float | None = None) -> None:
        """Wait until ``condition()`` holds (re-checked each time a range finishes, in any
        thread) or ``deadline`` (``time.monotonic()``) passes."""
        if condition():
            return
        event = self._wake = asyncio.Event()  # set by stop() too
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
            self._wake = None

    async def _commit(self, thread: ConsumerThread, final: bool = False) -> None:
        if not self._commits_enabled:
            return
        consumer = self.consumer
        if consumer is None:  # closed by a stop() that found the loop blocked
            return
        if self._checkpointing:  # only what a completed checkpoint holds
            if final or self._checkpoint_commit_due:
                await thread.call(self._commit_checkpoint, consumer)
            return
        offsets = self.tracker.take_commits()
        if offsets:
            await thread.call(self._commit_now, consumer, offsets, final)

    def _commit_soon(self) -> None:
        """Commit the completed prefix now, on the consumer thread, without waiting for it
        (one such commit at a time): a long fetch of many batches commits as they finish."""
        thread = self._thread
        if thread is None or not self._commits_enabled or self._checkpointing:
            return
        running = self._background_commit
        if running is not None and not running.done():
            return
        offsets = self.tracker.take_commits()
        if offsets:
            try:
                self._background_commit = thread.submit(
                    self._commit_now, self.consumer, offsets, False
                )
            except RuntimeError:  # the thread is shut down: the run is over
                self.tracker.retry_commits(offsets)

    def _commit_now(self, consumer: Any, offsets: dict[tuple[str, int], int], final: bool) -> None:
        """On the consumer thread: commit ``offsets`` (from ``tracker.take_commits()``) with
        ``consumer`` (the source's when the commit was asked for: it is closed after)."""
        import confluent_kafka

        tps = [confluent_kafka.TopicPartition(t, p, o) for (t, p), o in offsets.items()]
        if consumer is None:
            self.tracker.retry_commits(offsets)
            return
        try:
            consumer.commit(offsets=tps, asynchronous=False)
        except confluent_kafka.KafkaException as e:
            # a rebalance took the partition away (then it is forgotten), or the broker
            # did not answer in time: the offsets are offered again at the next commit
            self._commit_failures += 1
            now = time.monotonic()
            if final or now - self._commit_warned >= 10.0:  # not once per poll
                self._commit_warned = now
                logger.warning(
                    "%s: commit of %s failed (%d time(s) so far; retried later): %s",
                    self,
                    offsets,
                    self._commit_failures,
                    e,
                )
            self.tracker.retry_commits(offsets)
            return
        self._commit_failures = 0
        self.committed.update(offsets)

    # -- checkpoints --------------------------------------------------------------------
    def snapshot(self) -> dict[str, dict[int, int]]:
        """The position: ``{topic: {partition: next offset}}`` after the records emitted
        into the graph so far (a partition whose record raised stays at that record)."""
        offsets = dict(self._emitted)
        failure = self.tracker.failure
        if failure is not None:
            rng = failure[0]
            key = (rng.topic, rng.partition)
            if offsets.get(key, rng.first) > rng.first:
                offsets[key] = rng.first
        return position_of(offsets)

    def restore(self, position: dict[str, dict[int, int]]) -> None:
        """Resume from ``position`` (a :meth:`snapshot`) at the next ``start()``: each
        partition it names from that offset, the others from the group's committed
        offsets. Call while the source is stopped; :class:`StateError` on a bad position."""
        if not self.stopped:
            raise StateError(f"{self}: restore() needs a stopped source")
        offsets = position_offsets(self, position, self._topics_read())
        self._emitted = dict(offsets)
        self._resume_at = dict(offsets)
        # the newest checkpoint may not have been committed (a crash right after it)
        self._checkpoint_offsets = dict(offsets)
        self._checkpoint_commit_due = True

    def checkpoint_mode(self, on: bool, identity: str | None = None) -> None:
        """Commit only the offsets of completed checkpoints (from the next ``start()``).

        ``identity`` names this checkpointed source (the coordinator passes the checkpoint
        location and the node's id); ``from_kafka`` derives its static group membership
        from it."""
        self._checkpointing = bool(on)
        self._checkpoint_identity = identity

    async def checkpoint_complete(self, position: dict[str, dict[int, int]]) -> None:
        """A checkpoint holding ``position`` is durable: commit its offsets to the group
        (on the consumer thread; a failure is logged, and the next checkpoint commits)."""
        if self.offsets_in_transaction:
            return  # committed by the output's Kafka transaction
        try:
            offsets = position_offsets(self, position)
        except StateError as e:
            logger.warning("%s: not committing checkpoint: %s", self, e)
            return
        self._checkpoint_offsets = offsets
        self._checkpoint_commit_due = True
        thread, consumer = self._thread, self.consumer
        if thread is None or consumer is None:
            return  # stopped: committed at the next start
        try:
            await thread.call(self._commit_checkpoint, consumer)
        except RuntimeError:  # the run ended meanwhile (its thread is shut down)
            pass

    def _commit_checkpoint(self, consumer: Any) -> None:
        """On the consumer thread: commit the last completed checkpoint's offsets with
        ``consumer`` (of the partitions this source may commit now; the others stay due)."""
        if consumer is None or not self._commits_enabled or self.offsets_in_transaction:
            return
        todo: dict[tuple[str, int], int] = {}
        waiting = False
        for tp, offset in self._checkpoint_offsets.items():
            if self.committed.get(tp) == offset:
                continue
            if self._may_commit(tp):
                todo[tp] = offset
            else:
                waiting = True
        self._checkpoint_commit_due = waiting
        if not todo:
            return
        import confluent_kafka

        tps = [confluent_kafka.TopicPartition(t, p, o) for (t, p), o in todo.items()]
        try:
            consumer.commit(offsets=tps, asynchronous=False)
        except Exception as e:  # never into the graph: the next checkpoint commits again
            logger.warning(
                "%s: commit of the checkpoint's offsets %s failed (retried at the next "
                "checkpoint): %s",
                self,
                todo,
                e,
            )
            return
        self.committed.update(todo)

    def _may_commit(self, tp: tuple[str, int]) -> bool:
        """Whether this source may commit an offset of ``tp`` now (a group member: only
        the partitions it is assigned)."""
        return True

    def _topics_read(self) -> list[str]:
        raise NotImplementedError

    def _resume_offset(self, tp: tuple[str, int]) -> int | None:
        """Where ``tp`` starts when it is assigned or planned: a restored position (used
        once), or in checkpoint mode after what this source emitted of it; None: from the
        group's committed offset."""
        offset = self._resume_at.pop(tp, None)
        if self.offsets_in_transaction:
            return None  # the group's committed offsets are those of the last commit
        if offset is None and self._checkpointing:
            offset = self._emitted.get(tp)
        return offset

    # -- handing records to the graph ---------------------------------------------------
    def _needs_refs(self) -> bool:
        """False when nothing below can hold an element past its update (all fused)."""
        return not self._downstream_fully_fused()

    async def _emit_tracked(
        self,
        x: Any,
        rng: OffsetRange,
        needs_refs: bool,
        values: list[Any] | None = None,
        offsets: Sequence[int] | None = None,
        count: int = 1,
    ) -> None:
        """Emit ``x`` for the records of ``rng``; finish ``rng`` once every holder let go.

        ``values`` and their ``offsets`` (a batch) let an error name the exact record. The
        position moves past ``rng`` as ``x`` is emitted; while a checkpoint holds the
        source, it waits first (``count`` records are counted for ``every=N``)."""
        hold = self.hold
        if hold is not None:
            if hold.closed:
                await hold.wait_open()
            hold.count(count)
        tracker = self.tracker
        emitted = self._emitted
        key = (rng.topic, rng.partition)
        if not needs_refs:
            try:
                pending = self._emit(x)
                emitted[key] = rng.last + 1
                if pending:
                    await self._absorb(pending)
            except Exception as e:
                emitted[key] = rng.first  # it failed: a checkpoint keeps it to read again
                tracker.finish(rng, e)
                _add_position_note(e, rng, _locate(e, values, offsets))
                raise
            tracker.finish(rng)
            return
        ref = RefCounter(initial=1)

        def finished() -> None:  # in whichever thread let go last
            ref.cb = None  # no cycle ref -> finished -> ref: a held batch is freed at once
            error = ref.errors[0] if ref.errors else None
            if error is not None and values is not None:  # name the record in the batch
                _add_position_note(error, rng, _locate(error, values, offsets))
            tracker.finish(rng, error)

        ref.cb = finished
        metadata = [
            {"ref": ref, "topic": rng.topic, "partition": rng.partition, "offset": rng.last}
        ]
        try:
            pending = self._emit(x, metadata=metadata)
            emitted[key] = rng.last + 1
            if pending:
                await self._absorb(pending)
        except Exception as e:
            emitted[key] = rng.first  # it failed: a checkpoint keeps it to read again
            ref.fail(e)
            ref.release()
            _add_position_note(e, rng, _locate(e, values, offsets))
            raise
        ref.release()


def _locate(
    error: BaseException,
    values: list[Any] | None,
    offsets: Sequence[int] | None,
) -> int | None:
    """The offset of the record a decode error names (its ``object``), if it is in ``values``."""
    if values is None or offsets is None:
        return None
    culprit = getattr(error, "object", None)
    if culprit is None:
        return None
    for i, v in enumerate(values):
        if isinstance(v, dict):  # keys=True: the record's value
            v = v.get("value")
        # bytes.decode() puts a copy of the bytes in the error: compare by value (the
        # first equal record is the first to fail when the batch is decoded in order)
        if v is culprit or (isinstance(v, bytes) and isinstance(culprit, bytes) and v == culprit):
            return offsets[i]
    return None
