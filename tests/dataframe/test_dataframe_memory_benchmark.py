"""Smoke test of benchmarks/dataframe_memory.py at a tiny size (in the style of
tests/test_benchmarks_smoke.py; no memory figure is asserted at this size)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "dataframe_memory.py"


def test_dataframe_memory_prints_one_valid_json_line() -> None:
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--chunks", "200", "--streamz-chunks", "50"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    (line,) = proc.stdout.splitlines()
    result = json.loads(line)
    assert result["benchmark"] == "dataframe_memory"
    assert (result["size"], result["streamz_size"]) == (200, 50)
    assert set(result["memory"]) == {"expanding_mean", "ewm_mean", "groupby_sum"}
    for operation, runs in result["memory"].items():
        streamz = runs["streamz"]
        assert streamz["chunks"] == 50 and set(streamz["peak_rss_mb"]) == {"10%", "50%", "100%"}
        ours = runs["millstream"]
        if "skipped" in ours:  # groupby before millstream's frames have it
            assert operation == "groupby_sum"
            continue
        assert ours["chunks"] == 200 and ours["peak_rss_mb"]["100%"] > 0
        assert isinstance(ours["flat"], bool)
        assert f"{operation}_millstream_flat" in result["targets"]
    assert result["checks"] and all(result["checks"].values()), result["checks"]
    assert result["all_checks_passed"] is True
    assert result["machine"]["streamz"] == "0.6.6"
