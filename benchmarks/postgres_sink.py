"""Benchmark: ``to_postgres`` exactly-once (checkpoints) against a raw psycopg COPY loop
writing the same rows in the same transactions, in the same run, on the same server.

``--size`` rows (default 1,000,000) ``(i, 'w<i % 1000>')``, built once as a list of tuples,
go into a fresh table ``(id integer, word text)``:

* ``millstream``: ``Stream.from_iterable(rows) -> to_postgres(table, dsn)`` under
  ``millstream.checkpoint.enable(source, tmpdir, interval=--interval)``: the rows of each
  checkpoint are written with ``COPY`` in one SQL transaction together with the
  checkpoint's record, after its file is durable (the last checkpoint at ``close()``).
  Timed from building the pipeline (``enable()`` connects) until ``close()`` returned.
* ``raw``: ``psycopg.connect(dsn)``, then per transaction
  ``with conn.transaction(), cursor.copy('COPY t (id, word) FROM STDIN') as copy:`` and
  ``copy.write_row(row)`` for each row, the fastest plain psycopg COPY (text COPY with
  ``write_row`` beats binary COPY with ``set_types`` and ``copy.write`` of text built in
  Python for these rows). Its transactions hold exactly the rows of millstream's
  checkpoints in the run before it (read back from the table: the rows of one
  transaction share its ``xmin``). Timed from ``connect()`` to the last commit.
* ``raw_formatter`` (for reference, no target): the same loop with each row formatted as
  millstream does, ``copy.formatter.write_row(row)`` and ``copy.write`` of each full
  buffer (what ``copy.write_row`` does, one Python call fewer; ``formatter`` is not in
  psycopg's documentation).

Figures are taken in turn (round robin), best of ``--repeat``, after a warm-up of each.
Both tables must hold the same rows. Target: raw time / millstream time >= 0.8.
``--dsn`` uses a running server; else a private one is started for the run.
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
import time
from typing import Any

import psycopg
from _common import base_parser, best_times, emit_json, machine, run_millstream_source, target
from _postgres import postgres

from millstream import Stream
from millstream.checkpoint import enable

#: CPU seconds of this process (every thread) in each timed run, by figure
CPU: dict[str, list[float]] = {}

TABLES = {"millstream": "bench_millstream", "raw": "bench_raw", "raw_formatter": "bench_raw_f"}


def make_rows(n: int) -> list[tuple[int, str]]:
    return [(i, f"w{i % 1000}") for i in range(n)]


def fresh(dsn: str, table: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {table}")
        conn.execute(f"CREATE TABLE {table} (id integer, word text)")


def transactions(dsn: str, table: str) -> list[int]:
    """The number of rows of each transaction that wrote ``table``, in commit order."""
    with psycopg.connect(dsn) as conn:
        got = conn.execute(
            f"SELECT count(*) FROM {table} GROUP BY xmin::text ORDER BY min(id)"
        ).fetchall()
    return [int(n) for (n,) in got]


def digest(dsn: str, table: str) -> tuple[Any, ...]:
    """Count, distinct ids, sum of ids and an md5 of the rows in id order."""
    with psycopg.connect(dsn) as conn:
        return tuple(
            conn.execute(
                f"SELECT count(*), count(DISTINCT id), sum(id), "
                f"md5(string_agg(id || ':' || word, ',' ORDER BY id)) FROM {table}"
            ).fetchone()
        )


def run_millstream(dsn: str, rows: list, interval: str, work: str) -> tuple[float, Any]:
    table = TABLES["millstream"]
    fresh(dsn, table)
    cpu = time.process_time()
    started = time.perf_counter()
    source = Stream.from_iterable(rows, stream_name="rows")
    source.to_postgres(table, dsn, stream_name="out")
    checkpoints = enable(source, tempfile.mkdtemp(dir=work), interval=interval)
    run_millstream_source(source)
    checkpoints.close()
    elapsed = time.perf_counter() - started
    CPU.setdefault("millstream", []).append(time.process_time() - cpu)
    infos = list(checkpoints.history)
    batches = transactions(dsn, table)
    facts = {
        "checkpoints": len(infos),
        "held_s_max": round(max((i.held_s for i in infos), default=0.0), 4),
        "duration_s_max": round(max((i.duration_s for i in infos), default=0.0), 4),
    }
    return elapsed, (batches, facts)


def run_raw(dsn: str, rows: list, batches: list[int], name: str = "raw") -> tuple[float, Any]:
    """The raw loop; ``raw_formatter`` formats each row as millstream does, with the
    COPY's formatter (``copy.formatter.write_row``, then ``copy.write`` of full buffers)."""
    table = TABLES[name]
    fresh(dsn, table)
    query = f"COPY {table} (id, word) FROM STDIN"
    cpu = time.process_time()
    started = time.perf_counter()
    with psycopg.connect(dsn) as conn:
        cursor = conn.cursor()
        remaining = iter(rows)
        for size in batches:
            with conn.transaction(), cursor.copy(query) as copy:
                if name == "raw":
                    for row in itertools.islice(remaining, size):
                        copy.write_row(row)
                else:
                    format_row, send = copy.formatter.write_row, copy.write
                    for row in itertools.islice(remaining, size):
                        data = format_row(row)
                        if data:
                            send(data)
    elapsed = time.perf_counter() - started
    CPU.setdefault(name, []).append(time.process_time() - cpu)
    return elapsed, transactions(dsn, table)


def main(argv: list[str] | None = None) -> None:
    parser = base_parser(__doc__.split("\n\n")[0], 1_000_000)
    parser.add_argument("--dsn", default=None, help="a running server (libpq DSN)")
    parser.add_argument("--interval", default="1s", help="time between checkpoints (default 1s)")
    args = parser.parse_args(argv)
    n = args.size
    rows = make_rows(n)
    work = tempfile.mkdtemp(prefix="millstream-bench-pg-")
    last: dict[str, Any] = {"batches": [n], "facts": {}}
    outputs: dict[str, Any] = {}

    def millstream_run() -> tuple[float, Any]:
        elapsed, (batches, facts) = run_millstream(dsn, rows, args.interval, work)
        last["batches"], last["facts"] = batches, facts
        return elapsed, batches

    def raw_run(name: str) -> tuple[float, Any]:
        return run_raw(dsn, rows, last["batches"], name)

    def check(name: str, batches: Any) -> bool:
        outputs[name] = digest(dsn, TABLES[name])
        expected = last["batches"]
        return bool(sum(batches) == n and (name == "millstream" or batches == expected))

    try:
        with postgres(args.dsn) as dsn:
            runs = {
                "millstream": millstream_run,
                "raw": lambda: raw_run("raw"),
                "raw_formatter": lambda: raw_run("raw_formatter"),
            }
            best_times(runs, 1, check)  # warm-up
            CPU.clear()
            times, ok = best_times(runs, args.repeat, check)
            with psycopg.connect(dsn) as conn:
                server_version = conn.info.server_version
    finally:
        shutil.rmtree(work, ignore_errors=True)
    ratio = times["raw"] / times["millstream"]
    ratio_formatter = times["raw_formatter"] / times["millstream"]
    cpu = {k: min(v) for k, v in CPU.items()}
    load = os.getloadavg()[0]
    info = machine()
    info["psycopg"] = psycopg.__version__
    info["psycopg_impl"] = psycopg.pq.__impl__
    info["postgresql"] = server_version
    emit_json(
        {
            "benchmark": "postgres_sink",
            "workload": f"{n} rows (int, text) -> a fresh table; millstream from_iterable -> "
            f"to_postgres with {args.interval} checkpoints (exactly-once) against a raw "
            "psycopg COPY write_row loop in the same transactions",
            "size": n,
            "interval": args.interval,
            "method": "time.perf_counter, best of --repeat (figures taken in turn) after a "
            "warm-up of each; millstream from building the graph to close(), raw from "
            "connect() to the last commit; cpu_s: time.process_time of this process over "
            "the same interval (best of --repeat), which other load on the machine moves less",
            "machine": info,
            "times_s": {k: round(v, 4) for k, v in times.items()},
            "cpu_s": {k: round(v, 4) for k, v in cpu.items()},
            "load_avg_1min_after": round(load, 2),
            "rows_per_s": {k: round(n / v) for k, v in times.items()},
            "transactions": len(last["batches"]),
            "rows_per_transaction": last["batches"][:20],
            "checkpoints": last["facts"],
            "ratios": {
                "raw_over_millstream": round(ratio, 3),
                "raw_formatter_over_millstream": round(ratio_formatter, 3),
                "raw_over_millstream_cpu": round(cpu["raw"] / cpu["millstream"], 3),
            },
            "checks": {
                "millstream_rows_written_once": ok["millstream"],
                "raw_same_transactions": ok["raw"] and ok["raw_formatter"],
                "tables_equal": outputs["millstream"] == outputs["raw"] == outputs["raw_formatter"],
                "tables_hold_every_row": outputs["raw"][:3] == (n, n, n * (n - 1) // 2),
            },
            "targets": {
                "millstream_vs_raw": target(
                    ratio, 0.8, "raw COPY loop time / millstream exactly-once time"
                )
            },
        }
    )


if __name__ == "__main__":
    main()
