"""The state contract (:mod:`millstream.core.state`) for the stateful nodes of a DaskStream.

The Dask side of ``tests/checkpoint/test_node_state.py``, kept small (a few seeds, short
inputs) because every step is a task on the session's ``LocalCluster``:

* nodes whose state is on the cluster or on the client over element futures: random
  input, ``snapshot()`` at a random point, pickled, a new graph restored from it and fed
  the rest gives the output of an uninterrupted run (the local node's, which the Dask node
  equals);
* client-side nodes holding futures (``buffer``, ``delay``, ``latest``, the timed
  windows) snapshot the elements they hold as values, which a new graph restores;
* ``restore()`` refuses junk with a ``StateError`` naming the node, which is unchanged;
* every stateful Dask node class is covered here.
"""

from __future__ import annotations

import operator
import pickle
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd
import pytest

import millstream.testing
import millstream.time  # noqa: F401
from millstream import ManualClock, Stream
from millstream.dask import ClusterAggregation, multi_input, on_client, stateful
from millstream.dask import border as dask_border
from millstream.dataframe import Mean, RunningAggregation, Sum
from millstream.exceptions import StateError
from millstream.testing import wait_for


def slow_inc(x: int) -> int:
    time.sleep(1.0)
    return x + 1


def parity(x: int) -> int:
    return x % 2


def as_series(x: int) -> pd.Series:
    return pd.Series([x, 2 * x], dtype="int64")


def fold_frames(aggregation: Any) -> DaskCase:
    """A frame aggregation folded on the cluster, against the local fold."""
    name = f"ClusterAggregation-{type(aggregation).__name__}"
    return DaskCase(
        name,
        ClusterAggregation,
        lambda heads: ClusterAggregation(heads[0].map(as_series), aggregation),
        lambda heads: RunningAggregation(heads[0].map(as_series), aggregation),
    )


# -- nodes over one or two inputs, state on the cluster or on the client -----------------------
@dataclass(frozen=True)
class DaskCase:
    """``dask(heads) -> node`` over scattered inputs (``batches``: flattened lists) and the
    same node built locally, ``local(heads) -> node``."""

    name: str
    cls: type
    dask: Callable[[list[Stream]], Stream]
    local: Callable[[list[Stream]], Stream]
    batches: bool = False
    inputs: int = 1
    finish: bool = False  # flush() at the end of the input
    per_batch: bool = False  # one output per batch (frequencies on batches)


def over(build: Callable[..., Stream]) -> tuple[Callable[..., Stream], Callable[..., Stream]]:
    return (lambda heads: build(*heads)), (lambda heads: build(*heads))


def case(name: str, cls: type, build: Callable[..., Stream], **kwargs: Any) -> DaskCase:
    dask, local = over(build)
    return DaskCase(name, cls, dask, local, **kwargs)


CASES = [
    case("unique", stateful.unique, lambda s: s.unique()),
    case("unique-batches", stateful.unique, lambda s: s.unique(maxsize=3), batches=True),
    case("partition_unique", stateful.partition_unique, lambda s: s.partition_unique(2)),
    case("partition-futures", stateful.partition, lambda s: s.partition(2)),
    case("partition-batches", stateful.partition, lambda s: s.partition(3), batches=True),
    case("partition-key", stateful.partition, lambda s: s.partition(2, key=parity)),
    case(
        "partition-timeout-key",
        stateful.partition,
        lambda s: s.partition(2, timeout=1000, key=parity),
    ),
    case("sliding_window-futures", stateful.sliding_window, lambda s: s.sliding_window(2)),
    case(
        "sliding_window-batches",
        stateful.sliding_window,
        lambda s: s.sliding_window(3),
        batches=True,
    ),
    case("slice-futures", stateful.slice, lambda s: s.slice(1, 9, 2)),
    case("slice-batches", stateful.slice, lambda s: s.slice(1, None, 2), batches=True),
    case("collect-futures", stateful.collect, lambda s: s.collect(), finish=True),
    case("collect-batches", stateful.collect, lambda s: s.collect(), batches=True, finish=True),
    case("frequencies", stateful.frequencies, lambda s: s.frequencies()),
    case(
        "frequencies-batches",
        stateful.frequencies,
        lambda s: s.frequencies(),
        batches=True,
        per_batch=True,
    ),
    case("accumulate-futures", stateful.accumulate, lambda s: s.accumulate(operator.add)),
    case(
        "accumulate-batches",
        stateful.accumulate,
        lambda s: s.accumulate(operator.add, start=100),
        batches=True,
    ),
    fold_frames(Sum()),
    fold_frames(Mean()),
    DaskCase(
        "ClusterAggregation-batches",
        ClusterAggregation,
        lambda heads: ClusterAggregation(heads[0].map(as_series), Sum()),
        lambda heads: RunningAggregation(heads[0].map(as_series), Sum()),
        batches=True,
    ),
    case("zip-futures", multi_input.zip, lambda a, b: a.zip(b), inputs=2),
    case("zip-batches", multi_input.zip, lambda a, b: a.zip(b), inputs=2, batches=True),
    case(
        "combine_latest-futures",
        multi_input.combine_latest,
        lambda a, b: a.combine_latest(b),
        inputs=2,
    ),
    case(
        "combine_latest-batches",
        multi_input.combine_latest,
        lambda a, b: a.combine_latest(b),
        inputs=2,
        batches=True,
    ),
    case(
        "zip_latest-batches",
        multi_input.zip_latest,
        lambda a, b: a.zip_latest(b),
        inputs=2,
        batches=True,
    ),
]


def random_units(rng: random.Random, c: DaskCase) -> list[tuple[int, Any]]:
    """``(input, unit)``: an element, or a non-empty list of them on batches."""
    units = []
    for _ in range(rng.randrange(3, 8)):
        i = rng.randrange(c.inputs)
        if c.batches:
            units.append((i, [rng.randrange(5) for _ in range(rng.randrange(1, 4))]))
        else:
            units.append((i, rng.randrange(5)))
    return units


def expected_output(c: DaskCase, units: list[tuple[int, Any]]) -> tuple[list[Any], list[int]]:
    """The local node's output for ``units``, and how much of it each prefix of ``units``
    gives (``counts[k]``: the output of the first ``k`` units)."""
    heads = [Stream() for _ in range(c.inputs)]
    node = c.local(heads)
    out = node.sink_to_list()
    counts = [0]
    per_batch: list[Any] = []
    for i, unit in units:
        for x in unit if c.batches else [unit]:
            heads[i].emit(x)
        if c.per_batch:
            per_batch.append(dict(out[-1]))
            counts.append(len(per_batch))
        else:
            counts.append(len(out))
    if c.finish:
        node.flush()  # type: ignore[attr-defined]
    return (per_batch if c.per_batch else list(out)), counts


def run_dask(c: DaskCase, units: list[tuple[int, Any]], state: Any, wanted: int) -> tuple:
    heads = [Stream() for _ in range(c.inputs)]
    inputs = [h.scatter().flatten() if c.batches else h.scatter() for h in heads]
    node = c.dask(inputs)
    if state is not None:
        node.restore(state)
    out = node.gather().sink_to_list()
    for i, unit in units:
        heads[i].emit(unit)
    if c.finish:
        node.flush()  # type: ignore[attr-defined]
    wait_for(lambda: len(out) >= wanted, 20)
    time.sleep(0.05)  # nothing more comes
    return node, [dict(x) if c.per_batch else x for x in out]


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("c", CASES, ids=[c.name for c in CASES])
def test_restored_dask_node_continues_as_if_uninterrupted(client, c: DaskCase, seed: int):
    rng = random.Random(f"{c.name}-{seed}")
    units = random_units(rng, c)
    cut = rng.randrange(1, len(units))  # the ends are the uninterrupted run
    expected, counts = expected_output(c, units)
    flushed = len(expected) - counts[-1]  # what the final flush emits

    first_case = DaskCase(c.name, c.cls, c.dask, c.local, c.batches, c.inputs, False, c.per_batch)
    first, part1 = run_dask(first_case, units[:cut], None, counts[cut])
    state = first.snapshot()
    saved = pickle.dumps(state)
    _, part2 = run_dask(c, units[cut:], pickle.loads(saved), counts[-1] - counts[cut] + flushed)
    assert part1 + part2 == expected
    assert state == pickle.loads(saved)


# -- client-side nodes holding futures: their snapshot is values ---------------------------------
@pytest.mark.parametrize("batches", [False, True], ids=["futures", "batches"])
def test_dask_delay_snapshots_the_elements_it_holds(client, batches: bool):
    clock = ManualClock()

    def build() -> tuple[Stream, Stream, list[Any]]:
        source = Stream()
        units = source.scatter().flatten() if batches else source.scatter()
        node = units.delay(10, clock=clock)
        return source, node, node.gather().sink_to_list()

    source, first, _ = build()
    for unit in [[1, 2], [3]] if batches else [1, 2, 3]:
        source.emit(unit)
    clock.advance(4)
    state = pickle.loads(pickle.dumps(first.snapshot()))
    assert state == {"pending": [(6.0, 1), (6.0, 2), (6.0, 3)]}

    source, second, out = build()
    second.restore(state)
    source.emit([4] if batches else 4)
    clock.advance(6)
    wait_for(lambda: len(out) >= 3, 10)
    assert out == [1, 2, 3]
    clock.advance(4)
    wait_for(lambda: len(out) >= 4, 10)
    assert out == [1, 2, 3, 4]


@pytest.mark.parametrize("batches", [False, True], ids=["futures", "batches"])
def test_dask_timed_window_snapshots_the_elements_it_holds(client, batches: bool):
    clock = ManualClock()

    def build() -> tuple[Stream, Stream, list[Any]]:
        source = Stream()
        units = source.scatter().flatten() if batches else source.scatter()
        node = units.timed_window(2, clock=clock, emit_empty=False)
        return source, node, node.gather().sink_to_list()

    source, first, _ = build()
    for unit in [[1, 2], [3]] if batches else [1, 2, 3]:
        source.emit(unit)
    clock.advance(0.5)
    state = pickle.loads(pickle.dumps(first.snapshot()))
    assert state == {"buffer": [1, 2, 3], "closes_in": 1.5}

    source, second, out = build()
    second.restore(state)
    source.emit([4] if batches else 4)
    clock.advance(1.5)
    wait_for(lambda: len(out) >= 1, 10)
    assert out == [[1, 2, 3, 4]]


def test_dask_timed_window_unique_snapshots_the_elements_it_holds(client):
    clock = ManualClock()

    def build() -> tuple[Stream, Stream, list[Any]]:
        source = Stream()
        node = source.scatter().timed_window_unique(2, key=parity, clock=clock)
        return source, node, node.gather().sink_to_list()

    source, first, _ = build()
    for x in [1, 2, 3]:
        source.emit(x)
    state = pickle.loads(pickle.dumps(first.snapshot()))
    assert state == {"buffer": [(1, 1), (0, 2)], "closes_in": 2.0}

    source, second, out = build()
    second.restore(state)
    source.emit(5)
    source.emit(6)
    clock.advance(2)
    wait_for(lambda: len(out) >= 1, 10)
    assert out == [(1, 2)]


def test_dask_buffer_snapshots_the_elements_waiting(client):
    def build(slow: bool) -> tuple[Stream, Stream, list[Any]]:
        source = Stream()
        units = source.scatter().map(slow_inc) if slow else source.scatter()
        node = units.buffer(1)
        return source, node, node.gather().sink_to_list()

    source, first, out1 = build(slow=True)
    for x in [1, 2, 3]:
        source.emit(x)  # 1 and 2 are with gather, 3 waits
    state = pickle.loads(pickle.dumps(first.snapshot()))
    assert state == {"pending": [4]}

    source, second, out2 = build(slow=False)
    second.restore(state)
    source.emit(10)
    wait_for(lambda: len(out1) >= 2 and len(out2) >= 2, 20)
    assert out1[:2] + out2 == [2, 3, 4, 10]


def test_dask_latest_snapshots_the_element_waiting(client):
    def build(slow: bool) -> tuple[Stream, Stream, list[Any]]:
        source = Stream()
        units = source.scatter().map(slow_inc) if slow else source.scatter()
        node = units.latest()
        return source, node, node.gather().sink_to_list()

    source, first, out1 = build(slow=True)
    for x in [1, 2, 3]:
        source.emit(x)  # 1 is with gather; 3 replaced 2
    time.sleep(0.1)
    state = pickle.loads(pickle.dumps(first.snapshot()))
    assert state == {"pending": [4]}

    source, second, out2 = build(slow=False)
    second.restore(state)
    wait_for(lambda: len(out1) >= 1 and len(out2) >= 1, 20)
    assert out1[:1] + out2 == [2, 4]


def test_dask_rate_limit_round_trip(client):
    clock = ManualClock()
    source = Stream()
    first = source.scatter().rate_limit(2, clock=clock)
    source.emit(1)
    clock.advance(0.5)
    state = pickle.loads(pickle.dumps(first.snapshot()))
    assert state == {"next_in": 1.5}
    second = Stream().scatter().rate_limit(2, clock=clock)
    second.restore(state)
    assert second.snapshot() == state


# -- restore checks what it gets ------------------------------------------------------------------
def built_nodes() -> list[Stream]:
    """One node of every stateful Dask class (over element futures and over batches)."""
    clock = ManualClock()
    nodes = []
    for c in CASES:
        heads = [Stream() for _ in range(c.inputs)]
        inputs = [h.scatter().flatten() if c.batches else h.scatter() for h in heads]
        nodes.append(c.dask(inputs))
    units = Stream().scatter()
    nodes += [
        units.buffer(2),
        units.delay(1, clock=clock),
        units.latest(),
        units.rate_limit(1, clock=clock),
        units.timed_window(1, clock=clock),
        units.timed_window_unique(1, clock=clock),
    ]
    return nodes


def test_dask_restore_refuses_junk_and_leaves_the_node_as_it_was(client):
    for node in built_nodes():
        before = node.snapshot()
        junk: list[Any] = [None, "junk", 42, []]
        if isinstance(before, dict):
            junk += [{**before, key: "junk"} for key in before if key != "state"]
            junk += [{k: v for k, v in before.items() if k != key} for key in before]
        for state in junk:
            optional = {"closes_in", "due_in"}
            if isinstance(state, dict) and set(state) < set(before) <= set(state) | optional:
                continue  # a state without an optional field is valid
            with pytest.raises(StateError, match=re.escape(str(node))):
                node.restore(state)
            assert node.snapshot() == before, (node, state)


# -- every stateful Dask node has a case ---------------------------------------------------------
def test_every_stateful_dask_node_has_a_case(client):
    def walk(cls: type) -> list[type]:
        out = []
        for sub in cls.__subclasses__():
            out += [sub, *walk(sub)]
        return out

    stateful_dask = {
        c
        for c in walk(Stream)
        if c.__module__.startswith("millstream.dask")
        and not c.__name__.startswith("_")
        and (c.snapshot is not Stream.snapshot or c.restore is not Stream.restore)
    }
    covered = {type(node) for node in built_nodes()}
    missing = sorted(f"{c.__module__}.{c.__qualname__}" for c in stateful_dask - covered)
    assert not missing, f"stateful Dask nodes without a case here: {missing}"
    assert {on_client.delay, dask_border.buffer} <= covered
