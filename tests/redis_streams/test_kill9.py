"""Kill -9 (tests/reliability/ style): a child process reads a Redis stream with a slow file
sink; SIGKILL by pid at a random moment; a restarted consumer (the same name, or a new one
that claims the dead one's pending entries) completes it: every entry processed at least
once, none lost."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from millstream.testing import wait_for

N = 1500


def _lines(path: Path) -> list[str]:
    if not path.exists():
        return []
    return [line for line in path.read_text().splitlines() if line]


def _spawn(url: str, key: str, consumer: str, output: Path) -> subprocess.Popen[bytes]:
    root = Path(__file__).resolve().parents[2]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(root / "src"), str(root), env.get("PYTHONPATH", "")])
    return subprocess.Popen(
        [sys.executable, "-m", "tests.redis_streams.kill_child", url, key, consumer, str(output)],
        cwd=root,
        env=env,
    )


def _stop(child: subprocess.Popen[bytes]) -> None:
    if child.poll() is None:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)


@pytest.mark.parametrize("restart_as", ["c1", "c2"])
def test_kill_9_loses_nothing(redis_url, rclient, key, tmp_path, restart_as):
    seed = random.randrange(1 << 30)
    print(f"seed {seed}")
    rng = random.Random(seed)
    pipe = rclient.pipeline(transaction=False)
    for i in range(N):
        pipe.xadd(key, {"i": i})
    pipe.execute()
    output = tmp_path / "out.txt"
    kill_at = rng.randrange(N // 10, N // 2)

    first = _spawn(redis_url, key, "c1", output)
    try:
        wait_for(lambda: len(_lines(output)) >= kill_at or first.poll() is not None, 60)
        assert first.poll() is None, "the child ended before it was killed"
        os.kill(first.pid, signal.SIGKILL)
        assert first.wait(10) == -signal.SIGKILL
    finally:
        _stop(first)
    done_before = set(_lines(output))
    pending = rclient.xpending(key, "g")["pending"]
    print(f"killed after {len(done_before)} entries, {pending} pending")
    assert len(done_before) < N, "killed after the end: not mid-run"
    assert pending > 0, "nothing was in flight at the kill"

    second = _spawn(redis_url, key, restart_as, output)
    try:
        wait_for(
            lambda: len(set(_lines(output))) == N and rclient.xpending(key, "g")["pending"] == 0,
            90,
            fail_func=lambda: print(len(set(_lines(output))), rclient.xpending(key, "g")),
        )
    finally:
        _stop(second)
    lines = _lines(output)
    assert set(lines) == {str(i) for i in range(N)}  # none lost
    print(f"{len(lines) - N} duplicates")
