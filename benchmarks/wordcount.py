"""Benchmark: word count, ``map(str.split).flatten().frequencies()``.

``--size`` lines (default 100,000) of 10 words each, drawn (seeded) from a
vocabulary of 10,000 random words, counted by:

* a plain ``collections.Counter`` loop (the reference);
* millstream fed by ``Stream.from_iterable(lines)`` (timed from ``start()`` until the
  source has pushed its last line through the graph), and by ``source.emit(line)``
  per line (extra figure);
* Streamz 0.6.6, the same pipeline fed both ways. Streamz's ``frequencies`` copies
  its whole dict for every word, so by default it runs on the first tenth of the
  lines and its time is scaled per line (stated in the JSON). The vocabulary is
  already saturated at that size, so its per-word copy costs what it would cost on
  the full input: the scaled figure does not flatter millstream.

The sink keeps the last emitted value only (``def keep(v): last[0] = v``); the last
value of every implementation must equal the Counter of the same lines.

Targets: Counter/millstream(from_iterable) >= 0.3; Streamz/millstream >= 20 (both
feeds); peak memory (tracemalloc, separate pass, every implementation on the
Streamz input) of millstream <= 1.5x Streamz's.

Prints one JSON line. ``python benchmarks/wordcount.py --help`` for the options.
"""

from __future__ import annotations

import collections
import random
import string
from collections.abc import Callable
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

VOCABULARY = 10_000
WORDS_PER_LINE = 10
SEED = 20240601


def make_lines(n_lines: int, seed: int = SEED) -> list[str]:
    """``n_lines`` lines of ``WORDS_PER_LINE`` words from a seeded random vocabulary."""
    rng = random.Random(seed)
    vocab: set[str] = set()
    while len(vocab) < VOCABULARY:
        vocab.add("".join(rng.choices(string.ascii_lowercase, k=rng.randint(2, 10))))
    words = sorted(vocab)
    return [" ".join(rng.choices(words, k=WORDS_PER_LINE)) for _ in range(n_lines)]


def run_counter(lines: list[str]) -> collections.Counter[str]:
    c: collections.Counter[str] = collections.Counter()
    for line in lines:
        for w in line.split():
            c[w] += 1
    return c


def pipeline(source: Any) -> list[Any]:
    last: list[Any] = [None]

    def keep(v: Any) -> None:
        last[0] = v

    source.map(str.split).flatten().frequencies().sink(keep)
    return last


def millstream_from_iterable(lines: list[str]) -> tuple[float, Any]:
    source = millstream.Stream.from_iterable(lines)  # type: ignore[attr-defined]
    last = pipeline(source)
    elapsed = run_millstream_source(source)
    return elapsed, last[0]


def streamz_from_iterable(lines: list[str]) -> tuple[float, Any]:
    source = streamz.Stream.from_iterable(lines)
    last = pipeline(source)
    elapsed = run_streamz_source(source, lambda: source.stopped)
    return elapsed, last[0]


def emit_each(stream_cls: Any, lines: list[str]) -> tuple[None, Any]:
    source = stream_cls()
    last = pipeline(source)
    emit = source.emit
    for line in lines:
        emit(line)
    return None, last[0]


def main(argv: list[str] | None = None) -> None:
    parser = base_parser(__doc__.split("\n\n")[0], 100_000)
    parser.add_argument(
        "--streamz-size",
        type=int,
        default=0,
        help="lines Streamz runs on, its time scaled per line (default: a tenth of --size)",
    )
    args = parser.parse_args(argv)
    size = args.size
    zsize = min(args.streamz_size or max(size // 10, 1), size)
    lines = make_lines(size)
    zlines = lines[:zsize]
    scale = size / zsize
    expected = run_counter(lines)
    zexpected = run_counter(zlines)
    checks: dict[str, bool] = {}

    def correct(name: str, out: Any) -> bool:
        want = zexpected if name.startswith("streamz") else expected
        return out == want and dict(out) == dict(want)

    # Warm-up: every implementation once on a small input (starts the loop threads).
    warm = lines[: min(size, 1_000)]
    run_counter(warm)
    millstream_from_iterable(warm)
    streamz_from_iterable(warm)
    emit_each(millstream.Stream, warm)
    emit_each(streamz.Stream, warm)

    timed_runs: dict[str, Callable[[], tuple[float | None, Any]]] = {
        "counter": lambda: (None, run_counter(lines)),
        "millstream_from_iterable": lambda: millstream_from_iterable(lines),
        "streamz_from_iterable": lambda: streamz_from_iterable(zlines),
        "millstream_emit": lambda: emit_each(millstream.Stream, lines),
        "streamz_emit": lambda: emit_each(streamz.Stream, zlines),
    }
    times, ok = best_times(timed_runs, args.repeat, correct)
    for name, good in ok.items():
        checks[f"{name}_counts_equal_counter"] = good
    scaled = {
        "streamz_from_iterable": times["streamz_from_iterable"] * scale,
        "streamz_emit": times["streamz_emit"] * scale,
    }
    ratios = {
        "counter_over_millstream_from_iterable": times["counter"]
        / times["millstream_from_iterable"],
        "counter_over_millstream_emit": times["counter"] / times["millstream_emit"],
        "streamz_over_millstream_from_iterable": scaled["streamz_from_iterable"]
        / times["millstream_from_iterable"],
        "streamz_over_millstream_emit": scaled["streamz_emit"] / times["millstream_emit"],
    }
    targets = {
        "from_iterable_vs_counter": target(
            ratios["counter_over_millstream_from_iterable"], 0.3, "counter_time / millstream_time"
        ),
        "from_iterable_vs_streamz": target(
            ratios["streamz_over_millstream_from_iterable"],
            20,
            "streamz_time (scaled per line) / millstream_time",
        ),
        "emit_vs_streamz": target(
            ratios["streamz_over_millstream_emit"],
            20,
            "streamz_time (scaled per line) / millstream_time",
        ),
    }

    memory: dict[str, int] = {}
    memory_full: dict[str, int] = {}
    if not args.no_memory:
        mem_ok: dict[str, bool] = {}

        def measured(name: str, fn: Callable[[], tuple[Any, Any]]) -> int:
            out: list[Any] = []
            peak = peak_memory(lambda: out.append(fn()[1]))
            mem_ok[name] = out[0] == zexpected and dict(out[0]) == dict(zexpected)
            return peak

        memory = {
            "counter": measured("counter", lambda: (None, run_counter(zlines))),
            "millstream_from_iterable": measured(
                "millstream_from_iterable", lambda: millstream_from_iterable(zlines)
            ),
            "streamz_from_iterable": measured(
                "streamz_from_iterable", lambda: streamz_from_iterable(zlines)
            ),
            "millstream_emit": measured(
                "millstream_emit", lambda: emit_each(millstream.Stream, zlines)
            ),
            "streamz_emit": measured("streamz_emit", lambda: emit_each(streamz.Stream, zlines)),
        }
        for name, good in mem_ok.items():
            # the memory pass ran every implementation on the Streamz input
            checks[f"{name}_counts_equal_counter_in_memory_pass"] = good
        if zsize != size:
            # millstream and the Counter on the full input too, for information
            memory_full = {
                "counter": peak_memory(lambda: run_counter(lines)),
                "millstream_from_iterable": peak_memory(lambda: millstream_from_iterable(lines)),
                "millstream_emit": peak_memory(lambda: emit_each(millstream.Stream, lines)),
            }
        targets["memory_from_iterable_vs_streamz"] = max_target(
            memory["millstream_from_iterable"] / memory["streamz_from_iterable"],
            1.5,
            f"millstream_peak / streamz_peak (both on {zsize} lines)",
        )
        targets["memory_emit_vs_streamz"] = max_target(
            memory["millstream_emit"] / memory["streamz_emit"],
            1.5,
            f"millstream_peak / streamz_peak (both on {zsize} lines)",
        )

    emit_json(
        {
            "benchmark": "wordcount",
            "workload": f"{size} lines x {WORDS_PER_LINE} words, vocabulary {VOCABULARY} "
            f"(seed {SEED}) -> map(str.split).flatten().frequencies() -> keep last",
            "size": size,
            "streamz_size": zsize,
            "streamz_time_scaled": zsize != size,
            "streamz_scale_note": (
                f"Streamz ran on the first {zsize} lines; its times are multiplied by "
                f"{scale:g} (per-line scaling) in streamz_times_scaled_to_size_s and ratios"
                if zsize != size
                else "Streamz ran on the full input"
            ),
            "method": f"time.perf_counter, best of {args.repeat} (figures taken in turn) after a "
            "warm-up run; peak memory by tracemalloc in a separate untimed pass, every "
            f"implementation on the Streamz input ({zsize} lines)",
            "machine": machine(),
            "times_s": {k: round(v, 6) for k, v in times.items()},
            "streamz_times_scaled_to_size_s": {k: round(v, 6) for k, v in scaled.items()},
            "ratios": {k: round(v, 3) for k, v in ratios.items()},
            "peak_memory_bytes": memory,
            "peak_memory_bytes_full_input": memory_full,
            "distinct_words": len(expected),
            "checks": checks,
            "targets": targets,
        }
    )
    if not all(checks.values()):
        raise SystemExit("count check failed: " + ", ".join(k for k, v in checks.items() if not v))


if __name__ == "__main__":
    main()
