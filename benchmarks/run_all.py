"""Run every benchmark script as a subprocess and print their JSON lines.

Usage: ``python benchmarks/run_all.py [--only NAME ...] [-- ARGS...]``; the ARGS after
``--`` (for instance ``--size 1000 --repeat 1``) are passed to every script.

Prints exactly one JSON line per benchmark, in order, on stdout; anything a script
writes to stderr is passed through to stderr. Exits with status 1 if a script fails
or does not print exactly one valid JSON object (missed speed targets are reported
in the JSON, not in the exit status).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHMARKS = [
    "map_chain",
    "wordcount",
    "import_time",
    "kafka_produce",
    "kafka_wordcount",
    "dask_wordcount",
    "dask_scaling",
    "dask_kafka",
    "event_windows",
    "checkpoints",
    "kafka_checkpoints",
    "kafka_exactly_once",
    "kafka_copy",
    "postgres_sink",
    "parquet_sink",
    "rabbitmq",
    "pulsar_connector",
    "dataframe_ops",
    "http_server",
]


def run_one(name: str, extra: list[str]) -> tuple[str | None, str]:
    """Run ``benchmarks/<name>.py``; return (its JSON line or None, an error message)."""
    proc = subprocess.run(
        [sys.executable, str(HERE / f"{name}.py"), *extra],
        capture_output=True,
        text=True,
        check=False,
    )
    sys.stderr.write(proc.stderr)
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    if len(lines) != 1:
        return None, f"{name}: expected one JSON line on stdout, got {len(lines)}"
    try:
        result = json.loads(lines[0])
    except ValueError as e:
        return None, f"{name}: invalid JSON ({e})"
    if not isinstance(result, dict):
        return None, f"{name}: the JSON line is not an object"
    if proc.returncode != 0:
        return lines[0], f"{name}: exited with status {proc.returncode}"
    return lines[0], ""


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    extra: list[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, extra = argv[:i], argv[i + 1 :]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", choices=BENCHMARKS, help="run only these")
    args = parser.parse_args(argv)
    failed = False
    for name in args.only or BENCHMARKS:
        line, error = run_one(name, extra)
        if line is not None:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
        if error:
            sys.stderr.write(error + "\n")
            failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
