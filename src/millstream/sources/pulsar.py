"""``from_pulsar``: read Apache Pulsar topics, acknowledging each message once it is fully
processed.

Every call into the client that may block (subscribe, seek, receive, close) runs on a
thread of the source, never on the event loop; messages come in batches
(``batch_receive``), and no new batch is taken while ``max_in_flight`` messages are in the
graph, so a slow pipeline slows the reading down (the client prefetches at most
``receiver_queue_size`` more). Each message travels with a
:class:`~millstream.core.refs.RefCounter`: when every node holding it has let go, it is
acknowledged, or negatively acknowledged if its processing raised (Pulsar then delivers
it again after ``nack_redelivery_delay`` seconds, to this consumer or another one of the
subscription).

Checkpoints (:mod:`millstream.core.state`): ``snapshot()`` is, per topic partition, the
last message emitted (its serialized id and publish time), or the oldest message whose
processing failed and that was not redelivered yet; ``restore(position)`` makes the next
start seek the subscription back to the oldest publish time of the position and skip, per
partition, what comes before the position. Seeking resets the cursor of the whole
subscription (every consumer of a shared subscription).
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import datetime
import functools
import operator
import threading
import time
from collections.abc import Sequence
from typing import Any

from .._utils import add_note, check_positive_int, convert_interval
from ..connectors.pulsar import (
    classify_pulsar_error,
    describe_subscription_type,
    import_pulsar,
    logger,
    make_client,
    message_key,
)
from ..core.refs import RefCounter
from ..core.state import bad_state
from ..core.stream import Stream
from ..exceptions import StateError
from .base import STOPPED, ManagedSource

__all__ = ["from_pulsar"]

_FAILURE_POLICIES = ("nack", "stop")


@Stream.register_api(staticmethod)
class from_pulsar(ManagedSource):
    """Read the messages of Pulsar ``topics`` through ``subscription``.

    Emits each message's payload (``bytes``), or with ``keys=True`` a dict with ``value``,
    ``key``, ``topic``, ``message_id`` (serialized), ``publish_time`` (ms) and
    ``properties``. A message is acknowledged once the graph has fully processed it, and
    negatively acknowledged (delivered again after ``nack_redelivery_delay`` s) if that
    raised; ``on_failure='stop'`` also stops the source with the error.

    Parameters
    ----------
    service_url : str
        e.g. ``'pulsar://127.0.0.1:6650'``.
    topics : str or list of str
    subscription : str
    subscription_type : 'Shared', 'Exclusive', 'Failover' or 'Key_Shared'
    initial_position : 'latest' or 'earliest'
        Where a new subscription starts.
    start_message_id : 'earliest', 'latest', bytes or pulsar.MessageId, optional
        Replay: seek the subscription there at the first start.
    start_time : datetime or float (epoch seconds), optional
        Replay: seek the subscription to the first message published at or after it.
    max_in_flight : int
        Messages in the graph at once before the source waits.
    receiver_queue_size, batch_size : int
        The client's prefetch, and the messages taken per receive.
    poll_interval : float or str
        How long one receive waits for messages.
    nack_redelivery_delay : float
        Seconds before a failed message is delivered again.
    keys : bool
    on_failure : 'nack' or 'stop'
    connect_timeout : float
    consumer_params, client_params : dict, optional
        Passed to ``pulsar.Client.subscribe`` and ``pulsar.Client``.
    """

    _wait_ready_on_start = True
    _start_timeout = 60.0
    #: seconds ``stop()`` waits for the messages in flight to finish
    drain_timeout = 10.0
    #: the format of :meth:`snapshot`
    snapshot_version = 1

    def __init__(
        self,
        service_url: str,
        topics: str | Sequence[str],
        subscription: str,
        subscription_type: str = "Shared",
        initial_position: str = "latest",
        start_message_id: Any = None,
        start_time: Any = None,
        max_in_flight: int = 1000,
        receiver_queue_size: int = 1000,
        batch_size: int = 500,
        poll_interval: float | str = 0.1,
        nack_redelivery_delay: float = 1.0,
        keys: bool = False,
        on_failure: str = "nack",
        connect_timeout: float = 10.0,
        consumer_params: dict[str, Any] | None = None,
        client_params: dict[str, Any] | None = None,
        **kwargs: Any,
    ):
        name = type(self).__name__
        self.service_url = service_url
        self.topics = [topics] if isinstance(topics, str) else list(topics)
        if not self.topics or not all(isinstance(t, str) and t for t in self.topics):
            raise ValueError(f"{name}: topics must be a topic name or a list of them: {topics!r}")
        if not isinstance(subscription, str) or not subscription:
            raise ValueError(f"{name}: subscription must be a non-empty name: {subscription!r}")
        self.subscription = subscription
        self.subscription_type = describe_subscription_type(subscription_type)
        if initial_position not in ("latest", "earliest"):
            raise ValueError(f"{name}: initial_position must be 'latest' or 'earliest'")
        self.initial_position = initial_position
        if start_message_id is not None and start_time is not None:
            raise ValueError(f"{name}: give start_message_id or start_time, not both")
        self.start_message_id = start_message_id
        self.start_time = start_time
        for label, value in (
            ("max_in_flight", max_in_flight),
            ("receiver_queue_size", receiver_queue_size),
            ("batch_size", batch_size),
        ):
            check_positive_int(name, label, value)
        self.max_in_flight = max_in_flight
        self.receiver_queue_size = receiver_queue_size
        self.batch_size = batch_size
        self.poll_interval = convert_interval(poll_interval)
        self.nack_redelivery_delay = float(nack_redelivery_delay)
        self.keys = bool(keys)
        if on_failure not in _FAILURE_POLICIES:
            raise ValueError(f"{name}: on_failure must be 'nack' or 'stop', got {on_failure!r}")
        self.on_failure = on_failure
        self.connect_timeout = float(connect_timeout)
        self.consumer_params = dict(consumer_params or {})
        self.client_params = dict(client_params or {})
        self.client: Any = None
        self.consumer: Any = None
        #: messages acknowledged and negatively acknowledged so far
        self.acknowledged = 0
        self.nacked = 0
        self._lock = threading.Lock()
        self._in_flight = 0
        self._room: asyncio.Event | None = None
        #: the run waits for room (set under the lock): messages leaving the graph wake it
        self._room_wanted = False
        self._asyncio_loop: asyncio.AbstractEventLoop | None = None
        self._failure: BaseException | None = None
        self._seek_done = False
        #: per topic partition: the last message emitted (its id, its publish time in ms)
        #: (the message itself, or (id, publish time) after a restore)
        self._emitted: dict[str, Any] = {}
        #: per topic partition: the messages that failed and were not acknowledged since
        self._failed: dict[str, dict[tuple[int, int, int], Any]] = {}
        #: from restore(): per topic partition (key, inclusive); and the seek time (ms)
        self._resume: dict[str, tuple[tuple[int, int, int], bool]] = {}
        self._resume_time: int | None = None
        self._closing = False  # run() has left its loop: it drains and closes
        self._one_partition = False
        #: the batch in progress on the fused path
        self._batch: _Batch | None = None
        super().__init__(**kwargs)

    def __str__(self) -> str:
        return f"<from_pulsar: {','.join(self.topics)} ({self.subscription})>"

    # -- the run ------------------------------------------------------------------------
    async def run(self) -> None:
        loop = self._asyncio_loop = asyncio.get_running_loop()
        self._room = asyncio.Event()
        self._failure, self._closing = None, False
        executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="from_pulsar")
        received: collections.deque[Any] = collections.deque()
        #: the next batch, received on the source's thread while this one is emitted
        coming: asyncio.Future[list[Any]] | None = None
        try:
            self.client, self.consumer = await loop.run_in_executor(executor, self._connect)
            self._set_ready()
            while not self.stopped:
                self._raise_if_failed()
                if self._in_flight >= self.max_in_flight:
                    await self._wait_for_room(lambda: self._in_flight < self.max_in_flight)
                    continue
                if not received:
                    if coming is None:
                        coming = loop.run_in_executor(executor, self._receive, self.consumer)
                    received.extend(await coming)
                    coming = loop.run_in_executor(executor, self._receive, self.consumer)
                # at most max_in_flight in the graph: the rest waits here, not acknowledged
                # (delivered again if the source stops first)
                await self._emit_messages(received)
        finally:
            self._closing = True
            try:
                await self._drain()
            finally:
                client, self.client, self.consumer = self.client, None, None
                if client is not None:
                    await loop.run_in_executor(executor, _close_quietly, client)
                if coming is not None:
                    coming.cancel()  # its messages are not acknowledged: they come again
                executor.shutdown(wait=False)
                self._disarm_drain_cut()
        self._raise_if_failed()

    def _connect(self) -> tuple[Any, Any]:
        """On the source's thread: the client, the consumer, and the seek due."""
        pulsar = import_pulsar()
        client = make_client(self.service_url, self.connect_timeout, **self.client_params)
        params: dict[str, Any] = {
            "consumer_type": getattr(pulsar.ConsumerType, self.subscription_type),
            "receiver_queue_size": self.receiver_queue_size,
            "negative_ack_redelivery_delay_ms": int(self.nack_redelivery_delay * 1000),
            "initial_position": (
                pulsar.InitialPosition.Earliest
                if self.initial_position == "earliest"
                else pulsar.InitialPosition.Latest
            ),
            # acknowledge single messages of a producer's batch: a nack or a restart then
            # delivers again only what was not acknowledged, not the whole batch
            "batch_index_ack_enabled": True,
            "batch_receive_policy": pulsar.ConsumerBatchReceivePolicy(
                self.batch_size, -1, max(1, int(self.poll_interval * 1000))
            ),
        }
        params.update(self.consumer_params)
        topic: Any = self.topics[0] if len(self.topics) == 1 else self.topics
        try:
            consumer = client.subscribe(topic, self.subscription, **params)
            self._seek(pulsar, consumer)
            # one topic without partitions: every message of a batch has the same topic
            self._one_partition = (
                len(self.topics) == 1 and len(client.get_topic_partitions(self.topics[0])) == 1
            )
        except Exception as e:
            _close_quietly(client)
            what = f"{self}: subscribing to {topic!r}"
            raise classify_pulsar_error(e, what, self.service_url) from e
        return client, consumer

    def _seek(self, pulsar: Any, consumer: Any) -> None:
        """Seek to the restored position, or at the first start to ``start_message_id`` /
        ``start_time``."""
        if self._resume_time is not None:
            consumer.seek(self._resume_time)
            self._resume_time = None
            return
        if self._seek_done:
            return
        self._seek_done = True
        if self.start_time is not None:
            consumer.seek(_epoch_ms(self.start_time))
        elif self.start_message_id is not None:
            consumer.seek(_message_id(pulsar, self.start_message_id))

    def _receive(self, consumer: Any) -> list[Any]:
        """On the source's thread: the next batch (empty after ``poll_interval``)."""
        return list(consumer.batch_receive())

    # -- messages into the graph ----------------------------------------------------------
    async def _emit_messages(self, received: collections.deque[Any]) -> None:
        """Emit what was received, while fewer than ``max_in_flight`` are in the graph."""
        fused = self._downstream_fully_fused()  # nothing below holds an element: no refs
        if fused and not self._resume:
            await self._emit_fused(received)
            return
        emitted = self._emitted
        acknowledge = self.consumer.acknowledge
        emit = self._emit
        take = received.popleft
        keys = self.keys
        while received and self._in_flight < self.max_in_flight and not self.stopped:
            message = take()
            topic = message.topic_name()
            if self._resume and self._before_position(message, topic, message.message_id()):
                continue
            hold = self.hold
            if hold is not None:
                if hold.closed:
                    await hold.wait_open()
                hold.count()
            x = message.data() if not keys else self._record(message, topic)
            emitted[topic] = message
            if fused:
                try:
                    pending = emit(x)
                    if pending:
                        await self._absorb_counted(pending)
                except Exception as e:
                    with self._lock:
                        self._in_flight += 1  # _finished counts it out
                    self._finished(message, topic, message.message_id(), [e])
                    if self.on_failure == "stop":
                        raise
                    continue
                acknowledge(message)
                self.acknowledged += 1
                if self._failed:
                    self._forget_failure(topic, message.message_id())
                continue
            message_id = message.message_id()
            with self._lock:
                self._in_flight += 1
            ref = RefCounter(initial=1)
            ref.cb = functools.partial(self._finished, message, topic, message_id, ref.errors)
            try:
                pending = self._emit(x, metadata=[{"ref": ref, "topic": topic}])
                if pending:
                    await self._absorb(pending)
            except Exception as e:
                ref.fail(e)
                ref.release()
                if self.on_failure == "stop":
                    raise
                continue
            ref.release()

    async def _emit_fused(self, received: collections.deque[Any]) -> None:
        """Every node below is fused (none holds an element past its update): emit the
        payloads of what was received as one batch through the fused code, then
        acknowledge the messages done, in order. Positions read meanwhile (a checkpoint
        while an element's awaitables are awaited, a snapshot from inside the graph) count
        the batch's messages taken so far (:meth:`_positions`)."""
        if not received:
            return
        await self._wait_if_held()
        messages = list(received)
        received.clear()
        if self._one_partition:
            topics: list[str] | None = None
            topic = messages[0].topic_name()
        else:
            topics = [m.topic_name() for m in messages]
            topic = ""
        if self.keys:
            record = self._record
            values = [record(m, topics[i] if topics else topic) for i, m in enumerate(messages)]
        else:
            values = [m.data() for m in messages]
        items = iter(values)
        batch = self._batch = _Batch(messages, topics, topic, items)
        try:
            for pending in self._emit_batch(items, until=self):
                await self._absorb_counted(pending)
        except Exception as e:
            failed = batch.taken() - 1
            self._batch = None
            if failed < 0:  # before the first message: none is to blame
                received.extendleft(reversed(messages))
                raise
            batch.mark(self._emitted, failed + 1)
            self._acknowledge_done(batch, failed)
            received.extend(messages[failed + 1 :])  # not emitted: next
            message = messages[failed]
            with self._lock:
                self._in_flight += 1  # _finished counts it out
            self._finished(message, batch.topic_of(failed), message.message_id(), [e])
            if self.on_failure == "stop":
                raise
            return
        except BaseException:  # cancelled: stop() cut the run held up by the last message
            self._batch = None
            done = max(0, batch.taken() - 1)  # those before it are done
            batch.mark(self._emitted, done)
            self._acknowledge_done(batch, done)
            raise
        done = batch.taken()
        self._batch = None
        batch.mark(self._emitted, done)
        self._acknowledge_done(batch, done)
        received.extend(messages[done:])  # stop() came during the batch: not emitted
        hold = self.hold
        if hold is not None:
            hold.count(done)

    def _acknowledge_done(self, batch: _Batch, done: int) -> None:
        """Acknowledge the batch's first ``done`` messages, fully processed."""
        messages = batch.messages
        acknowledge = self.consumer.acknowledge
        for message in messages if done == len(messages) else messages[:done]:
            acknowledge(message)
        self.acknowledged += done
        if self._failed:
            for i in range(done):
                self._forget_failure(batch.topic_of(i), messages[i].message_id())

    def _positions(self) -> dict[str, Any]:
        """Per topic partition, the last message emitted (or ``(id, publish time)``),
        counting the messages taken so far from a batch in progress."""
        emitted = dict(self._emitted)
        batch = self._batch
        if batch is not None:
            batch.mark(emitted, batch.taken())
        return emitted

    async def _absorb_counted(self, pending: list[Any]) -> None:
        """Await what an emit returned, the message counted in flight meanwhile."""
        with self._lock:
            self._in_flight += 1
        try:
            await self._absorb(pending)
        finally:
            with self._lock:
                self._in_flight -= 1

    def _before_position(self, message: Any, topic: str, message_id: Any) -> bool:
        """After a restore: acknowledge and skip what comes before the position."""
        resume = self._resume.get(topic)
        if resume is None:
            return False
        key, inclusive = resume
        current = message_key(message_id)
        if current < key or (current == key and not inclusive):
            self.consumer.acknowledge(message)  # before the position: done already
            return True
        del self._resume[topic]
        return False

    def _record(self, message: Any, topic: str) -> dict[str, Any]:
        return {
            "value": message.data(),
            "key": message.partition_key() or None,
            "topic": topic,
            "message_id": message.message_id().serialize(),
            "publish_time": message.publish_timestamp(),
            "properties": message.properties(),
        }

    def _finished(self, message: Any, topic: str, message_id: Any, errors: list[Any]) -> None:
        """In whichever thread let go last: acknowledge, or nack and note the failure."""
        consumer = self.consumer
        if errors:
            error = errors[0]
            note = f"pulsar: while processing topic {topic!r} message {message_id}"
            add_note(error, note, unless="pulsar: while processing")
            with self._lock:
                failed = self._failed.setdefault(topic, {})
                failed[message_key(message_id)] = (message_id, message.publish_timestamp())
                self.nacked += 1
                if self.on_failure == "stop" and self._failure is None:
                    self._failure = error
            if consumer is not None:
                consumer.negative_acknowledge(message)
            logger.warning(
                "%s: processing failed, message negatively acknowledged: %r", self, error
            )
        elif consumer is not None:
            consumer.acknowledge(message)
            with self._lock:
                self.acknowledged += 1
            if self._failed:
                self._forget_failure(topic, message_id)
        self._left_graph()

    def _forget_failure(self, topic: str, message_id: Any) -> None:
        with self._lock:
            failed = self._failed.get(topic)
            if failed:
                failed.pop(message_key(message_id), None)

    def _left_graph(self) -> None:
        """A message with refs has left the graph: wake the run if it waits for room."""
        with self._lock:
            self._in_flight -= 1
            wake = self._room_wanted
        if wake and self._room is not None and self._asyncio_loop is not None:
            try:
                self._asyncio_loop.call_soon_threadsafe(self._room.set)
            except RuntimeError:  # the loop is closed
                pass

    def _raise_if_failed(self) -> None:
        if self._failure is not None:
            raise self._failure

    # -- stop -------------------------------------------------------------------------------
    def _drain_bound(self) -> float:
        return self.drain_timeout

    def _request_stop(self) -> None:
        """On the loop: wake the run, and cut it short if an element still holds it up in
        the graph (an awaited slow sink) when ``drain_timeout`` runs out."""
        super()._request_stop()
        if self._room is not None:
            self._room.set()
        self._arm_drain_cut()

    def _held_up(self) -> bool:
        return not self._closing

    async def _drain(self) -> None:
        """Wait (until ``drain_timeout`` after ``stop()``) for the messages in flight to be
        acknowledged."""
        deadline = self._drain_deadline()
        await self._wait_for_room(lambda: self._in_flight == 0, deadline)
        if self._in_flight > 0:
            logger.warning(
                "%s: %d message(s) still in flight after drain_timeout=%g s; they are "
                "not acknowledged (Pulsar delivers them again)",
                self,
                self._in_flight,
                self.drain_timeout,
            )

    async def _wait_for_room(self, condition: Any, deadline: float | None = None) -> None:
        """Wait until ``condition()`` holds (re-checked as messages leave the graph), or
        ``deadline`` passes, or ``stop()`` (without a deadline)."""
        room = self._room
        if room is None:
            return
        try:
            while not condition():
                with self._lock:
                    room.clear()
                    self._room_wanted = True
                if condition():
                    break
                if deadline is None:
                    if await self._interruptible(room.wait()) is STOPPED:
                        return
                    continue
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                try:
                    await asyncio.wait_for(room.wait(), min(left, 0.5))
                except asyncio.TimeoutError:
                    pass
        finally:
            self._room_wanted = False

    # -- metrics --------------------------------------------------------------------------
    def extra_metrics(self) -> dict[str, Any]:
        """``position`` (per topic partition, the last message id emitted, as
        ``'ledger:entry:batch'``), ``backlog`` (messages in the graph, not acknowledged
        yet), ``acknowledged`` and ``nacked``."""
        position = {
            topic: ":".join(map(str, message_key(mid)))
            for topic, (mid, _) in map(_id_and_time, self._positions().items())
        }
        return {
            "position": position,
            "backlog": self._in_flight,
            "acknowledged": self.acknowledged,
            "nacked": self.nacked,
        }

    # -- checkpoints --------------------------------------------------------------------
    def snapshot(self) -> dict[str, dict[str, Any]]:
        """``{topic partition: {'message_id': bytes, 'publish_time': ms, 'inclusive': bool}}``:
        where to resume. ``inclusive``: the message itself failed and is read again."""
        position: dict[str, dict[str, Any]] = {}
        with self._lock:
            failed = {topic: dict(ids) for topic, ids in self._failed.items() if ids}
        for topic, (message_id, publish_time) in map(_id_and_time, self._positions().items()):
            if topic in failed:
                key = min(failed[topic])
                oldest, publish_time = failed[topic][key]
                position[topic] = {
                    "message_id": oldest.serialize(),
                    "publish_time": publish_time,
                    "inclusive": True,
                }
            else:
                position[topic] = {
                    "message_id": message_id.serialize(),
                    "publish_time": publish_time,
                    "inclusive": False,
                }
        return position

    def restore(self, position: dict[str, dict[str, Any]]) -> None:
        """Resume from ``position`` (a :meth:`snapshot`) at the next ``start()``."""
        if not self.stopped:
            raise StateError(f"{self}: restore() needs a stopped source")
        if not isinstance(position, dict):
            raise bad_state(self, position, "expected a dict {topic: {'message_id': ...}}")
        pulsar = import_pulsar()
        resume: dict[str, tuple[tuple[int, int, int], bool]] = {}
        emitted: dict[str, tuple[Any, int]] = {}
        times: list[int] = []
        for topic, entry in position.items():
            try:
                message_id = pulsar.MessageId.deserialize(entry["message_id"])
                publish_time = int(entry["publish_time"])
                inclusive = bool(entry["inclusive"])
            except Exception as e:
                raise bad_state(self, position, f"bad entry for {topic!r}: {e}") from None
            resume[topic] = (message_key(message_id), inclusive)
            emitted[topic] = (message_id, publish_time)
            times.append(publish_time)
        self._resume = resume
        self._emitted = emitted
        self._failed = {}
        self._resume_time = min(times) if times else None


class _Batch:
    """Messages emitted as one batch on the fused path, with their payloads' iterator
    (what it has left is what was not taken yet)."""

    __slots__ = ("items", "messages", "topic", "topics")

    def __init__(self, messages: list[Any], topics: list[str] | None, topic: str, items: Any):
        self.messages = messages
        self.topics = topics  # per message, or None: all of ``topic``
        self.topic = topic
        self.items = items

    def taken(self) -> int:
        return len(self.messages) - operator.length_hint(self.items)

    def topic_of(self, i: int) -> str:
        return self.topics[i] if self.topics is not None else self.topic

    def mark(self, emitted: dict[str, Any], end: int) -> None:
        """Record ``messages[:end]`` as emitted in ``emitted``."""
        if end <= 0:
            return
        if self.topics is None:
            emitted[self.topic] = self.messages[end - 1]
            return
        for i in range(end):
            emitted[self.topics[i]] = self.messages[i]


def _id_and_time(item: tuple[str, Any]) -> tuple[str, tuple[Any, int]]:
    """``(topic, (message id, publish time))`` of an entry of ``_emitted``."""
    topic, entry = item
    if isinstance(entry, tuple):
        return topic, entry
    return topic, (entry.message_id(), entry.publish_timestamp())


def _close_quietly(client: Any) -> None:
    try:
        client.close()
    except Exception as e:
        logger.debug("closing the Pulsar client failed: %r", e)


def _epoch_ms(when: Any) -> int:
    if isinstance(when, datetime.datetime):
        return int(when.timestamp() * 1000)
    if isinstance(when, (int, float)):
        return int(when * 1000)
    raise TypeError(f"from_pulsar: start_time must be a datetime or epoch seconds: {when!r}")


def _message_id(pulsar: Any, value: Any) -> Any:
    if value == "earliest":
        return pulsar.MessageId.earliest
    if value == "latest":
        return pulsar.MessageId.latest
    if isinstance(value, (bytes, bytearray)):
        return pulsar.MessageId.deserialize(bytes(value))
    return value
