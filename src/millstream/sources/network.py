"""Network and cross-thread sources: ``from_tcp``, ``from_http_server``, ``from_websocket``,
``from_q`` and ``from_mqtt``.

Everything runs on asyncio streams (no tornado, no aiohttp). Each source awaits
downstream before reading more from a connection, so a slow graph slows the sender
down (socket backpressure) instead of filling memory. ``stop()`` closes the listening
socket and every open connection, and returns once they are closed (when called from
outside the loop thread). From outside the loop, ``start()`` returns once the source
listens (or is subscribed) and raises ``OSError`` naming the source and the port when
the port is taken.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import queue
import re
from collections.abc import Awaitable
from typing import Any
from urllib.parse import urlsplit

from ..core.awaitables import await_all
from ..core.stream import Stream
from .base import STOPPED, ManagedSource

__all__ = ["from_http_server", "from_mqtt", "from_q", "from_tcp", "from_websocket"]

logger = logging.getLogger("millstream.sources")

#: Largest chunk (``from_tcp``) or request body (``from_http_server``) accepted by default:
#: tornado's default, which Streamz used.
DEFAULT_MAX_SIZE = 100 * 1024 * 1024

_START_SERVER_KEYS = frozenset(
    {
        "host",
        "family",
        "flags",
        "backlog",
        "ssl",
        "reuse_address",
        "reuse_port",
        "limit",
        "ssl_handshake_timeout",
    }
)


def _check_port(node: str, port: Any) -> int:
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ValueError(f"{node}: port must be an int from 0 to 65535, got {port!r}")
    return port


def _server_options(
    node: str, server_kwargs: dict[str, Any] | None, extra: tuple[str, ...] = ()
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split ``server_kwargs`` into ``asyncio.start_server`` options and this node's own.

    Tornado names used with Streamz are translated: ``ssl_options`` (an ``SSLContext`` or a
    dict with ``certfile``/``keyfile``) becomes ``ssl``; ``max_buffer_size`` and the
    ``extra`` keys stay with the node.
    """
    options = dict(server_kwargs or {})
    own = {k: options.pop(k) for k in ("max_buffer_size", *extra) if k in options}
    ssl_options = options.pop("ssl_options", None)
    if ssl_options is not None:
        if isinstance(ssl_options, dict):
            import ssl

            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(ssl_options["certfile"], ssl_options.get("keyfile"))
            ssl_options = context
        options["ssl"] = ssl_options
    unknown = sorted(set(options) - _START_SERVER_KEYS)
    if unknown:
        raise TypeError(
            f"{node}: unsupported server_kwargs {unknown}; accepted: "
            f"{sorted(_START_SERVER_KEYS | {'ssl_options', 'max_buffer_size', *extra})}"
        )
    return options, own


async def read_until(reader: asyncio.StreamReader, delimiter: bytes, max_size: int) -> bytes:
    """Read up to and including ``delimiter``, even past the reader's buffer limit.

    Raises ``asyncio.IncompleteReadError`` at end of stream and ``ValueError`` when more
    than ``max_size`` bytes arrive without a delimiter.
    """
    pieces: list[bytes] = []
    size = 0
    while True:
        try:
            chunk = await reader.readuntil(delimiter)
        except asyncio.LimitOverrunError as e:
            chunk = await reader.readexactly(e.consumed)
            size += len(chunk)
            if size > max_size:
                raise ValueError(f"more than {max_size} bytes without a delimiter") from None
            pieces.append(chunk)
            continue
        if pieces:
            pieces.append(chunk)
            return b"".join(pieces)
        return chunk


class _ServerSource(ManagedSource):
    """A source that listens: ``run()`` serves until ``stop()``, which closes every connection."""

    _wait_ready_on_start = True

    def __init__(self, **kwargs: Any):
        self.server: Any = None
        self._connections: dict[asyncio.Task[Any], Any] = {}
        super().__init__(**kwargs)

    async def _listen(self) -> Any:
        raise NotImplementedError

    async def run(self) -> None:
        try:
            self.server = await self._listen()
            self._set_ready()
            await self._interruptible(asyncio.get_running_loop().create_future())
        finally:
            await self._close_server()

    def _track(self, closer: Any) -> asyncio.Task[Any] | None:
        task = asyncio.current_task()
        if task is not None:
            self._connections[task] = closer
        return task

    async def _close_server(self) -> None:
        server, self.server = self.server, None
        if server is None:
            return
        server.close()
        for closer in list(self._connections.values()):
            with contextlib.suppress(Exception):
                closer.close()
        tasks = list(self._connections)
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=self._stop_timeout / 2)
            for task in late:
                task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.wait_closed(), self._stop_timeout / 2)
        self._connections.clear()

    def _listen_error(self, port: int, error: OSError) -> OSError:
        reason = error.strerror or str(error)
        return OSError(
            error.errno, f"{type(self).__name__}: cannot listen on port {port}: {reason}"
        )


class _StreamServerSource(_ServerSource):
    """A server on asyncio streams; subclasses set ``port``, ``_options`` and ``_handle``."""

    port: int
    _options: dict[str, Any]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError

    async def _listen(self) -> Any:
        options = dict(self._options)
        host = options.pop("host", None)
        try:
            return await asyncio.start_server(self._handle, host, self.port, **options)
        except OSError as e:
            raise self._listen_error(self.port, e) from e


@Stream.register_api(staticmethod)
class from_tcp(_StreamServerSource):
    r"""Listen on a TCP port and emit the ``delimiter``-terminated chunks clients send.

    Every connection is read concurrently; each chunk is emitted **with its delimiter**
    (``b'word\n'``), and the next chunk of that connection is read only once downstream has
    absorbed it. Data after the last delimiter when a client disconnects is discarded.
    ``stop()`` closes the listening socket and all connections. ``.server`` is the
    ``asyncio.Server`` while running (``None`` otherwise).

    Checkpoints: this source has no position to resume from (``snapshot()`` is the
    stateless default): after a restart it goes on with what arrives, at least once
    from where it reconnects at best; the bytes received since the last checkpoint are lost
    with the process unless the sender sends them again.

    Parameters
    ----------
    port : int
        Port to listen on (0: any free port, see ``.server.sockets``).
    delimiter : bytes
        End of a chunk.
    server_kwargs : dict, optional
        ``asyncio.start_server`` options (``host`` — all interfaces by default —, ``ssl``,
        ``backlog``, ``limit``…); the tornado names ``ssl_options`` and ``max_buffer_size``
        (largest chunk, 100 MiB by default) are understood too.

    Examples
    --------
    The word-count example (not run here: it opens a port)::

        source = Stream.from_tcp(9999, server_kwargs={'host': '127.0.0.1'})
        counts = source.map(bytes.decode).map(str.split).flatten().frequencies()
        L = counts.sink_to_list()
        source.start()
        # $ printf 'hello world\nhello\n' | nc 127.0.0.1 9999
        # L[-1] == {'hello': 2, 'world': 1}
        source.stop()
    """

    def __init__(
        self,
        port: int,
        delimiter: bytes = b"\n",
        server_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ):
        self.port = _check_port("from_tcp", port)
        if not isinstance(delimiter, bytes) or not delimiter:
            raise TypeError(f"from_tcp: delimiter must be non-empty bytes, got {delimiter!r}")
        self.delimiter = delimiter
        self.server_kwargs = server_kwargs or {}
        self._options, own = _server_options("from_tcp", server_kwargs)
        self._max_size = int(own.get("max_buffer_size", DEFAULT_MAX_SIZE))
        super().__init__(**kwargs)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = self._track(writer)
        try:
            while not self.stopped:
                try:
                    data = await read_until(reader, self.delimiter, self._max_size)
                except (asyncio.IncompleteReadError, ConnectionError):
                    break
                await self._emit_and_wait(data)
        except Exception as e:
            peer = writer.get_extra_info("peername")
            logger.error("%s: closing the connection from %s: %r", self, peer, e, exc_info=e)
        finally:
            self._connections.pop(task, None)  # type: ignore[arg-type]
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


_REASONS = {
    100: "Continue",
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    411: "Length Required",
    413: "Payload Too Large",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
    505: "HTTP Version Not Supported",
}

_MAX_HEADER = 64 * 1024


class _HTTPError(Exception):
    def __init__(self, status: int, message: str = ""):
        super().__init__(message or _REASONS[status])
        self.status = status


@Stream.register_api(staticmethod)
class from_http_server(_StreamServerSource):
    """Listen for HTTP POST requests and emit each request body (``bytes``).

    A small HTTP/1.1 server on asyncio streams: a ``POST`` to a path matching the regular
    expression ``path`` (matched against the whole path, without the query string) has
    its body emitted; once downstream has absorbed it the reply is ``200`` with body
    ``OK``. Other paths get ``404``, other methods on a matching path ``405``. Bodies come
    with ``Content-Length`` or chunked transfer encoding; connections are kept alive as
    HTTP/1.1 says. If downstream raises, the reply is ``500`` and the error is logged.

    Checkpoints: this source has no position to resume from (``snapshot()`` is the
    stateless default): after a restart it goes on with what arrives, at least once
    from where it reconnects at best; a request answered since the last checkpoint is not
    replayed; the client must send it again.

    Parameters
    ----------
    port : int
        Port to listen on.
    path : str
        Regular expression for the accepted paths.
    server_kwargs : dict, optional
        ``asyncio.start_server`` options (``host``, ``ssl``…) plus ``ssl_options`` and
        ``max_body_size`` (100 MiB by default) as in tornado.

    Examples
    --------
    Not run here (it opens a port)::

        source = Stream.from_http_server(8000, path='/ingest', server_kwargs={'host': '127.0.0.1'})
        L = source.sink_to_list()
        source.start()
        requests.post('http://127.0.0.1:8000/ingest', data=b'hello')   # -> 200 'OK'
        # L == [b'hello']
        source.stop()
    """

    def __init__(
        self,
        port: int,
        path: str = "/.*",
        server_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ):
        self.port = _check_port("from_http_server", port)
        self.path = path
        try:
            self._path_re = re.compile(path if path.endswith("$") else path + "$")
        except re.error as e:
            raise ValueError(f"from_http_server: path is not a valid regular expression: {e}")
        self.server_kwargs = server_kwargs or {}
        self._options, own = _server_options(
            "from_http_server", server_kwargs, extra=("max_body_size",)
        )
        self._max_body = int(own.get("max_body_size", own.get("max_buffer_size", DEFAULT_MAX_SIZE)))
        super().__init__(**kwargs)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = self._track(writer)
        try:
            while not self.stopped:
                try:
                    keep_alive = await self._serve_one(reader, writer)
                except _HTTPError as e:
                    await self._respond(writer, e.status, str(e), close=True)
                    break
                if not keep_alive:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._connections.pop(task, None)  # type: ignore[arg-type]
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _serve_one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Read and answer one request; return whether the connection stays open."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.LimitOverrunError:
            raise _HTTPError(431) from None
        except asyncio.IncompleteReadError as e:
            if e.partial.strip():
                raise _HTTPError(400, "incomplete request") from None
            return False
        if len(head) > _MAX_HEADER:
            raise _HTTPError(431)
        lines = head.decode("latin-1").split("\r\n")
        try:
            method, target, version = lines[0].split(" ")
        except ValueError:
            raise _HTTPError(400, "malformed request line") from None
        if not version.startswith("HTTP/1."):
            raise _HTTPError(505)
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if not line:
                continue
            name, sep, value = line.partition(":")
            if not sep or not name or name != name.strip():
                raise _HTTPError(400, "malformed header")
            key = name.lower()
            headers[key] = f"{headers[key]}, {value.strip()}" if key in headers else value.strip()
        connection = headers.get("connection", "").lower()
        if version == "HTTP/1.0":
            keep_alive = "keep-alive" in connection
        else:
            keep_alive = "close" not in connection
        if headers.get("expect", "").lower() == "100-continue":
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        body = await self._read_body(reader, headers)
        path = urlsplit(target).path
        is_head = method == "HEAD"
        if not self._path_re.match(path):
            await self._respond(writer, 404, "Not Found", close=not keep_alive, head=is_head)
        elif method != "POST":
            await self._respond(
                writer,
                405,
                "Method Not Allowed",
                close=not keep_alive,
                extra="Allow: POST\r\n",
                head=is_head,
            )
        else:
            try:
                await self._emit_and_wait(body)
            except Exception as e:
                logger.error("%s: error processing a request to %s", self, path, exc_info=e)
                await self._respond(writer, 500, "Internal Server Error", close=not keep_alive)
            else:
                await self._respond(writer, 200, "OK", close=not keep_alive)
        return keep_alive

    async def _read_body(self, reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
        encoding = headers.get("transfer-encoding", "").lower()
        if encoding:
            if encoding != "chunked":
                raise _HTTPError(501, f"unsupported transfer encoding {encoding!r}")
            return await self._read_chunked(reader)
        length_text = headers.get("content-length")
        if length_text is None:
            return b""
        if not length_text.isdigit():
            raise _HTTPError(400, "bad Content-Length")
        length = int(length_text)
        if length > self._max_body:
            raise _HTTPError(413)
        return await reader.readexactly(length)

    async def _read_chunked(self, reader: asyncio.StreamReader) -> bytes:
        pieces: list[bytes] = []
        total = 0
        while True:
            size_line = await reader.readuntil(b"\r\n")
            try:
                size = int(size_line.split(b";")[0].strip(), 16)
            except ValueError:
                raise _HTTPError(400, "bad chunk size") from None
            if size == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers
                    pass
                return b"".join(pieces)
            total += size
            if total > self._max_body:
                raise _HTTPError(413)
            pieces.append(await reader.readexactly(size))
            if await reader.readexactly(2) != b"\r\n":
                raise _HTTPError(400, "bad chunk")

    @staticmethod
    async def _respond(
        writer: asyncio.StreamWriter,
        status: int,
        body: str,
        close: bool,
        extra: str = "",
        head: bool = False,
    ) -> None:
        """Write a plain-text response (headers only for a ``HEAD`` request)."""
        data = body.encode()
        lines = [
            f"HTTP/1.1 {status} {_REASONS[status]}\r\n",
            "Content-Type: text/plain; charset=UTF-8\r\n",
            f"Content-Length: {len(data)}\r\n",
            extra,
            "Connection: close\r\n" if close else "",
            "\r\n",
        ]
        writer.write("".join(lines).encode("latin-1") + (b"" if head else data))
        await writer.drain()


@Stream.register_api(staticmethod)
class from_websocket(_ServerSource):
    """Run a websocket server and emit every message clients send (``str`` or ``bytes``).

    Uses ``websockets.asyncio.server.serve`` (websockets 13 or later). Each connection's
    next message is received once downstream has absorbed the previous one. ``stop()``
    closes the server and its connections (close code 1001) and waits for them.

    Checkpoints: this source has no position to resume from (``snapshot()`` is the
    stateless default): after a restart it goes on with what arrives, at least once
    from where it reconnects at best; the messages received since the last checkpoint are
    lost with the process unless the sender sends them again.

    Parameters
    ----------
    host : str
        Interface to listen on (``'127.0.0.1'``, ``'0.0.0.0'``…).
    port : int
        Port to listen on.
    serve_kwargs : dict, optional
        Passed to ``websockets.asyncio.server.serve``.

    Examples
    --------
    Not run here (it opens a port)::

        source = Stream.from_websocket('127.0.0.1', 8765)
        L = source.sink_to_list()
        source.start()
        # a client: async with websockets.connect('ws://127.0.0.1:8765') as ws:
        #               await ws.send('hello')
        # L == ['hello']
        source.stop()
    """

    def __init__(
        self,
        host: str,
        port: int,
        serve_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ):
        self.host = host
        self.port = _check_port("from_websocket", port)
        self.s_kw = serve_kwargs
        super().__init__(**kwargs)

    async def _listen(self) -> Any:
        try:
            from websockets.asyncio.server import serve
        except ImportError as e:  # pragma: no cover - depends on the environment
            raise ImportError(
                "from_websocket needs websockets>=13: pip install 'millstream[net]'"
            ) from e
        try:
            return await serve(self._read, self.host, self.port, **(self.s_kw or {}))
        except OSError as e:
            raise self._listen_error(self.port, e) from e

    async def _read(self, ws: Any) -> None:
        from websockets.exceptions import ConnectionClosed

        task = self._track(ws)
        try:
            async for message in ws:
                await self._emit_and_wait(message)
                if self.stopped:
                    break
        except ConnectionClosed:
            pass
        except Exception as e:
            logger.error("%s: closing a connection after an error", self, exc_info=e)
            await ws.close(1011, "internal error")
        finally:
            self._connections.pop(task, None)  # type: ignore[arg-type]

    async def _close_server(self) -> None:
        # websockets closes its own connections (close code 1001) and waits for handlers
        server, self.server = self.server, None
        if server is None:
            return
        server.close()
        try:
            await asyncio.wait_for(server.wait_closed(), self._stop_timeout / 2)
        except (asyncio.TimeoutError, TimeoutError):
            for task in list(self._connections):
                task.cancel()
        self._connections.clear()


@Stream.register_api(staticmethod)
class from_q(ManagedSource):
    """Emit the items put into a ``queue.Queue`` by other threads.

    A worker thread owned by the source blocks on ``q.get()``, so an item is emitted as soon
    as it is put (no polling delay), together with whatever else is already queued (up to
    ``batch_size`` items at a time). Items taken from the queue are always emitted, even when
    ``stop()`` comes meanwhile; the next are left in the queue. ``sleep_time`` is kept for
    Streamz compatibility: the worker waits at most ``max(sleep_time, 0.05)`` seconds at a
    time (capped at 0.5 s), which bounds how long ``stop()`` takes. ``stop()`` ends the thread.

    Checkpoints: this source has no position to resume from (``snapshot()`` is the
    stateless default): after a restart it goes on with what arrives, at least once
    from where it reconnects at best; the items taken from the queue since the last
    checkpoint are lost with the process.

    Parameters
    ----------
    q : queue.Queue
        Any object with ``get(timeout=)`` and ``get_nowait()``.
    sleep_time : float
        See above.

    Examples
    --------
    >>> import queue
    >>> from millstream.testing import wait_for
    >>> q = queue.Queue()
    >>> source = Stream.from_q(q)
    >>> L = source.map(str.upper).sink_to_list()
    >>> source.start()
    >>> q.put('a'); q.put('b')
    >>> wait_for(lambda: len(L) == 2, 5)
    >>> source.stop()
    >>> L
    ['A', 'B']
    """

    batch_size = 1000

    def __init__(self, q: Any, sleep_time: float = 0.01, **kwargs: Any):
        if not (hasattr(q, "get") and hasattr(q, "get_nowait")):
            raise TypeError(f"from_q: q must be a queue.Queue (get/get_nowait), got {q!r}")
        self.q = q
        self.sleep = sleep_time
        self._wait_slice = min(max(float(sleep_time), 0.05), 0.5)
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        super().__init__(**kwargs)

    def _take(self) -> list[Any]:
        """Block (in the worker thread) for one item, then take what else is queued."""
        try:
            items = [self.q.get(timeout=self._wait_slice)]
        except queue.Empty:
            return []
        while len(items) < self.batch_size:
            try:
                items.append(self.q.get_nowait())
            except queue.Empty:
                break
        return items

    async def _setup(self) -> None:
        """Hook run before reading starts (``from_mqtt`` connects here)."""

    async def _teardown(self) -> None:
        """Hook run after reading ended, whatever the reason."""

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        executor = concurrent.futures.ThreadPoolExecutor(
            1, thread_name_prefix=f"millstream-{type(self).__name__}"
        )
        self._executor = executor
        try:
            await self._setup()
            self._set_ready()
            while not self.stopped:
                items = await loop.run_in_executor(executor, self._take)
                for pending in self._emit_batch(items):
                    await await_all(pending)
        finally:
            try:
                await self._teardown()
            finally:
                executor.shutdown(wait=True)
                self._executor = None


@Stream.register_api(staticmethod)
class from_mqtt(from_q):
    """Subscribe to an MQTT topic and emit each ``paho.mqtt.client.MQTTMessage``.

    Messages have ``.topic``, ``.payload`` (bytes), ``.qos``, ``.timestamp``… A paho-mqtt
    (2.x) client runs its network thread and queues the messages; they are emitted as in
    :class:`from_q`. From outside the loop, ``start()`` returns once the broker has
    acknowledged the subscription (and raises if it refused the connection);
    ``stop()`` disconnects and ends the network thread. The subscription is renewed on
    reconnection.

    Checkpoints: this source has no position to resume from (``snapshot()`` is the
    stateless default): after a restart it goes on with what arrives, at least once
    from where it reconnects at best; messages received since the last checkpoint are lost
    with the process unless the broker delivers them again (QoS 1 with a persistent
    session).

    Parameters
    ----------
    host, port : str, int
        The broker.
    topic : str
        Topic filter (wildcards allowed).
    keepalive : int
        MQTT keep-alive, seconds.
    client_kwargs : dict, optional
        Passed to the client's ``connect()``.
    user, pw : str, optional
        Credentials.

    Examples
    --------
    Not run here (it needs a broker)::

        source = Stream.from_mqtt('127.0.0.1', 1883, 'sensors/#')
        L = source.map(lambda msg: (msg.topic, msg.payload)).sink_to_list()
        source.start()
        # another client publishes b'21.5' to 'sensors/t1'
        # L == [('sensors/t1', b'21.5')]
        source.stop()
    """

    _wait_ready_on_start = True

    def __init__(
        self,
        host: str,
        port: int,
        topic: str,
        keepalive: int = 60,
        client_kwargs: dict[str, Any] | None = None,
        user: str | None = None,
        pw: str | None = None,
        **kwargs: Any,
    ):
        self.host = host
        self.port = _check_port("from_mqtt", port)
        self.topic = topic
        self.keepalive = keepalive
        self.client_kwargs = client_kwargs
        self.user = user
        self.pw = pw
        self.client: Any = None
        super().__init__(q=queue.Queue(), **kwargs)

    async def _setup(self) -> None:
        client, subscribed = _mqtt_client(self.user, self.pw, asyncio.get_running_loop())
        self.client = client
        topic = self.topic

        def on_connect(client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
            if reason.is_failure:
                subscribed.fail(ConnectionRefusedError(f"from_mqtt: the broker refused: {reason}"))
            else:
                client.subscribe(topic)

        def on_subscribe(client: Any, userdata: Any, mid: Any, reasons: Any, props: Any) -> None:
            failed = [r for r in reasons if r.is_failure]
            if failed:
                subscribed.fail(
                    RuntimeError(f"from_mqtt: subscribing to {topic!r} failed: {failed[0]}")
                )
            else:
                subscribed.succeed()

        client.on_connect = on_connect
        client.on_subscribe = on_subscribe
        client.on_message = lambda client, userdata, msg: self.q.put(msg)
        await _mqtt_connect(
            "from_mqtt", client, self.host, self.port, self.keepalive, self.client_kwargs
        )
        if await self._interruptible(subscribed.wait()) is STOPPED:
            return

    async def _teardown(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            await _mqtt_close(client)


class _ThreadSignal:
    """A one-shot success/failure signal set from another thread, awaited on the loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self._loop = loop
        self._future: asyncio.Future[None] = loop.create_future()

    def _set(self, error: BaseException | None) -> None:
        if self._future.done():
            return
        if error is None:
            self._future.set_result(None)
        else:
            self._future.set_exception(error)

    def succeed(self) -> None:
        self._loop.call_soon_threadsafe(self._set, None)

    def fail(self, error: BaseException) -> None:
        self._loop.call_soon_threadsafe(self._set, error)

    def wait(self) -> Awaitable[None]:
        return self._future


def _mqtt_client(
    user: str | None, pw: str | None, loop: asyncio.AbstractEventLoop
) -> tuple[Any, _ThreadSignal]:
    try:
        import paho.mqtt.client as mqtt
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("MQTT needs paho-mqtt>=2: pip install 'millstream[net]'") from e
    client = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2)
    if user:
        client.username_pw_set(user, pw)
    return client, _ThreadSignal(loop)


async def _mqtt_connect(
    node: str,
    client: Any,
    host: str,
    port: int,
    keepalive: int,
    client_kwargs: dict[str, Any] | None,
) -> None:
    """Connect (the blocking part in a thread) and start the client's network thread."""
    try:
        await asyncio.to_thread(client.connect, host, port, keepalive, **(client_kwargs or {}))
    except OSError as e:
        raise OSError(
            e.errno,
            f"{node}: cannot connect to the MQTT broker at {host}:{port}: {e.strerror or e}",
        ) from e
    client.loop_start()


async def _mqtt_close(client: Any) -> None:
    """Disconnect and join the client's network thread (in a worker thread)."""
    with contextlib.suppress(Exception):
        client.disconnect()
    await asyncio.to_thread(client.loop_stop)
