"""``from_rabbitmq``: one element per message of a RabbitMQ queue, acknowledged once it is
fully processed (aio-pika; the client code is :mod:`millstream.connectors.rabbitmq`)."""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from typing import Any

from .._utils import add_note, check_positive_int
from ..connectors.rabbitmq import (
    AckTracker,
    broker_address,
    connect,
    message_record,
    open_queue,
)
from ..core.loop import in_loop_thread
from ..core.refs import RefCounter
from ..core.stream import Stream
from ..exceptions import RabbitMQConnectError, UnknownQueueError
from .base import STOPPED, ManagedSource

__all__ = ["from_rabbitmq"]

logger = logging.getLogger("millstream.sources")

#: seconds between two readings of the queue's depth (``lag``)
LAG_REFRESH = 1.0
_FAILURE_MODES = ("requeue", "dead_letter")


@Stream.register_api(staticmethod)
class from_rabbitmq(ManagedSource):
    """Emit the body of each message of the RabbitMQ ``queue``; acknowledge each message
    once its element is fully processed.

    The broker delivers at most ``prefetch`` messages that are not acknowledged yet
    (``basic.qos``): that is the backpressure, as the source acknowledges a message only
    when every node that held its element has let it go without error (the ref mechanism
    of :mod:`millstream.core.refs`, as for ``from_kafka``: an asynchronous sink, a buffer or
    a window holds it). Acknowledgements go in order, one ``basic.ack`` with ``multiple``
    for each completed run of messages.

    When the processing of an element fails (a node raised, or released it as failed),
    ``on_failure`` says what happens to its message:

    * ``'requeue'`` (the default): ``basic.nack`` with requeue, and the error stops the
      source (as in ``from_kafka``); the broker delivers the message again, to another
      consumer or after a restart.
    * ``'dead_letter'``: ``basic.nack`` without requeue, and the source goes on (a warning
      is logged, ``node.metrics['dead_lettered']`` counts them): RabbitMQ moves the
      message to the queue's dead-letter exchange (its ``x-dead-letter-exchange``
      argument; ``declare=True, dead_letter_exchange=...`` sets it), recording why in its
      ``x-death`` header. On a queue without one, the broker drops the message.

    The source declares nothing unless ``declare=True`` (a durable queue); otherwise the
    queue must exist (a passive declare checks it): :class:`~millstream.exceptions.
    UnknownQueueError` names it. An unreachable broker raises
    :class:`~millstream.exceptions.RabbitMQConnectError` (one line with ``host:port``),
    from ``start()`` when called outside the loop; a connection lost later stops the
    source with that error, and the broker requeues the unacknowledged messages.

    No replay: RabbitMQ forgets an acknowledged message, so a checkpoint keeps no position
    for this source (``snapshot()`` is the stateless default). What was delivered and not
    acknowledged when a pipeline dies (or stops) is delivered again by RabbitMQ
    (``redelivered`` is then true): at-least-once, with duplicates after a crash.

    Metrics (``node.metrics``): ``backlog`` (messages delivered and not acknowledged yet),
    ``lag`` (messages ready in the queue, read with a passive declare at most once a
    second; None before the first reading), ``acked``, ``requeued``, ``dead_lettered``.

    Parameters
    ----------
    url : str
        The broker, ``'amqp://user:password@host:port/vhost'``.
    queue : str
        The queue to consume.
    prefetch : int
        The most messages delivered and not yet acknowledged (default 100).
    records : bool
        Emit each message as a dict (``body``, ``headers``, ``routing_key``, ``exchange``,
        ``redelivered``, ``delivery_tag`` and the properties that are set: ``content_type``,
        ``message_id``, ``correlation_id``, ``timestamp``...) instead of its body (bytes).
    on_failure : {'requeue', 'dead_letter'}
        What a failed element does to its message (above).
    declare : bool
        Declare the queue (durable) instead of only checking that it exists.
    dead_letter_exchange : str, optional
        With ``declare=True``: the queue's ``x-dead-letter-exchange``.
    queue_arguments : dict, optional
        With ``declare=True``: more arguments of the queue (``x-queue-type``...).
    connect_timeout : float
        Seconds to wait for the broker.
    drain_timeout : float
        Seconds ``stop()`` waits for the elements in flight before it closes the channel
        (default 10); the broker delivers the messages still unacknowledged again.
    reconnect_timeout : float or None
        When the connection (or the channel) is lost while consuming, connect again for
        up to this many seconds (default 60; the delay between tries doubles from 0.1 s
        to 5 s) before the source stops with :class:`RabbitMQConnectError`; ``0`` or
        ``None``: stop at once. The messages in flight when it was lost are delivered
        again by the broker. A broker unreachable at ``start()`` raises at once.

    Examples
    --------
    >>> source = Stream.from_rabbitmq('amqp://localhost/', 'orders', prefetch=50)
    >>> source.queue, source.prefetch, source.on_failure, source.stopped
    ('orders', 50, 'requeue', True)
    >>> Stream.from_rabbitmq('amqp://localhost/', 'orders', on_failure='drop')
    Traceback (most recent call last):
    ...
    ValueError: from_rabbitmq: on_failure must be 'requeue' or 'dead_letter', got 'drop'

    With a broker (docs/connectors/rabbitmq.md runs it)::

        source = Stream.from_rabbitmq('amqp://guest:guest@localhost/', 'orders')
        source.map(json.loads).sink(store)
        source.start()
    """

    _wait_ready_on_start = True
    _start_timeout = 30.0
    drain_timeout = 10.0

    def __init__(
        self,
        url: str,
        queue: str,
        prefetch: int = 100,
        *,
        records: bool = False,
        on_failure: str = "requeue",
        declare: bool = False,
        dead_letter_exchange: str | None = None,
        queue_arguments: dict[str, Any] | None = None,
        connect_timeout: float = 10.0,
        drain_timeout: float | None = None,
        reconnect_timeout: float | None = 60.0,
        **kwargs: Any,
    ):
        name = "from_rabbitmq"
        if not isinstance(queue, str) or not queue:
            raise ValueError(f"{name}: queue must be a queue name, got {queue!r}")
        check_positive_int(name, "prefetch", prefetch)
        if on_failure not in _FAILURE_MODES:
            raise ValueError(
                f"{name}: on_failure must be 'requeue' or 'dead_letter', got {on_failure!r}"
            )
        if (dead_letter_exchange is not None or queue_arguments) and not declare:
            raise ValueError(
                f"{name}: dead_letter_exchange and queue_arguments are arguments of a queue "
                f"this source declares: pass declare=True (or set them where the queue is "
                f"declared)"
            )
        if drain_timeout is not None:
            self.drain_timeout = float(drain_timeout)
        self.url = url
        self.queue = queue
        self.prefetch = prefetch
        self.records = bool(records)
        self.on_failure = on_failure
        self.declare = bool(declare)
        arguments = dict(queue_arguments or {})
        if dead_letter_exchange is not None:
            arguments["x-dead-letter-exchange"] = dead_letter_exchange
        self.queue_arguments = arguments
        self.connect_timeout = float(connect_timeout)
        self.reconnect_timeout = float(reconnect_timeout or 0.0)
        #: connections lost and made again since the start
        self.reconnects = 0
        self.acked = 0
        self.requeued = 0
        self.dead_lettered = 0
        self._lag: int | None = None
        self._tracker = AckTracker()
        self._inbox: collections.deque[Any] = collections.deque()
        self._arrived: asyncio.Event | None = None
        self._channel: Any = None  # aiormq's channel of the run (acks go there)
        self._ack_scheduled = False
        self._failure: BaseException | None = None
        self._aloop: asyncio.AbstractEventLoop | None = None
        self._lost = False  # the run's connection or channel closed under it
        self._processing_failed = False  # an element failed (on_failure='requeue')
        self._consuming = False  # the run got as far as consuming
        super().__init__(**kwargs)

    def __str__(self) -> str:
        return f"from_rabbitmq({self.queue!r})"

    # -- metrics --------------------------------------------------------------------------
    def extra_metrics(self) -> dict[str, Any]:
        """``backlog`` (delivered, not acknowledged), ``lag`` (ready in the queue at the
        last reading), ``reconnects``, ``acked``, ``requeued``, ``dead_lettered``."""
        return {
            "backlog": self._tracker.in_flight + len(self._inbox),
            "lag": self._lag,
            "reconnects": self.reconnects,
            "acked": self.acked,
            "requeued": self.requeued,
            "dead_lettered": self.dead_lettered,
        }

    # -- the run --------------------------------------------------------------------------
    def _drain_bound(self) -> float:
        return self.drain_timeout

    def _request_stop(self) -> None:
        super()._request_stop()
        if self._arrived is not None:
            self._arrived.set()

    async def run(self) -> None:
        """Consume; after a lost connection, consume again on a new one (up to
        ``reconnect_timeout`` seconds of tries)."""
        lost_at: float | None = None
        delay = 0.1
        while True:
            self._lost = self._consuming = self._processing_failed = False
            try:
                await self._consume()
                return
            except Exception as e:
                now = time.monotonic()
                if self._consuming:  # a connection that worked is lost: start trying
                    lost = self._lost and not self._processing_failed
                    if not (lost and self.reconnect_timeout > 0) or self.stopped:
                        raise
                    lost_at, delay = now, 0.1
                    logger.warning(
                        "%s: %s; connecting again for up to %g s",
                        self,
                        e,
                        self.reconnect_timeout,
                    )
                elif (
                    lost_at is None
                    or now - lost_at > self.reconnect_timeout
                    or isinstance(e, UnknownQueueError)
                ):
                    raise  # unreachable at start or for too long, or a missing queue
            if await self._interruptible(asyncio.sleep(delay)) is STOPPED:
                return
            delay = min(delay * 2, 5.0)

    async def _consume(self) -> None:
        """One connection: consume until stopped, a failure, or the connection is lost."""
        self._failure = None
        self._tracker = AckTracker()
        self._inbox.clear()
        self._aloop = asyncio.get_running_loop()
        arrived = self._arrived = asyncio.Event()
        connection = await connect("from_rabbitmq", self.url, self.connect_timeout)
        connection.close_callbacks.add(self._on_connection_closed)
        watch: asyncio.Task[None] | None = None
        try:
            channel = await connection.channel()
            channel.close_callbacks.add(self._on_connection_closed)
            await channel.set_qos(prefetch_count=self.prefetch)
            queue = await open_queue(
                "from_rabbitmq", channel, self.queue, self.declare, self.queue_arguments
            )
            self._channel = await channel.get_underlay_channel()
            await queue.consume(self._on_message)
            if self.ready.is_set():
                self.reconnects += 1
                logger.warning("%s: consuming again after a lost connection", self)
            self._consuming = True
            self._set_ready()
            watch = asyncio.ensure_future(self._watch_lag(connection))
            inbox = self._inbox
            needs_refs = not self._downstream_fully_fused()
            while not self.stopped:
                if self._failure is not None:
                    break
                if not inbox:
                    arrived.clear()
                    if await self._interruptible(arrived.wait()) is STOPPED:
                        break
                    continue
                await self._emit_message(inbox.popleft(), needs_refs)
        finally:
            if watch is not None:
                watch.cancel()
            try:
                await self._drain()
            finally:
                self._inbox.clear()  # not acknowledged: the broker delivers them again
                self._channel = None
                self._tracker.clear()
                connection.close_callbacks.discard(self._on_connection_closed)
                try:
                    await connection.close()
                except Exception as e:  # a dead connection: nothing more to release
                    logger.debug("%s: closing the connection: %r", self, e)
        if self._failure is not None:
            raise self._failure

    async def _on_message(self, message: Any) -> None:
        self._inbox.append(message)
        arrived = self._arrived
        if arrived is not None:
            arrived.set()

    def _on_connection_closed(self, sender: Any, error: BaseException | None = None) -> None:
        if not self.stopped:
            self._lost = True
        if self._failure is None and not self.stopped:
            where = broker_address(self.url)
            what = "channel" if hasattr(sender, "set_qos") else "connection"
            self._failure = RabbitMQConnectError(
                f"from_rabbitmq: the {what} to RabbitMQ at {where} closed: {error}"
            )
            self._failure.__cause__ = error if isinstance(error, BaseException) else None
        if self._arrived is not None:
            self._arrived.set()

    async def _emit_message(self, message: Any, needs_refs: bool) -> None:
        tag = message.delivery_tag
        self._tracker.begin(tag)
        x = message_record(message) if self.records else message.body
        if not needs_refs:
            try:
                await self._emit_and_wait(x)
            except Exception as e:
                self._note(e, message)
                self._finish(tag, e)
                return
            self._finish(tag, None)
            return
        ref = RefCounter(initial=1)

        def finished() -> None:  # in whichever thread let go last
            ref.cb = None
            error = ref.errors[0] if ref.errors else None
            if in_loop_thread(self._aloop):
                self._finish(tag, error)
            elif self._aloop is not None:
                self._aloop.call_soon_threadsafe(self._finish, tag, error)

        ref.cb = finished
        metadata = [{"ref": ref, "queue": self.queue, "delivery_tag": tag}]
        try:
            await self._emit_and_wait(x, metadata=metadata)
        except Exception as e:
            self._note(e, message)
            ref.fail(e)
        ref.release()

    def _note(self, error: BaseException, message: Any) -> None:
        add_note(
            error,
            f"rabbitmq: while processing the message with delivery tag "
            f"{message.delivery_tag} of queue {self.queue!r}",
            unless="rabbitmq: while processing",
        )

    def _finish(self, tag: int, error: BaseException | None) -> None:
        """On the loop: the element of delivery ``tag`` is done (failed if ``error``)."""
        channel = self._channel
        tracker = self._tracker
        if channel is None:  # the channel of its run is gone: RabbitMQ requeued it
            return
        tracker.finish(tag, error is None)
        if error is None:
            self.acked += 1
        else:
            requeue = self.on_failure == "requeue"
            self._settle(channel.basic_nack(delivery_tag=tag, requeue=requeue))
            if requeue:
                self.requeued += 1
                if self._failure is None:
                    self._failure = error
                    self._processing_failed = True
                    if self._arrived is not None:
                        self._arrived.set()
            else:
                self.dead_lettered += 1
                logger.warning(
                    "%s: message %d dead-lettered (processing failed: %r)", self, tag, error
                )
        if not self._ack_scheduled:
            self._ack_scheduled = True
            asyncio.get_running_loop().call_soon(self._ack_done)

    def _ack_done(self) -> None:
        """Acknowledge the completed prefix of deliveries (one frame for all of them)."""
        self._ack_scheduled = False
        channel = self._channel
        if channel is None:
            return
        tag = self._tracker.take_ack()
        if tag is not None:
            self._settle(channel.basic_ack(delivery_tag=tag, multiple=True))

    def _settle(self, coroutine: Any) -> None:
        """Send an ack or nack (aiormq writes the frame; nothing is awaited from the broker)."""
        task = asyncio.ensure_future(coroutine)
        task.add_done_callback(self._settled)

    def _settled(self, task: asyncio.Future[Any]) -> None:
        if task.cancelled():
            return
        error = task.exception()
        if error is not None and self._failure is None and not self.stopped:
            self._failure = error
            if self._arrived is not None:
                self._arrived.set()

    async def _drain(self) -> None:
        """Wait (at most ``drain_timeout``) for the elements in flight, then acknowledge."""
        deadline = self._drain_deadline()
        tracker = self._tracker
        while tracker.in_flight and time.monotonic() < deadline and self._channel is not None:
            if self._failure is not None and isinstance(self._failure, RabbitMQConnectError):
                break
            await asyncio.sleep(0.01)
        self._ack_done()
        await asyncio.sleep(0)  # let the last ack be written before the close
        if tracker.in_flight and self._failure is None:
            logger.warning(
                "%s: %d message(s) still in flight after drain_timeout=%g s; not "
                "acknowledged (RabbitMQ delivers them again)",
                self,
                tracker.in_flight,
                self.drain_timeout,
            )

    async def _watch_lag(self, connection: Any) -> None:
        """Read the queue's depth (messages ready) once a second on a channel of its own."""
        channel = None
        while True:
            try:
                if channel is None or channel.is_closed:
                    channel = await connection.channel()
                underlay = await channel.get_underlay_channel()
                declared = await underlay.queue_declare(self.queue, passive=True)
                self._lag = declared.message_count
            except asyncio.CancelledError:
                if channel is not None and not channel.is_closed:
                    asyncio.ensure_future(channel.close()).add_done_callback(_ignore)
                raise
            except Exception as e:  # a closing connection: the last reading stays
                logger.debug("%s: reading the queue's depth failed: %r", self, e)
                channel = None
            await asyncio.sleep(LAG_REFRESH)


def _ignore(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()
