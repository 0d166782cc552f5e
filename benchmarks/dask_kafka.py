"""Benchmark: Kafka word count with CPU-heavy messages, ``from_kafka_batched(dask=True)``.

``--size`` messages (default 200,000), lines of 10 words (``kafka_wordcount.py``'s
vocabulary and seed), are written round robin to a 4-partition topic once (a raw
``Producer``), then read back and counted in the same run by the same pipeline::

    Stream.from_kafka_batched(topic, {..., fresh group.id, 'auto.offset.reset': 'earliest'},
                              poll_interval=0.1, max_batch_size=B, dask=DASK)
          .map(count_batch, iterations).buffer(8).gather().sink(merge)

* ``dask``: ``dask=True`` on ``LocalCluster(n_workers=2, threads_per_worker=1,
  processes=True)``: the source plans offset ranges, the workers read them
  (``get_message_batch``) and count them, and only each batch's ``(messages, Counter)``
  comes back to the client;
* ``single_process`` (the reference): ``dask=False``, the same code in this process
  (the source's consumer thread reads, the graph's loop counts; ``gather()`` is a no-op
  on a local stream and ``buffer(8)`` a local buffer). The cluster stays up, idle.

``count_batch`` decodes each message, does ``--work-iterations`` steps (default 750,
about 50 us here; the measured local time is in the JSON) of a pure-Python linear
congruential generator seeded with the message's length (deterministic CPU work) and
counts its words into the batch's ``Counter``; ``merge`` adds the batch's counts to one
``Counter`` on the client. Each run is timed from ``start()`` until every message is
merged; its counts must equal a ``collections.Counter`` over the lines. Runs taken in
turn, best of ``--repeat``, after a warm-up of both on a small topic.

Target: single_process_time / dask_time >= 1.5.

``--bootstrap host:port`` uses a running broker (fresh topics and groups, the topics
deleted at the end); without it a private broker is started with
``scripts/kafka-broker`` in a temporary directory and stopped at exit. Prints one
JSON line.
"""

from __future__ import annotations

import collections
import gc
import threading
import time
from collections.abc import Callable
from typing import Any

from _common import base_parser, emit_json, target
from _dask import cluster, dask_machine, load_avg

Counts = collections.Counter[str]
PARTITIONS = 4
N_WORKERS = 2
IN_FLIGHT = 8
WARM_UP = 4_000
RUN_TIMEOUT = 900.0
A = 1103515245
C = 12345
MASK = 0x7FFFFFFF


def count_batch(batch: list[bytes], iterations: int) -> tuple[int, Counts]:
    """The per-batch work (on a worker with Dask): ``(messages, word counts)``."""
    counts: Counts = collections.Counter()
    update = counts.update
    for value in batch:
        line = value.decode()
        x = len(line)
        for _ in range(iterations):  # ~50 us of deterministic CPU work per message
            x = (x * A + C) & MASK
        update(line.split())
    return len(batch), counts


def run_stream(
    bootstrap: str,
    topic: str,
    n: int,
    iterations: int,
    dask: bool,
    poll_interval: float,
    max_batch_size: int,
) -> tuple[float, Counts]:
    """The pipeline with ``dask=dask``; seconds from ``start()`` until ``n`` messages merged."""
    from _kafka import unique_name

    import millstream

    total: Counts = collections.Counter()
    seen = [0]
    done = threading.Event()

    def merge(result: tuple[int, Counts]) -> None:
        messages, counts = result
        total.update(counts)
        seen[0] += messages
        if seen[0] >= n:
            done.set()

    params = {
        "bootstrap.servers": bootstrap,
        "group.id": unique_name("millstream-bench-dask-group"),
        "auto.offset.reset": "earliest",
    }
    stream = millstream.Stream.from_kafka_batched(  # type: ignore[attr-defined]
        topic, params, poll_interval=poll_interval, max_batch_size=max_batch_size, dask=dask
    )
    source = stream.upstream.upstream if dask else stream.upstream
    stream.map(count_batch, iterations).buffer(IN_FLIGHT).gather().sink(merge)
    t0 = time.perf_counter()
    source.start()
    finished = done.wait(RUN_TIMEOUT)
    elapsed = time.perf_counter() - t0
    source.stop()
    if not finished:
        raise TimeoutError(f"dask={dask}: {seen[0]} of {n} messages")
    if source.error is not None:
        raise source.error
    return elapsed, total


def local_seconds_per_message(lines: list[bytes], iterations: int) -> float:
    sample = lines[:2_000]
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        count_batch(sample, iterations)
        best = min(best, (time.perf_counter() - t0) / len(sample))
    return best


def main(argv: list[str] | None = None) -> None:
    from _kafka import broker, delete_topics

    parser = base_parser(__doc__.split("\n\n")[0], 200_000)
    parser.add_argument("--bootstrap", help="a running broker (default: start a private one)")
    parser.add_argument(
        "--work-iterations",
        type=int,
        default=750,
        help="generator steps per message (default 750, about 50 us of CPU here)",
    )
    parser.add_argument(
        "--max-batch-size", type=int, default=5_000, help="max_batch_size (default 5000)"
    )
    parser.add_argument(
        "--poll-interval", type=float, default=0.1, help="poll_interval (default 0.1)"
    )
    args = parser.parse_args(argv)
    with broker(args.bootstrap) as bootstrap:
        topics: list[str] = []
        try:
            measure(args, bootstrap, topics)
        finally:
            delete_topics(bootstrap, topics)


def measure(args: Any, bootstrap: str, topics: list[str]) -> None:
    from _kafka import create_topic, load_topic, unique_name
    from kafka_wordcount import count_all, make_lines

    size, iterations = args.size, args.work_iterations
    load_before = load_avg()
    lines = make_lines(max(size, WARM_UP))
    per_message_s = local_seconds_per_message(lines, iterations)
    load_s: dict[str, float] = {}
    names: dict[int, str] = {}
    for n in sorted({size, min(size, WARM_UP)}):
        names[n] = create_topic(bootstrap, unique_name("millstream-bench-dask"), PARTITIONS)
        topics.append(names[n])
        t0 = time.perf_counter()
        load_topic(bootstrap, names[n], lines[:n], PARTITIONS)
        load_s[str(n)] = round(time.perf_counter() - t0, 3)
    expected = {n: count_all(lines[:n]) for n in names}

    def run(n: int, dask: bool) -> tuple[float, Counts]:
        return run_stream(
            bootstrap, names[n], n, iterations, dask, args.poll_interval, args.max_batch_size
        )

    checks: dict[str, bool] = {}
    with cluster(N_WORKERS) as (_local, client):
        runs: dict[str, Callable[[], tuple[float, Counts]]] = {
            "single_process": lambda: run(size, False),
            "dask": lambda: run(size, True),
        }
        small = min(names)
        for name, dask in (("single_process", False), ("dask", True)):
            checks[f"{name}_warm_up_counts_equal_counter"] = run(small, dask)[1] == expected[small]
        times: dict[str, list[float]] = {name: [] for name in runs}
        for _ in range(max(1, args.repeat)):
            for name, fn in runs.items():  # round robin: the figures taken in turn
                gc.collect()
                elapsed, total = fn()
                times[name].append(elapsed)
                key = f"{name}_counts_equal_counter"
                checks[key] = checks.get(key, True) and dict(total) == dict(expected[size])
                del total
        workers = len(client.scheduler_info()["workers"])

    best = {name: min(ts) for name, ts in times.items()}
    ratios = {
        "single_process_over_dask": best["single_process"] / best["dask"],
        "dask_efficiency": size * per_message_s / (N_WORKERS * best["dask"]),
    }
    targets = {
        "dask_vs_single_process": target(
            ratios["single_process_over_dask"],
            1.5,
            "single_process_time (dask=False) / dask_time (dask=True, 2 workers)",
        )
    }
    info = dask_machine(load_before)
    emit_json(
        {
            "benchmark": "dask_kafka",
            "workload": f"{size} messages (lines of 10 words) in a {PARTITIONS}-partition "
            f"topic -> per message decode + {iterations} LCG steps "
            f"({per_message_s * 1e6:.1f} us here) + word count, per-batch Counter -> merged",
            "size": size,
            "work_iterations": iterations,
            "work_per_message_local_s": round(per_message_s, 8),
            "pipeline": "Stream.from_kafka_batched(topic, params, poll_interval="
            f"{args.poll_interval}, max_batch_size={args.max_batch_size}, dask=True|False)"
            f".map(count_batch, {iterations}).buffer({IN_FLIGHT}).gather().sink(merge)",
            "cluster": f"LocalCluster(n_workers={N_WORKERS}, threads_per_worker=1, "
            f"processes=True), {workers} workers, up during both figures",
            "method": "time.perf_counter from start() until every message is merged, best of "
            f"{args.repeat} (figures taken in turn) after a warm-up of both on a "
            f"{min(size, WARM_UP)}-message topic; fresh consumer group each run; topic load "
            "times in load_s",
            "machine": info,
            "load_s": load_s,
            "times_s": {k: round(v, 4) for k, v in best.items()},
            "all_times_s": {k: [round(t, 4) for t in v] for k, v in times.items()},
            "ratios": {k: round(v, 3) for k, v in ratios.items()},
            "ratios_note": "dask_efficiency: size x local work per message / (2 x dask "
            "time), 1.0 being both workers busy with the per-message work all the time",
            "checks": checks,
            "targets": targets,
        }
    )
    if not all(checks.values()):
        raise SystemExit("check failed: " + ", ".join(k for k, v in checks.items() if not v))


if __name__ == "__main__":
    main()
