"""Checkpoints of DaskStream graphs: state on the workers, futures in flight.

Checkpoints are taken from the test thread while elements flow; each is read back and
checked: the counts in it are exactly those of the words the source had emitted (Dask
nodes settle every future in flight before the snapshot; a Dask ``buffer`` empties, as
futures cannot be saved). The run is stopped (a crash), the graph built again and
restored from the same directory, and after a few restarts a last run goes to the end:
the counts equal an uninterrupted run's. ``test_kill_9_*`` does the same with a child
process killed with ``kill -9`` at random moments.
"""

from __future__ import annotations

import json
import os
import pickle
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from millstream import Stream
from millstream.checkpoint import FAILPOINTS, Checkpoints, CheckpointStore, enable
from millstream.testing import run_child, wait_for

ROUNDS = 2
CHECKPOINTS = 4
CHILD = Path(__file__).resolve().parent.parent / "checkpoint" / "dask_wordcount_child.py"


def lines(seed: int, n: int) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(f"w{rng.randrange(40)}" for _ in range(rng.randrange(1, 6))) for _ in range(n)]


def expected_counts(items: list[str]) -> dict[str, int]:
    return dict(Counter(word.upper() for line in items for word in line.split()))


def upper_words(line: str) -> list[str]:
    return line.upper().split()


# -- graphs: (source, the node with the counts, how to read its counts) ---------------------
def on_workers(source: Stream) -> tuple[Stream, Stream]:
    """Word count on the cluster: the table is a future on the workers."""
    counts = source.scatter().map(upper_words).flatten().frequencies()
    counts.gather().sink(lambda table: None)
    return source, counts


def per_element(source: Stream) -> tuple[Stream, Stream]:
    """Element futures (no batches): frequencies of lines, behind a buffer."""
    counts = source.scatter().map(str.upper).buffer(4).frequencies()
    counts.gather().sink(lambda table: None)
    return source, counts


def behind_a_buffer(source: Stream) -> tuple[Stream, Stream]:
    """Futures in a Dask buffer and fetched ahead by gather; the count is local."""
    counts = source.scatter().map(upper_words).buffer(4).gather().flatten().frequencies()
    return source, counts


GRAPHS: dict[str, Callable[[Stream], tuple[Stream, Stream]]] = {
    "on_workers": on_workers,
    "per_element": per_element,
    "behind_a_buffer": behind_a_buffer,
}


def counts_in(graph: str, items: list[str]) -> dict[str, int]:
    if graph == "per_element":
        return dict(Counter(line.upper() for line in items))
    return expected_counts(items)


def check_consistent(
    graph: str, checkpoints: Checkpoints, source: Stream, counts: Stream, where: Any, items, info
) -> int:
    record = pickle.loads(CheckpointStore(where).read(info.id))
    states = {node_id: entry["state"] for node_id, entry in record["nodes"].items()}
    position = states[checkpoints.ids[source]]
    found = states[checkpoints.ids[counts]]["counts"]
    assert found == counts_in(graph, items[:position]), f"checkpoint {info.id} at {position}"
    for node, node_id in checkpoints.ids.items():
        if type(node).__name__ == "buffer":
            assert states[node_id] == {"pending": []}  # futures are never saved
    return position


def wait_until_at(source: Stream, target: int) -> None:
    """Wait until ``source`` has emitted ``target`` elements (or ended)."""
    wait_for(lambda: source.stopped or source.snapshot() >= target, 60, period=0.001)


def final_counts(counts: Stream) -> dict[str, int]:
    return counts.snapshot()["counts"]  # a Dask node fetches it: call it off the loop


@pytest.mark.parametrize("graph", sorted(GRAPHS))
def test_dask_checkpoints_while_elements_flow_restore_exactly(client, tmp_path, graph):
    items = lines(seed=len(graph), n=150)
    where = tmp_path / "checkpoints"
    rng = random.Random(len(graph))
    positions: list[int] = []
    for _ in range(ROUNDS):
        source, counts = GRAPHS[graph](Stream.from_iterable(items, chunk_size=8, stream_name="in"))
        checkpoints = enable(source, where, interval=None)
        start = source.snapshot()
        source.start()
        ahead = sorted(rng.uniform(0, 0.6) for _ in range(CHECKPOINTS + 1))
        targets = [start + int(a * (len(items) - start)) for a in ahead]
        for target in targets[:-1]:
            wait_until_at(source, target)
            info = checkpoints.checkpoint(timeout=60)
            if info is not None:
                positions.append(
                    check_consistent(graph, checkpoints, source, counts, where, items, info)
                )
        wait_until_at(source, targets[-1])
        source.stop()  # the crash: all after the last checkpoint is lost
        checkpoints.close(final=False)
    source, counts = GRAPHS[graph](Stream.from_iterable(items, chunk_size=8, stream_name="in"))
    checkpoints = enable(source, where, interval=None)
    assert checkpoints.restored is not None
    source.start()
    wait_for(lambda: source.stopped, 60)
    expected = counts_in(graph, items)
    wait_for(lambda: final_counts(counts) == expected, 60, period=0.05)
    info = checkpoints.close()
    if info is not None:
        check_consistent(graph, checkpoints, source, counts, where, items, info)
    assert final_counts(counts) == expected
    assert any(0 < p < len(items) for p in positions), positions


def test_dask_periodic_checkpoints_and_a_restart(client, tmp_path):
    """Checkpoints every few elements (the coordinator's own schedule); the final one at
    the end holds the whole count, which a restart restores as it was."""
    items = lines(seed=7, n=200)
    where = tmp_path / "checkpoints"
    source, counts = on_workers(Stream.from_iterable(items, chunk_size=4, stream_name="in"))
    checkpoints = enable(source, where, interval=None, every=20)
    source.start()
    wait_for(lambda: source.stopped, 60)
    wait_for(lambda: final_counts(counts) == expected_counts(items), 60, period=0.05)
    checkpoints.close()  # takes the last one, unless the end of input already had it
    last = checkpoints.last
    assert last is not None and last.id > 3
    source, counts = on_workers(Stream.from_iterable(items, chunk_size=4, stream_name="in"))
    checkpoints = enable(source, where, interval=None)
    assert checkpoints.restored == last.id
    assert final_counts(counts) == expected_counts(items)
    source.start()
    wait_for(lambda: source.stopped, 60)
    assert final_counts(counts) == expected_counts(items)
    assert checkpoints.close() is None  # nothing moved


# -- kill -9 of a child process ------------------------------------------------------------
def newest_position(where: Path) -> int | None:
    found = CheckpointStore(where).latest()
    if found is None:
        return None
    record = pickle.loads(found[1])
    return record["nodes"]["in"]["state"]


def wait_for_progress(where: Path, before: int, child: subprocess.Popen) -> None:
    """Wait until a checkpoint further than ``before`` is there (or the child ended)."""
    wait_for(
        lambda: (newest_position(where) or 0) > before or child.poll() is not None, 90, period=0.02
    )


def test_kill_9_a_dask_word_count_at_random_moments(dask_cluster, tmp_path):
    """A child process counts words on the cluster with checkpoints every 0.2 s; it is
    killed with ``kill -9`` 5 times at random moments (each after it made progress),
    then runs to the end: the counts are exact."""
    items = lines(seed=11, n=300)
    where, out, given = tmp_path / "checkpoints", tmp_path / "counts.json", tmp_path / "lines"
    given.write_text("\n".join(items) + "\n")
    command = [sys.executable, str(CHILD), dask_cluster.scheduler_address, str(where), str(out)]
    command.append(str(given))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    rng = random.Random(11)
    progress: list[int] = []
    for kill in range(5):
        before = newest_position(where) or 0
        child = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            # a checkpoint newer than the last one: this run made progress
            wait_for_progress(where, before, child)
            time.sleep(rng.uniform(0, 0.4))
            assert child.poll() is None, (
                f"the child ended before kill {kill + 1}: "
                + (child.communicate()[1].decode(errors="replace")[-2000:])
            )
            os.kill(child.pid, signal.SIGKILL)
            child.wait(30)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait(30)
            child.stdout.close()  # type: ignore[union-attr]
            child.stderr.close()  # type: ignore[union-attr]
        assert child.returncode == -signal.SIGKILL
        assert not out.exists()
        progress.append(newest_position(where) or 0)
    # each run checkpointed further than the one before it was killed
    assert all(b > a for a, b in zip([0, *progress[:-1]], progress, strict=True)), progress
    assert progress[-1] < len(items), "the input should not be done before the last kill"
    done = subprocess.run(command, env=env, capture_output=True, timeout=100)
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-3000:]
    assert json.loads(out.read_text()) == expected_counts(items)


def test_kill_9_a_dask_word_count_at_each_failpoint(dask_cluster, tmp_path):
    """The same child killed at every fail-point of the checkpoint protocol (each at its
    2nd hit, so after some progress), then run to the end: the counts are exact."""
    items = lines(seed=12, n=300)
    where, out, given = tmp_path / "checkpoints", tmp_path / "counts.json", tmp_path / "lines"
    given.write_text("\n".join(items) + "\n")
    command = [sys.executable, str(CHILD), dask_cluster.scheduler_address, str(where), str(out)]
    command.append(str(given))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    for point in FAILPOINTS:
        run = run_child(command, failpoints=f"{point}:kill@2", env=env, timeout=120)
        assert run.crashed, (point, run.returncode, run.stderr[-2000:])
        assert run.failpoints_hit == [point]
        assert not out.exists()
    assert (newest_position(where) or 0) < len(items), "the input should outlast the faults"
    done = run_child(command, env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(out.read_text()) == expected_counts(items)
