"""Network sinks: ``to_websocket`` and ``to_mqtt``.

Both connect lazily on the first element and return an awaitable per element, so the
graph's backpressure waits until the element has been sent (websocket) or acknowledged
(MQTT); the element's refs are held until then and released as failed if sending raises.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Any

from ..core.awaitables import release_refs_after
from ..core.loop import in_loop_thread, sync
from ..core.refs import retain_refs
from ..core.stream import Stream
from .core import Sink

__all__ = ["to_mqtt", "to_websocket"]


def _run_on_loop(node: Stream, coroutine_function: Any) -> None:
    """Run a cleanup coroutine on the node's loop: wait for it from another thread,
    schedule it from the loop thread."""
    loop = node.loop
    if loop is None:
        return
    if in_loop_thread(loop):
        loop.add_callback(coroutine_function)
        return
    if loop.asyncio_loop.is_running():
        sync(loop, coroutine_function, callback_timeout=10)


@Stream.register_api()
class to_websocket(Sink):
    """Send each element (``str`` or ``bytes``) as a message to the websocket at ``uri``.

    The connection (``websockets.asyncio.client.connect``) opens with the first element and
    stays open; each element is handed back as an awaitable that finishes once the message
    is sent, so a slow server slows the graph down. ``destroy()`` closes the connection.

    Parameters
    ----------
    uri : str
        ``'ws://host:port/path'`` (``'wss://'`` for TLS).
    ws_kwargs : dict, optional
        Passed to ``websockets.asyncio.client.connect``.

    Examples
    --------
    Not run here (it needs a server)::

        source = Stream()
        sink = source.to_websocket('ws://127.0.0.1:8765')
        source.emit('hello')      # returns once the message is sent
        sink.destroy()
    """

    def __init__(
        self, upstream: Stream, uri: str, ws_kwargs: dict[str, Any] | None = None, **kwargs: Any
    ):
        self.uri = uri
        self.ws_kw = ws_kwargs
        self.ws: Any = None
        self._connecting: asyncio.Lock | None = None
        kwargs.setdefault("ensure_io_loop", True)
        super().__init__(upstream, **kwargs)

    def update(self, x: Any, who: Stream | None = None, metadata: list[dict] | None = None) -> Any:
        if metadata:
            retain_refs(metadata)
            return release_refs_after(self._send(x), metadata, self, None, x)
        return self._send(x)

    async def _send(self, x: Any) -> None:
        ws = self.ws
        if ws is None:
            ws = await self._connect()
        await ws.send(x)

    async def _connect(self) -> Any:
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            if self.ws is None:
                from websockets.asyncio.client import connect

                self.ws = await connect(self.uri, **(self.ws_kw or {}))
        return self.ws

    def destroy(self, streams: Any = None) -> None:
        super().destroy(streams)
        ws, self.ws = self.ws, None
        if ws is not None:
            _run_on_loop(self, ws.close)


@Stream.register_api()
class to_mqtt(Sink):
    """Publish each element (``bytes``, ``str``, number or ``None``) to an MQTT topic.

    A paho-mqtt (2.x) client connects with the first element (the blocking connect runs in
    a worker thread) and runs its network thread. Each element is handed back as an
    awaitable that finishes once delivery is confirmed: the broker's ``PUBACK`` for
    ``qos=1``, ``PUBCOMP`` for ``qos=2``, and for ``qos=0`` once the message is written to
    the socket. Streamz publishes and forgets (``qos=0`` only). ``destroy()`` disconnects.

    Parameters
    ----------
    host, port : str, int
        The broker.
    topic : str
        Topic to publish to.
    keepalive : int
        MQTT keep-alive, seconds.
    client_kwargs : dict, optional
        Passed to the client's ``connect()``.
    qos : int
        Quality of service, 0, 1 or 2 (keyword only; not in Streamz).
    retain : bool
        Ask the broker to retain the last message (keyword only; not in Streamz).
    user, pw : str, optional
        Credentials (keyword only; not in Streamz).

    Examples
    --------
    Not run here (it needs a broker)::

        source = Stream()
        sink = source.to_mqtt('127.0.0.1', 1883, 'sensors/t1', qos=1)
        source.emit(b'21.5')      # returns once the broker has acknowledged it
        sink.destroy()
    """

    def __init__(
        self,
        upstream: Stream,
        host: str,
        port: int,
        topic: str,
        keepalive: int = 60,
        client_kwargs: dict[str, Any] | None = None,
        *,
        qos: int = 0,
        retain: bool = False,
        user: str | None = None,
        pw: str | None = None,
        **kwargs: Any,
    ):
        if qos not in (0, 1, 2):
            raise ValueError(f"to_mqtt: qos must be 0, 1 or 2, got {qos!r}")
        self.host = host
        self.port = port
        self.topic = topic
        self.keepalive = keepalive
        self.c_kw = client_kwargs or {}
        self.qos = qos
        self.retain = retain
        self.user = user
        self.pw = pw
        self.client: Any = None
        self._connecting: asyncio.Lock | None = None
        self._lock = threading.Lock()
        self._waiters: dict[int, asyncio.Future[None]] = {}
        self._early: set[int] = set()
        kwargs.setdefault("ensure_io_loop", True)
        super().__init__(upstream, **kwargs)

    def update(self, x: Any, who: Stream | None = None, metadata: list[dict] | None = None) -> Any:
        if metadata:
            retain_refs(metadata)
            return release_refs_after(self._publish(x), metadata, self, None, x)
        return self._publish(x)

    async def _publish(self, x: Any) -> None:
        client = self.client
        if client is None:
            client = await self._connect()
        info = client.publish(self.topic, x, qos=self.qos, retain=self.retain)
        if info.rc != 0:
            import paho.mqtt.client as mqtt

            raise ConnectionError(f"to_mqtt: publishing failed: {mqtt.error_string(info.rc)}")
        await self._delivered(info.mid)

    async def _delivered(self, mid: int) -> None:
        with self._lock:
            if mid in self._early:
                self._early.discard(mid)
                return
            future = asyncio.get_running_loop().create_future()
            self._waiters[mid] = future
        await future

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        # paho's network thread
        with self._lock:
            future = self._waiters.pop(mid, None)
            if future is None:
                self._early.add(mid)
                return
        future.get_loop().call_soon_threadsafe(_resolve, future, None)

    async def _connect(self) -> Any:
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            if self.client is not None:
                return self.client
            try:
                import paho.mqtt.client as mqtt
            except ImportError as e:  # pragma: no cover - depends on the environment
                raise ImportError(
                    "to_mqtt needs paho-mqtt>=2: pip install 'millstream[net]'"
                ) from e
            loop = asyncio.get_running_loop()
            connected: asyncio.Future[None] = loop.create_future()
            client = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2)
            if self.user:
                client.username_pw_set(self.user, self.pw)

            def on_connect(client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
                error = None
                if reason.is_failure:
                    error = ConnectionRefusedError(f"to_mqtt: the broker refused: {reason}")
                loop.call_soon_threadsafe(_resolve, connected, error)

            client.on_connect = on_connect
            client.on_publish = self._on_publish
            try:
                await asyncio.to_thread(
                    client.connect, self.host, self.port, self.keepalive, **self.c_kw
                )
            except OSError as e:
                reason = e.strerror or e
                raise OSError(
                    e.errno,
                    f"to_mqtt: cannot connect to the MQTT broker at {self.host}:{self.port}: "
                    f"{reason}",
                ) from e
            client.loop_start()
            try:
                await connected
            except BaseException:
                client.disconnect()
                await asyncio.to_thread(client.loop_stop)
                raise
            self.client = client
            return client

    def destroy(self, streams: Any = None) -> None:
        super().destroy(streams)
        client, self.client = self.client, None
        with self._lock:
            waiters, self._waiters = self._waiters, {}
            self._early.clear()
        for future in waiters.values():
            error = ConnectionError("to_mqtt: destroyed before the broker acknowledged")
            future.get_loop().call_soon_threadsafe(_resolve, future, error)
        if client is not None:
            with contextlib.suppress(Exception):
                client.disconnect()
            client.loop_stop()


def _resolve(future: asyncio.Future[None], error: BaseException | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)
