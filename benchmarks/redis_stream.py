"""Benchmark: ``from_redis_stream`` and ``to_redis_stream`` against plain redis-py (asyncio)
loops doing the same work, in the same run, on the same server.

``--size`` entries (default 200,000) ``{'i': i, 'word': 'w<i % 1000>'}``:

* source, ``millstream``: ``Stream.from_redis_stream(url, key, group, 'c', count=--count)``
  with a fresh group at ``0`` on a stream holding the entries, ``.map(int of 'i')`` into a
  ``sink(list.append)``; timed from ``start()`` until every entry is acknowledged
  (``source.acked``, polled every 0.5 ms).
* source, ``raw``: ``redis.asyncio`` client, ``XREADGROUP COUNT --count`` then the same
  per-entry work, then one ``XACK`` of the batch's ids, until the stream is read; timed
  from creating the client to the last ``XACK``.
* sink, ``millstream``: ``Stream.from_iterable(entries).to_redis_stream(url, key,
  batch_size=--count)`` and ``flush()``; timed from building the graph to ``flush()``.
* sink, ``raw``: pipelines (``transaction=False``) of ``--count`` ``XADD`` s, one at a
  time, on a ``redis.asyncio`` client; timed from creating the client to the last reply.

Figures taken in turn (round robin), best of ``--repeat``, after a warm-up. Both decode
responses (``decode_responses=True``). Targets: raw time / millstream time >= 0.8 for the
source and for the sink. ``--url`` uses a running server; else a private
``redis-server`` (``tests/redis_streams/server.py``) is started for the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import redis
import redis.asyncio as aredis
from _common import base_parser, best_times, emit_json, machine, run_millstream_source, target

from millstream import Stream

SERVER = Path(__file__).resolve().parent.parent / "tests" / "redis_streams" / "server.py"


@contextlib.contextmanager
def redis_server(url: str | None) -> Iterator[str]:
    if url:
        yield url
        return
    spec = importlib.util.spec_from_file_location("millstream_bench_redis_server", SERVER)
    assert spec is not None and spec.loader is not None
    server = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = server  # its dataclass looks its module up
    spec.loader.exec_module(server)
    with server.private_server() as started:
        yield started.url


#: CPU seconds of this process (every thread; not the server's) in each run, by figure
CPU: dict[str, list[float]] = {}


def timed_cpu(name: str, run: Any, *args: Any) -> Any:
    def measured() -> tuple[float, Any]:
        cpu = time.process_time()
        result = run(*args)
        CPU.setdefault(name, []).append(time.process_time() - cpu)
        return result

    return measured


def make_entries(n: int) -> list[dict[str, Any]]:
    return [{"i": i, "word": f"w{i % 1000}"} for i in range(n)]


def fill(url: str, key: str, entries: list[dict[str, Any]], batch: int) -> None:
    client = redis.Redis.from_url(url)
    client.delete(key)
    for start in range(0, len(entries), 1000):
        pipe = client.pipeline(transaction=False)
        for fields in entries[start : start + 1000]:
            pipe.xadd(key, fields)
        pipe.execute()
    client.close()


def new_group(url: str, key: str) -> str:
    group = f"g-{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url(url)
    client.xgroup_create(key, group, id="0")
    client.close()
    return group


# -- the source ---------------------------------------------------------------------------
def source_millstream(url: str, key: str, n: int, count: int) -> tuple[float, Any]:
    group = new_group(url, key)
    out: list[int] = []
    source = Stream.from_redis_stream(
        url, key, group, "c", count=count, max_in_flight=10 * count, claim_min_idle=None
    )
    source.map(lambda fields: int(fields["i"])).sink(out.append)
    started = time.perf_counter()
    source.start()
    while source.acked < n:
        if source.error is not None:
            raise source.error
        time.sleep(0.0005)
    elapsed = time.perf_counter() - started
    source.stop()
    return elapsed, out


async def _raw_source(url: str, key: str, group: str, count: int) -> list[int]:
    client = aredis.from_url(url, decode_responses=True)
    out: list[int] = []
    append = out.append
    try:
        while True:
            reply = await client.xreadgroup(group, "c", {key: ">"}, count=count)
            if not reply:
                break
            entries = reply[0][1]
            for _, fields in entries:
                append(int(fields["i"]))
            await client.xack(key, group, *[entry_id for entry_id, _ in entries])
    finally:
        await client.aclose()
    return out


def source_raw(url: str, key: str, n: int, count: int) -> tuple[float, Any]:
    group = new_group(url, key)
    started = time.perf_counter()
    out = asyncio.run(_raw_source(url, key, group, count))
    return time.perf_counter() - started, out


# -- the sink -----------------------------------------------------------------------------
def sink_millstream(url: str, entries: list[dict[str, Any]], count: int) -> tuple[float, Any]:
    key = f"bench-sink-{uuid.uuid4().hex[:8]}"
    started = time.perf_counter()
    source = Stream.from_iterable(entries)
    out = source.to_redis_stream(url, key, batch_size=count, max_in_flight=10 * count)
    run_millstream_source(source)
    out.flush()
    elapsed = time.perf_counter() - started
    out.destroy()
    return elapsed, _drop(url, key)


async def _raw_sink(url: str, key: str, entries: list[dict[str, Any]], count: int) -> None:
    client = aredis.from_url(url, decode_responses=True)
    try:
        for start in range(0, len(entries), count):
            async with client.pipeline(transaction=False) as pipe:
                for fields in entries[start : start + count]:
                    pipe.xadd(key, fields)
                await pipe.execute()
    finally:
        await client.aclose()


def sink_raw(url: str, entries: list[dict[str, Any]], count: int) -> tuple[float, Any]:
    key = f"bench-sink-{uuid.uuid4().hex[:8]}"
    started = time.perf_counter()
    asyncio.run(_raw_sink(url, key, entries, count))
    elapsed = time.perf_counter() - started
    return elapsed, _drop(url, key)


def _drop(url: str, key: str) -> tuple[int, Any]:
    """The stream's length and its last entry's fields; the stream is deleted."""
    client = redis.Redis.from_url(url, decode_responses=True)
    length = client.xlen(key)
    last = client.xrevrange(key, count=1)
    client.delete(key)
    client.close()
    return length, last[0][1] if last else None


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0], 200_000)
    parser.add_argument("--url", help="a running Redis server (default: a private one)")
    parser.add_argument("--count", type=int, default=100, help="COUNT and batch size")
    args = parser.parse_args()
    n, count = args.size, args.count
    entries = make_entries(n)
    expected = list(range(n))
    last = {"i": str(n - 1), "word": f"w{(n - 1) % 1000}"}
    with redis_server(args.url) as url:
        key = f"bench-source-{uuid.uuid4().hex[:8]}"
        fill(url, key, entries, count)
        runs = {
            "source_millstream": timed_cpu(
                "source_millstream", source_millstream, url, key, n, count
            ),
            "source_raw": timed_cpu("source_raw", source_raw, url, key, n, count),
            "sink_millstream": timed_cpu("sink_millstream", sink_millstream, url, entries, count),
            "sink_raw": timed_cpu("sink_raw", sink_raw, url, entries, count),
        }

        def check(name: str, output: Any) -> bool:
            if name.startswith("source"):
                return bool(output == expected)
            return bool(output == (n, last))

        best_times(runs, 1, check)  # warm-up
        CPU.clear()
        times, ok = best_times(runs, args.repeat, check)
        server_version = redis.Redis.from_url(url).info("server")["redis_version"]
    source_ratio = times["source_raw"] / times["source_millstream"]
    sink_ratio = times["sink_raw"] / times["sink_millstream"]
    cpu = {k: min(v) for k, v in CPU.items()}
    info = machine()
    info["redis_py"] = redis.__version__
    info["redis_server"] = server_version
    try:
        import hiredis  # noqa: F401

        info["hiredis"] = True
    except ImportError:
        info["hiredis"] = False
    emit_json(
        {
            "benchmark": "redis_stream",
            "workload": f"{n} entries {{i, word}}; from_redis_stream (consumer group, XACK after "
            f"processing) against a redis.asyncio XREADGROUP+XACK loop, to_redis_stream against "
            f"pipelined XADD, COUNT/batch {count}",
            "size": n,
            "count": count,
            "method": "time.perf_counter, best of --repeat (figures taken in turn) after a "
            "warm-up; the source until every entry is acknowledged, the sink until flush(); "
            "cpu_s: time.process_time of this process (not the server) over the same run, "
            "best of --repeat, which other load on the machine moves less",
            "machine": info,
            "times_s": {k: round(v, 4) for k, v in times.items()},
            "cpu_s": {k: round(v, 4) for k, v in cpu.items()},
            "load_avg_1min_after": round(os.getloadavg()[0], 2),
            "entries_per_s": {k: round(n / v) for k, v in times.items()},
            "ratios": {
                "source_raw_over_millstream": round(source_ratio, 3),
                "sink_raw_over_millstream": round(sink_ratio, 3),
                "source_raw_over_millstream_cpu": round(
                    cpu["source_raw"] / cpu["source_millstream"], 3
                ),
                "sink_raw_over_millstream_cpu": round(cpu["sink_raw"] / cpu["sink_millstream"], 3),
            },
            "checks": {f"{k}_output_correct": v for k, v in ok.items()},
            "targets": {
                "source_vs_raw": target(
                    source_ratio, 0.8, "raw XREADGROUP+XACK loop time / from_redis_stream time"
                ),
                "sink_vs_raw": target(
                    sink_ratio, 0.8, "raw pipelined XADD time / to_redis_stream time"
                ),
            },
        }
    )


if __name__ == "__main__":
    main()
