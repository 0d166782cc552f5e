"""The metrics server: the live dashboard, Prometheus' ``/metrics`` and a JSON/SSE API, on
aiohttp in a daemon thread with its own asyncio loop (never the graph's loop).

=================  ===================================================================
path               what
=================  ===================================================================
``/``              the dashboard page (``static/dashboard.html``)
``/static/...``    its script and style sheet (package data: no CDN)
``/metrics``       Prometheus' text format (:mod:`millstream.metrics.prometheus`)
``/api/metrics``   JSON: :func:`~millstream.metrics.collect` now, with each node's
                   current ``rate`` and ``rate_in`` (:func:`~millstream.metrics.rates.with_rates`)
``/events``        server-sent events: every ``interval`` seconds one message, the same
                   JSON, each rate over the last interval
=================  ===================================================================

One ticker collects the graph every ``interval`` seconds whatever the number of
clients; each ``/events`` client gets every tick. Reading the counters from the
server's thread takes no lock and costs the graph nothing but that thread's share of
the GIL.

Examples
--------
>>> import json, urllib.request
>>> from millstream import Stream
>>> source = Stream(stream_name='numbers')
>>> L = source.map(abs).sink_to_list()
>>> source.emit(-1)
>>> with serve(source) as server:
...     with urllib.request.urlopen(server.url + 'api/metrics') as reply:
...         data = json.load(reply)
>>> [(n['id'], n['elements_out']) for n in data['nodes']]
[('numbers', 1), ('numbers/map', 1), ('numbers/map/sink', 0)]
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from aiohttp import web

from ..checkpoint import Checkpoints
from ..core import Stream
from .collect import collect
from .prometheus import CONTENT_TYPE, exposition
from .rates import plain, with_rates

__all__ = ["STATIC", "MetricsServer", "serve"]

logger = logging.getLogger("millstream.metrics")

#: The folder of the dashboard's page, script and style sheet.
STATIC = Path(__file__).parent / "static"


class MetricsServer:
    """The server :func:`serve` started: ``url`` (ending in ``/``), ``port``, ``stop()``;
    a context manager that stops it on exit."""

    def __init__(
        self,
        nodes: tuple[Stream, ...],
        host: str = "127.0.0.1",
        port: int = 0,
        interval: float = 1.0,
        checkpoints: Checkpoints | None = None,
    ) -> None:
        if interval <= 0:
            raise ValueError(f"serve: interval must be > 0 seconds, got {interval!r}")
        self.nodes = nodes
        self.host = host
        self.port = port
        self.interval = interval
        self.checkpoints = checkpoints
        self.latest: dict[str, Any] | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._run, name=f"millstream-metrics-{host}:{port}", daemon=True
        )
        self._started: Future[int] = Future()
        self._closing: asyncio.Event | None = None
        self._tick: asyncio.Condition | None = None
        self._stopped = False

    # -- life -----------------------------------------------------------------------
    def start(self) -> MetricsServer:
        """Start the server's thread and wait until it listens (raises what stopped it,
        e.g. ``OSError`` for a port in use)."""
        self._thread.start()
        self.port = self._started.result(timeout=30)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Close every connection, free the port and end the thread."""
        if self._stopped or not self._thread.is_alive():
            self._stopped = True
            return
        self._stopped = True
        closing = self._closing
        if closing is not None:
            self._loop.call_soon_threadsafe(closing.set)
        self._thread.join(timeout)

    def __enter__(self) -> MetricsServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """``http://host:port/``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def __repr__(self) -> str:
        state = "stopped" if self._stopped else "serving"
        return f"<MetricsServer {self.url} {state}>"

    # -- the server's thread ------------------------------------------------------------
    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._main())
        except BaseException as error:  # reported to start()
            if not self._started.done():
                self._started.set_exception(error)
            else:
                logger.exception("the metrics server stopped on an error")
        finally:
            self._loop.close()

    async def _main(self) -> None:
        self._closing = asyncio.Event()
        self._tick = asyncio.Condition()
        app = web.Application()
        app.router.add_get("/", self._page)
        app.router.add_get("/metrics", self._prometheus)
        app.router.add_get("/api/metrics", self._json)
        app.router.add_get("/events", self._events)
        app.router.add_static("/static/", STATIC)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, self.port)
            await site.start()
            port = runner.addresses[0][1] if runner.addresses else self.port
            self.latest = self.snapshot(None)
            self._started.set_result(port)
            ticker = asyncio.ensure_future(self._ticker())
            await self._closing.wait()
            ticker.cancel()
            async with self._tick:
                self._tick.notify_all()  # the /events handlers see _closing and return
        finally:
            await runner.cleanup()

    def snapshot(self, previous: dict[str, Any] | None) -> Any:
        """The graph's metrics now as plain JSON data, with rates since ``previous``."""
        for attempt in range(3):
            try:
                now = collect(*self.nodes, checkpoints=self.checkpoints)
                break
            except RuntimeError:  # the graph changed while it was walked
                if attempt == 2:
                    raise
        now["interval_s"] = self.interval
        return plain(with_rates(now, previous))

    async def _ticker(self) -> None:
        assert self._tick is not None
        while True:
            await asyncio.sleep(self.interval)
            try:
                self.latest = self.snapshot(self.latest)
            except Exception:
                logger.exception("collecting the graph's metrics failed")
                continue
            async with self._tick:
                self._tick.notify_all()

    # -- handlers -------------------------------------------------------------------
    async def _page(self, request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC / "dashboard.html")

    async def _prometheus(self, request: web.Request) -> web.Response:
        body = exposition(collect(*self.nodes, checkpoints=self.checkpoints))
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})

    async def _json(self, request: web.Request) -> web.Response:
        data = self.snapshot(self.latest)
        return web.json_response(data, dumps=lambda d: json.dumps(d, allow_nan=False))

    async def _events(self, request: web.Request) -> web.StreamResponse:
        assert self._tick is not None and self._closing is not None
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",
            }
        )
        await response.prepare(request)
        retry_ms = max(int(self.interval * 1000), 500)
        await response.write(f"retry: {retry_ms}\n\n".encode())
        sent = None
        try:
            while not self._closing.is_set():
                latest = self.latest
                if latest is not None and latest is not sent:
                    message = json.dumps(latest, allow_nan=False)
                    await response.write(f"data: {message}\n\n".encode())
                    sent = latest
                async with self._tick:
                    if self.latest is sent and not self._closing.is_set():
                        await self._tick.wait()
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        return response


def serve(
    *nodes: Stream,
    port: int = 0,
    host: str = "127.0.0.1",
    interval: float = 1.0,
    checkpoints: Checkpoints | None = None,
) -> MetricsServer:
    """Serve the dashboard, ``/metrics``, ``/api/metrics`` and ``/events`` of the
    graph(s) of ``nodes`` on ``host:port`` (0: a free port) and return the running
    :class:`MetricsServer`; its thread is a daemon, so it never keeps the process alive.
    ``interval`` is the seconds between the dashboard's updates (and the span of its
    rates); ``checkpoints`` the graph's, found by itself unless given."""
    if not nodes:
        raise TypeError("serve() needs at least one node of the graph to show")
    return MetricsServer(nodes, host, port, interval, checkpoints).start()
