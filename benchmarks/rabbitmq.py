"""Benchmark: ``from_rabbitmq`` and ``to_rabbitmq`` against plain aio-pika loops doing the
same work, in the same run, on the same broker.

``--size`` messages (default 20,000) of 100 bytes each, persistent, on a durable queue:

* ``source_millstream``: ``Stream.from_rabbitmq(url, queue, prefetch=--prefetch)`` into a
  ``sink`` appending each body to a list; every message acknowledged after its element is
  processed (acknowledgements of completed runs go as one ``basic.ack`` with
  ``multiple``). Timed from ``start()`` (it connects) until the last element was
  processed and acknowledged.
* ``source_aio_pika``: ``aio_pika.connect``, ``channel.set_qos(prefetch_count=--prefetch)``,
  ``async for message in queue.iterator()``: append the body, ``await message.ack()``.
  Timed from ``connect`` until the last message was acknowledged.
* ``sink_millstream``: ``Stream.from_iterable(bodies).to_rabbitmq(url, routing_key=queue,
  max_in_flight=--window)`` (publisher confirms; persistent messages). Timed from
  ``start()`` until ``flush()`` returned (every message confirmed).
* ``sink_aio_pika``: a channel with publisher confirms, ``exchange.publish`` of each
  message as a task, at most ``--window`` unconfirmed (a semaphore). Timed
  from ``connect`` until every publish was confirmed.

The queue is filled (sources) or purged (sinks) before each run, untimed. Figures are
taken in turn (round robin), best of ``--repeat``, after a warm-up of each. Targets:
aio-pika time / millstream time >= 0.8 for the source and for the sink. ``--url`` uses a
running broker; else a private one is started for the run (``tests/rabbitmq/_server.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aio_pika
from _common import base_parser, best_times, emit_json, machine, run_millstream_source, target

from millstream import Stream

SERVER = Path(__file__).resolve().parent.parent / "tests" / "rabbitmq" / "_server.py"


@contextlib.contextmanager
def broker(url: str | None) -> Iterator[str]:
    """``url`` itself, or the URL of a private broker started for the ``with`` block."""
    if url:
        yield url
        return
    spec = importlib.util.spec_from_file_location("millstream_bench_rabbitmq_server", SERVER)
    assert spec is not None and spec.loader is not None
    server = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(server)
    with server.private_server() as started:
        yield started.url


async def _with_channel(url: str, work: Any, confirms: bool = True) -> Any:
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel(publisher_confirms=confirms)
        return await work(channel)
    finally:
        await connection.close()


def fill(url: str, queue: str, bodies: list[bytes]) -> None:
    async def work(channel: Any) -> None:
        q = await channel.declare_queue(queue, durable=True)
        await q.purge()
        await publish_all(channel, queue, bodies, 1000)

    asyncio.run(_with_channel(url, work))


def purge(url: str, queue: str) -> int:
    """Empty ``queue``; return how many messages it held."""

    async def work(channel: Any) -> int:
        q = await channel.declare_queue(queue, durable=True)
        result = await q.purge()
        return int(result.message_count)

    return int(asyncio.run(_with_channel(url, work)))


def depth(url: str, queue: str) -> int:
    async def work(channel: Any) -> int:
        q = await channel.declare_queue(queue, passive=True)
        return int(q.declaration_result.message_count)

    return int(asyncio.run(_with_channel(url, work)))


async def publish_all(channel: Any, queue: str, bodies: list[bytes], window: int) -> None:
    """The plain loop: a publish task per message, at most ``window`` unconfirmed (a
    semaphore released as each confirm arrives)."""
    exchange = channel.default_exchange
    persistent = aio_pika.DeliveryMode.PERSISTENT
    room = asyncio.Semaphore(window)
    tasks: list[asyncio.Task[Any]] = []

    def confirmed(task: asyncio.Task[Any]) -> None:
        room.release()

    for body in bodies:
        await room.acquire()
        message = aio_pika.Message(body, delivery_mode=persistent)
        task = asyncio.ensure_future(exchange.publish(message, routing_key=queue))
        task.add_done_callback(confirmed)
        tasks.append(task)
    for task in tasks:
        await task  # raises if the broker refused one


def source_millstream(url: str, queue: str, n: int, prefetch: int) -> tuple[float, Any]:
    got: list[bytes] = []
    all_in = threading.Event()

    def take(body: bytes) -> None:
        got.append(body)
        if len(got) == n:
            all_in.set()

    source = Stream.from_rabbitmq(url, queue, prefetch=prefetch)
    source.sink(take)
    t0 = time.perf_counter()
    source.start()
    if not all_in.wait(600):
        raise TimeoutError("from_rabbitmq did not deliver every message")
    while source.acked < n:
        time.sleep(0.0005)
    elapsed = time.perf_counter() - t0
    source.stop()
    return elapsed, got


def source_aio_pika(url: str, queue: str, n: int, prefetch: int) -> tuple[float, Any]:
    async def run() -> tuple[float, list[bytes]]:
        t0 = time.perf_counter()
        connection = await aio_pika.connect(url)
        got: list[bytes] = []
        try:
            channel = await connection.channel()
            await channel.set_qos(prefetch_count=prefetch)
            q = await channel.declare_queue(queue, passive=True)
            async with q.iterator() as messages:
                async for message in messages:
                    got.append(message.body)
                    await message.ack()
                    if len(got) == n:
                        break
            elapsed = time.perf_counter() - t0
        finally:
            await connection.close()
        return elapsed, got

    return asyncio.run(run())


def sink_millstream(url: str, queue: str, bodies: list[bytes], window: int) -> tuple[float, Any]:
    source = Stream.from_iterable(bodies)
    out = source.to_rabbitmq(url, routing_key=queue, max_in_flight=window)
    t0 = time.perf_counter()
    run_millstream_source(source)
    out.flush()
    elapsed = time.perf_counter() - t0
    confirmed = out.confirmed
    out.destroy()
    return elapsed, confirmed


def sink_aio_pika(url: str, queue: str, bodies: list[bytes], window: int) -> tuple[float, Any]:
    async def run() -> float:
        t0 = time.perf_counter()
        connection = await aio_pika.connect(url)
        try:
            channel = await connection.channel(publisher_confirms=True)
            await publish_all(channel, queue, bodies, window)
            return time.perf_counter() - t0
        finally:
            await connection.close()

    return asyncio.run(run()), len(bodies)


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0], 20_000)
    parser.add_argument("--url", default=None, help="a running broker (default: a private one)")
    parser.add_argument("--prefetch", type=int, default=100, help="source prefetch (100)")
    parser.add_argument("--window", type=int, default=1000, help="sink unconfirmed (1000)")
    args = parser.parse_args()
    n = args.size
    bodies = [f"{i:08d}".encode().ljust(100, b".") for i in range(n)]
    with broker(args.url) as url:
        q_src, q_sink = f"bench-src-{uuid.uuid4().hex[:8]}", f"bench-sink-{uuid.uuid4().hex[:8]}"
        purge(url, q_sink)
        sink_counts: dict[str, int] = {}

        def source_run(fn: Any) -> Any:
            def run() -> tuple[float, Any]:
                fill(url, q_src, bodies)
                return fn(url, q_src, n, args.prefetch)

            return run

        def sink_run(name: str, fn: Any) -> Any:
            def run() -> tuple[float, Any]:
                purge(url, q_sink)
                elapsed, confirmed = fn(url, q_sink, bodies, args.window)
                sink_counts[name] = depth(url, q_sink)
                return elapsed, (confirmed, sink_counts[name])

            return run

        runs = {
            "source_millstream": source_run(source_millstream),
            "source_aio_pika": source_run(source_aio_pika),
            "sink_millstream": sink_run("sink_millstream", sink_millstream),
            "sink_aio_pika": sink_run("sink_aio_pika", sink_aio_pika),
        }
        expected = sorted(bodies)

        def check(name: str, output: Any) -> bool:
            if name.startswith("source"):
                return sorted(output) == expected
            return bool(output == (n, n))

        best_times({k: v for k, v in runs.items()}, 1, lambda name, out: True)  # warm-up
        times, ok = best_times(runs, args.repeat, check)
        purge(url, q_src)
        purge(url, q_sink)
    source_ratio = times["source_aio_pika"] / times["source_millstream"]
    sink_ratio = times["sink_aio_pika"] / times["sink_millstream"]
    info = machine()
    info["aio_pika"] = aio_pika.__version__
    emit_json(
        {
            "benchmark": "rabbitmq",
            "workload": f"{n} persistent messages of 100 bytes on a durable queue: "
            f"from_rabbitmq (prefetch {args.prefetch}) against an aio-pika iterator loop "
            f"acking each message; to_rabbitmq (publisher confirms, {args.window} "
            "unconfirmed) against aio-pika publish tasks with the same window",
            "size": n,
            "prefetch": args.prefetch,
            "window": args.window,
            "method": "time.perf_counter, best of --repeat (figures taken in turn) after a "
            "warm-up of each; each from connecting until the last message was acknowledged "
            "(sources) or confirmed (sinks)",
            "machine": info,
            "times_s": {k: round(v, 4) for k, v in times.items()},
            "messages_per_s": {k: round(n / v) for k, v in times.items()},
            "ratios": {
                "source_aio_pika_over_millstream": round(source_ratio, 3),
                "sink_aio_pika_over_millstream": round(sink_ratio, 3),
            },
            "checks": {f"{k}_every_message": v for k, v in ok.items()},
            "targets": {
                "from_rabbitmq_vs_aio_pika": target(
                    source_ratio, 0.8, "aio-pika consume loop time / from_rabbitmq time"
                ),
                "to_rabbitmq_vs_aio_pika": target(
                    sink_ratio, 0.8, "aio-pika publish loop time / to_rabbitmq time"
                ),
            },
        }
    )


if __name__ == "__main__":
    main()
