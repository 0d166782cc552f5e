"""Smoke test of benchmarks/rabbitmq.py, run by run_all.py against the session's broker.

No timing is asserted (the figures mean nothing at this size): the script must print one
JSON line of the documented shape whose checks all pass (every message consumed, every
publish confirmed and in the queue).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


def test_rabbitmq_benchmark_prints_one_valid_json_line(rabbitmq):
    command = [sys.executable, str(BENCH / "run_all.py"), "--only", "rabbitmq", "--"]
    command += ["--url", rabbitmq.url, "--size", "300", "--repeat", "1"]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=180, check=False)
    assert proc.returncode == 0, proc.stderr
    (line,) = proc.stdout.splitlines()
    result = json.loads(line)
    assert result["benchmark"] == "rabbitmq" and result["size"] == 300
    assert set(result["times_s"]) == {
        "source_millstream",
        "source_aio_pika",
        "sink_millstream",
        "sink_aio_pika",
    }
    assert set(result["targets"]) == {"from_rabbitmq_vs_aio_pika", "to_rabbitmq_vs_aio_pika"}
    assert result["all_checks_passed"] is True, result["checks"]
