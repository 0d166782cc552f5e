"""Parquet killed with kill -9: ``from_iterable(range(N)) -> to_parquet`` in a child
process, SIGKILLed (by pid) at a random moment while it writes, then run again to the end.

With checkpoints (every 0.2 s) the dataset then holds every number exactly once (files
are committed atomically with each checkpoint: no partial file, no duplicate). Without
checkpoints, every number at least once (files are renamed at roll-over; the restart
writes the input again). Seed: ``MILLSTREAM_RELIABILITY_SEED`` (else random).
"""

from __future__ import annotations

import collections
import random
import signal
import subprocess
import time
from pathlib import Path

import pyarrow.dataset as ds

from parquet.kill_child import command

from .harness import reliability_seed

N = 20_000


def numbers_in(out: Path) -> list[int]:
    """The numbers a reader of the dataset sees now (committed files only)."""
    if not out.exists():
        return []
    dataset = ds.dataset(str(out), partitioning="hive")
    if not dataset.files:
        return []
    return dataset.to_table(columns=["i"])["i"].to_pylist()


def run_killed_then_restarted(tmp_path: Path, mode: str, seed: int) -> list[int]:
    rng = random.Random(f"parquet-kill:{mode}:{seed}")
    out, location = tmp_path / "out", tmp_path / "checkpoints"
    kill_at = int(rng.uniform(0.1, 0.7) * N)
    print(f"seed {seed}: {mode}, SIGKILL once {kill_at} of {N} rows are visible")
    child = subprocess.Popen(command(out, location, mode, N), stdout=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while len(set(numbers_in(out))) < kill_at:
            assert child.poll() is None, "the child ended before the kill"
            assert time.monotonic() < deadline, f"fewer than {kill_at} rows visible in 120 s"
            time.sleep(0.05)
        assert child.poll() is None, "the child ended before the kill"
        child.send_signal(signal.SIGKILL)
        assert child.wait(30) == -signal.SIGKILL
        seen = numbers_in(out)
        assert 0 < len(set(seen)) < N, f"the kill did not hit mid-run: {len(set(seen))}/{N}"
        if mode == "checkpoints":
            partial = list(out.rglob(".*.inprogress"))
            print(f"at the kill: {len(seen)} rows visible, {len(partial)} temporaries")
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    again = subprocess.run(command(out, location, mode, N), capture_output=True, timeout=300)
    assert again.returncode == 0, again.stderr.decode()[-3000:]
    assert b"done" in again.stdout
    return numbers_in(out)


def test_with_checkpoints_every_number_exactly_once(tmp_path):
    seen = run_killed_then_restarted(tmp_path, "checkpoints", reliability_seed())
    duplicated = [i for i, c in collections.Counter(seen).items() if c > 1]
    assert not duplicated, f"{len(duplicated)} numbers twice, e.g. {duplicated[:5]}"
    assert sorted(seen) == list(range(N))
    assert not list((tmp_path / "out").rglob("*.inprogress")), "temporaries left behind"


def test_without_checkpoints_no_number_is_lost(tmp_path):
    seen = run_killed_then_restarted(tmp_path, "plain", reliability_seed())
    assert set(seen) == set(range(N))  # duplicates allowed (at-least-once)
