"""Smoke test of benchmarks/parquet_sink.py: tiny size, one JSON line whose checks pass."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


def test_parquet_sink_prints_one_valid_json_line():
    command = [sys.executable, str(BENCH / "run_all.py"), "--only", "parquet_sink", "--"]
    command += ["--size", "3000", "--batch", "500", "--repeat", "1", "--interval", "5ms"]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    (line,) = proc.stdout.splitlines()
    result = json.loads(line)
    assert result["benchmark"] == "parquet_sink" and result["size"] == 3000
    assert set(result["times_s"]) == {"millstream", "millstream_checkpoints", "raw"}
    assert set(result["targets"]) == {"millstream_vs_raw", "checkpoints_vs_raw"}
    assert result["all_checks_passed"] is True, result["checks"]
