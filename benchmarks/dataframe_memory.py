"""Benchmark: bounded memory of streaming-frame aggregations over many small chunks,
against streamz.dataframe 0.6.6.

Three aggregations over every row so far, each in a fresh child interpreter per
library: ``sdf.expanding().mean()``, ``sdf.ewm(alpha=0.1).mean()`` and
``sdf.groupby('k').x.sum()`` (the last one is skipped for millstream, and says so,
until millstream's frames have ``groupby``). The input is ``--chunks`` chunks
(default 1,000,000) of ``--rows`` rows (default 10): columns ``k`` (ints 0..99), ``x``
and ``y`` (floats), each chunk a fresh copy of one of 64 seeded random frames (so a
library that keeps chunks keeps new objects). Only the latest result is kept by the
sink. Streamz's ``expanding``/``ewm`` append every chunk to a list that is copied
on each chunk (quadratic time) and its ewm loops over rows in Python, so Streamz runs
``--streamz-chunks`` chunks (default 10,000): enough to show its growth; a million
would not finish.

Each child samples its peak RSS (``VmHWM`` of ``/proc/self/status``, psutil's RSS
where there is none) after 10%, 50% and 100% of its chunks. "Growth" is the peak at
100% less the peak at 10% (after warm-up). Target: millstream's growth <=
``--flat-mb`` (4 MB) for every aggregation; Streamz's growth is reported beside it.

Checks: each child compares its last result with pandas: the expanding mean and the
groupby sum over all rows (computed from the 64 frames and how often each was sent),
the ewm mean over the concatenation of the last 2,000 chunks (older rows weigh less
than 0.9 ** 20000, nothing in float64).

Prints one JSON line. ``python benchmarks/dataframe_memory.py --help`` for the options.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from typing import Any

from _common import emit_json, machine, max_target

OPERATIONS = ("expanding_mean", "ewm_mean", "groupby_sum")
LIBRARIES = ("millstream", "streamz")
POOL = 64
EWM_ALPHA = 0.1
EWM_TAIL = 2000


def peak_rss_bytes() -> int:
    """This process's peak RSS so far (``VmHWM``; psutil's current RSS elsewhere)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import psutil

    return int(psutil.Process().memory_info().rss)


def make_pool(rows: int) -> list[Any]:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(13)
    return [
        pd.DataFrame(
            {
                "k": rng.integers(0, 100, size=rows),
                "x": rng.normal(size=rows),
                "y": rng.normal(size=rows),
            }
        )
        for _ in range(POOL)
    ]


def build(library: str, operation: str, example: Any) -> tuple[Any, Any]:
    """The source frame and the aggregation's collection, or ``(sdf, None)`` when
    ``library`` has no such aggregation yet."""
    if library == "millstream":
        from millstream.dataframe import DataFrame
    else:
        from streamz.dataframe import DataFrame
    sdf = DataFrame(example=example)
    if operation == "expanding_mean":
        return sdf, sdf.expanding().mean()
    if operation == "ewm_mean":
        return sdf, sdf.ewm(alpha=EWM_ALPHA).mean()
    try:
        return sdf, sdf.groupby("k").x.sum()
    except (AttributeError, NotImplementedError, TypeError):
        return sdf, None


def expected(operation: str, pool: list[Any], n: int) -> Any:
    """pandas' final result for ``n`` chunks (chunk ``i`` is ``pool[i % POOL]``)."""
    import pandas as pd

    times = [n // POOL + (1 if j < n % POOL else 0) for j in range(POOL)]
    if operation == "expanding_mean":
        total = sum(t * p.sum() for t, p in zip(times, pool, strict=True))
        count = sum(t * p.count() for t, p in zip(times, pool, strict=True))
        return total / count
    if operation == "groupby_sum":
        parts = [t * p.groupby("k").x.sum() for t, p in zip(times, pool, strict=True) if t]
        return pd.concat(parts).groupby(level=0).sum()
    tail = pd.concat([pool[i % POOL] for i in range(max(0, n - EWM_TAIL), n)])
    return tail.ewm(alpha=EWM_ALPHA).mean().iloc[-1]


def same(got: Any, want: Any) -> bool:
    import numpy as np
    import pandas as pd

    if isinstance(got, pd.DataFrame):
        got = got.iloc[-1]
    got = pd.Series(got).astype(float)
    want = pd.Series(want).astype(float)
    if list(got.index) != list(want.index):
        got = got.sort_index()
        want = want.sort_index()
    return list(got.index) == list(want.index) and bool(
        np.allclose(got.to_numpy(), want.to_numpy(), rtol=1e-9, atol=1e-9)
    )


class KeepLast:
    """A sink keeping only the latest result."""

    def __init__(self) -> None:
        self.value: Any = None

    def __call__(self, x: Any) -> None:
        self.value = x


def child(library: str, operation: str, n: int, rows: int) -> None:
    """One library, one aggregation, ``n`` chunks; prints a JSON line."""
    pool = make_pool(rows)
    sdf, out = build(library, operation, pool[0].iloc[:0])
    if out is None:
        print(json.dumps({"skipped": f"{library} frames have no groupby yet"}))
        return
    last = KeepLast()
    out.stream.sink(last)
    marks = {max(1, n // 10): "10%", max(1, n // 2): "50%", n: "100%"}
    peaks: dict[str, int] = {}
    t0 = time.perf_counter()
    for i in range(n):
        sdf.emit(pool[i % POOL].copy())
        if i + 1 in marks:
            peaks[marks[i + 1]] = peak_rss_bytes()
    seconds = time.perf_counter() - t0
    ok = same(last.value, expected(operation, pool, n))
    print(json.dumps({"chunks": n, "seconds": round(seconds, 3), "peak_rss": peaks, "ok": ok}))


def run_child(args: argparse.Namespace, library: str, operation: str, n: int) -> dict[str, Any]:
    proc = subprocess.run(
        [
            sys.executable,
            __file__,
            "--child",
            f"{library}:{operation}",
            "--chunks",
            str(n),
            "--rows",
            str(args.rows),
        ],
        capture_output=True,
        text=True,
        timeout=args.timeout,
        check=False,
    )
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    if proc.returncode != 0 or len(lines) != 1:
        sys.stderr.write(proc.stderr)
        return {"error": f"exit status {proc.returncode}: {proc.stderr.strip()[-300:]}"}
    return dict(json.loads(lines[0]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chunks", type=int, default=1_000_000, help="millstream's chunks")
    parser.add_argument(
        "--streamz-chunks",
        type=int,
        default=10_000,
        help="Streamz's chunks (default 10,000; its expanding is quadratic in time)",
    )
    parser.add_argument("--rows", type=int, default=10, help="rows per chunk (default 10)")
    parser.add_argument(
        "--flat-mb", type=float, default=4.0, help="most growth counted as flat (default 4 MB)"
    )
    parser.add_argument("--ops", nargs="+", choices=OPERATIONS, default=list(OPERATIONS))
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds per child")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        library, operation = args.child.split(":")
        child(library, operation, args.chunks, args.rows)
        return

    mb = 2**20
    memory: dict[str, Any] = {}
    checks: dict[str, bool] = {}
    targets: dict[str, Any] = {}
    for operation in args.ops:
        memory[operation] = {}
        for library in LIBRARIES:
            n = args.chunks if library == "millstream" else min(args.chunks, args.streamz_chunks)
            result = run_child(args, library, operation, n)
            if "peak_rss" in result:
                peaks = result.pop("peak_rss")
                result["peak_rss_mb"] = {k: round(v / mb, 1) for k, v in peaks.items()}
                result["growth_mb"] = round((peaks["100%"] - peaks["10%"]) / mb, 2)
                result["flat"] = result["growth_mb"] <= args.flat_mb
                checks[f"{operation}_{library}_equals_pandas"] = bool(result.pop("ok"))
            elif "error" in result:
                checks[f"{operation}_{library}_ran"] = False
            memory[operation][library] = result
        ours = memory[operation]["millstream"]
        if "growth_mb" in ours:
            targets[f"{operation}_millstream_flat"] = max_target(
                ours["growth_mb"],
                args.flat_mb,
                f"growth of millstream's peak RSS (MB) from 10% to 100% of "
                f"{ours['chunks']:,} chunks of {args.rows} rows, {operation}",
            )
    emit_json(
        {
            "benchmark": "dataframe_memory",
            "workload": (
                f"{args.chunks:,} chunks of {args.rows} rows (k, x, y) into "
                "expanding().mean(), ewm(alpha=0.1).mean(), groupby('k').x.sum(); "
                f"Streamz {min(args.chunks, args.streamz_chunks):,} chunks"
            ),
            "size": args.chunks,
            "streamz_size": min(args.chunks, args.streamz_chunks),
            "method": "one child interpreter per library and aggregation; peak RSS (VmHWM) "
            "after 10%, 50%, 100% of the chunks; growth = 100% less 10%",
            "machine": machine(),
            "memory": memory,
            "targets": targets,
            "checks": checks,
        }
    )
    result_ok = all(checks.values())
    sys.exit(0 if result_ok else 1)


if __name__ == "__main__":
    main()
