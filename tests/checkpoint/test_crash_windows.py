"""An event-time window pipeline killed with SIGKILL at random moments and at every
fail-point, then restarted: every window result is right, none counts an event twice,
and none is missing (results after the last checkpoint may be written again)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from millstream.checkpoint import FAILPOINTS
from millstream.testing import crash_and_recover, run_child

JOB = Path(__file__).resolve().parent / "jobs" / "windows_job.py"
SEED = int(os.environ.get("MILLSTREAM_TEST_SEED", "20261205"))


def results(path: Path) -> list[tuple]:
    return [tuple(json.loads(line)) for line in path.read_text().splitlines()]


def test_windows_survive_kills_with_each_result_counted_once(tmp_path):
    reference = tmp_path / "reference.jsonl"
    run = run_child([sys.executable, str(JOB), "-", str(reference)])
    assert run.returncode == 0, run.stderr
    expected = results(reference)
    assert len(expected) == len(set(expected)) > 100
    out = tmp_path / "out.jsonl"
    report = crash_and_recover(
        [sys.executable, str(JOB), str(tmp_path / "ck"), str(out)],
        kills=5,
        failpoints=[f"{point}:kill@3" for point in FAILPOINTS],
        seed=SEED,
        between=(0.6, 1.2),
    )
    print(report.describe())
    assert report.final.returncode == 0, report.final.stderr
    got = results(out)
    # each (key, window) has one value only: no event counted twice or lost ...
    by_window: dict[tuple, set] = {}
    for key, start, value, kind in got:
        by_window.setdefault((key, start, kind), set()).add(value)
    assert all(len(values) == 1 for values in by_window.values()), [
        (w, v) for w, v in by_window.items() if len(v) > 1
    ][:5]
    # ... and every result is there (some twice: written again after a restart)
    assert set(got) == set(expected)
    assert len(got) >= len(expected)
