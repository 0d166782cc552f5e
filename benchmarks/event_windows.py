"""Benchmark: event-time tumbling windows, 1 s sums per key, against bytewax 0.21.

``--size`` events (default 500,000) ``(timestamp, key, value)``: 100 string keys,
1,000 events per second of event time, each event's timestamp shifted later by a
seeded random jitter below ``JITTER_S`` (2 s), so the stream is out of order by less
than 2 s; values are ints 1..99. Timestamps are whole microseconds (POSIX seconds as
floats, from 2023-11-14 22:13:20 UTC), so bytewax's datetimes hold exactly the same
instants. Every implementation computes the sum of ``value`` per key and per 1 s
tumbling event-time window (aligned on whole seconds) and gives the set of
``(key, window start, sum)``:

* plain Python (the reference): a dict per ``(key, window start)``, then sorted;
* millstream, ``Stream.from_iterable(events).window(Tumbling(1.0), 'sum', key=1,
  value=2, timestamp=0, max_out_of_orderness=BOUND_S)`` collected with
  ``sink_to_list``, ``flush()`` once the source has finished (closes the last
  windows); timed from ``start()`` to the end of ``flush()``. Extra figure: the same
  node fed by ``source.emit(event)`` per event (no event loop);
* bytewax 0.21.1: ``TestingSource -> key_on -> fold_window(EventClock(ts_getter,
  wait_for_system_duration=BOUND_S), TumblingWindower(1 s, align_to=the first
  second)) -> TestingSink``, run by ``bytewax.testing.run_main`` (one worker, this
  thread). bytewax needs timezone-aware datetimes: its copy of the events, with
  ``datetime`` timestamps, is built once before any clock starts, and only bytewax
  uses it. ``fold_window(..., ordered=False)`` (a sum needs no timestamp order;
  ``ordered=True`` buffers and sorts, slower) and ``TestingSource(batch_size=10000)``
  (the default, 1, is about 100x slower), the fastest settings found.

Both streaming implementations get the same disorder bound, ``BOUND_S`` = 2.5 s,
0.5 s more than the jitter: bytewax's ``EventClock`` watermark also advances with
the system time elapsed since a key's largest timestamp was seen, so with a bound
equal to the jitter it drops a few on-time events as late (seen: 3 of 500,000 with
100,000-event batches), which would fail the correctness check.

Target: bytewax_time / millstream_time >= 3 (millstream fed by ``from_iterable``).

Memory: peak RSS (``VmHWM`` of ``/proc/self/status``; ``ru_maxrss`` where there is
none) of the millstream pipeline over ``--memory-large`` (5,000,000) events vs over
``--memory-small`` (500,000), each in a fresh interpreter started before the timed
figures, the events generated lazily (a generator into ``from_iterable``), the
results folded into a count and checksum by the sink rather than kept (a list of
500,000 results would dominate); target ratio <= 1.2.

Every output is compared with the plain reference (the same sorted list of
``(key, window start, sum)``); the script exits non-zero if one differs.
Prints one JSON line. ``python benchmarks/event_windows.py --help`` for the options.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from operator import itemgetter
from typing import Any

from _common import (
    base_parser,
    best_times,
    emit_json,
    machine,
    max_target,
    run_millstream_source,
    target,
)

import millstream
from millstream.time import Tumbling

SEED = 20240701
KEYS = 100
EVENTS_PER_S = 1_000
JITTER_S = 2.0  # each timestamp is shifted later by [0, JITTER_S)
BOUND_S = 2.5  # max_out_of_orderness / wait_for_system_duration (see the docstring)
T0 = 1_700_000_000  # first second of event time (POSIX), 2023-11-14 22:13:20 UTC
WINDOW_S = 1.0
BYTEWAX_BATCH = 10_000

_KEY_NAMES = [f"k{i:02d}" for i in range(KEYS)]


def iter_events(n: int, seed: int = SEED) -> Iterator[tuple[float, str, int]]:
    """``n`` events ``(timestamp, key, value)``, lazily; the same ones for every seed run.

    Event ``i`` happens at ``T0 + i / EVENTS_PER_S`` plus a jitter in ``[0, JITTER_S)``,
    in whole microseconds.
    """
    rng = random.Random(seed)
    rand = rng.random
    keys = _KEY_NAMES
    step_us = 1_000_000 // EVENTS_PER_S
    jitter_us = int(JITTER_S * 1_000_000)
    t0_us = T0 * 1_000_000
    for i in range(n):
        ts_us = t0_us + i * step_us + int(rand() * jitter_us)
        yield ts_us / 1e6, keys[int(rand() * KEYS)], 1 + int(rand() * 99)


def to_bytewax(events: list[tuple[float, str, int]]) -> list[tuple[datetime, str, int]]:
    """The same events with timezone-aware UTC datetimes (exact: whole microseconds)."""
    utc = timezone.utc
    return [(datetime.fromtimestamp(ts, utc), key, value) for ts, key, value in events]


# -- plain reference -------------------------------------------------------------------
def plain_windows(events: Any) -> list[tuple[str, float, int]]:
    """Sum per ``(key, window start)`` with a dict, then sorted."""
    acc: dict[tuple[str, float], int] = {}
    floor = math.floor
    get = acc.get
    for ts, key, value in events:
        w = (key, floor(ts / WINDOW_S) * WINDOW_S)
        acc[w] = get(w, 0) + value
    return sorted((key, float(start), total) for (key, start), total in acc.items())


# -- millstream --------------------------------------------------------------------------
def millstream_window(source: Any) -> Any:
    return source.window(
        Tumbling(WINDOW_S),
        "sum",
        key=itemgetter(1),
        value=itemgetter(2),
        timestamp=itemgetter(0),
        max_out_of_orderness=BOUND_S,
    )


def millstream_results(results: list[Any]) -> list[tuple[str, float, int]] | None:
    """``WindowResult``s as sorted ``(key, start, sum)``; None if one is not final."""
    if any(r.kind != "final" for r in results):
        return None
    return sorted((r.key, float(r.window.start), r.value) for r in results)


def run_millstream_from_iterable(events: Any) -> tuple[float, list[Any]]:
    """From ``start()`` until the source has finished and ``flush()`` has returned."""
    source = millstream.Stream.from_iterable(events)  # type: ignore[attr-defined]
    node = millstream_window(source)
    out = node.sink_to_list()
    t0 = time.perf_counter()
    run_millstream_source(source, 600)
    node.flush()
    return time.perf_counter() - t0, out


def run_millstream_emit(events: Any) -> tuple[float, list[Any]]:
    """``source.emit(event)`` per event from this thread, then ``flush()``."""
    source = millstream.Stream()
    node = millstream_window(source)
    out = node.sink_to_list()
    emit = source.emit
    t0 = time.perf_counter()
    for event in events:
        emit(event)
    node.flush()
    return time.perf_counter() - t0, out


# -- bytewax ---------------------------------------------------------------------------------
def _bytewax_add(acc: int, event: tuple[datetime, str, int]) -> int:
    return acc + event[2]


def _bytewax_merge(a: int, b: int) -> int:
    return a + b


def _zero() -> int:
    return 0


def run_bytewax(
    bw_events: list[tuple[datetime, str, int]], batch_size: int = BYTEWAX_BATCH
) -> tuple[float, tuple[list[Any], int]]:
    """Build the dataflow, then time ``run_main``; returns (seconds, (results, late count))."""
    # imported here, not at the top, so that the memory children do not load bytewax
    import bytewax.operators as bw_op
    from bytewax.dataflow import Dataflow
    from bytewax.operators.windowing import EventClock, TumblingWindower, fold_window
    from bytewax.testing import TestingSink, TestingSource, run_main

    out: list[Any] = []
    late: list[Any] = []
    flow = Dataflow("event_windows")
    stream = bw_op.input("events", flow, TestingSource(bw_events, batch_size=batch_size))
    keyed = bw_op.key_on("key", stream, itemgetter(1))
    clock = EventClock(itemgetter(0), wait_for_system_duration=timedelta(seconds=BOUND_S))
    windower = TumblingWindower(
        length=timedelta(seconds=WINDOW_S), align_to=datetime.fromtimestamp(T0, timezone.utc)
    )
    windows = fold_window(
        "sum", keyed, clock, windower, _zero, _bytewax_add, _bytewax_merge, ordered=False
    )
    bw_op.output("out", windows.down, TestingSink(out))
    bw_op.output("late", windows.late, TestingSink(late))
    t0 = time.perf_counter()
    run_main(flow)
    return time.perf_counter() - t0, (out, len(late))


def bytewax_results(output: tuple[list[Any], int]) -> list[tuple[str, float, int]]:
    """``(key, (window id, sum))`` items as sorted ``(key, start, sum)``."""
    out, _ = output
    return sorted((key, float(T0 + wid * WINDOW_S), total) for key, (wid, total) in out)


# -- memory (fresh interpreter per size) -------------------------------------------------------
def checksum(results: Any) -> tuple[int, int, int]:
    """(count, total of the sums, an order-independent digest) of ``(key, start, sum)``s."""
    count = total = digest = 0
    for key, start, value in results:
        count += 1
        total += value
        digest = (digest + (int(start) * 131 + int(key[1:])) * value) % (1 << 61)
    return count, total, digest


def _peak_rss_bytes() -> tuple[int, str]:
    """This process's peak RSS and where it was read.

    ``VmHWM`` of ``/proc/self/status`` (Linux): the high-water mark of this process's
    own memory map, which starts afresh at ``exec``. ``ru_maxrss`` is the fallback
    elsewhere; on Linux it is not used because it carries over the peak of the memory
    map copied at ``fork`` (the parent's RSS, here a few hundred MB of events) across
    ``exec``.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024, "VmHWM"
    except OSError:
        pass
    import resource

    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kib * (1 if sys.platform == "darwin" else 1024), "ru_maxrss"


def memory_child(n: int) -> None:
    """Run the millstream pipeline over ``n`` lazily generated events; print a JSON line.

    ``rss_at_start_bytes``: RSS once the modules are imported, before the pipeline is
    built; ``peak_rss_at_start_bytes``: the peak RSS until then (imports);
    ``peak_rss_bytes``: the peak RSS of the whole process at the end.
    """
    import psutil

    rss_start = psutil.Process().memory_info().rss
    peak_start, _ = _peak_rss_bytes()
    state = [0, 0, 0]  # count, total, digest
    bad = [0]

    def fold(r: Any) -> None:
        if r.kind != "final":
            bad[0] += 1
        state[0] += 1
        state[1] += r.value
        state[2] = (state[2] + (int(r.window.start) * 131 + int(r.key[1:])) * r.value) % (1 << 61)

    source = millstream.Stream.from_iterable(iter_events(n))  # type: ignore[attr-defined]
    node = millstream_window(source)
    node.sink(fold)
    t0 = time.perf_counter()
    run_millstream_source(source, 3600)
    node.flush()
    elapsed = time.perf_counter() - t0
    peak, peak_source = _peak_rss_bytes()
    rss_end = psutil.Process().memory_info().rss
    print(
        json.dumps(
            {
                "events": n,
                "peak_rss_bytes": peak,
                "peak_rss_from": peak_source,
                "peak_rss_at_start_bytes": peak_start,
                "rss_at_start_bytes": rss_start,
                "rss_at_end_bytes": rss_end,
                "seconds": round(elapsed, 3),
                "checksum": [*state],
                "non_final": bad[0],
            }
        )
    )


def measure_memory(n: int) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--memory-child", str(n)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        raise SystemExit(f"memory child ({n} events) failed with status {proc.returncode}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


# -- main ------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> None:
    parser = base_parser(__doc__.split("\n\n")[0], 500_000)
    parser.add_argument(
        "--memory-small",
        type=int,
        default=500_000,
        help="events of the smaller memory run (default 500,000)",
    )
    parser.add_argument(
        "--memory-large",
        type=int,
        default=5_000_000,
        help="events of the larger memory run (default 5,000,000)",
    )
    parser.add_argument(
        "--bytewax-batch-size",
        type=int,
        default=BYTEWAX_BATCH,
        help=f"TestingSource batch_size for bytewax (default {BYTEWAX_BATCH})",
    )
    parser.add_argument("--memory-child", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_child:
        memory_child(args.memory_child)
        return
    import bytewax  # a missing bytewax fails here, before any figure is taken

    load_before = [round(v, 2) for v in os.getloadavg()]
    # The memory children first, while this process is small; their checks come later.
    memory: dict[str, Any] = {}
    if not args.no_memory:
        for label, n in (("small", args.memory_small), ("large", args.memory_large)):
            memory[label] = measure_memory(n)
    size = args.size
    events = list(iter_events(size))
    bw_events = to_bytewax(events)  # bytewax only; built before any clock starts
    expected = plain_windows(events)
    checks: dict[str, bool] = {}
    late_counts: dict[str, int] = {}

    def correct(name: str, out: Any) -> bool:
        if name == "plain":
            return bool(out == expected)
        if name.startswith("millstream"):
            return millstream_results(out) == expected
        late_counts["bytewax"] = max(late_counts.get("bytewax", 0), out[1])
        return out[1] == 0 and bytewax_results(out) == expected

    # Warm-up: every implementation once on a small input (starts millstream's loop thread).
    warm = events[: min(size, 5_000)]
    warm_expected = plain_windows(warm)
    checks["millstream_warm_up_equal_plain"] = (
        millstream_results(run_millstream_from_iterable(warm)[1]) == warm_expected
        and millstream_results(run_millstream_emit(warm)[1]) == warm_expected
    )
    checks["bytewax_warm_up_equal_plain"] = (
        bytewax_results(run_bytewax(bw_events[: len(warm)], args.bytewax_batch_size)[1])
        == warm_expected
    )

    timed_runs: dict[str, Callable[[], tuple[float | None, Any]]] = {
        "plain": lambda: (None, plain_windows(events)),
        "millstream_from_iterable": lambda: run_millstream_from_iterable(events),
        "millstream_emit": lambda: run_millstream_emit(events),
        "bytewax": lambda: run_bytewax(bw_events, args.bytewax_batch_size),
    }
    times, ok = best_times(timed_runs, args.repeat, correct)
    for name, good in ok.items():
        checks[f"{name}_windows_equal_plain"] = good
    ratios = {
        "bytewax_over_millstream_from_iterable": times["bytewax"]
        / times["millstream_from_iterable"],
        "bytewax_over_millstream_emit": times["bytewax"] / times["millstream_emit"],
        "plain_over_millstream_from_iterable": times["plain"] / times["millstream_from_iterable"],
    }
    targets = {
        "millstream_vs_bytewax": target(
            ratios["bytewax_over_millstream_from_iterable"],
            3,
            "bytewax_time / millstream_time (from_iterable)",
        ),
    }

    if memory:
        for label, n in (("small", args.memory_small), ("large", args.memory_large)):
            run = memory[label]
            want = checksum(plain_windows(iter_events(n)))
            checks[f"memory_{label}_windows_equal_plain"] = (
                tuple(run["checksum"]) == want and run["non_final"] == 0
            )
            run["peak_growth_bytes"] = run["peak_rss_bytes"] - run["rss_at_start_bytes"]
        ratio = memory["large"]["peak_rss_bytes"] / memory["small"]["peak_rss_bytes"]
        ratios["memory_large_over_small"] = ratio
        targets["memory_bounded"] = max_target(
            ratio,
            1.2,
            f"peak RSS of the millstream pipeline over {args.memory_large} events / over "
            f"{args.memory_small} (fresh interpreter each, events generated lazily)",
        )

    info = machine()
    info["bytewax"] = getattr(bytewax, "__version__", None) or _dist_version("bytewax")
    info["load_avg_before"] = load_before
    info["load_avg_after"] = [round(v, 2) for v in os.getloadavg()]
    info["git"] = _git_describe()
    emit_json(
        {
            "benchmark": "event_windows",
            "workload": f"{size} events (timestamp, key, value), {KEYS} keys, "
            f"{EVENTS_PER_S} events per second of event time, each shifted later by a "
            f"jitter in [0, {JITTER_S:g}) s (seed {SEED}); 1 s tumbling event-time sums "
            f"per key; disorder bound {BOUND_S:g} s (max_out_of_orderness / "
            "wait_for_system_duration)",
            "size": size,
            "windows": len(expected),
            "pipelines": {
                "plain": "dict[(key, floor(ts))] += value, then sorted",
                "millstream_from_iterable": "Stream.from_iterable(events).window(Tumbling(1.0), "
                f"'sum', key=itemgetter(1), value=itemgetter(2), timestamp=itemgetter(0), "
                f"max_out_of_orderness={BOUND_S:g}).sink_to_list(); flush() after the source "
                "finished",
                "millstream_emit": "the same node under Stream(), source.emit(event) per "
                "event, then flush()",
                "bytewax": "TestingSource(events with aware datetimes, "
                f"batch_size={args.bytewax_batch_size}) -> key_on -> fold_window("
                f"EventClock(itemgetter(0), wait_for_system_duration={BOUND_S:g} s), "
                "TumblingWindower(1 s, align_to=T0), ordered=False) -> TestingSink; "
                "bytewax.testing.run_main",
            },
            "method": f"time.perf_counter, best of {args.repeat} (figures taken in turn) after "
            "a warm-up of every implementation on 5000 events; pipelines and dataflows built "
            "before the clock starts; millstream from_iterable timed from start() to the end "
            "of flush(); bytewax's datetime copy of the events built once beforehand; peak "
            "RSS (VmHWM) of the millstream pipeline in a fresh interpreter per size, run "
            "before the timed figures, events generated lazily, results folded into a "
            "checksum",
            "machine": info,
            "times_s": {k: round(v, 6) for k, v in times.items()},
            "ratios": {k: round(v, 3) for k, v in ratios.items()},
            "bytewax_late_events": late_counts.get("bytewax", 0),
            "memory": memory,
            "checks": checks,
            "targets": targets,
        }
    )
    if not all(checks.values()):
        raise SystemExit("window check failed: " + ", ".join(k for k, v in checks.items() if not v))


def _dist_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "unknown"


def _git_describe() -> str:
    try:
        return subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=os.path.dirname(os.path.abspath(__file__)),
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


if __name__ == "__main__":
    main()
