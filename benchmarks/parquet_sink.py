"""Benchmark: ``to_parquet`` against pyarrow's ``ParquetWriter`` writing the same batches in
a plain loop, in the same run, on the same disk.

``--size`` rows (default 2,000,000) of ``(i int64, word string, x float64)`` in pandas
DataFrames of ``--batch`` rows (default 10,000), built once:

* ``millstream``: ``Stream.from_iterable(frames) -> to_parquet(dir, batch_rows=--batch)``
  without checkpoints: one Arrow table per frame (``Table.from_pandas``), written by
  ``ParquetWriter`` in the sink's thread into one file, closed and renamed to its final
  name at the end of the input. Timed from ``start()`` until the source's task ended
  (the end of input waits for the file to be closed).
* ``millstream_checkpoints``: the same under ``millstream.checkpoint.enable(interval=
  --interval)``: the file of each checkpoint is committed (manifest, rename) with it.
  Timed until ``close()`` returned.
* ``raw``: ``pq.ParquetWriter(path, schema)``; ``writer.write_table(pa.Table.from_pandas(
  frame, preserve_index=False))`` for each frame; ``close()``. Timed from opening to close.

Figures are taken in turn (round robin), best of ``--repeat``, after a warm-up of each.
Every dataset must hold each row once. Target: raw time / millstream time >= 0.8.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from _common import base_parser, best_times, emit_json, machine, run_millstream_source, target

from millstream import Stream
from millstream.checkpoint import enable


def make_frames(n: int, batch: int) -> list[pd.DataFrame]:
    i = np.arange(n, dtype=np.int64)
    words = np.array([f"w{k}" for k in range(1000)], dtype=object)[i % 1000]
    frame = pd.DataFrame({"i": i, "word": words, "x": i * 0.5})
    return [frame.iloc[s : s + batch].reset_index(drop=True) for s in range(0, n, batch)]


def summary(path: str) -> tuple[int, int, int]:
    """(rows, distinct i, sum of i) of the dataset at ``path``."""
    column = ds.dataset(path).to_table(columns=["i"])["i"].to_numpy()
    return len(column), len(np.unique(column)), int(column.sum())


def run_millstream(frames: list[pd.DataFrame], work: str, batch: int) -> tuple[float, Any]:
    out = tempfile.mkdtemp(dir=work)
    source = Stream.from_iterable(frames)
    source.to_parquet(out, batch_rows=batch)
    elapsed = run_millstream_source(source)
    return elapsed, summary(out)


def run_checkpoints(
    frames: list[pd.DataFrame], work: str, batch: int, interval: str
) -> tuple[float, Any]:
    out = tempfile.mkdtemp(dir=work)
    location = tempfile.mkdtemp(dir=work)
    started = time.perf_counter()
    source = Stream.from_iterable(frames, stream_name="frames")
    source.to_parquet(out, batch_rows=batch, stream_name="out")
    checkpoints = enable(source, location, interval=interval)
    run_millstream_source(source)
    checkpoints.close()
    return time.perf_counter() - started, summary(out)


def run_raw(frames: list[pd.DataFrame], work: str) -> tuple[float, Any]:
    out = tempfile.mkdtemp(dir=work)
    started = time.perf_counter()
    schema = pa.Schema.from_pandas(frames[0], preserve_index=False)
    writer = pq.ParquetWriter(os.path.join(out, "part-0.parquet"), schema)
    for frame in frames:
        writer.write_table(pa.Table.from_pandas(frame, preserve_index=False))
    writer.close()
    return time.perf_counter() - started, summary(out)


def main(argv: list[str] | None = None) -> None:
    parser = base_parser(__doc__.split("\n\n")[0], 2_000_000)
    parser.add_argument("--batch", type=int, default=10_000, help="rows per frame (10,000)")
    parser.add_argument("--interval", default="1s", help="time between checkpoints (1s)")
    args = parser.parse_args(argv)
    n = args.size
    frames = make_frames(n, args.batch)
    work = tempfile.mkdtemp(prefix="millstream-bench-parquet-")
    expected = (n, n, n * (n - 1) // 2)
    try:
        runs = {
            "millstream": lambda: run_millstream(frames, work, args.batch),
            "millstream_checkpoints": lambda: run_checkpoints(
                frames, work, args.batch, args.interval
            ),
            "raw": lambda: run_raw(frames, work),
        }
        best_times(runs, 1, lambda name, out: out == expected)  # warm-up
        times, ok = best_times(runs, args.repeat, lambda name, out: out == expected)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    emit_json(
        {
            "benchmark": "parquet_sink",
            "workload": f"{n} rows (i, word, x) in DataFrames of {args.batch} rows -> Parquet",
            "size": n,
            "batch": args.batch,
            "interval": args.interval,
            "machine": machine(),
            "times_s": {k: round(v, 4) for k, v in times.items()},
            "rows_per_s": {k: round(n / v) for k, v in times.items()},
            "checks": {f"{k}_every_row_once": v for k, v in ok.items()},
            "targets": {
                "millstream_vs_raw": target(
                    times["raw"] / times["millstream"], 0.8, "raw time / millstream time"
                ),
                "checkpoints_vs_raw": target(
                    times["raw"] / times["millstream_checkpoints"],
                    0.8,
                    "raw time / millstream (checkpoints) time",
                ),
            },
        }
    )


if __name__ == "__main__":
    main()
