"""Checkpoints of running graphs whose nodes emit from tasks and timers of their own.

Each scenario runs a word count behind buffers, delays, timed windows, rate limits,
``map_async`` or partition timeouts. While elements flow, checkpoints are taken from the
test thread at random moments; every checkpoint is read back and checked to be
consistent: the counts in it plus the words still queued in the snapshots of the nodes
before the count are exactly the words of the sources' positions (nothing in hand,
nothing counted twice). Then the run is stopped (a crash: what happened after the last
checkpoint is lost), the graph is built again, ``enable()`` restores it from the same
directory, and after a few such restarts a last run goes to the end: the counts equal
those of an uninterrupted run.
"""

from __future__ import annotations

import asyncio
import pickle
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from millstream import Stream
from millstream.checkpoint import Checkpoints, CheckpointStore, enable
from millstream.core import sync
from millstream.core.hold import Hold
from millstream.testing import TestingSource, await_for, wait_for

N_WORDS = 4000
ROUNDS = 3  # interrupted runs before the last one, which goes to the end
CHECKPOINTS = 5  # per interrupted run, at random moments


def words(seed: int = 0, n: int = N_WORDS) -> list[str]:
    rng = random.Random(seed)
    return [f"w{rng.randrange(60)}" for _ in range(n)]


async def upper_later(word: str) -> str:
    await asyncio.sleep(0.0001 * (len(word) % 3))  # finishes out of order
    return word.upper()


async def slow_sink(_: Any) -> None:
    await asyncio.sleep(0)  # a consumer that waits: backpressure up to the source


@dataclass
class Graph:
    """A built graph: its source, the count at its end, and the nodes before the count
    whose snapshots may hold words not yet counted (with how to read them)."""

    source: Stream
    counts: Stream
    queues: list[tuple[Stream, Callable[[Any], list[str]]]] = field(default_factory=list)


def pending(state: dict) -> list[str]:
    return list(state["pending"])


def delayed(state: dict) -> list[str]:
    return [x for _, x in state["pending"]]


def window(state: dict) -> list[str]:
    return list(state["buffer"])


def groups(state: dict) -> list[str]:
    return [x for _, values in state["buffers"] for x in values]


class SlowSnapshot(Stream):
    """Passes elements on; its snapshot takes a while in a thread (``snapshot_blocks``), as
    a Dask node's does: the loop runs meanwhile, so only holds keep the graph still
    between the snapshots of the nodes before and after it."""

    snapshot_blocks = True

    def update(self, x: Any, who: Stream | None = None, metadata: Any = None) -> Any:
        return self._emit(x, metadata=metadata)

    def snapshot(self) -> dict:
        time.sleep(0.005)
        return {}

    def restore(self, state: dict) -> None:
        pass


def build_buffer(source: Stream) -> Graph:
    queued = source.buffer(8)
    counts = SlowSnapshot(queued).map(str.upper).frequencies()
    return Graph(source, counts, [(queued, pending)])


def build_delay(source: Stream) -> Graph:
    queued = source.delay(0.002)
    counts = SlowSnapshot(queued).map(str.upper).frequencies()
    return Graph(source, counts, [(queued, delayed)])


def build_timed_window(source: Stream) -> Graph:
    windows = source.timed_window(0.004)
    counts = SlowSnapshot(windows).flatten().map(str.upper).frequencies()
    return Graph(source, counts, [(windows, window)])


def build_rate_limit(source: Stream) -> Graph:
    # nothing waits in a rate_limit's snapshot: a checkpoint waits until it is out
    counts = SlowSnapshot(source.rate_limit(0.00005)).map(str.upper).frequencies()
    return Graph(source, counts)


def build_map_async(source: Stream) -> Graph:
    calls = source.map_async(upper_later, parallelism=4)
    return Graph(source, SlowSnapshot(calls).frequencies(), [(calls, pending)])


def build_partition_timeout(source: Stream) -> Graph:
    parts = source.partition(7, timeout=0.002)
    counts = SlowSnapshot(parts).flatten().map(str.upper).frequencies()
    return Graph(source, counts, [(parts, groups)])


def build_chain(source: Stream) -> Graph:
    queued = source.buffer(4)
    later = SlowSnapshot(queued).delay(0.001)
    windows = SlowSnapshot(later).timed_window(0.003)
    calls = SlowSnapshot(windows).flatten().map_async(upper_later, parallelism=3)
    counts = SlowSnapshot(calls).rate_limit(0.00002).frequencies()
    return Graph(
        source, counts, [(queued, pending), (later, delayed), (windows, window), (calls, pending)]
    )


SCENARIOS = {
    "buffer": build_buffer,
    "delay": build_delay,
    "timed_window": build_timed_window,
    "rate_limit": build_rate_limit,
    "map_async": build_map_async,
    "partition_timeout": build_partition_timeout,
    "chain": build_chain,
}


def make_source(kind: str, items: list[str]) -> Stream:
    if kind == "from_iterable":
        return Stream.from_iterable(items, chunk_size=16, stream_name="words")
    return TestingSource(items, stream_name="words")


def on_loop(node: Stream, func: Callable[[], Any]) -> Any:
    async def call() -> Any:
        return func()

    return sync(node.loop, call)


def read_checkpoint(where: Any, checkpoint_id: int) -> dict[str, Any]:
    record = pickle.loads(CheckpointStore(where).read(checkpoint_id))
    return {node_id: entry["state"] for node_id, entry in record["nodes"].items()}


def check_consistent(graph: Graph, checkpoints: Checkpoints, where: Any, items: list[str], info):
    """The checkpoint's counts plus the words queued before the count are exactly the
    words the source had emitted: no element was in hand, none counted twice."""
    states = read_checkpoint(where, info.id)
    position = states[checkpoints.ids[graph.source]]
    found = Counter(states[checkpoints.ids[graph.counts]]["counts"])
    for node, queued in graph.queues:
        found.update(word.upper() for word in queued(states[checkpoints.ids[node]]))
    expected = Counter(word.upper() for word in items[:position])
    assert found == expected, (
        f"checkpoint {info.id} at position {position}: "
        f"{sum(found.values()) - sum(expected.values())} word(s) too many"
    )
    counted = sum(states[checkpoints.ids[graph.counts]]["counts"].values())
    return position, position - counted


def wait_until_at(source: Stream, target: int) -> None:
    """Wait until ``source`` has emitted ``target`` elements (or ended)."""
    wait_for(lambda: source.stopped or source.snapshot() >= target, 30, period=0.0005)


def final_counts(graph: Graph) -> dict[str, int]:
    return on_loop(graph.counts, lambda: graph.counts.snapshot()["counts"])


def run_with_crashes(
    build: Callable[[Stream], Graph], kind: str, where: Any, items: list[str], seed: int
) -> tuple[dict[str, int], list[tuple[int, int]]]:
    """Interrupted runs with checkpoints at random moments, then a run to the end.

    Returns the final counts and, for each checkpoint, the source's position and how
    many of the words emitted were not counted yet (queued in a node's snapshot)."""
    rng = random.Random(seed)
    positions: list[tuple[int, int]] = []
    for _ in range(ROUNDS):
        graph = build(make_source(kind, items))
        graph.counts.sink(slow_sink)
        source = graph.source
        checkpoints = enable(source, where, interval=None)
        start = source.snapshot()
        source.start()
        # checkpoints at random moments: once the source passed random positions ahead
        ahead = sorted(rng.uniform(0, 0.5) for _ in range(CHECKPOINTS + 1))
        targets = [start + int(a * (len(items) - start)) for a in ahead]
        for target in targets[:-1]:
            wait_until_at(source, target)
            info = checkpoints.checkpoint(timeout=30)
            if info is not None:
                positions.append(check_consistent(graph, checkpoints, where, items, info))
        wait_until_at(source, targets[-1])
        source.stop()  # the crash: all after the last checkpoint is lost
        checkpoints.close(final=False)
    graph = build(make_source(kind, items))
    graph.counts.sink(slow_sink)
    checkpoints = enable(graph.source, where, interval=None)
    assert checkpoints.restored is not None
    graph.source.start()
    expected = dict(Counter(word.upper() for word in items))
    wait_for(lambda: graph.source.stopped, 60)
    wait_for(lambda: final_counts(graph) == expected, 30)
    info = checkpoints.close()
    if info is not None:
        check_consistent(graph, checkpoints, where, items, info)
    time.sleep(0.05)
    return final_counts(graph), positions


@pytest.mark.parametrize("kind", ["from_iterable", "TestingSource"])
@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_checkpoints_while_elements_flow_restore_exactly(tmp_path, scenario, kind):
    # a rate limit spaces elements out: fewer of them
    items = words(seed=len(scenario), n=N_WORDS // 4 if scenario == "rate_limit" else N_WORDS)
    counts, positions = run_with_crashes(
        SCENARIOS[scenario], kind, tmp_path / "checkpoints", items, seed=len(scenario)
    )
    assert counts == dict(Counter(word.upper() for word in items))
    # checkpoints were taken while elements flowed: with the source in the middle of its
    # input, or with words emitted and not counted yet
    assert len(positions) >= ROUNDS * CHECKPOINTS // 2
    assert any(0 < p < len(items) or queued for p, queued in positions), positions


# -- a node whose hold is closed takes nothing new --------------------------------------
def held(node: Stream) -> Hold:
    node.hold = Hold()
    node.hold.close()
    return node.hold


def test_a_held_buffer_keeps_its_queue_and_goes_on_when_opened():
    async def main() -> tuple[list[int], dict, list[int]]:
        source = Stream(asynchronous=True)
        queued = source.buffer(10)
        L = queued.sink_to_list()
        hold = held(queued)
        for i in range(3):
            await source.emit(i)
        await asyncio.sleep(0.01)
        before, snapshot = list(L), queued.snapshot()
        hold.open()
        await await_for(lambda: len(L) == 3, 5)
        return before, snapshot, L

    assert asyncio.run(main()) == ([], {"pending": [0, 1, 2]}, [0, 1, 2])


def test_a_held_timed_window_does_not_close_until_opened():
    async def main() -> tuple[list, dict, list]:
        source = Stream(asynchronous=True)
        windows = source.timed_window(0.005, emit_empty=False)
        L = windows.sink_to_list()
        hold = held(windows)
        await source.emit("a")
        await asyncio.sleep(0.03)  # several intervals: the window is due, but held
        before, snapshot = list(L), windows.snapshot()
        hold.open()
        await await_for(lambda: L, 5)
        return before, snapshot, L

    assert asyncio.run(main()) == ([], {"buffer": ["a"], "closes_in": 0.0}, [["a"]])


def test_a_held_latest_keeps_its_pending_element():
    async def main() -> tuple[list, dict, list]:
        source = Stream(asynchronous=True)
        last = source.latest()
        L = last.sink_to_list()
        hold = held(last)
        await source.emit(1)
        await source.emit(2)
        await asyncio.sleep(0.01)
        before, snapshot = list(L), last.snapshot()
        hold.open()
        await await_for(lambda: L, 5)
        return before, snapshot, L

    assert asyncio.run(main()) == ([], {"pending": [2]}, [2])


def test_a_held_map_async_keeps_finished_calls_in_its_snapshot():
    async def double(x: int) -> int:
        return 2 * x

    async def main() -> tuple[list, dict, list]:
        source = Stream(asynchronous=True)
        calls = source.map_async(double, parallelism=3)
        L = calls.sink_to_list()
        hold = held(calls)
        for i in range(3):
            await source.emit(i)
        await asyncio.sleep(0.01)
        before, snapshot = list(L), calls.snapshot()
        hold.open()
        await await_for(lambda: len(L) == 3, 5)
        return before, snapshot, L

    assert asyncio.run(main()) == ([], {"pending": [0, 1, 2]}, [0, 2, 4])


def test_a_rate_limited_element_counts_in_hand_until_it_is_out():
    async def main() -> tuple[int, int, list]:
        source = Stream(asynchronous=True)
        limited = source.rate_limit(0.05)
        L = limited.sink_to_list()
        hold = limited.hold = Hold()
        await source.emit(1)  # passes at once
        waiting = asyncio.ensure_future(source.emit(2))  # waits 50 ms
        await asyncio.sleep(0.005)
        in_hand = hold.in_hand
        hold.close()
        await hold.quiet()  # returns once 2 is out
        hold.open()
        await waiting
        return in_hand, hold.in_hand, L

    assert asyncio.run(main()) == (1, 0, [1, 2])


def test_a_partition_timeout_while_held_waits_for_the_hold():
    async def main() -> tuple[list, dict, list]:
        source = Stream(asynchronous=True)
        parts = source.partition(5, timeout=0.005)
        L = parts.sink_to_list()
        hold = held(parts)
        await source.emit("a")
        await asyncio.sleep(0.03)
        before, snapshot = list(L), parts.snapshot()
        hold.open()
        await await_for(lambda: L, 5)
        return before, snapshot, L

    assert asyncio.run(main()) == ([], {"buffers": [[None, ["a"]]], "due_in": [0.0]}, [("a",)])


def test_an_idle_timer_while_held_waits_for_the_hold():
    from millstream import ManualClock
    from millstream.time import Tumbling

    async def main() -> tuple[list, list]:
        clock = ManualClock()
        source = Stream(asynchronous=True)
        events = source.with_timestamps(
            lambda e: e[1], idle_timeout=1, partition=lambda e: e[0], clock=clock
        )
        L = events.window(Tumbling(10), "count").sink_to_list()
        await source.emit(("p", 5))
        await source.emit(("q", 15))  # p holds the watermark at 5
        hold = held(events)
        await clock.advance_async(2)  # p goes idle: the timer fires while held
        before = list(L)
        hold.open()
        for _ in range(20):
            await asyncio.sleep(0)
        return before, L

    before, after = asyncio.run(main())
    assert before == []
    assert [r.value for r in after] == [1]


# -- event-time windows before a buffer ----------------------------------------------------
def build_event_time(source: Stream) -> Stream:
    from millstream.time import Tumbling

    events = source.with_timestamps(lambda e: e[0])
    results = events.window(Tumbling(50), "count", key=lambda e: e[1]).buffer(8)
    totals = SlowSnapshot(results).accumulate(add_result, start={})
    totals.sink(slower_sink)  # results pile up in the buffer
    return totals


async def slower_sink(_: Any) -> None:
    await asyncio.sleep(0.0005)


def add_result(seen: dict, r: Any) -> dict:
    """Sums, not assignments: a result counted twice shows."""
    key = (r.key, r.window.start)
    return {**seen, key: seen.get(key, 0) + r.value}


def test_event_time_windows_before_a_buffer_restore_exactly(tmp_path):
    items = [(i, word) for i, word in enumerate(words(seed=3, n=1500))]
    source = Stream.from_iterable(items, chunk_size=16, stream_name="words")
    expected_node = build_event_time(source)
    source.start()
    wait_for(lambda: source.stopped, 30)
    expected = wait_for_state(expected_node)
    rng = random.Random(3)
    where = tmp_path / "checkpoints"
    taken = 0
    for _ in range(ROUNDS):
        source = Stream.from_iterable(items, chunk_size=16, stream_name="words")
        node = build_event_time(source)
        checkpoints = enable(source, where, interval=None)
        start = source.snapshot()
        source.start()
        for a in sorted(rng.uniform(0, 0.5) for _ in range(CHECKPOINTS)):
            wait_until_at(source, start + int(a * (len(items) - start)))
            taken += checkpoints.checkpoint(timeout=30) is not None
        source.stop()
        checkpoints.close(final=False)
    source = Stream.from_iterable(items, chunk_size=16, stream_name="words")
    node = build_event_time(source)
    checkpoints = enable(source, where, interval=None)
    source.start()
    wait_for(lambda: source.stopped, 30)
    assert wait_for_state(node) == expected
    checkpoints.close()
    assert taken >= ROUNDS * CHECKPOINTS // 2
    # every window of the input was counted once: 30 windows of 50 events
    assert sum(expected.values()) == len(items) and len({s for _, s in expected}) == 30


def wait_for_state(node: Stream) -> dict:
    """The accumulated results once they stop changing (the graph is done)."""
    seen: list[Any] = []

    def settled() -> bool:
        seen.append(on_loop(node, lambda: node.snapshot()["state"]))
        return len(seen) > 5 and all(s == seen[-1] for s in seen[-5:])

    wait_for(settled, 30, period=0.02)
    return seen[-1]
