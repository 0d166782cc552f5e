"""Smoke test of benchmarks/postgres_sink.py, run by run_all.py against the session's server.

No timing is asserted (the figures mean nothing at this size): the script must print one
JSON line of the documented shape whose checks all pass (both tables hold every row once,
the raw loop used millstream's transactions).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import psycopg

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


def test_postgres_sink_prints_one_valid_json_line(postgres_dsn):
    command = [sys.executable, str(BENCH / "run_all.py"), "--only", "postgres_sink", "--"]
    command += ["--dsn", postgres_dsn, "--size", "2000", "--repeat", "1", "--interval", "5ms"]
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    finally:
        with psycopg.connect(postgres_dsn, autocommit=True) as conn:
            conn.execute("DROP TABLE IF EXISTS bench_millstream, bench_raw, bench_raw_f")
    assert proc.returncode == 0, proc.stderr
    (line,) = proc.stdout.splitlines()
    result = json.loads(line)
    assert result["benchmark"] == "postgres_sink"
    assert result["size"] == 2000
    assert set(result["times_s"]) == {"millstream", "raw", "raw_formatter"}
    assert all(t > 0 for t in result["times_s"].values())
    assert sum(result["rows_per_transaction"]) <= 2000
    assert result["transactions"] == result["checkpoints"]["checkpoints"] >= 1
    assert set(result["targets"]) == {"millstream_vs_raw"}
    assert result["all_checks_passed"] is True, result["checks"]
