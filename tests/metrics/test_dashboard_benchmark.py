"""benchmarks/dashboard.py at tiny sizes: one JSON line, outputs correct, clients served.
No timing is asserted (meaningless at these sizes; docs/benchmarks.md has the real run)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_dashboard_benchmark_prints_one_valid_json_line():
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "dashboard.py"),
            "--size",
            "3000",
            "--text-repeat",
            "1",
            "--repeat",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    (line,) = proc.stdout.splitlines()
    result = json.loads(line)
    assert result["benchmark"] == "dashboard"
    assert set(result["times_s"]) == {
        f"{g}_{m}" for g in ("chain", "wordcount") for m in ("plain", "server", "client")
    }
    assert set(result["targets"]) == {"chain_with_client", "wordcount_with_client"}
    assert result["all_checks_passed"] is True, result["checks"]
