"""Benchmark: streaming DataFrames, millstream.dataframe against streamz.dataframe 0.6.6.

``--size`` pandas chunks (default 2,000) of ``--rows`` rows (default 100) of one
10-column numeric frame (seeded: ``k`` an int key in 0..9, ``x`` and ``y`` and
``c0``..``c6`` floats, no missing values: Streamz's ``cumsum`` loses the running total
after a missing value that ends a chunk), the same chunks for both libraries, emitted
one by one with ``sdf.emit(chunk)`` into each of these pipelines (``--op``, default
all):

* ``groupby_sum``: ``sdf.groupby('k').x.sum()``
* ``rolling_mean``: ``sdf.x.rolling(50).mean()``
* ``window_mean``: ``sdf.window(n=500).x.mean()``
* ``cumsum``: ``sdf.x.cumsum()``
* ``filter_sum``: ``sdf[sdf.x > 0].y.sum()``

For each: chunks/s and rows/s of each library (median of ``--repeat`` timed runs,
the libraries taken in turn), the ratio Streamz time / millstream time (target >= 2),
the outputs of both compared with each other and with pandas on the concatenated
chunks (the last output and a sample of others; the script exits non-zero if any
differs), and the tracemalloc peak of one run of each library, each library in its
own child process (target: millstream <= 1.2x Streamz). An operation millstream does
not have yet is reported as not available (Streamz is still timed).

Prints one JSON line. ``python benchmarks/dataframe_ops.py --help`` for the options.
"""

from __future__ import annotations

import gc
import json
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from _common import base_parser, emit_json, machine, max_target, target

OPS: dict[str, str] = {
    "groupby_sum": "sdf.groupby('k').x.sum()",
    "rolling_mean": "sdf.x.rolling(50).mean()",
    "window_mean": "sdf.window(n=500).x.mean()",
    "cumsum": "sdf.x.cumsum()",
    "filter_sum": "sdf[sdf.x > 0].y.sum()",
}
LIBRARIES = ("millstream", "streamz")
SEED = 20261205
N_SAMPLES = 12  # outputs compared besides the last one
RTOL = 1e-9  # running sums may round differently from pandas on the concatenation


class NotAvailable(Exception):
    """millstream.dataframe does not have the operation (yet)."""


def make_columns(n: int, rows: int, seed: int = SEED) -> dict[str, np.ndarray]:
    """The ``n * rows`` values of each column."""
    rng = np.random.default_rng(seed)
    total = n * rows
    columns = {"k": rng.integers(0, 10, total), "x": rng.standard_normal(total)}
    columns["y"] = rng.standard_normal(total)
    for i in range(7):
        columns[f"c{i}"] = rng.standard_normal(total)
    return columns


def iter_chunks(columns: dict[str, np.ndarray], rows: int) -> Iterator[pd.DataFrame]:
    """The chunks of ``rows`` rows, made one at a time (own arrays, a running RangeIndex)."""
    for start in range(0, len(columns["k"]), rows):
        part = {name: values[start : start + rows].copy() for name, values in columns.items()}
        yield pd.DataFrame(part, index=pd.RangeIndex(start, start + len(part["k"])))


def make_chunks(n: int, rows: int) -> list[pd.DataFrame]:
    """``n`` chunks of ``rows`` rows, a running RangeIndex across them."""
    return list(iter_chunks(make_columns(n, rows), rows))


EXAMPLE = make_chunks(1, 1)[0].iloc[:0]


def frame_module(library: str) -> Any:
    if library == "millstream":
        import millstream.dataframe as module
    else:
        import streamz.dataframe as module
    return module


def build(library: str, op: str, example: pd.DataFrame) -> tuple[Any, Any]:
    """``(sdf, output collection)`` of ``op``; ``NotAvailable`` if millstream lacks it."""
    sdf = frame_module(library).DataFrame(example=example)
    try:
        if op == "groupby_sum":
            out = sdf.groupby("k").x.sum()
        elif op == "rolling_mean":
            out = sdf.x.rolling(50).mean()
        elif op == "window_mean":
            out = sdf.window(n=500).x.mean()
        elif op == "cumsum":
            out = sdf.x.cumsum()
        elif op == "filter_sum":
            out = sdf[sdf.x > 0].y.sum()
        else:
            raise ValueError(f"unknown op {op!r}")
    except (AttributeError, NotImplementedError) as e:
        if library == "millstream":
            raise NotAvailable(f"{OPS[op]}: {type(e).__name__}: {e}") from e
        raise
    return sdf, out


def sample_positions(n: int) -> list[int]:
    """The chunk positions whose outputs are kept and compared: spread out, and the last."""
    return sorted({*(round(i * (n - 1) / N_SAMPLES) for i in range(N_SAMPLES)), n - 1})


class Keep:
    """A sink keeping the outputs at ``positions`` (copies: some outputs are reused)."""

    def __init__(self, positions: list[int]):
        self.wanted = set(positions)
        self.i = 0
        self.kept: dict[int, Any] = {}

    def __call__(self, value: Any) -> None:
        if self.i in self.wanted:
            self.kept[self.i] = value.copy() if hasattr(value, "copy") else value
        self.i += 1


def run_once(
    library: str, op: str, chunks: Iterable[pd.DataFrame], n: int
) -> tuple[float, float, dict[int, Any]]:
    """Build the pipeline, emit the ``n`` chunks; return the seconds the emits took (wall
    clock, and CPU time of this thread) and the kept outputs."""
    sdf, out = build(library, op, EXAMPLE)
    keep = Keep(sample_positions(n))
    out.stream.sink(keep)
    emit = sdf.emit
    t0, c0 = time.perf_counter(), time.thread_time()
    for chunk in chunks:
        emit(chunk)
    elapsed, cpu = time.perf_counter() - t0, time.thread_time() - c0
    if keep.i != n:
        raise AssertionError(f"{library} {op}: {keep.i} outputs for {n} chunks")
    return elapsed, cpu, keep.kept


def pandas_output(op: str, full: pd.DataFrame, rows: int, i: int) -> Any:
    """What pandas gives on the concatenation of chunks 0..i (for the outputs of chunk i)."""
    end = (i + 1) * rows
    seen = full.iloc[:end]
    if op == "groupby_sum":
        return seen.groupby("k").x.sum()
    if op == "rolling_mean":
        return seen.x.rolling(50).mean().iloc[end - rows :]
    if op == "window_mean":
        return seen.x.iloc[-500:].mean()
    if op == "cumsum":
        return seen.x.cumsum().iloc[end - rows :]
    if op == "filter_sum":
        return seen[seen.x > 0].y.sum()
    raise ValueError(op)


def same(a: Any, b: Any) -> bool:
    """Equal outputs: the same index and values (to ``RTOL``); dtype and name not compared."""
    if isinstance(a, (pd.Series, pd.DataFrame)) or isinstance(b, (pd.Series, pd.DataFrame)):
        if type(a) is not type(b) or list(a.index) != list(b.index):
            return False
        a, b = a.to_numpy(dtype=float), b.to_numpy(dtype=float)
    return bool(np.allclose(a, b, rtol=RTOL, atol=1e-12, equal_nan=True))


def check_outputs(
    op: str, kept: dict[str, dict[int, Any]], full: pd.DataFrame, rows: int
) -> dict[str, bool]:
    """Each library's kept outputs against pandas, and millstream's against Streamz's."""
    checks: dict[str, bool] = {}
    for library, outputs in kept.items():
        checks[f"{op}_{library}_equals_pandas"] = all(
            same(v, pandas_output(op, full, rows, i)) for i, v in outputs.items()
        )
    if len(kept) == 2:
        a, b = kept["millstream"], kept["streamz"]
        checks[f"{op}_millstream_equals_streamz"] = a.keys() == b.keys() and all(
            same(a[i], b[i]) for i in a
        )
    return checks


def memory_child(library: str, ops: list[str], size: int, rows: int) -> None:
    """In a child process: the tracemalloc peak of one run of each op (after a warm-up run),
    and whether its last output equals pandas; one JSON line on stdout. The chunks are
    made one at a time as they are emitted, so that the peak is the pipeline's (its state,
    each chunk's temporaries) and not the input's."""
    columns = make_columns(size, rows)
    full = pd.DataFrame(columns)
    result: dict[str, Any] = {}
    available = []
    for op in ops:  # warm-up: every op first, so that no op pays for another's first use
        try:
            run_once(library, op, make_chunks(min(size, 20), rows), min(size, 20))
            available.append(op)
        except NotAvailable:
            result[op] = None
    for op in available:
        gc.collect()
        tracemalloc.start()
        try:
            tracemalloc.reset_peak()
            base = tracemalloc.get_traced_memory()[0]
            _, _, kept = run_once(library, op, iter_chunks(columns, rows), size)
            peak = tracemalloc.get_traced_memory()[1] - base
        finally:
            tracemalloc.stop()
        last = size - 1
        result[op] = {
            "peak_bytes": peak,
            "last_equals_pandas": same(kept[last], pandas_output(op, full, rows, last)),
        }
        del kept
    sys.stdout.write(json.dumps(result) + "\n")


def measure_memory(library: str, ops: list[str], size: int, rows: int) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--memory-child", library,
         "--op", *ops, "--size", str(size), "--rows", str(rows)],
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(f"memory child for {library} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.splitlines()[-1])  # type: ignore[no-any-return]


Times = dict[str, dict[str, list[float]]]


def timed(
    ops: list[str], chunks: list[pd.DataFrame], repeat: int
) -> tuple[Times, Times, dict[str, dict[str, dict[int, Any]]], dict[str, str]]:
    """Every available (op, library) ``repeat`` times, taken in turn, after a warm-up run:
    wall-clock times, CPU times, the outputs kept by the last run, the ops missing."""
    missing: dict[str, str] = {}
    runs: dict[str, dict[str, Callable[[], tuple[float, float, dict[int, Any]]]]] = {}
    for op in ops:
        runs[op] = {}
        for library in LIBRARIES:
            try:
                run_once(library, op, chunks[:20], min(len(chunks), 20))  # warm-up
            except NotAvailable as e:
                missing[op] = str(e)
                continue
            runs[op][library] = lambda library=library, op=op: run_once(
                library, op, chunks, len(chunks)
            )
    times: Times = {op: {} for op in ops}
    cpu_times: Times = {op: {} for op in ops}
    kept: dict[str, dict[str, dict[int, Any]]] = {op: {} for op in ops}
    for _ in range(max(1, repeat)):
        for op in ops:
            for library, run in runs[op].items():
                gc.collect()
                seconds, cpu, outputs = run()
                times[op].setdefault(library, []).append(seconds)
                cpu_times[op].setdefault(library, []).append(cpu)
                kept[op][library] = outputs
    return times, cpu_times, kept, missing


def main(argv: list[str] | None = None) -> None:
    parser = base_parser(__doc__.split("\n\n")[0], 2000)
    parser.add_argument("--rows", type=int, default=100, help="rows per chunk (default 100)")
    parser.add_argument(
        "--op", nargs="+", choices=list(OPS), default=list(OPS), help="the workloads (default all)"
    )
    parser.add_argument("--memory-child", choices=LIBRARIES, help=argparse_hidden())
    args = parser.parse_args(argv)
    ops: list[str] = args.op
    size, rows = args.size, args.rows
    if args.memory_child:
        memory_child(args.memory_child, ops, size, rows)
        return

    chunks = make_chunks(size, rows)
    full = pd.concat(chunks)
    times, cpu_times, kept, missing = timed(ops, chunks, args.repeat)
    checks: dict[str, bool] = {}
    for op in ops:
        checks.update(check_outputs(op, kept[op], full, rows))
    kept.clear()

    memory: dict[str, dict[str, int | None]] = {op: {} for op in ops}
    if not args.no_memory:
        for library in LIBRARIES:
            peaks = measure_memory(library, ops, size, rows)
            for op in ops:
                entry = peaks.get(op)
                memory[op][library] = None if entry is None else entry["peak_bytes"]
                if entry is not None:
                    checks[f"{op}_{library}_equals_pandas_in_memory_pass"] = entry[
                        "last_equals_pandas"
                    ]

    median = {op: {lib: statistics.median(ts) for lib, ts in t.items()} for op, t in times.items()}
    cpu_median = {
        op: {lib: statistics.median(ts) for lib, ts in t.items()} for op, t in cpu_times.items()
    }
    figures: dict[str, Any] = {}
    targets: dict[str, Any] = {}
    for op in ops:
        m = median[op]
        entry: dict[str, Any] = {
            "pipeline": OPS[op],
            "available": op not in missing,
            "times_s": {lib: round(t, 6) for lib, t in m.items()},
            "cpu_times_s": {lib: round(t, 6) for lib, t in cpu_median[op].items()},
            "chunks_per_s": {lib: round(size / t, 1) for lib, t in m.items()},
            "rows_per_s": {lib: round(size * rows / t) for lib, t in m.items()},
            "peak_memory_bytes": memory[op],
        }
        if op in missing:
            entry["not_available"] = missing[op]
            targets[f"{op}_vs_streamz"] = {
                "what": "streamz_time / millstream_time",
                "value": None,
                "target": ">= 2",
                "pass": False,
            }
        else:
            ratio = m["streamz"] / m["millstream"]
            entry["streamz_over_millstream"] = round(ratio, 3)
            cpu = cpu_median[op]
            entry["streamz_over_millstream_cpu"] = round(cpu["streamz"] / cpu["millstream"], 3)
            targets[f"{op}_vs_streamz"] = target(ratio, 2, "streamz_time / millstream_time")
            peaks = memory[op]
            if peaks.get("millstream") and peaks.get("streamz"):
                targets[f"{op}_memory_vs_streamz"] = max_target(
                    peaks["millstream"] / peaks["streamz"], 1.2, "millstream_peak / streamz_peak"
                )
        figures[op] = entry

    emit_json(
        {
            "benchmark": "dataframe_ops",
            "workload": f"{size} pandas chunks x {rows} rows, 10 numeric columns (k, x, y, "
            f"c0..c6; seed {SEED}) -> sdf.emit(chunk) into each pipeline",
            "size": size,
            "rows": rows,
            "method": f"time.perf_counter (and time.thread_time: cpu_times_s) around the emits "
            f"(pipeline built before), median of {args.repeat} runs per figure, (op, library) "
            "taken in turn after a warm-up run; targets on the wall-clock medians; "
            "peak memory: tracemalloc peak of one run, each library in its own child process; "
            f"outputs at {len(sample_positions(size))} chunk positions (the last included) "
            f"compared with each other and with pandas on the concatenation (rtol {RTOL})",
            "machine": machine(),
            "not_available": sorted(missing),
            "times_all_s": {
                op: {lib: [round(t, 6) for t in ts] for lib, ts in t_.items()}
                for op, t_ in times.items()
            },
            "ops": figures,
            "checks": checks,
            "targets": targets,
        }
    )
    if not all(checks.values()):
        raise SystemExit("output check failed: " + ", ".join(k for k, v in checks.items() if not v))


def argparse_hidden() -> str:
    import argparse

    return argparse.SUPPRESS


if __name__ == "__main__":
    main()
