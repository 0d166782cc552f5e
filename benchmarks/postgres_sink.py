"""``to_postgres`` exactly-once (checkpoints) against a raw psycopg COPY loop.

    python benchmarks/postgres_sink.py --dsn 'host=127.0.0.1 port=5432 user=postgres' \\
        [--size 1000000] [--interval 1s] [--repeat 3]

Both write the same ``(int, text)`` rows into a fresh table: millstream as
``from_iterable -> to_postgres`` with ``checkpoints.enable`` (rows committed with each
checkpoint), the raw loop with ``COPY`` in as many transactions as millstream took
checkpoints. Prints one JSON line with the median rows/s of each and their ratio.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time

import psycopg

from millstream import Stream
from millstream.checkpoint import enable
from millstream.testing import run_pipeline


def fresh(dsn: str, table: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {table}")
        conn.execute(f"CREATE TABLE {table} (id integer, word text)")


def millstream_run(dsn: str, rows: list, interval: str) -> tuple[float, int]:
    fresh(dsn, "bench_millstream")
    started = time.perf_counter()
    source = Stream.from_iterable(rows, stream_name="rows")
    source.to_postgres("bench_millstream", dsn, stream_name="out")
    checkpoints = enable(source, tempfile.mkdtemp(), interval=interval)
    run_pipeline(source, timeout=600)
    checkpoints.close()
    return time.perf_counter() - started, len(checkpoints.history)


def raw_run(dsn: str, rows: list, transactions: int) -> float:
    fresh(dsn, "bench_raw")
    batch = -(-len(rows) // max(transactions, 1))
    started = time.perf_counter()
    with psycopg.connect(dsn) as conn:
        for start in range(0, len(rows), batch):
            with (
                conn.transaction(),
                conn.cursor().copy("COPY bench_raw (id, word) FROM STDIN") as copy,
            ):
                for row in rows[start : start + batch]:
                    copy.write_row(row)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--interval", default="1s")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rows = [(i, f"w{i % 1000}") for i in range(args.size)]
    ours, raw, checkpoints = [], [], 0
    for _ in range(args.repeat):
        seconds, checkpoints = millstream_run(args.dsn, rows, args.interval)
        ours.append(seconds)
        raw.append(raw_run(args.dsn, rows, checkpoints))
    result = {
        "benchmark": "postgres_sink",
        "size": args.size,
        "checkpoints": checkpoints,
        "millstream_exactly_once_rows_s": round(args.size / statistics.median(ours)),
        "raw_copy_rows_s": round(args.size / statistics.median(raw)),
        "ratio": round(statistics.median(raw) / statistics.median(ours), 2),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
