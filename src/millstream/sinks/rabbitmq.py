"""``to_rabbitmq``: publish each element to a RabbitMQ exchange with publisher confirms
(aio-pika; the client code is :mod:`millstream.connectors.rabbitmq`)."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from typing import Any

from .._utils import annotate_error, check_positive_int
from ..connectors.rabbitmq import broker_address, connect, import_aio_pika, outgoing_message
from ..core.awaitables import release_refs_after
from ..core.loop import in_loop_thread, sync
from ..core.refs import release_refs, retain_refs
from ..core.stream import Stream
from ..exceptions import RabbitMQDeliveryError, UnknownQueueError
from .core import Sink

__all__ = ["to_rabbitmq"]

logger = logging.getLogger("millstream.sinks")


@Stream.register_api()
class to_rabbitmq(Sink):
    """Publish each element to the RabbitMQ ``exchange`` with ``routing_key``; emit nothing.

    The channel uses publisher confirms: an element's refs are released (so an upstream
    ``from_rabbitmq`` or ``from_kafka`` acknowledges its input) only once the broker has
    confirmed its message, and released as failed if the broker refused it, returned it
    as unroutable (no queue bound for its routing key; ``mandatory=True``) or the
    connection closed first. At most ``max_in_flight`` messages wait for their confirm;
    then the element is handed back as an awaitable that finishes once the confirms have
    brought the count down by a tenth (backpressure).
    A failure is logged, and the next element (or ``flush()``) raises
    :class:`~millstream.exceptions.RabbitMQDeliveryError`, which names this node, the
    exchange, the routing key and the broker.

    Elements: ``bytes`` (the body), ``str`` (encoded as UTF-8), a dict with ``body`` and
    optionally ``headers`` and message properties (``content_type``, ``message_id``,
    ``correlation_id``... as ``from_rabbitmq(records=True)`` emits them), or an
    ``aio_pika.Message`` (sent as it is). Anything else raises ``TypeError``: encode it
    first (``.map(json.dumps)``).

    The connection opens with the first element (an unreachable broker: that element
    raises :class:`~millstream.exceptions.RabbitMQConnectError`, one line naming
    ``host:port``). A named exchange must exist (checked then; a missing one raises
    :class:`~millstream.exceptions.UnknownQueueError`); the sink declares nothing.
    ``destroy()`` closes the connection.

    Parameters
    ----------
    url : str
        The broker, ``'amqp://user:password@host:port/vhost'``.
    exchange : str
        The exchange; ``''`` (the default exchange) routes to the queue named by the
        routing key.
    routing_key : str or callable
        The routing key, or a function of the element that returns it.
    max_in_flight : int
        The most messages waiting for their confirm (default 1000).
    persistent : bool
        Publish persistent messages (delivery mode 2; default), which a durable queue
        keeps across a broker restart.
    mandatory : bool
        Ask the broker to return messages it cannot route (an error) instead of dropping
        them (default True).
    connect_timeout : float
        Seconds to wait for the broker.

    Examples
    --------
    >>> source = Stream()
    >>> out = source.to_rabbitmq('amqp://localhost/', routing_key='orders')
    >>> out.exchange, out.routing_key, out.max_in_flight
    ('', 'orders', 1000)
    >>> source.to_rabbitmq('amqp://localhost/')
    Traceback (most recent call last):
    ...
    ValueError: to_rabbitmq: the default exchange '' routes by queue name: give routing_key=<queue>
    """

    def __init__(
        self,
        upstream: Stream,
        url: str,
        exchange: str = "",
        routing_key: str | Callable[[Any], str] = "",
        *,
        max_in_flight: int = 1000,
        persistent: bool = True,
        mandatory: bool = True,
        connect_timeout: float = 10.0,
        **kwargs: Any,
    ):
        if exchange == "" and routing_key == "":
            raise ValueError(
                "to_rabbitmq: the default exchange '' routes by queue name: give "
                "routing_key=<queue>"
            )
        check_positive_int("to_rabbitmq", "max_in_flight", max_in_flight)
        self.url = url
        self.exchange = exchange
        self.routing_key = routing_key
        self.max_in_flight = max_in_flight
        self.persistent = bool(persistent)
        self.mandatory = bool(mandatory)
        self.connect_timeout = float(connect_timeout)
        self.confirmed = 0
        self._connection: Any = None
        self._exchange: Any = None
        self._connecting: asyncio.Lock | None = None
        self._in_flight = 0
        #: the future the graph waits on while ``max_in_flight`` messages are unconfirmed,
        #: resolved when the count is down to ``_low_water`` (a tenth of room again)
        self._room: asyncio.Future[None] | None = None
        self._low_water = max_in_flight - max(1, max_in_flight // 10)
        self._make_message: Any = None  # aio_pika.Message, once connected
        self._mode: Any = None
        self._idle: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._closing: asyncio.Future[None] | None = None
        kwargs.setdefault("ensure_io_loop", True)
        super().__init__(upstream, **kwargs)

    def extra_metrics(self) -> dict[str, Any]:
        """``backlog``: messages published and not confirmed yet; ``confirmed``."""
        return {"backlog": self._in_flight, "confirmed": self.confirmed}

    # -- elements in ----------------------------------------------------------------------
    def update(self, x: Any, who: Stream | None = None, metadata: list[dict] | None = None) -> Any:
        if self._error is not None:
            self._raise_error()
        make = self._make_message
        if make is not None and type(x) is bytes and not callable(self.routing_key):
            message, key = make(x, delivery_mode=self._mode), self.routing_key
        else:
            try:
                message, key = outgoing_message("to_rabbitmq", x, self.persistent, self.routing_key)
            except Exception as e:
                annotate_error(e, self, None, x)
                raise
        if metadata:
            retain_refs(metadata)  # held until the broker confirms
        if self._exchange is None or not in_loop_thread(self.loop):
            # the first element (it connects) or a call from outside the loop: publish
            # and wait for the confirm there
            return release_refs_after(self._publish_now(message, key), metadata, self, None, x)
        self._in_flight += 1
        task = asyncio.ensure_future(
            self._exchange.publish(message, routing_key=key, mandatory=self.mandatory)
        )
        task.add_done_callback(functools.partial(self._confirmed, metadata, key))
        if self._in_flight >= self.max_in_flight:
            room = self._room
            if room is None or room.done():
                room = self._room = asyncio.get_running_loop().create_future()
            return room  # resolved once the confirms bring the count down to the low water
        return None

    def _confirmed(self, metadata: list[dict] | None, key: str, task: asyncio.Future[Any]) -> None:
        self._in_flight -= 1
        error = asyncio.CancelledError() if task.cancelled() else task.exception()
        if error is None:
            self.confirmed += 1
            if metadata:
                release_refs(metadata)
        else:
            failure = self._delivery_error(key, error)
            if self._error is None:
                self._error = failure
                logger.error("%s", failure)
            release_refs(metadata, error=failure)
        room = self._room
        if room is not None and self._in_flight <= self._low_water and not room.done():
            room.set_result(None)
        if not self._in_flight:
            idle = self._idle
            if idle is not None:
                idle.set()

    def _delivery_error(self, key: str, error: BaseException) -> RabbitMQDeliveryError:
        aio_pika = import_aio_pika("to_rabbitmq")
        if isinstance(error, aio_pika.exceptions.PublishError):
            why = "returned as unroutable (no queue bound for the routing key)"
        elif isinstance(error, aio_pika.exceptions.DeliveryError):
            why = "refused by the broker (negative confirm)"
        else:
            why = f"not confirmed: {error!r}"
        failure = RabbitMQDeliveryError(
            f"to_rabbitmq: a message to exchange {self.exchange!r} with routing key {key!r} "
            f"on RabbitMQ at {broker_address(self.url)} was {why}"
        )
        failure.__cause__ = error
        return failure

    def _raise_error(self) -> None:
        error, self._error = self._error, None
        if error is not None:
            raise error

    async def _publish_now(self, message: Any, key: str) -> None:
        exchange = self._exchange
        if exchange is None:
            exchange = await self._connect()
        self._in_flight += 1
        if self._idle is not None:
            self._idle.clear()
        try:
            await exchange.publish(message, routing_key=key, mandatory=self.mandatory)
        except Exception as e:
            raise self._delivery_error(key, e) from e
        finally:
            self._in_flight -= 1
            if not self._in_flight and self._idle is not None:
                self._idle.set()
        self.confirmed += 1

    async def _connect(self) -> Any:
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            if self._exchange is not None:
                return self._exchange
            aio_pika = import_aio_pika("to_rabbitmq")
            connection = await connect("to_rabbitmq", self.url, self.connect_timeout)
            try:
                channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
                if self.exchange:
                    try:
                        exchange = await channel.get_exchange(self.exchange, ensure=True)
                    except aio_pika.exceptions.ChannelNotFoundEntity as e:
                        raise UnknownQueueError(
                            f"to_rabbitmq: the RabbitMQ exchange {self.exchange!r} does not "
                            f"exist on {broker_address(self.url)}"
                        ) from e
                else:
                    exchange = channel.default_exchange
            except BaseException:
                await connection.close()
                raise
            self._connection = connection
            self._idle = asyncio.Event()
            self._idle.set()
            self._make_message = aio_pika.Message
            self._mode = (
                aio_pika.DeliveryMode.PERSISTENT
                if self.persistent
                else aio_pika.DeliveryMode.NOT_PERSISTENT
            )
            self._exchange = exchange
            return exchange

    # -- flush, close ---------------------------------------------------------------------
    async def confirmed_all(self) -> None:
        """Wait until every message published so far is confirmed; raise the first
        failure since the last element."""
        while self._in_flight:
            idle = self._idle
            if idle is None:
                await asyncio.sleep(0.01)
            else:
                idle.clear()  # set by the confirm that brings the count to 0
                await idle.wait()
        self._raise_error()

    def flush(self) -> Any:
        """Wait until every message published so far is confirmed (from outside the loop:
        blocks; on the loop: returns the awaitable); raises the first failure."""
        loop = self.loop
        if loop is not None and not in_loop_thread(loop) and loop.asyncio_loop.is_running():
            sync(loop, self.confirmed_all)
            return None
        return self.confirmed_all()

    async def aclose(self) -> None:
        """Close the connection (messages not confirmed yet fail)."""
        connection, self._connection, self._exchange = self._connection, None, None
        if connection is not None:
            await connection.close()

    def destroy(self, streams: Any = None) -> None:
        super().destroy(streams)
        loop = self.loop
        if self._connection is None or loop is None:
            return
        if in_loop_thread(loop):
            self._closing = asyncio.ensure_future(self.aclose())
        elif loop.asyncio_loop.is_running():
            sync(loop, self.aclose, callback_timeout=10)
