"""Shared helpers of the benchmark scripts: timing, peak memory, machine facts, output.

Every benchmark script imports this module (it sits next to them, so running
``python benchmarks/<name>.py`` finds it) and prints exactly one JSON line.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

__all__ = [
    "base_parser",
    "best_times",
    "emit_json",
    "machine",
    "max_target",
    "peak_memory",
    "run_millstream_source",
    "run_streamz_source",
    "target",
]


def base_parser(description: str, default_size: int) -> argparse.ArgumentParser:
    """The options every benchmark script takes."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--size", type=int, default=default_size, help=f"input size (default {default_size})"
    )
    parser.add_argument(
        "--repeat", type=int, default=3, help="timed runs per figure; the best is kept (default 3)"
    )
    parser.add_argument(
        "--no-memory", action="store_true", help="skip the tracemalloc pass (peak memory)"
    )
    return parser


def best_times(
    runs: dict[str, Callable[[], tuple[float | None, Any]]],
    repeat: int,
    check: Callable[[str, Any], bool],
) -> tuple[dict[str, float], dict[str, bool]]:
    """Best of ``repeat`` runs of each figure, the figures taken in turn (round robin).

    Each run returns ``(seconds, output)``: ``seconds`` is what the run measured itself
    (when the interval of interest is not the whole call, e.g. from ``start()`` to
    the last element) or ``None`` to time the whole call with ``time.perf_counter``.
    Taking the figures in turn, rather than all runs of one then all runs of the
    next, spreads a transient slow spell of the machine over all of them.
    ``check(name, output)`` is applied to every output; returns the times and, per
    figure, whether every output passed.
    """
    times: dict[str, list[float]] = {name: [] for name in runs}
    ok = {name: True for name in runs}
    for _ in range(max(1, repeat)):
        for name, run in runs.items():
            gc.collect()
            t0 = time.perf_counter()
            measured, output = run()
            elapsed = time.perf_counter() - t0
            times[name].append(measured if measured is not None else elapsed)
            ok[name] = ok[name] and check(name, output)
            del output
    return {name: min(ts) for name, ts in times.items()}, ok


def peak_memory(run: Callable[[], Any]) -> int:
    """Peak bytes allocated (tracemalloc, all threads) while ``run()`` runs.

    Run apart from the timed runs: tracing slows allocation down a lot.
    """
    gc.collect()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        run()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return peak - base


def run_millstream_source(source: Any, timeout: float = 600.0) -> float:
    """Start a millstream source and wait until its ``run()`` has finished.

    Returns the seconds from ``start()`` until the source task is done, that is
    until the last element has gone through the (synchronous) graph. The waiting is
    done on a ``threading.Event`` set by a coroutine that awaits the source's task
    on the graph's loop, so the caller's thread does not compete for the GIL.
    """
    done = threading.Event()

    async def watch() -> None:
        try:
            await source.work_task
        finally:
            done.set()

    t0 = time.perf_counter()
    source.start()
    source.loop.add_callback(watch)  # runs after the source's own launch callback
    if not done.wait(timeout):
        raise TimeoutError("millstream source did not finish")
    elapsed = time.perf_counter() - t0
    if source.error is not None:
        raise source.error
    return elapsed


def run_streamz_source(source: Any, finished: Callable[[], bool], timeout: float = 600.0) -> float:
    """Start a Streamz source and poll (every 1 ms) until ``finished()``; return the seconds.

    Streamz's ``Source.start`` gives no handle on the running coroutine, so the
    caller's thread polls; at one wake-up per millisecond this costs well under 1%
    of a Streamz run.
    """
    t0 = time.perf_counter()
    source.start()
    deadline = t0 + timeout
    while not finished():
        if time.perf_counter() > deadline:
            raise TimeoutError("streamz source did not finish")
        time.sleep(0.001)
    return time.perf_counter() - t0


def machine() -> dict[str, Any]:
    """Facts about the machine and interpreter the figures were taken on."""
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpu": cpu,
        "cpus": len(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
    }
    try:
        import psutil

        info["memory_gib"] = round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:
        pass
    try:
        import streamz

        info["streamz"] = streamz.__version__
    except ImportError:
        pass
    import millstream

    info["millstream"] = getattr(millstream, "__version__", "unknown")
    return info


def target(value: float, minimum: float, what: str) -> dict[str, Any]:
    """One target: ``value`` must be at least ``minimum``."""
    return {
        "what": what,
        "value": round(value, 3),
        "target": f">= {minimum:g}",
        "pass": value >= minimum,
    }


def max_target(value: float, maximum: float, what: str) -> dict[str, Any]:
    """One target: ``value`` must be at most ``maximum``."""
    return {
        "what": what,
        "value": round(value, 3),
        "target": f"<= {maximum:g}",
        "pass": value <= maximum,
    }


def emit_json(result: dict[str, Any]) -> None:
    """Print the result as one JSON line (the only line a script writes to stdout)."""
    result["all_targets_passed"] = all(t["pass"] for t in result.get("targets", {}).values())
    result["all_checks_passed"] = all(result.get("checks", {}).values())
    sys.stdout.write(json.dumps(result, sort_keys=False) + "\n")
    sys.stdout.flush()
