"""benchmarks/pulsar_connector.py runs at a small size and checks its own output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(300)
def test_pulsar_benchmark_runs_and_every_message_arrives(pulsar_url):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "pulsar_connector.py"), "--url", pulsar_url,
         "--size", "2000", "--repeat", "1", "--no-memory"],
        capture_output=True,
        text=True,
        env=env,
        timeout=280,
        check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["benchmark"] == "pulsar" and result["all_checks_passed"]
    assert set(result["targets"]) == {"read", "write"}
