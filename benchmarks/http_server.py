"""Benchmark: HTTP POST requests per second into ``Stream.from_http_server``.

``--size`` POST requests (default 20,000) with a ``--body-size``-byte body (default
100) are sent by an aiohttp client (one ``ClientSession``, keep-alive connections,
``--concurrency`` requests in flight, default 8) to:

* millstream: ``Stream.from_http_server(port, path='/data')`` into a sink that counts
  the bodies and their bytes (the reply is sent once the sink has run);
* the reference: a bare aiohttp low-level server (``aiohttp.web.Server``) whose handler
  reads the body, makes the same plain call and answers ``200 OK``, on its own event
  loop thread like millstream's graph loop.

The client runs in the main thread on its own loop; both servers run in the same
process, one after the other, figures taken in turn (best of ``--repeat``). Checks:
every reply is ``200 OK`` and each server received every body (count and bytes).
``server_cpu_us_per_request``: CPU time of every thread but the client's (the server's
loop thread, mostly) per request, the least of the runs: steadier than requests/s on a
shared machine.
Target: millstream requests/s >= 0.5 x the bare aiohttp server's.

Prints one JSON line. ``python benchmarks/http_server.py --help`` for the options.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import aiohttp
from _common import base_parser, best_times, emit_json, machine, target
from aiohttp import web

import millstream

KINDS = ("bare_aiohttp", "millstream")
#: CPU seconds of every thread but the client's during each timed pass, per server
SERVER_CPU: dict[str, list[float]] = {}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Counter:
    """What each server does with a body: count it and its bytes."""

    def __init__(self) -> None:
        self.n = 0
        self.nbytes = 0

    def __call__(self, body: bytes) -> None:
        self.n += 1
        self.nbytes += len(body)


async def post_all(port: int, n: int, body: bytes, concurrency: int) -> tuple[float, float, int]:
    """Send ``n`` POSTs with ``concurrency`` in flight; return (seconds, CPU seconds of the
    other threads (the server's), replies 200 'OK')."""
    url = f"http://127.0.0.1:{port}/data"
    connector = aiohttp.TCPConnector(limit=concurrency)
    ok = 0
    async with aiohttp.ClientSession(connector=connector) as session:
        left = n

        async def worker() -> None:
            nonlocal left, ok
            while left > 0:
                left -= 1
                async with session.post(url, data=body) as response:
                    if response.status == 200 and await response.read() == b"OK":
                        ok += 1

        await post_once(session, url)  # the first connection is not timed
        t0 = time.perf_counter()
        cpu0 = time.process_time() - time.thread_time()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        cpu = time.process_time() - time.thread_time() - cpu0
        return time.perf_counter() - t0, cpu, ok


async def post_once(session: aiohttp.ClientSession, url: str) -> None:
    async with session.post(url, data=b"warm") as response:
        await response.read()


class BareServer:
    """The reference: aiohttp's low-level server on its own loop thread."""

    def __init__(self, port: int, on_body: Callable[[bytes], None]):
        self.port = port
        self.on_body = on_body
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.runner: web.ServerRunner | None = None

    async def handle(self, request: web.BaseRequest) -> web.Response:
        self.on_body(await request.read())
        return web.Response(text="OK")

    async def _start(self) -> None:
        self.runner = web.ServerRunner(web.Server(self.handle, access_log=None))
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    def start(self) -> None:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result()

    def stop(self) -> None:
        assert self.runner is not None
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()


def run(kind: str, n: int, body: bytes, concurrency: int) -> tuple[float, dict[str, int]]:
    """One timed pass of ``n`` requests against a fresh server of ``kind``; the server's
    CPU seconds go to ``SERVER_CPU[kind]``."""
    port = free_port()
    counter = Counter()
    server: Any
    if kind == "millstream":
        server = millstream.Stream.from_http_server(  # type: ignore[attr-defined]
            port, path="/data", server_kwargs={"host": "127.0.0.1"}
        )
        server.sink(counter)
    else:
        server = BareServer(port, counter)
    server.start()
    try:
        seconds, cpu, ok = asyncio.run(post_all(port, n, body, concurrency))
    finally:
        server.stop()
    SERVER_CPU.setdefault(kind, []).append(cpu)
    # The untimed first request (b"warm") is counted by the server too.
    return seconds, {"ok": ok, "n": counter.n - 1, "nbytes": counter.nbytes - 4}


def main(argv: list[str] | None = None) -> None:
    parser = base_parser(__doc__.split("\n\n")[0], 20_000)
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight (8)")
    parser.add_argument("--body-size", type=int, default=100, help="bytes per body (100)")
    args = parser.parse_args(argv)
    n, concurrency = args.size, max(1, args.concurrency)
    body = b"x" * args.body_size
    expected = {"ok": n, "n": n, "nbytes": n * len(body)}

    for kind in KINDS:  # warm-up (imports, loop threads)
        run(kind, min(n, 500), body, concurrency)
    SERVER_CPU.clear()
    times, ok = best_times(
        {kind: (lambda kind=kind: run(kind, n, body, concurrency)) for kind in KINDS},
        args.repeat,
        lambda _name, counts: counts == expected,
    )
    rps = {kind: n / t for kind, t in times.items()}
    ratio = rps["millstream"] / rps["bare_aiohttp"]
    cpu_us = {kind: min(SERVER_CPU[kind]) / n * 1e6 for kind in KINDS}
    checks = {f"{kind}_every_request_ok_and_received": good for kind, good in ok.items()}
    emit_json(
        {
            "benchmark": "http_server",
            "workload": f"{n} POSTs of {len(body)} bytes, {concurrency} in flight, "
            "aiohttp client with keep-alive -> server -> counting sink",
            "size": n,
            "concurrency": concurrency,
            "body_size": len(body),
            "method": f"time.perf_counter around the {n} requests (after one untimed request "
            f"per run and a warm-up run of each server), best of {args.repeat} (servers "
            "in turn); client and server in the same process, each on its own loop thread",
            "machine": {**machine(), "aiohttp": aiohttp.__version__},
            "times_s": {k: round(v, 6) for k, v in times.items()},
            "requests_per_s": {k: round(v) for k, v in rps.items()},
            "server_cpu_us_per_request": {k: round(v, 1) for k, v in cpu_us.items()},
            "ratios": {
                "millstream_over_bare_aiohttp": round(ratio, 3),
                "server_cpu_bare_aiohttp_over_millstream": round(
                    cpu_us["bare_aiohttp"] / cpu_us["millstream"], 3
                ),
            },
            "checks": checks,
            "targets": {
                "millstream_vs_bare_aiohttp": target(
                    ratio, 0.5, "millstream requests/s / bare aiohttp server requests/s"
                )
            },
        }
    )
    if not all(checks.values()):
        raise SystemExit("output check failed: " + ", ".join(k for k, v in checks.items() if not v))


if __name__ == "__main__":
    main()
