"""``to_pulsar``: send each element to an Apache Pulsar topic.

Sends are asynchronous (``send_async``): an element's refs are held until Pulsar has
acknowledged its message, then released (released as failed if the send failed, so a
``from_pulsar`` source upstream negatively acknowledges its message and it comes again).
At ``max_pending`` messages not acknowledged yet, ``update`` hands back an awaitable that
finishes once an eighth of them are: the source upstream waits (backpressure). A failed send
is raised at the next element (or by ``flush()``) as
:class:`~millstream.exceptions.PulsarSendError` naming the node and the topic.
"""

from __future__ import annotations

import asyncio
import functools
import threading
import time
from typing import Any

from .._utils import annotate_error, check_positive_int
from ..connectors.pulsar import classify_pulsar_error, import_pulsar, logger, make_client
from ..core.loop import in_loop_thread
from ..core.refs import release_refs, retain_refs
from ..core.stream import Stream
from ..exceptions import PulsarSendError
from .core import Sink

__all__ = ["to_pulsar"]


@Stream.register_api()
class to_pulsar(Sink):
    """Send each element (``bytes``, or ``str`` sent as UTF-8) to the Pulsar ``topic``.

    Parameters
    ----------
    service_url : str
        e.g. ``'pulsar://127.0.0.1:6650'``.
    topic : str
    max_pending : int
        Messages sent and not acknowledged yet before the upstream waits.
    batching : bool
        Let the client batch messages (``batching_max_publish_delay_ms`` 10 ms by default).
    connect_timeout : float
    producer_params, client_params : dict, optional
        Passed to ``pulsar.Client.create_producer`` and ``pulsar.Client``.

    The producer is created at the first element. ``flush()`` waits until every message
    sent is acknowledged; ``close()`` flushes and closes the client.
    """

    def __init__(
        self,
        upstream: Stream,
        service_url: str,
        topic: str,
        max_pending: int = 1000,
        batching: bool = True,
        connect_timeout: float = 10.0,
        producer_params: dict[str, Any] | None = None,
        client_params: dict[str, Any] | None = None,
        **kwargs: Any,
    ):
        check_positive_int("to_pulsar", "max_pending", max_pending)
        if not isinstance(topic, str) or not topic:
            raise ValueError(f"to_pulsar: topic must be a non-empty name: {topic!r}")
        self.service_url = service_url
        self.topic = topic
        self.max_pending = max_pending
        #: a waiting upstream goes on once this few are pending (the client keeps sending)
        self._resume_below = max_pending - max(1, max_pending // 8)
        self.batching = bool(batching)
        self.connect_timeout = float(connect_timeout)
        self.producer_params = dict(producer_params or {})
        self.client_params = dict(client_params or {})
        self.client: Any = None
        self.producer: Any = None
        #: messages acknowledged by Pulsar so far (and those whose send failed)
        self.sent = 0
        self._failed = 0
        #: messages handed to the client (only the graph's thread changes it)
        self._submitted = 0
        self._lock = threading.Lock()
        self._errors: list[BaseException] = []
        self._room: asyncio.Future[None] | None = None
        super().__init__(upstream, **kwargs)

    def __str__(self) -> str:
        return f"<to_pulsar: {self.topic}>"

    def _connect(self) -> Any:
        pulsar = import_pulsar()
        client = make_client(self.service_url, self.connect_timeout, **self.client_params)
        params: dict[str, Any] = {
            "batching_enabled": self.batching,
            "max_pending_messages": self.max_pending,
            "block_if_queue_full": True,
        }
        params.update(self.producer_params)
        try:
            producer = client.create_producer(self.topic, **params)
        except Exception as e:
            try:
                client.close()
            except Exception:
                pass
            what = f"{self}: creating a producer for topic {self.topic!r}"
            raise classify_pulsar_error(e, what, self.service_url) from e
        self.client, self.producer = client, producer
        self._ok = pulsar.Result.Ok
        return producer

    # -- elements in ----------------------------------------------------------------------
    def update(self, x: Any, who: Stream | None = None, metadata: list[dict] | None = None) -> Any:
        if self._errors:
            self._raise_errors()
        producer = self.producer
        if producer is None:
            producer = self._connect()
        if isinstance(x, str):
            value = x.encode()
        elif isinstance(x, (bytes, bytearray, memoryview)):
            value = bytes(x)
        else:
            error = TypeError(f"to_pulsar sends bytes or str, got {type(x).__name__}")
            annotate_error(error, self, None, x)
            raise error
        if metadata:
            retain_refs(metadata)  # held until Pulsar acknowledges the message
            callback: Any = functools.partial(self._on_sent_held, metadata)
        else:
            callback = self._on_sent
        try:
            producer.send_async(value, callback)
        except Exception as e:
            release_refs(metadata, error=e)
            annotate_error(e, self, None, x)
            raise
        self._submitted += 1
        if self._submitted - self.sent - self._failed < self.max_pending:
            return None
        return [self._wait_for_room()]

    @property
    def _pending(self) -> int:
        """Messages handed to the client and not acknowledged yet."""
        return self._submitted - self.sent - self._failed

    def _wait_for_room(self) -> asyncio.Future[None]:
        loop = asyncio.get_event_loop()
        room = self._room
        if room is None or room.done():
            room = self._room = loop.create_future()
        with self._lock:
            if self._pending <= self._resume_below:
                self._room = None
                room.set_result(None)
        return room

    def _on_sent_held(self, metadata: list[dict], result: Any, message_id: Any) -> None:
        """On the client's thread: the broker's answer for a message with refs."""
        if result == self._ok:
            release_refs(metadata)
        else:
            release_refs(metadata, error=self._send_error(result))
        self._count(result)

    def _on_sent(self, result: Any, message_id: Any) -> None:
        """On the client's thread: the broker's answer for a message without refs."""
        if result != self._ok:
            self._send_error(result)
        self._count(result)

    def _send_error(self, result: Any) -> PulsarSendError:
        error = PulsarSendError(f"{self}: sending to topic {self.topic!r} failed: {result}")
        self._errors.append(error)
        return error

    def _count(self, result: Any) -> None:
        """On the client's thread (the only one that changes ``sent`` and ``_failed``)."""
        if result == self._ok:
            self.sent += 1
        else:
            self._failed += 1
        if self._room is None:
            return
        with self._lock:
            room = self._room
            wake = room is not None and self._pending <= self._resume_below
            if wake:
                self._room = None
        if wake and room is not None:
            try:
                room.get_loop().call_soon_threadsafe(_set_done, room)
            except RuntimeError:  # the loop is closed
                pass

    def _raise_errors(self) -> None:
        errors, self._errors = self._errors, []
        if len(errors) > 1:
            logger.warning("%s: %d sends failed; raising the first", self, len(errors))
        raise errors[0]

    # -- metrics, flush, close ------------------------------------------------------------
    def extra_metrics(self) -> dict[str, Any]:
        """``backlog``: messages sent and not acknowledged by Pulsar yet."""
        return {"backlog": self._pending}

    def flush(self) -> None:
        """Wait until every message sent is acknowledged; raise a failed send.

        Blocks: call it from outside the graph's loop (or after the loop has stopped)."""
        producer = self.producer
        loop = getattr(self.loop, "asyncio_loop", None)
        if loop is not None and loop.is_running() and in_loop_thread(loop):
            raise RuntimeError(f"{self}: flush() blocks; call it from outside the loop")
        if producer is not None:
            producer.flush()
            # the client's flush can return before it has run the last send callbacks
            deadline = time.monotonic() + max(self.connect_timeout, 1.0)
            while self._pending > 0 and time.monotonic() < deadline:
                time.sleep(0.0005)
            if self._pending > 0:
                raise PulsarSendError(
                    f"{self}: flush(): {self._pending} messages still not acknowledged"
                    f" {max(self.connect_timeout, 1.0):g} s after the client's flush"
                )
        if self._errors:
            self._raise_errors()

    def close(self) -> None:
        """Flush, then close the producer and the client."""
        try:
            self.flush()
        finally:
            client, self.client, self.producer = self.client, None, None
            if client is not None:
                client.close()

    def destroy(self, streams: Any = None) -> None:
        client, self.client, self.producer = self.client, None, None
        if client is not None:
            try:
                client.close()
            except Exception as e:
                logger.debug("%s: closing the client failed: %r", self, e)
        super().destroy(streams)


def _set_done(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
