"""Benchmark: a chain of 5 trivial maps into a list.

``data -> map(inc) x5 -> list``, with ``def inc(x): return x + 1``, on ``--size``
ints (default 500,000), measured for:

* a plain Python loop making the same calls (the reference);
* millstream fed by ``Stream.from_iterable(data)``, timed from ``start()`` until
  the source has pushed its last element through the graph;
* Streamz 0.6.6 fed the same way (``streamz.Stream.from_iterable``);
* millstream and Streamz fed by ``source.emit(x)`` per element from the caller
  (no event loop: the loop-less regime).

Targets: plain/millstream(from_iterable) >= 0.5; Streamz/millstream >= 30 for
from_iterable and >= 10 for emit; peak memory (tracemalloc, separate pass) of each
millstream figure <= 1.5x the matching Streamz figure.

Prints one JSON line. ``python benchmarks/map_chain.py --help`` for the options.
"""

from __future__ import annotations

from typing import Any

import streamz
from _common import (
    base_parser,
    best_times,
    emit_json,
    machine,
    max_target,
    peak_memory,
    run_millstream_source,
    run_streamz_source,
    target,
)

import millstream

N_MAPS = 5


def inc(x: int) -> int:
    return x + 1


def run_plain(data: list[int]) -> list[int]:
    out: list[int] = []
    append = out.append
    for x in data:
        append(inc(inc(inc(inc(inc(x))))))
    return out


def chain(source: Any) -> list[Any]:
    node = source
    for _ in range(N_MAPS):
        node = node.map(inc)
    return node.sink_to_list()  # type: ignore[no-any-return,unused-ignore]


def millstream_from_iterable(data: list[int]) -> tuple[float, list[int]]:
    source = millstream.Stream.from_iterable(data)  # type: ignore[attr-defined]
    out = chain(source)
    elapsed = run_millstream_source(source)
    return elapsed, out


def streamz_from_iterable(data: list[int]) -> tuple[float, list[int]]:
    source = streamz.Stream.from_iterable(data)
    out = chain(source)
    n = len(data)
    elapsed = run_streamz_source(source, lambda: len(out) >= n and source.stopped)
    return elapsed, out


def emit_each(stream_cls: Any, data: list[int]) -> list[int]:
    source = stream_cls()
    out = chain(source)
    emit = source.emit
    for x in data:
        emit(x)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = base_parser(__doc__.split("\n\n")[0], 500_000)
    parser.add_argument(
        "--streamz-size",
        type=int,
        default=0,
        help="run Streamz on the first N elements only and scale its time per element "
        "(default: the full size)",
    )
    args = parser.parse_args(argv)
    size = args.size
    zsize = min(args.streamz_size or size, size)
    data = list(range(size))
    zdata = data[:zsize]
    scale = size / zsize
    expected = run_plain(data)
    zexpected = expected[:zsize]
    checks: dict[str, bool] = {}

    # Warm-up: every implementation once on a small input (starts the loop threads).
    warm = data[: min(size, 10_000)]
    run_plain(warm)
    millstream_from_iterable(warm)
    streamz_from_iterable(warm)
    emit_each(millstream.Stream, warm)
    emit_each(streamz.Stream, warm)

    def plain_run() -> tuple[None, list[int]]:
        return None, run_plain(data)

    timed_runs = {
        "plain": plain_run,
        "millstream_from_iterable": lambda: millstream_from_iterable(data),
        "streamz_from_iterable": lambda: streamz_from_iterable(zdata),
        "millstream_emit": lambda: (None, emit_each(millstream.Stream, data)),
        "streamz_emit": lambda: (None, emit_each(streamz.Stream, zdata)),
    }
    times, ok = best_times(
        timed_runs,
        args.repeat,
        lambda name, out: out == (zexpected if name.startswith("streamz") else expected),
    )
    for name, good in ok.items():
        checks[f"{name}_output_correct"] = good
    streamz_iter = times["streamz_from_iterable"] * scale
    streamz_emit = times["streamz_emit"] * scale
    ratios = {
        "plain_over_millstream_from_iterable": times["plain"] / times["millstream_from_iterable"],
        "streamz_over_millstream_from_iterable": streamz_iter / times["millstream_from_iterable"],
        "streamz_over_millstream_emit": streamz_emit / times["millstream_emit"],
        "plain_over_millstream_emit": times["plain"] / times["millstream_emit"],
    }
    targets = {
        "a_from_iterable_vs_plain": target(
            ratios["plain_over_millstream_from_iterable"], 0.5, "plain_time / millstream_time"
        ),
        "a_from_iterable_vs_streamz": target(
            ratios["streamz_over_millstream_from_iterable"], 30, "streamz_time / millstream_time"
        ),
        "b_emit_vs_streamz": target(
            ratios["streamz_over_millstream_emit"], 10, "streamz_time / millstream_time"
        ),
    }

    memory: dict[str, int] = {}
    if not args.no_memory:
        # Memory is compared on the same input for both libraries (zdata).
        mem_results: dict[str, Any] = {}

        def keep(name: str, fn: Any) -> Any:
            def run() -> None:
                r = fn()
                mem_results[name] = r[1] if isinstance(r, tuple) else r

            return run

        memory = {
            "plain": peak_memory(keep("plain", lambda: run_plain(zdata))),
            "millstream_from_iterable": peak_memory(
                keep("millstream_from_iterable", lambda: millstream_from_iterable(zdata))
            ),
            "streamz_from_iterable": peak_memory(
                keep("streamz_from_iterable", lambda: streamz_from_iterable(zdata))
            ),
            "millstream_emit": peak_memory(
                keep("millstream_emit", lambda: emit_each(millstream.Stream, zdata))
            ),
            "streamz_emit": peak_memory(
                keep("streamz_emit", lambda: emit_each(streamz.Stream, zdata))
            ),
        }
        for name, out in mem_results.items():
            checks[f"{name}_output_correct_in_memory_pass"] = out == zexpected
        targets["c_memory_from_iterable_vs_streamz"] = max_target(
            memory["millstream_from_iterable"] / memory["streamz_from_iterable"],
            1.5,
            "millstream_peak / streamz_peak",
        )
        targets["c_memory_emit_vs_streamz"] = max_target(
            memory["millstream_emit"] / memory["streamz_emit"],
            1.5,
            "millstream_peak / streamz_peak",
        )

    emit_json(
        {
            "benchmark": "map_chain",
            "workload": f"{size} ints -> {N_MAPS} x map(inc) -> list",
            "size": size,
            "streamz_size": zsize,
            "streamz_time_scaled": zsize != size,
            "method": f"time.perf_counter, best of {args.repeat} (figures taken in turn) after a "
            "warm-up run; "
            "peak memory by tracemalloc in a separate untimed pass, on the Streamz input "
            f"size ({zsize}) for every implementation",
            "machine": machine(),
            "times_s": {k: round(v, 6) for k, v in times.items()},
            "streamz_times_scaled_to_size_s": {
                "streamz_from_iterable": round(streamz_iter, 6),
                "streamz_emit": round(streamz_emit, 6),
            },
            "ratios": {k: round(v, 3) for k, v in ratios.items()},
            "peak_memory_bytes": memory,
            "checks": checks,
            "targets": targets,
        }
    )
    if not all(checks.values()):
        raise SystemExit("output check failed: " + ", ".join(k for k, v in checks.items() if not v))


if __name__ == "__main__":
    main()
