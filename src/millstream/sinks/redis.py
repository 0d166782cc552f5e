"""``to_redis_stream``: append each element to a Redis stream (``XADD``), in pipelined batches.

``update`` checks the element and queues it; one writer task per node sends what is
queued as pipelines of up to ``batch_size`` ``XADD`` commands, one pipeline at a time, so
the entries keep their order. An element's refs are held until Redis has answered the
pipeline that carried it (released failed if it failed). When ``max_in_flight`` elements
are queued or being written, ``update`` hands back an awaitable that finishes once there
is room again: the backpressure a source waits on. A failed write is raised, once, by
the next ``update`` or by ``flush()``.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Mapping
from typing import Any

from .._utils import check_positive_int, short_repr
from ..connectors.redis import check_stream_key, connect, is_connection_error, node_of
from ..core.loop import in_loop_thread, sync
from ..core.refs import Metadata, release_refs, retain_refs
from ..core.stream import Stream
from ..exceptions import RedisConnectError
from .core import Sink

__all__ = ["to_redis_stream"]

_VALUE_TYPES = (str, bytes, int, float)


@Stream.register_api()
class to_redis_stream(Sink):
    """Append each element to Redis stream ``stream`` with ``XADD``; emit nothing.

    An element is a dict of fields: keys ``str`` or ``bytes``, values ``str``, ``bytes``,
    ``int`` or ``float`` (``bool``, ``None`` and other values are a ``TypeError``: encode
    them first, with ``json.dumps`` for instance). Entries get ids from Redis (``*``).

    Writes are pipelined: up to ``batch_size`` ``XADD`` s in one round trip, one pipeline at
    a time (the order of the elements is kept). An element's refs (an upstream
    ``from_redis_stream`` or ``from_kafka`` acknowledgement) are released once Redis has
    answered for it. At most ``max_in_flight`` elements are queued or being written; then
    ``update`` returns an awaitable (backpressure). A failed write (the server unreachable,
    the key holding another type) releases the elements' refs as failed and is raised,
    naming the node and the server, by the next element or by :meth:`flush`. The elements
    queued or being written are the ``backlog`` of the node's metrics.

    Parameters
    ----------
    url : str
        ``redis://host:port/db``.
    stream : str
        The stream key (created by the first ``XADD``).
    maxlen : int, optional
        Trim the stream to about this many entries (``MAXLEN ~``; exactly with
        ``approximate=False``).
    approximate : bool
    batch_size : int
        ``XADD`` s per pipeline.
    max_in_flight : int
        Elements queued or being written, at most.
    client_kwargs : dict, optional
        Passed to ``redis.asyncio.from_url``.

    Examples
    --------
    Not run here (it needs a server; docs/connectors/redis.md has a tested example)::

        source = Stream()
        sink = source.to_redis_stream('redis://127.0.0.1:6379', 'events', maxlen=10_000)
        source.emit({'user': 'ada', 'clicks': 3})
        sink.flush()
    """

    def __init__(
        self,
        upstream: Stream,
        url: str,
        stream: str,
        maxlen: int | None = None,
        *,
        approximate: bool = True,
        batch_size: int = 100,
        max_in_flight: int = 1000,
        client_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ):
        if not isinstance(stream, str) or not stream:
            raise TypeError(f"to_redis_stream: stream must be a key (str), got {stream!r}")
        if maxlen is not None:
            check_positive_int("to_redis_stream", "maxlen", maxlen)
        check_positive_int("to_redis_stream", "batch_size", batch_size)
        check_positive_int("to_redis_stream", "max_in_flight", max_in_flight)
        self.url = url
        self.stream = stream
        self.maxlen = maxlen
        self.approximate = approximate
        self.batch_size = batch_size
        self.max_in_flight = max_in_flight
        self.client_kwargs = dict(client_kwargs or {})
        self.client: Any = None
        #: entries written so far
        self.written = 0
        self._queue: collections.deque[tuple[Any, Metadata | None]] = collections.deque()
        self._in_flight = 0
        self._writer: asyncio.Task[None] | None = None
        self._room: asyncio.Event | None = None
        self._idle: asyncio.Event | None = None
        self._error: BaseException | None = None
        kwargs.setdefault("ensure_io_loop", True)
        super().__init__(upstream, **kwargs)

    @property
    def _label(self) -> str:
        return f"to_redis_stream({self.stream!r} at {node_of(self.url)})"

    def update(self, x: Any, who: Stream | None = None, metadata: Metadata | None = None) -> Any:
        error = self._error
        if error is not None:
            self._error = None
            raise error
        if not isinstance(x, Mapping) or not x:
            raise TypeError(
                f"{self._label}: an element must be a non-empty dict of fields, got {short_repr(x)}"
            )
        for key, value in x.items():
            if type(value) not in _VALUE_TYPES and not _is_value(value):
                raise TypeError(
                    f"{self._label}: field {key!r} of {short_repr(x)} is "
                    f"{type(value).__name__}; values must be str, bytes, int or float"
                )
            if type(key) not in (str, bytes):
                raise TypeError(
                    f"{self._label}: field name {key!r} of {short_repr(x)} is "
                    f"{type(key).__name__}; names must be str or bytes"
                )
        if metadata:
            retain_refs(metadata)
        self._queue.append((x, metadata))
        self._in_flight += 1
        if self._writer is None:
            self._start_writer()
        if self._in_flight >= self.max_in_flight:
            return [self._wait_for_room()]
        return None

    def _start_writer(self) -> None:
        loop = asyncio.get_running_loop()
        if self._room is None:
            self._room, self._idle = asyncio.Event(), asyncio.Event()
        self._idle.clear()  # type: ignore[union-attr]
        self._writer = loop.create_task(self._write_all())

    async def _wait_for_room(self) -> None:
        room = self._room
        assert room is not None
        while self._in_flight >= self.max_in_flight:
            room.clear()
            await room.wait()

    async def _write_all(self) -> None:
        queue = self._queue
        try:
            while queue:
                batch = [queue.popleft() for _ in range(min(self.batch_size, len(queue)))]
                try:
                    await self._write(batch)
                except Exception as e:
                    for _, metadata in batch:
                        release_refs(metadata, error=e)
                    if self._error is None:
                        self._error = e
                else:
                    for _, metadata in batch:
                        if metadata:
                            release_refs(metadata)
                self._in_flight -= len(batch)
                self._room.set()  # type: ignore[union-attr]
        finally:
            self._writer = None
            self._idle.set()  # type: ignore[union-attr]

    async def _write(self, batch: list[tuple[Any, Metadata | None]]) -> None:
        try:
            client = self.client
            if client is None:
                client = await connect("to_redis_stream", self.url, False, **self.client_kwargs)
                await check_stream_key("to_redis_stream", client, self.stream)
                self.client = client
            async with client.pipeline(transaction=False) as pipe:
                for fields, _ in batch:
                    pipe.xadd(self.stream, fields, maxlen=self.maxlen, approximate=self.approximate)
                await pipe.execute()
        except Exception as e:
            if is_connection_error(e) and not isinstance(e, RedisConnectError):
                e = RedisConnectError(f"{self._label}: cannot write to Redis: {e}")
            if not str(e).startswith(("to_redis_stream", self._label)):
                e.args = (f"{self._label}: {e}", *e.args[1:]) if e.args else e.args
            raise e
        self.written += len(batch)

    def extra_metrics(self) -> dict[str, Any]:
        """``backlog``: elements queued or being written."""
        return {"backlog": self._in_flight}

    def flush(self, timeout: float | None = None) -> None:
        """Block until every element given so far is written (or failed); raise the first
        write error not raised yet. On the graph's loop use ``await node.flush_async()``."""
        if self.loop is not None and not in_loop_thread(self.loop):
            sync(self.loop, self.flush_async, timeout)
            return
        if self._queue or self._writer is not None:
            raise RuntimeError(f"{self._label}: flush() on the loop thread; use flush_async()")
        self._raise_error()

    async def flush_async(self, timeout: float | None = None) -> None:
        """:meth:`flush` for a coroutine on the graph's loop."""
        idle = self._idle
        if idle is not None and self._writer is not None:
            await asyncio.wait_for(idle.wait(), timeout)
        self._raise_error()

    def _raise_error(self) -> None:
        error, self._error = self._error, None
        if error is not None:
            raise error

    def destroy(self, streams: Any = None) -> None:
        super().destroy(streams)
        client, self.client = self.client, None
        if client is not None and self.loop is not None:
            loop = self.loop.asyncio_loop
            if loop.is_running() and not loop.is_closed():
                asyncio.run_coroutine_threadsafe(client.aclose(), loop)


def _is_value(value: Any) -> bool:
    """A subclass of a field value type (``bool`` is not one: encode it first)."""
    return isinstance(value, _VALUE_TYPES) and not isinstance(value, bool)
