"""RabbitMQ client code shared by ``from_rabbitmq`` and ``to_rabbitmq`` (aio-pika).

``aio_pika`` is imported on first use (:func:`import_aio_pika`), never by
``import millstream``. Here: where a URL points (:func:`broker_address`), connecting with
errors that name the broker (:func:`connect`), opening a queue with an error that names a
missing one (:func:`open_queue`), the acknowledgement of delivered messages in order
(:class:`AckTracker`: one ``basic.ack`` with ``multiple`` for each completed prefix of
delivery tags), a delivered message as a plain record (:func:`message_record`) and an
element as a message to publish (:func:`outgoing_message`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from .._utils import short_repr
from ..exceptions import RabbitMQConnectError, UnknownQueueError

__all__ = [
    "AckTracker",
    "broker_address",
    "connect",
    "import_aio_pika",
    "message_record",
    "open_queue",
    "outgoing_message",
]

logger = logging.getLogger("millstream.connectors")


def import_aio_pika(who: str) -> Any:
    """The ``aio_pika`` module, or a one-line ImportError that says how to install it."""
    try:
        import aio_pika
    except ImportError:
        raise ImportError(f"{who} needs aio-pika: pip install 'millstream[rabbitmq]'") from None
    return aio_pika


def broker_address(url: str) -> str:
    """``host:port`` of an AMQP URL (the default ports: 5672, 5671 for ``amqps``).

    >>> broker_address('amqp://guest:guest@localhost/')
    'localhost:5672'
    >>> broker_address('amqps://mq.example.com:5000/vhost')
    'mq.example.com:5000'
    """
    parts = urlsplit(url)
    default = 5671 if parts.scheme == "amqps" else 5672
    try:
        port = parts.port or default
    except ValueError:
        port = default
    return f"{parts.hostname or 'localhost'}:{port}"


async def connect(who: str, url: str, timeout: float) -> Any:
    """An ``aio_pika`` connection to ``url``; :class:`RabbitMQConnectError` (one line naming
    ``host:port`` and the reason, the client's error as its cause) if there is none within
    ``timeout`` seconds."""
    aio_pika = import_aio_pika(who)
    where = broker_address(url)
    try:
        return await aio_pika.connect(url, timeout=timeout)
    except asyncio.TimeoutError as e:
        raise RabbitMQConnectError(
            f"{who}: cannot connect to RabbitMQ at {where}: no answer within {timeout:g} s"
        ) from e
    except Exception as e:  # OSError, AMQPConnectionError, ProbableAuthenticationError...
        reason = _reason(e)
        raise RabbitMQConnectError(f"{who}: cannot connect to RabbitMQ at {where}: {reason}") from e


def _reason(error: BaseException) -> str:
    """One line for a client error (aiormq wraps the OSError of a refused connection)."""
    cause = error
    while cause.__cause__ is not None or (cause.args and isinstance(cause.args[0], Exception)):
        inner = cause.__cause__ or cause.args[0]
        if not isinstance(inner, BaseException) or inner is cause:
            break
        cause = inner
    text = getattr(cause, "strerror", None) or str(cause) or type(cause).__name__
    return " ".join(str(text).split())


async def open_queue(
    who: str, channel: Any, queue: str, declare: bool, arguments: dict[str, Any] | None
) -> Any:
    """The ``aio_pika`` queue ``queue`` of ``channel``: declared durable when ``declare``
    (with ``arguments``), else only checked (a passive declare, which creates nothing):
    :class:`UnknownQueueError` naming it if it does not exist."""
    aio_pika = import_aio_pika(who)
    if declare:
        return await channel.declare_queue(queue, durable=True, arguments=arguments)
    try:
        return await channel.declare_queue(queue, passive=True)
    except aio_pika.exceptions.ChannelNotFoundEntity as e:
        raise UnknownQueueError(
            f"{who}: the RabbitMQ queue {queue!r} does not exist (declare it, or pass declare=True)"
        ) from e


class AckTracker:
    """Delivered messages not yet settled, acknowledged in order and in bulk.

    ``begin(tag)`` for each delivery (tags grow on a channel); ``finish(tag, ok)`` once
    its element is fully processed. ``take_ack()`` returns the delivery tag to
    acknowledge with ``multiple=True`` (every finished tag below the first unfinished
    one; tags that failed were settled one by one already), or None. A message whose
    element is still in the graph holds back the acks of those after it: they stay
    unacknowledged, counted against the prefetch, until it is done.

    >>> t = AckTracker()
    >>> for tag in (1, 2, 3):
    ...     t.begin(tag)
    >>> t.finish(2, True); t.take_ack(), t.in_flight
    (None, 2)
    >>> t.finish(1, True); t.take_ack(), t.in_flight
    (2, 1)
    >>> t.finish(3, False); t.take_ack(), t.in_flight
    (None, 0)
    """

    __slots__ = ("_done", "_order", "_to_ack", "in_flight")

    def __init__(self) -> None:
        self._order: dict[int, bool | None] = {}  # tag -> None (running), True/False (done)
        self._done = 0
        self._to_ack: int | None = None
        #: messages delivered and not yet finished
        self.in_flight = 0

    def begin(self, tag: int) -> None:
        self._order[tag] = None
        self.in_flight += 1

    def finish(self, tag: int, ok: bool) -> None:
        order = self._order
        if tag not in order or order[tag] is not None:
            return
        order[tag] = ok
        self.in_flight -= 1
        for first, state in order.items():  # the oldest first (dicts keep insertion order)
            if state is None:
                break
            if state:
                self._to_ack = first
            self._done += 1
        if self._done:
            for _ in range(self._done):
                del order[next(iter(order))]
            self._done = 0

    def take_ack(self) -> int | None:
        tag, self._to_ack = self._to_ack, None
        return tag

    def clear(self) -> None:
        """Forget everything (the channel is gone: the broker requeued what was unsettled)."""
        self._order.clear()
        self._to_ack = None
        self.in_flight = 0


def message_record(message: Any) -> dict[str, Any]:
    """A delivered ``aio_pika`` message as a plain dict: ``body`` (bytes), ``headers``,
    ``routing_key``, ``exchange``, ``redelivered``, ``delivery_tag`` and the properties
    that are set (``content_type``, ``message_id``, ``correlation_id``, ``timestamp``...)."""
    record: dict[str, Any] = {
        "body": message.body,
        "headers": dict(message.headers or {}),
        "routing_key": message.routing_key,
        "exchange": message.exchange,
        "redelivered": message.redelivered,
        "delivery_tag": message.delivery_tag,
    }
    for name in _PROPERTIES:
        value = getattr(message, name, None)
        if value is not None:
            record[name] = value
    return record


_PROPERTIES = (
    "content_type",
    "content_encoding",
    "delivery_mode",
    "priority",
    "correlation_id",
    "reply_to",
    "expiration",
    "message_id",
    "timestamp",
    "type",
    "user_id",
    "app_id",
)


def outgoing_message(
    who: str, x: Any, persistent: bool, routing_key: str | Callable[[Any], str]
) -> tuple[Any, str]:
    """``(aio_pika.Message, routing key)`` for an element: ``bytes`` (the body as is),
    ``str`` (UTF-8), an ``aio_pika.Message`` (as is), or a dict with ``body`` (bytes or
    str) and optionally ``headers`` and message properties (what
    ``from_rabbitmq(records=True)`` emits; its ``routing_key`` is not used: the sink's
    ``routing_key`` is, which may be a function of the element). Anything else:
    TypeError naming the node."""
    aio_pika = import_aio_pika(who)
    key = routing_key(x) if callable(routing_key) else routing_key
    mode = aio_pika.DeliveryMode.PERSISTENT if persistent else aio_pika.DeliveryMode.NOT_PERSISTENT
    if isinstance(x, bytes):
        return aio_pika.Message(x, delivery_mode=mode), key
    if isinstance(x, str):
        return aio_pika.Message(x.encode(), delivery_mode=mode), key
    if isinstance(x, aio_pika.Message):
        return x, key
    if isinstance(x, dict) and "body" in x:
        body = x["body"]
        if isinstance(body, str):
            body = body.encode()
        if not isinstance(body, bytes):
            raise TypeError(
                f"{who}: a dict element's 'body' must be bytes or str, got "
                f"{type(body).__name__}: {short_repr(body)}"
            )
        properties = {k: x[k] for k in _PROPERTIES if x.get(k) is not None}
        properties["delivery_mode"] = mode
        message = aio_pika.Message(body, headers=x.get("headers") or None, **properties)
        return message, key
    raise TypeError(
        f"{who}: elements must be bytes, str, a dict with 'body' or an aio_pika.Message; "
        f"got {type(x).__name__}: {short_repr(x)} (encode it first, e.g. .map(json.dumps))"
    )
