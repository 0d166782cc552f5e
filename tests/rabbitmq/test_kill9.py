"""kill -9 of a ``from_rabbitmq`` pipeline mid-run loses nothing (at-least-once).

N messages are published; a child process (:mod:`kill_child`) consumes them into a file,
slowly, and is killed with SIGKILL at a random moment of its progress (the seed is
printed). The test checks the kill really happened mid-run (exit by SIGKILL, some but not
all lines written, the broker took the unacknowledged messages back), restarts the child,
and at the end every message is in the file at least once.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from pathlib import Path

from millstream.testing import wait_for

from .helpers import declare_queue, publish, unacked

N = 2000
ROOT = Path(__file__).resolve().parents[2]


def start_child(url: str, queue: str, out: Path, delay: float, log: Path) -> subprocess.Popen:
    env = dict(
        os.environ, PYTHONPATH=f"{ROOT / 'src'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"
    )
    child = subprocess.Popen(
        [
            sys.executable,
            str(Path(__file__).with_name("kill_child.py")),
            url,
            queue,
            str(out),
            str(delay),
        ],
        env=env,
        stdout=open(log, "ab"),
        stderr=subprocess.STDOUT,
    )
    return child


def lines(path: Path) -> list[bytes]:
    if not path.exists():
        return []
    return path.read_bytes().splitlines()


def test_kill9_mid_run_loses_nothing(rabbitmq, tmp_path):
    url = rabbitmq.url
    seed = int(os.environ.get("MILLSTREAM_RELIABILITY_SEED", random.randrange(1 << 30)))
    print(f"seed {seed}", flush=True)
    rng = random.Random(seed)
    queue = declare_queue(url)
    data = [f"msg-{i:05d}".encode() for i in range(N)]
    publish(url, queue, data)
    out, log = tmp_path / "out.txt", tmp_path / "child.log"
    kill_at = rng.randrange(N // 10, N // 2)  # lines written when the kill comes

    child = start_child(url, queue, out, 0.002, log)
    try:
        wait_for(lambda: len(lines(out)) >= kill_at, 60, period=0.01)
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(10) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    written = len(lines(out))
    print(f"killed after {written} of {N} lines (target {kill_at})", flush=True)
    assert kill_at <= written < N, "the kill did not come mid-run"
    # the broker noticed the dead consumer: nothing unacknowledged, the rest ready again
    wait_for(lambda: unacked(rabbitmq, queue)[1] == 0, 30, period=0.2)
    ready = unacked(rabbitmq, queue)[0]
    assert 0 < ready <= N - written + 50  # at most a prefetch of written lines unacked

    child = start_child(url, queue, out, 0.0, log)
    try:
        wait_for(lambda: unacked(rabbitmq, queue) == (0, 0), 60, period=0.2)
        wait_for(lambda: set(lines(out)) >= set(data), 30, period=0.05)
    finally:
        child.kill()
        child.wait()
    got = lines(out)
    missing = set(data) - set(got)
    assert not missing, f"{len(missing)} message(s) lost, e.g. {sorted(missing)[:5]}"
    assert set(got) == set(data)
    print(f"{len(got) - N} duplicate line(s) (redelivered after the kill)", flush=True)
