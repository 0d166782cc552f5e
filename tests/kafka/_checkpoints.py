"""Checkpointing a Kafka pipeline while records flow, "crashing" it and resuming it.

:func:`crash_and_resume` is the scenario every Kafka source is tested with: a producer
thread writes the records of a topic a few at a time; a first graph reads them with
checkpoints taken from the test thread while they flow, and after each checkpoint the
group's committed offsets must be exactly the checkpoint's positions; the graph is then
stopped without a last checkpoint and dropped (its state after that checkpoint is lost,
as in a crash); a second graph built by the same code restores the checkpoint, reads on,
and its counts must be exactly the topic: every record counted once.
"""

from __future__ import annotations

import asyncio
import pickle
import threading
import time
from collections.abc import Callable

from millstream.checkpoint import CheckpointStore, enable
from millstream.testing import wait_for

from ._produce import committed, produce

PARTITIONS = 3


def record_values(n: int) -> list[bytes]:
    """``n`` distinct records; record ``i`` goes to partition ``i % PARTITIONS``."""
    return [b"r%d" % i for i in range(n)]


class Feeder(threading.Thread):
    """Writes ``values`` to ``topic`` in small acknowledged chunks, ``pause`` s apart."""

    def __init__(self, bootstrap, topic, values, chunk=20, pause=0.02):
        super().__init__(daemon=True)
        self.args = (bootstrap, topic, values, chunk, pause)
        self.error: BaseException | None = None

    def run(self):
        bootstrap, topic, values, chunk, pause = self.args
        try:
            for start in range(0, len(values), chunk):
                part = values[start : start + chunk]
                produce(bootstrap, topic, part, partition=lambda i, s=start: (s + i) % PARTITIONS)
                time.sleep(pause)
        except BaseException as e:  # reported by the test
            self.error = e


async def slow_sink(x):
    """An async sink: each element is awaited by the source (a checkpoint can find it there)."""
    await asyncio.sleep(0.0005)


async def slower_sink(x):
    """:func:`slow_sink` for batches: long enough that checkpoints often find one in hand."""
    await asyncio.sleep(0.01)


def saved_position(where, checkpoints, source):
    """The position of ``source`` in the newest checkpoint file at ``where``."""
    _, body = CheckpointStore(where).latest()
    return pickle.loads(body)["nodes"][checkpoints.ids[source]]["state"]


def as_committed(position, topic):
    """A position as :func:`committed` shows it: ``{partition: offset or None}``."""
    mine = position.get(topic, {})
    return {p: mine.get(p) for p in range(PARTITIONS)}


class Progress:
    """Counts the elements a node emits (read from the test thread while it runs)."""

    def __init__(self, node):
        self.n = 0
        node.sink(self.add)

    def add(self, _):
        self.n += 1


def total(counts) -> int:
    """The records counted (read once the graph is stopped)."""
    return sum(counts.snapshot()["counts"].values())


def crash_and_resume(
    bootstrap: str,
    topic: str,
    group: str,
    where,
    build: Callable[[], tuple],
    n: int = 1500,
    timeout: float = 60,
) -> dict:
    """Run the scenario above; return what it saw (for the test's own assertions).

    ``build()`` makes the graph: ``(source, counts)`` where ``counts`` is a
    ``frequencies`` node counting each record's value (a str).
    """
    values = record_values(n)
    feeder = Feeder(bootstrap, topic, values)
    source, counts = build()
    progress = Progress(counts)
    checkpoints = enable(source, where, interval=None)
    seen_while_flowing = []
    source.start()
    feeder.start()
    try:
        wait_for(lambda: progress.n > 0, timeout)
        while len(seen_while_flowing) < 4 or progress.n < n // 3:
            assert source.error is None, source.error
            info = checkpoints.checkpoint()
            assert info is not None
            position = saved_position(where, checkpoints, source)
            # commits follow checkpoints: exactly the checkpoint's offsets, nothing beyond
            assert committed(bootstrap, group, topic, PARTITIONS) == as_committed(position, topic)
            seen_while_flowing.append(position)
            time.sleep(0.05)
    finally:
        source.stop()  # a crash: no last checkpoint; the state after the last one is lost
        checkpoints.close(final=False)
    assert feeder.is_alive() or progress.n < n, "the records stopped flowing too early"
    last = seen_while_flowing[-1]
    after_stop = committed(bootstrap, group, topic, PARTITIONS)
    assert after_stop == as_committed(last, topic), "stop() committed beyond the checkpoint"
    counted_before = total(counts)

    source, counts = build()
    progress = Progress(counts)
    resumed = enable(source, where, interval=None)
    assert resumed.restored == checkpoints.last.id
    assert source.snapshot() == last
    restored_total = total(counts)
    source.start()
    try:
        feeder.join(timeout)
        assert feeder.error is None, feeder.error
        wait_for(lambda: restored_total + progress.n >= n, timeout)
        time.sleep(0.3)  # nothing more (no double count) arrives
        final = resumed.close()
    finally:
        source.stop()
    table = counts.snapshot()["counts"]
    doubles = {k: v for k, v in table.items() if v != 1}
    missing = {v.decode() for v in values} - set(table)
    assert not doubles and not missing, (
        f"{len(doubles)} counted more than once (e.g. {sorted(doubles)[:5]}), "
        f"{len(missing)} never counted (e.g. {sorted(missing)[:5]})"
    )
    assert len(table) == n
    ends = {p: len(range(p, n, PARTITIONS)) for p in range(PARTITIONS)}
    assert committed(bootstrap, group, topic, PARTITIONS) == ends
    return {
        "positions": seen_while_flowing,
        "counted_before_crash": counted_before,
        "restored_total": restored_total,
        "final": final,
    }
