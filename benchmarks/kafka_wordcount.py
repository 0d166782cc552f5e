"""Benchmark: word count over a Kafka topic, ``from_kafka_batched`` against a raw consumer.

``--size`` messages (default 1,000,000) of about 100 bytes each, lines of 10 words
drawn (seeded) from a vocabulary of 10,000 words, are written round robin to a
4-partition topic once (a raw ``Producer``), then read back and counted in the same
run by:

* ``raw``: one ``confluent_kafka.Consumer`` (fresh group, ``list_topics`` to connect,
  every partition assigned from the beginning), ``consume(num_messages=10000,
  timeout=poll_interval)`` in a loop, each message checked for an error and counted
  with ``counts.update(m.value().decode().split())``; no offset commits. The reference.
* ``millstream_batch``: ``Stream.from_kafka_batched(topic, {..., fresh group.id,
  'auto.offset.reset': 'earliest'}, poll_interval, max_batch_size=10000)``
  ``.map(decode_batch).accumulate(count_lines, start=Counter())`` -> sink keeping the
  last value: the raw loop's counting, per batch (``decode_batch`` decodes each value,
  ``count_lines`` does ``counts.update(line.split())`` per line). millstream also
  commits the group's offsets as it goes.
* ``streamz_batch``: the same pipeline on Streamz 0.6.6's ``from_kafka_batched`` (a
  consumer made per batch and polled one message at a time, 0.1 s sleeps whenever
  nothing is there), on ``--streamz-size`` messages (default: all of them).
* ``*_per_word`` (for information, no target): the Streamz word-count style
  ``.map(decode_batch).flatten().map(str.split).flatten().frequencies()``, one element
  per word. Streamz's ``frequencies`` copies its whole dict for every word, so Streamz
  runs this on ``--streamz-words-size`` messages (default size / 100), scaled.

A run reading fewer messages than ``--size`` reads a topic holding exactly the first
lines (one topic per size), and its time is multiplied per message (stated in the
JSON). Every run is timed from the consumer's creation (``start()`` for the streams)
until every message of its topic is counted, and its last counts must equal a
``collections.Counter`` over the lines of that topic. All readers get librdkafka's
default settings plus the same ``--consumer-param`` ones.

Bounded memory (``--memory-size`` messages, default 200,000; each pass in a fresh
interpreter): ``from_kafka_batched(..., max_batch_size=1000).buffer(100000)
.map(decode_batch).sink(slow)``, ``slow`` a coroutine sleeping ``--slow-sink`` seconds
per batch, so the reading outruns the sink and the buffer could take the whole topic.
A thread samples the RSS (psutil) and the source's ``tracker.in_flight`` every 5 ms.
Passes: the default cap (``max_in_flight=8``), the cap lifted (``10**9``), and the
floor: a raw consumer with the same settings taking 1000 messages per ``--slow-sink``
(what librdkafka itself holds). librdkafka's prefetch is kept small in all three
(``MEMORY_PARAMS``, stated in the JSON) so that the graph's share shows.

Targets: raw_time / millstream_batch_time >= 0.8; streamz_batch_time (scaled) /
millstream_batch_time >= 3; max in-flight batches seen <= the cap (8); peak RSS
growth above the floor, capped / uncapped, <= 0.25.

``--bootstrap host:port`` uses a running broker (fresh topics and groups, the topics
deleted at the end); without it a private broker is started with
``scripts/kafka-broker`` in a temporary directory and stopped at exit. Prints one
JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import gc
import json
import random
import string
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import streamz
from _common import base_parser, emit_json, machine, max_target, target
from _kafka import broker, create_topic, delete_topics, load_topic, unique_name

import millstream

VOCABULARY = 10_000
WORDS_PER_LINE = 10
PARTITIONS = 4
SEED = 20240617
MAX_BATCH = 10_000
MEMORY_BATCH = 1_000
#: librdkafka's prefetch queue in the memory pass: small, and refilled without its 1 s backoff
MEMORY_PARAMS = {"queued.max.messages.kbytes": 2048, "fetch.queue.backoff.ms": 10}
RUN_TIMEOUT = 900.0

Counts = collections.Counter[str]


# -- the data -------------------------------------------------------------------------------


def make_lines(n_lines: int, seed: int = SEED) -> list[bytes]:
    """``n_lines`` lines of ``WORDS_PER_LINE`` words (about 100 bytes), seeded."""
    rng = random.Random(seed)
    vocab: set[str] = set()
    while len(vocab) < VOCABULARY:
        vocab.add("".join(rng.choices(string.ascii_lowercase, k=rng.randint(6, 12))))
    words = sorted(vocab)
    choices = rng.choices
    return [" ".join(choices(words, k=WORDS_PER_LINE)).encode() for _ in range(n_lines)]


def count_all(lines: list[bytes]) -> Counts:
    counts: Counts = collections.Counter()
    for line in lines:
        counts.update(line.decode().split())
    return counts


# -- the pipelines (the same functions for millstream and Streamz) --------------------------


def decode_batch(batch: list[bytes]) -> list[str]:
    return [v.decode() for v in batch]


def count_lines(counts: Counts, lines: list[str]) -> Counts:
    update = counts.update
    for line in lines:
        update(line.split())
    return counts


def batch_pipeline(stream: Any) -> list[Any]:
    """``map(decode_batch).accumulate(count_lines, start=Counter())`` -> keep the last."""
    last: list[Any] = [None]

    def keep(v: Any) -> None:
        last[0] = v

    stream.map(decode_batch).accumulate(count_lines, start=collections.Counter()).sink(keep)
    return last


def per_word_pipeline(stream: Any) -> list[Any]:
    """The Streamz word-count style: one element per word into ``frequencies``."""
    last: list[Any] = [None]

    def keep(v: Any) -> None:
        last[0] = v

    stream.map(decode_batch).flatten().map(str.split).flatten().frequencies().sink(keep)
    return last


# -- the runs -------------------------------------------------------------------------------


#: librdkafka settings given with ``--consumer-param``, applied to every reader alike
EXTRA_PARAMS: dict[str, str] = {}


def consumer_params(bootstrap: str, **extra: Any) -> dict[str, Any]:
    params = {
        "bootstrap.servers": bootstrap,
        "group.id": unique_name("millstream-bench-group"),
        "auto.offset.reset": "earliest",
        **EXTRA_PARAMS,
    }
    params.update(extra)
    return params


def run_raw(bootstrap: str, topic: str, n: int, poll_interval: float) -> tuple[float, Counts]:
    """The reference: ``consume(num_messages=10000)`` in a loop, counting each message."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    t0 = time.perf_counter()
    consumer = Consumer(consumer_params(bootstrap, **{"enable.auto.commit": False}))
    try:
        # connect first (as the sources do): librdkafka otherwise retries its first
        # offset query after 500 ms
        consumer.list_topics(topic, timeout=30)
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
        counts: Counts = collections.Counter()
        update = counts.update
        consume = consumer.consume
        seen = 0
        deadline = t0 + RUN_TIMEOUT
        while seen < n:
            for m in consume(num_messages=10_000, timeout=poll_interval):
                if m.error() is None:
                    update(m.value().decode().split())  # type: ignore[union-attr]
                    seen += 1
            if time.perf_counter() > deadline:
                raise TimeoutError(f"raw consumer: {seen} of {n} messages")
        elapsed = time.perf_counter() - t0
    finally:
        consumer.close()
    return elapsed, counts


def run_stream(
    lib: Any,
    pipeline: Callable[[Any], list[Any]],
    bootstrap: str,
    topic: str,
    n: int,
    poll_interval: float,
) -> tuple[float, Counts]:
    """``lib.Stream.from_kafka_batched`` -> ``pipeline``; time from start() to ``n`` counted.

    A second branch on the batches counts the messages (one call per batch); it is
    attached after the pipeline, so it sees a batch after the pipeline has counted it.
    """
    stream = lib.Stream.from_kafka_batched(
        topic,
        consumer_params(bootstrap),
        poll_interval=poll_interval,
        max_batch_size=MAX_BATCH,
    )
    source = stream.upstream
    last = pipeline(stream)
    done = threading.Event()
    seen = [0]

    def progress(batch: list[bytes]) -> None:
        seen[0] += len(batch)
        if seen[0] >= n:
            done.set()

    stream.sink(progress)
    t0 = time.perf_counter()
    source.start()
    finished = done.wait(RUN_TIMEOUT)
    elapsed = time.perf_counter() - t0
    source.stop()
    if not finished:
        raise TimeoutError(f"{lib.__name__}: {seen[0]} of {n} messages")
    error = getattr(source, "error", None)
    if error is not None:
        raise error
    return elapsed, last[0]


# -- bounded memory (each pass in a fresh interpreter) --------------------------------------


class _Sampler:
    """A thread sampling the peak RSS (and ``in_flight()``) every 5 ms."""

    def __init__(self, in_flight: Callable[[], int] = lambda: 0):
        import psutil

        self._process = psutil.Process()
        self._in_flight = in_flight
        self._stop = threading.Event()
        gc.collect()
        self.base = self._process.memory_info().rss
        self.peak = self.base
        self.max_in_flight = 0
        self.samples = 0
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._process.memory_info().rss)
            self.max_in_flight = max(self.max_in_flight, self._in_flight())
            self.samples += 1
            time.sleep(0.005)

    def stop(self) -> dict[str, Any]:
        self._stop.set()
        self._thread.join()
        return {
            "rss_before_bytes": self.base,
            "peak_rss_growth_bytes": self.peak - self.base,
            "samples": self.samples,
        }


def memory_pass(bootstrap: str, topic: str, n: int, cap: int, delay: float) -> dict[str, Any]:
    """Read ``topic`` (``n`` messages) through a big buffer into a slow sink; sample RSS.

    ``cap=0``: the floor instead, a raw consumer taking ``MEMORY_BATCH`` messages every
    ``delay`` seconds (what librdkafka itself holds when the reader is slow).
    """
    import confluent_kafka

    # librdkafka loaded and initialised before the baseline
    confluent_kafka.Consumer({"bootstrap.servers": bootstrap, "group.id": "x"}).close()
    params = consumer_params(bootstrap, **MEMORY_PARAMS)
    counts: Counts = collections.Counter()
    if cap == 0:
        sampler = _Sampler()
        t0 = time.perf_counter()
        consumer = confluent_kafka.Consumer({**params, "enable.auto.commit": False})
        consumer.list_topics(topic, timeout=30)
        consumer.assign(
            [
                confluent_kafka.TopicPartition(topic, p, confluent_kafka.OFFSET_BEGINNING)
                for p in range(PARTITIONS)
            ]
        )
        seen = 0
        while seen < n:
            values = [m.value() for m in consumer.consume(MEMORY_BATCH, 0.1) if not m.error()]
            time.sleep(delay)
            count_lines(counts, decode_batch(values))  # type: ignore[arg-type]
            seen += len(values)
        elapsed = time.perf_counter() - t0
        result = sampler.stop()
        consumer.close()
        return {"seconds": round(elapsed, 3), **result, "counts": dict(counts)}

    stream = millstream.Stream.from_kafka_batched(  # type: ignore[attr-defined]
        topic, params, poll_interval=0.1, max_batch_size=MEMORY_BATCH, max_in_flight=cap
    )
    source = stream.upstream
    done = threading.Event()
    total = [0]

    async def slow(lines: list[str]) -> None:
        await asyncio.sleep(delay)
        count_lines(counts, lines)
        total[0] += len(lines)
        if total[0] >= n:
            done.set()

    stream.buffer(100_000).map(decode_batch).sink(slow)
    sampler = _Sampler(lambda: source.tracker.in_flight)
    t0 = time.perf_counter()
    source.start()
    finished = done.wait(RUN_TIMEOUT)
    elapsed = time.perf_counter() - t0
    result = sampler.stop()
    source.stop()
    if not finished:
        raise TimeoutError(f"memory pass: {total[0]} of {n} messages")
    return {
        "max_in_flight": cap,
        "seconds": round(elapsed, 3),
        **result,
        "max_in_flight_seen": sampler.max_in_flight,
        "counts": dict(counts),
    }


def run_memory_child(bootstrap: str, topic: str, n: int, cap: int, delay: float) -> dict:
    """Run :func:`memory_pass` in a fresh interpreter (a clean RSS baseline)."""
    proc = subprocess.run(
        [
            sys.executable,
            str(Path(__file__).resolve()),
            "--memory-child",
            json.dumps([bootstrap, topic, n, cap, delay, EXTRA_PARAMS]),
        ],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"memory pass failed:\n{proc.stderr}")
    return json.loads(proc.stdout)


# -- main -----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = base_parser(__doc__.split("\n\n")[0], 1_000_000)
    parser.add_argument("--bootstrap", help="a running broker (default: start a private one)")
    parser.add_argument(
        "--streamz-size",
        type=int,
        default=0,
        help="messages Streamz's batch pipeline reads, its time scaled per message "
        "(default: --size)",
    )
    parser.add_argument(
        "--streamz-words-size",
        type=int,
        default=0,
        help="messages Streamz's per-word pipeline reads, scaled "
        "(default: size / 100, at least 1000)",
    )
    parser.add_argument(
        "--memory-size",
        type=int,
        default=200_000,
        help="messages of the bounded-memory pass (default 200000)",
    )
    parser.add_argument(
        "--slow-sink",
        type=float,
        default=0.02,
        help="seconds the memory pass's sink sleeps per batch of 1000 (default 0.02)",
    )
    parser.add_argument(
        "--poll-interval", type=float, default=0.1, help="poll_interval of every reader"
    )
    parser.add_argument(
        "--consumer-param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a librdkafka setting given to every reader alike (repeatable), "
        "e.g. fetch.queue.backoff.ms=10",
    )
    parser.add_argument("--memory-child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for item in args.consumer_param:
        key, sep, value = item.partition("=")
        if not sep or not key:
            parser.error(f"--consumer-param needs KEY=VALUE, got {item!r}")
        EXTRA_PARAMS[key.strip()] = value.strip()
    if args.memory_child:
        bootstrap, topic, n, cap, delay, extra = json.loads(args.memory_child)
        EXTRA_PARAMS.update(extra)
        sys.stdout.write(json.dumps(memory_pass(bootstrap, topic, n, cap, delay)) + "\n")
        return
    with broker(args.bootstrap) as bootstrap:
        topics: dict[int, str] = {}
        try:
            measure(args, bootstrap, topics)
        finally:
            delete_topics(bootstrap, list(topics.values()))


def measure(args: Any, bootstrap: str, topics: dict[int, str]) -> None:
    size = args.size
    zsize = min(args.streamz_size or size, size)
    wsize = min(args.streamz_words_size or max(size // 100, 1_000), size)
    msize = min(args.memory_size, size)
    poll = args.poll_interval
    lines = make_lines(max(size, msize))

    # one topic per size, each holding the first ``n`` lines (every run reads a whole topic)
    load_s: dict[str, float] = {}
    for n in sorted({size, zsize, wsize, *(() if args.no_memory else (msize,))}):
        topics[n] = create_topic(bootstrap, unique_name("millstream-bench-wc"), PARTITIONS)
        t0 = time.perf_counter()
        load_topic(bootstrap, topics[n], lines[:n], PARTITIONS)
        load_s[str(n)] = round(time.perf_counter() - t0, 3)
    expected = {n: count_all(lines[:n]) for n in topics}

    runs: dict[str, tuple[int, Callable[[], tuple[float, Counts]]]] = {
        "raw": (size, lambda: run_raw(bootstrap, topics[size], size, poll)),
        "millstream_batch": (
            size,
            lambda: run_stream(millstream, batch_pipeline, bootstrap, topics[size], size, poll),
        ),
        "streamz_batch": (
            zsize,
            lambda: run_stream(streamz, batch_pipeline, bootstrap, topics[zsize], zsize, poll),
        ),
        "millstream_per_word": (
            size,
            lambda: run_stream(millstream, per_word_pipeline, bootstrap, topics[size], size, poll),
        ),
        "streamz_per_word": (
            wsize,
            lambda: run_stream(streamz, per_word_pipeline, bootstrap, topics[wsize], wsize, poll),
        ),
    }
    # warm-up: each reader once on the smallest topic (starts the loop threads)
    small = min(topics)
    run_raw(bootstrap, topics[small], small, poll)
    run_stream(millstream, batch_pipeline, bootstrap, topics[small], small, poll)
    run_stream(streamz, batch_pipeline, bootstrap, topics[small], small, poll)

    times: dict[str, list[float]] = {name: [] for name in runs}
    checks: dict[str, bool] = {}
    for _ in range(max(1, args.repeat)):
        for name, (n, run) in runs.items():
            gc.collect()
            elapsed, out = run()
            times[name].append(elapsed)
            good = out is not None and dict(out) == dict(expected[n])
            checks[f"{name}_counts_equal_counter"] = (
                checks.get(f"{name}_counts_equal_counter", True) and good
            )
            del out
    best = {name: min(ts) for name, ts in times.items()}
    sizes = {name: n for name, (n, _) in runs.items()}
    scaled = {name: best[name] * size / sizes[name] for name in runs}
    ratios = {
        "raw_over_millstream_batch": best["raw"] / best["millstream_batch"],
        "streamz_over_millstream_batch": scaled["streamz_batch"] / best["millstream_batch"],
        "raw_over_millstream_per_word": best["raw"] / best["millstream_per_word"],
        "streamz_over_millstream_per_word": scaled["streamz_per_word"]
        / best["millstream_per_word"],
    }
    targets = {
        "millstream_vs_raw": target(
            ratios["raw_over_millstream_batch"], 0.8, "raw_time / millstream_batch_time"
        ),
        "millstream_vs_streamz": target(
            ratios["streamz_over_millstream_batch"],
            3,
            "streamz_batch_time (scaled per message) / millstream_batch_time",
        ),
    }

    memory: dict[str, Any] = {}
    if not args.no_memory:
        capped = run_memory_child(bootstrap, topics[msize], msize, 8, args.slow_sink)
        uncapped = run_memory_child(bootstrap, topics[msize], msize, 10**9, args.slow_sink)
        floor = run_memory_child(bootstrap, topics[msize], msize, 0, args.slow_sink)
        for name, result in (("capped", capped), ("uncapped", uncapped), ("raw_floor", floor)):
            checks[f"memory_{name}_counts_equal_counter"] = result.pop("counts") == dict(
                expected[msize]
            )
            memory[name] = result
        topic_bytes = sum(len(v) for v in lines[:msize])
        memory["topic_value_bytes"] = topic_bytes
        memory["workload"] = (
            f"{msize} messages, from_kafka_batched(max_batch_size={MEMORY_BATCH}, "
            f"consumer params {MEMORY_PARAMS}).buffer(100000)"
            f".map(decode_batch).sink(async: sleep {args.slow_sink} s, count) with "
            "max_in_flight 8 (capped) and 10**9 (uncapped); raw_floor: a raw consumer with the "
            f"same params taking {MEMORY_BATCH} messages every {args.slow_sink} s; each pass in "
            "a fresh interpreter, RSS (psutil) and tracker.in_flight sampled every 5 ms"
        )
        targets["memory_in_flight_capped"] = max_target(
            capped["max_in_flight_seen"], 8, "max tracker.in_flight seen (batches), cap 8"
        )
        base = floor["peak_rss_growth_bytes"]
        targets["memory_bounded"] = max_target(
            (capped["peak_rss_growth_bytes"] - base)
            / max(uncapped["peak_rss_growth_bytes"] - base, 1),
            0.25,
            "peak RSS growth above the raw floor: capped / uncapped (max_in_flight=10**9)",
        )

    emit_json(
        {
            "benchmark": "kafka_wordcount",
            "workload": f"{size} messages (lines of {WORDS_PER_LINE} words, ~"
            f"{sum(len(v) for v in lines[:size]) // max(size, 1)} bytes, vocabulary "
            f"{VOCABULARY}, seed {SEED}) in a {PARTITIONS}-partition topic -> word count",
            "size": size,
            "streamz_size": zsize,
            "streamz_words_size": wsize,
            "streamz_time_scaled": zsize != size or wsize != size,
            "streamz_scale_note": (
                f"Streamz's batch pipeline read a topic of the first {zsize} lines and its "
                f"per-word pipeline one of the first {wsize}; their times are multiplied by "
                f"{size / zsize:g} and {size / wsize:g} (per-message scaling) in "
                "times_scaled_to_size_s and the ratios"
            ),
            "method": f"time.perf_counter from consumer creation / start() until every message "
            f"of the topic is counted, best of {args.repeat} (figures taken in turn) after a "
            f"warm-up on the smallest topic; poll_interval {poll} s, max_batch_size {MAX_BATCH}, "
            "fresh consumer group each run; topic load times in load_s",
            "machine": machine(),
            "consumer_params_extra": dict(EXTRA_PARAMS),
            "load_s": load_s,
            "times_s": {k: round(v, 6) for k, v in best.items()},
            "all_times_s": {k: [round(t, 4) for t in v] for k, v in times.items()},
            "times_scaled_to_size_s": {k: round(v, 6) for k, v in scaled.items()},
            "ratios": {k: round(v, 3) for k, v in ratios.items()},
            "peak_memory_bytes": {
                k: memory[k]["peak_rss_growth_bytes"]
                for k in ("capped", "uncapped", "raw_floor")
                if memory
            },
            "memory": memory,
            "distinct_words": len(expected[size]),
            "checks": checks,
            "targets": targets,
        }
    )
    if not all(checks.values()):
        raise SystemExit("count check failed: " + ", ".join(k for k, v in checks.items() if not v))


if __name__ == "__main__":
    main()
