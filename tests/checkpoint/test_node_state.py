"""Every stateful node keeps the state contract of :mod:`millstream.core.state`.

* A property test per node (:data:`CASES`): random input, ``snapshot()`` at a random
  point, pickled, a brand-new graph restored from it and fed the rest gives the output
  of an uninterrupted run. The first graph is fed on after the snapshot and the second
  one after its restore: the snapshot must not change (it shares nothing with either).
* ``restore()`` checks what it gets: ``None``, junk and wrong field types raise
  :class:`StateError` naming the node, which is left as it was.
* :func:`test_every_stateful_node_has_a_case`: every node class with its own
  ``snapshot``/``restore`` (local ones here, Dask ones in
  ``tests/dask/test_dask_node_state.py``) has a case, so a new stateful node must add one.
"""

from __future__ import annotations

import asyncio
import os
import pickle
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import millstream.dask  # noqa: F401  (registers the Dask nodes, for the discovery test)
from millstream import ManualClock, Stream
from millstream.core.clock import use_clock
from millstream.dataframe import Cumulative, EventTimeOrder, RunningAggregation, Sum
from millstream.dataframe import Series as FrameSeries
from millstream.exceptions import StateError
from millstream.operators import aggregate, asynchronous, combine, counting, timing
from millstream.testing import TestingSource, run_pipeline, wait_for
from millstream.time import (
    CountSliding,
    CountTumbling,
    Global,
    Session,
    Sliding,
    Tumbling,
    watermarks,
)
from millstream.time import operators as window_node

SETTINGS = settings(max_examples=40, deadline=None, database=None)
FEW = settings(max_examples=15, deadline=None, database=None)

Event = tuple[Any, ...]


# -- the cases ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Case:
    """One stateful node under test.

    ``build(heads) -> (nodes, out)``: the nodes whose state is carried over (the node under
    test first, of class ``cls``) and the stream whose output is compared. ``events``
    draws the input: ``('emit', input, element)``, and for ``clock`` cases ``('advance',
    seconds)`` of a :class:`ManualClock`, for ``loop`` cases ``('settle',)`` (let the event
    loop run). ``finish(node)`` ends the input (a flush). ``roundtrip``: a restored node
    snapshots what it was given.
    """

    name: str
    cls: type
    build: Callable[[list[Stream]], tuple[list[Stream], Stream]]
    events: st.SearchStrategy[list[Event]]
    inputs: int = 1
    mode: str = "sync"  # 'sync', 'clock' or 'loop'
    finish: Callable[[Stream], Any] | None = None
    roundtrip: bool = True
    #: fields that take any value (junk there is valid state)
    any_value: tuple[str, ...] = ()
    #: fields a state may lack (older formats)
    optional: tuple[str, ...] = ()


def emits(values: st.SearchStrategy[Any], inputs: int = 1, size: int = 25) -> Any:
    return st.lists(st.tuples(st.just("emit"), st.integers(0, inputs - 1), values), max_size=size)


def timed(values: st.SearchStrategy[Any], size: int = 20) -> Any:
    advance = st.tuples(st.just("advance"), st.sampled_from([0.25, 0.5, 1.0, 1.5, 3.0]))
    return st.lists(
        st.one_of(st.tuples(st.just("emit"), st.just(0), values), advance), max_size=size
    )


def settled(values: st.SearchStrategy[Any], size: int = 25) -> Any:
    emit = st.tuples(st.just("emit"), st.just(0), values)
    return st.lists(st.one_of(emit, emit, st.just(("settle",))), max_size=size)


SMALL = st.integers(0, 6)
EVENT = st.tuples(st.sampled_from("ab"), st.integers(0, 40), st.integers(0, 9))  # key, ts, v


def one(make: Callable[[Stream], Stream]) -> Callable[[list[Stream]], tuple[list[Stream], Stream]]:
    """A case of one node over one input, whose output is compared."""

    def build(heads: list[Stream]) -> tuple[list[Stream], Stream]:
        node = make(heads[0])
        return [node], node

    return build


def flush(node: Stream) -> Any:
    return node.flush()  # type: ignore[attr-defined]


def key0(e: Any) -> Any:
    return e[0]


def ts1(e: Any) -> Any:
    return e[1]


def value2(e: Any) -> Any:
    return e[2]


def windowed(assigner: Any, agg: Any, **kwargs: Any) -> Callable[[Stream], Stream]:
    def make(head: Stream) -> Stream:
        return head.window(assigner, agg, key=key0, value=value2, **kwargs)

    return make


def collect_build(heads: list[Stream]) -> tuple[list[Stream], Stream]:
    node = heads[0].collect()
    heads[1].sink(node.flush)
    return [node], node


def timestamps_build(heads: list[Stream]) -> tuple[list[Stream], Stream]:
    node = heads[0].with_timestamps(ts1, max_out_of_orderness=2, partition=key0)
    return [node], node.map(lambda e: (e, node.watermark))


def idle_timestamps_build(heads: list[Stream]) -> tuple[list[Stream], Stream]:
    node = heads[0].with_timestamps(
        lambda x: x, idle_timeout=2, partition=lambda x: x % 2, partitions=[0, 1]
    )
    return [node], node.map(lambda x: (x, node.watermark))


def window_behind_timestamps(heads: list[Stream]) -> tuple[list[Stream], Stream]:
    stamps = heads[0].with_timestamps(ts1, max_out_of_orderness=3)
    node = stamps.window(Tumbling(10), "collect", key=key0, value=value2, late="side")
    return [node, stamps], node


async def add_ten(x: int) -> int:
    await asyncio.sleep(0)
    return x + 10


CHUNK = st.lists(st.integers(-5, 5), min_size=0, max_size=4).map(
    lambda v: pd.Series(v, dtype="int64")
)


def as_chunk(x: Any) -> Any:
    return x if isinstance(x, pd.Series) else pd.Series([x], dtype="int64")


def frame_sum(head: Stream) -> Stream:
    return RunningAggregation(head, Sum()).map(int)


def frame_cumsum(head: Stream) -> Stream:
    return RunningAggregation(head, Cumulative("cumsum")).map(lambda s: s.tolist())


def frame_event_time(heads: list[Stream]) -> tuple[list[Stream], Stream]:
    """Rows in event-time order (their values as times), held until the watermark."""
    timed = heads[0].map(as_chunk).map(lambda s: pd.Series(s.to_numpy(), index=s.to_numpy()))
    sdf = FrameSeries(timed, example=pd.Series([], dtype="int64"))
    ordered = sdf.with_timestamps(max_out_of_orderness=2, late="side")
    late = ordered.late.stream.map(lambda s: ("late", s.tolist()))
    return [ordered.stream], ordered.stream.map(lambda s: s.tolist()).union(late)


def frame_build(
    make: Callable[[Stream], Stream],
) -> Callable[[list[Stream]], tuple[list[Stream], Stream]]:
    def build(heads: list[Stream]) -> tuple[list[Stream], Stream]:
        out = make(heads[0].map(as_chunk))  # fed() emits plain ints
        return [out.upstreams[0]], out

    return build


CASES = [
    Case("frame_sum", RunningAggregation, frame_build(frame_sum), emits(CHUNK)),
    Case("frame_cumsum", RunningAggregation, frame_build(frame_cumsum), emits(CHUNK)),
    Case(
        "frame_event_time",
        EventTimeOrder,
        frame_event_time,
        emits(CHUNK),
        any_value=("index_name",),  # any name an index can have
    ),
    Case(
        "accumulate",
        aggregate.accumulate,
        one(lambda s: s.accumulate(lambda a, x: a + x)),
        emits(SMALL),
        any_value=("state",),
    ),
    Case(
        "accumulate-returns-state",
        aggregate.accumulate,
        one(lambda s: s.accumulate(lambda n, x: (n + x, (n, x)), start=0, returns_state=True)),
        emits(SMALL),
        any_value=("state",),
    ),
    Case("frequencies", aggregate.frequencies, one(lambda s: s.frequencies()), emits(SMALL)),
    Case("slice", counting.slice, one(lambda s: s.slice(1, 12, 2)), emits(SMALL)),
    Case("partition", counting.partition, one(lambda s: s.partition(3)), emits(SMALL)),
    Case(
        "partition-key",
        counting.partition,
        one(lambda s: s.partition(3, key=lambda x: x % 2)),
        emits(SMALL),
    ),
    Case(
        "partition_unique",
        counting.partition_unique,
        one(lambda s: s.partition_unique(3)),
        emits(SMALL),
    ),
    Case(
        "partition_unique-last",
        counting.partition_unique,
        one(lambda s: s.partition_unique(3, key=lambda x: x % 4, keep="last")),
        emits(SMALL),
    ),
    Case(
        "sliding_window", counting.sliding_window, one(lambda s: s.sliding_window(3)), emits(SMALL)
    ),
    Case(
        "sliding_window-full",
        counting.sliding_window,
        one(lambda s: s.sliding_window(3, return_partial=False)),
        emits(SMALL),
    ),
    Case("unique", counting.unique, one(lambda s: s.unique()), emits(SMALL)),
    Case("unique-lru", counting.unique, one(lambda s: s.unique(maxsize=2)), emits(SMALL)),
    Case(
        "unique-unhashable",
        counting.unique,
        one(lambda s: s.unique(maxsize=3, key=lambda x: [x % 4], hashable=False)),
        emits(SMALL),
    ),
    Case(
        "collect", counting.collect, collect_build, emits(SMALL, inputs=2), inputs=2, finish=flush
    ),
    Case(
        "zip", combine.zip, lambda h: ([z := h[0].zip(h[1])], z), emits(SMALL, inputs=2), inputs=2
    ),
    Case(
        "zip-literal",
        combine.zip,
        lambda h: ([z := h[0].zip("lit", h[1])], z),
        emits(SMALL, inputs=2),
        inputs=2,
    ),
    Case(
        "combine_latest",
        combine.combine_latest,
        lambda h: ([c := h[0].combine_latest(h[1])], c),
        emits(SMALL, inputs=2),
        inputs=2,
    ),
    Case(
        "combine_latest-emit_on",
        combine.combine_latest,
        lambda h: ([c := h[0].combine_latest(h[1], emit_on=0)], c),
        emits(SMALL, inputs=2),
        inputs=2,
    ),
    Case(
        "zip_latest",
        combine.zip_latest,
        lambda h: ([z := h[0].zip_latest(h[1])], z),
        emits(SMALL, inputs=2),
        inputs=2,
    ),
    Case(
        "window-tumbling",
        window_node.window,
        one(windowed(Tumbling(10), "sum", timestamp=ts1, max_out_of_orderness=3)),
        emits(EVENT),
        finish=flush,
    ),
    Case(
        "window-sliding-update",
        window_node.window,
        one(
            windowed(
                Sliding(10, 5),
                "count",
                timestamp=ts1,
                allowed_lateness=2,
                late="update",
                update_for=20,
            )
        ),
        emits(EVENT),
        finish=flush,
    ),
    Case(
        "window-tumbling-early",
        window_node.window,
        one(windowed(Tumbling(10), "mean", timestamp=ts1, early=2)),
        emits(EVENT),
        finish=flush,
    ),
    Case(
        "window-session",
        window_node.window,
        one(windowed(Session(5), "collect", timestamp=ts1, max_out_of_orderness=4)),
        emits(EVENT),
        finish=flush,
    ),
    Case(
        "window-count-tumbling",
        window_node.window,
        one(windowed(CountTumbling(3), "sum")),
        emits(EVENT),
        finish=flush,
    ),
    Case(
        "window-count-sliding",
        window_node.window,
        one(windowed(CountSliding(3, 2), "max", early=2)),
        emits(EVENT),
        finish=flush,
    ),
    Case(
        "window-global",
        window_node.window,
        one(windowed(Global(3), "collect")),
        emits(EVENT),
        finish=flush,
    ),
    Case(
        "window-with_timestamps",
        window_node.window,
        window_behind_timestamps,
        emits(EVENT),
        finish=lambda node: node.upstreams[0].end_of_input(),
    ),
    Case("with_timestamps", watermarks.with_timestamps, timestamps_build, emits(EVENT)),
    # -- processing time, on a ManualClock -----------------------------------------------------
    Case(
        "timed_window",
        timing.timed_window,
        one(lambda s: s.timed_window(1)),
        timed(SMALL),
        mode="clock",
        roundtrip=False,
        optional=("closes_in",),
    ),
    Case(
        "timed_window-no-empty",
        timing.timed_window,
        one(lambda s: s.timed_window(1.5, emit_empty=False)),
        timed(SMALL),
        mode="clock",
        roundtrip=False,
        optional=("closes_in",),
    ),
    Case(
        "timed_window_unique",
        timing.timed_window_unique,
        one(lambda s: s.timed_window_unique(1, key=lambda x: x % 3, keep="last")),
        timed(SMALL),
        mode="clock",
        roundtrip=False,
        optional=("closes_in",),
    ),
    Case(
        "delay",
        timing.delay,
        one(lambda s: s.delay(2)),
        timed(SMALL),
        mode="clock",
        roundtrip=False,
    ),
    Case(
        "rate_limit",
        timing.rate_limit,
        one(lambda s: s.rate_limit(0.75)),
        timed(SMALL),
        mode="clock",
        roundtrip=False,
    ),
    Case(
        "partition-timeout",
        counting.partition,
        one(lambda s: s.partition(3, timeout=2, key=lambda x: x % 2)),
        timed(SMALL),
        mode="clock",
        roundtrip=False,
        optional=("due_in",),
    ),
    Case(
        "with_timestamps-idle",
        watermarks.with_timestamps,
        idle_timestamps_build,
        timed(st.integers(0, 30)),
        mode="clock",
        roundtrip=False,
    ),
    # -- asynchronous nodes, on an event loop ---------------------------------------------------
    Case("buffer", timing.buffer, one(lambda s: s.buffer(4)), settled(SMALL), mode="loop"),
    Case("latest", timing.latest, one(lambda s: s.latest()), settled(SMALL), mode="loop"),
    Case(
        "map_async",
        asynchronous.map_async,
        one(lambda s: s.map_async(add_ten, parallelism=2)),
        settled(SMALL),
        mode="loop",
        roundtrip=False,
    ),
]
BY_NAME = {case.name: case for case in CASES}


# -- running a case -------------------------------------------------------------------------
def run_sync(case: Case, events: list[Event], cut: int) -> None:
    def build() -> tuple[list[Stream], list[Stream], list[Any]]:
        heads = [Stream() for _ in range(case.inputs)]
        nodes, out = case.build(heads)
        return heads, nodes, out.sink_to_list()

    def feed(heads: list[Stream], part: list[Event]) -> None:
        for _, i, x in part:
            heads[i].emit(x)

    heads, nodes, expected = build()
    feed(heads, events)
    if case.finish is not None:
        case.finish(nodes[0])

    heads, first, out1 = build()
    feed(heads, events[:cut])
    states = [node.snapshot() for node in first]
    saved = pickle.dumps(states)
    emitted = list(out1)
    feed(heads, events[cut:])  # the first graph goes on: the snapshot does not change
    assert states == pickle.loads(saved)

    heads, second, out2 = build()
    restored = pickle.loads(saved)
    for node, state in zip(second, restored, strict=True):
        node.restore(state)
    if case.roundtrip:
        assert [node.snapshot() for node in second] == pickle.loads(saved)
    feed(heads, events[cut:])
    if case.finish is not None:
        case.finish(second[0])
    assert restored == pickle.loads(saved)  # the restored node took a copy
    assert emitted + out2 == expected


async def _done(awaitable: Any) -> None:
    await awaitable


async def run_timed(case: Case, events: list[Event], cut: int, clock: ManualClock) -> list[Any]:
    """The output of a clock case, ``(time, element)`` pairs; with ``cut`` < len(events),
    interrupted there (snapshot, new graph, restore)."""

    def build() -> tuple[list[Stream], list[Stream], list[Any]]:
        with use_clock(clock):
            heads = [Stream(asynchronous=True) for _ in range(case.inputs)]
            nodes, out = case.build(heads)
        seen: list[Any] = []
        out.sink(lambda x: seen.append((clock.now(), x)))
        return heads, nodes, seen

    async def feed(heads: list[Stream], part: list[Event]) -> None:
        for event in part:
            if event[0] == "advance":
                await clock.advance_async(event[1])
                continue
            # an emit waits until the node takes the element, as a source does
            task = asyncio.ensure_future(_done(heads[event[1]].emit(event[2])))
            await clock.advance_async(0)
            while not task.done():
                await clock.advance_async(0.25)
            task.result()

    heads, nodes, out = build()
    await clock.advance_async(0)
    await feed(heads, events[:cut])
    if cut < len(events):
        states = [node.snapshot() for node in nodes]
        saved = pickle.dumps(states)
        emitted = list(out)
        heads, nodes, out = build()
        await clock.advance_async(0)
        for node, state in zip(nodes, pickle.loads(saved), strict=True):
            node.restore(state)
        await clock.advance_async(0)
        await feed(heads, events[cut:])
        assert states == pickle.loads(saved)
        out[:0] = emitted
    await clock.advance_async(30)  # everything held comes out
    return list(out)


def run_clock(case: Case, events: list[Event], cut: int) -> None:
    expected = asyncio.run(run_timed(case, events, len(events), ManualClock()))
    assert asyncio.run(run_timed(case, events, cut, ManualClock())) == expected


async def settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


async def run_looped(case: Case, events: list[Event], cut: int) -> list[Any]:
    def build() -> tuple[list[Stream], list[Stream], list[Any]]:
        heads = [Stream(asynchronous=True) for _ in range(case.inputs)]
        nodes, out = case.build(heads)
        return heads, nodes, out.sink_to_list()

    waiting: list[Any] = []

    async def feed(heads: list[Stream], part: list[Event]) -> None:
        for event in part:
            if event[0] == "settle":
                await settle()
            else:
                waiting.append(asyncio.ensure_future(_done(heads[event[1]].emit(event[2]))))

    heads, nodes, out = build()
    await feed(heads, events[:cut])
    if cut < len(events):
        states = [node.snapshot() for node in nodes]
        saved = pickle.dumps(states)
        emitted = list(out)
        heads, nodes, out = build()
        for node, state in zip(nodes, pickle.loads(saved), strict=True):
            node.restore(state)
        await feed(heads, events[cut:])
        assert states == pickle.loads(saved)
        out[:0] = emitted
    await settle()
    await asyncio.wait_for(asyncio.gather(*waiting), 5)
    for _ in range(100):
        await settle()
    return list(out)


def run_loop(case: Case, events: list[Event], cut: int) -> None:
    expected = asyncio.run(run_looped(case, events, len(events)))
    assert asyncio.run(run_looped(case, events, cut)) == expected


RUNNERS = {"sync": run_sync, "clock": run_clock, "loop": run_loop}


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
@SETTINGS
@given(data=st.data())
def test_restored_node_continues_as_if_uninterrupted(case: Case, data: Any) -> None:
    events = data.draw(case.events, label="events")
    cut = data.draw(st.integers(0, len(events)), label="cut")
    RUNNERS[case.mode](case, events, cut)


# -- sources: their state is their position -------------------------------------------------
@FEW
@given(items=st.lists(SMALL, max_size=30), data=st.data())
def test_from_iterable_resumes_after_what_it_emitted(items: list[int], data: Any) -> None:
    k = data.draw(st.integers(0, len(items)), label="stop after")
    first = Stream.from_iterable(items, chunk_size=4)
    out1: list[Any] = []

    def take(x: Any) -> None:
        out1.append(x)
        if len(out1) == k:
            first.stop()

    first.sink(take)
    if k:
        first.start()
        wait_for(
            lambda: first.stopped and first.work_task is not None and first.work_task.done(), 5
        )
    state = pickle.loads(pickle.dumps(first.snapshot()))
    assert state == len(out1) == k

    second = Stream.from_iterable(items, chunk_size=4)
    out2 = second.sink_to_list()
    second.restore(state)
    second.start()
    wait_for(lambda: second.exhausted and second.stopped, 5)
    assert out1 + out2 == items


@FEW
@given(items=st.lists(SMALL, max_size=20), data=st.data())
def test_testing_source_resumes_after_what_it_emitted(items: list[int], data: Any) -> None:
    k = data.draw(st.integers(0, len(items)), label="stop after")
    script = [*items[:k], TestingSource.EOF(), *items[k:]]
    first = TestingSource(script)
    out1 = first.sink_to_list()
    run_pipeline(first)
    state = pickle.loads(pickle.dumps(first.snapshot()))
    second = TestingSource(script)
    out2 = second.sink_to_list()
    second.restore(state)
    run_pipeline(second)
    assert out1 + out2 == items


def lines_of(rng: random.Random, n: int) -> list[str]:
    return [f"line {rng.randrange(1000)} é\n" for _ in range(n)]


@pytest.mark.parametrize("seed", range(4))
def test_from_textfile_resumes_after_the_last_emitted_line(tmp_path: Any, seed: int) -> None:
    rng = random.Random(seed)
    path = tmp_path / "log.txt"
    before, after = lines_of(rng, rng.randrange(1, 20)), lines_of(rng, rng.randrange(10))
    path.write_text("".join(before) + "partial", encoding=_encoding())
    k = rng.randrange(len(before) + 1)
    first = Stream.from_textfile(str(path), poll_interval=0.005)
    out1: list[str] = []

    def take(x: str) -> None:
        out1.append(x)
        if len(out1) == k:
            first.stop()

    first.sink(take)
    first.start()
    if k:
        wait_for(lambda: first.stopped and first.file is None, 5)
    else:
        first.stop()
        wait_for(lambda: first.file is None, 5)
    state = pickle.loads(pickle.dumps(first.snapshot()))
    assert out1 == before[: len(out1)]
    with open(path, "a", encoding=_encoding()) as f:
        f.write(" end\n" + "".join(after))

    second = Stream.from_textfile(str(path), poll_interval=0.005)
    out2 = second.sink_to_list()
    second.restore(state)
    second.start()
    everything = [*before, "partial end\n", *after]
    try:
        wait_for(lambda: len(out1) + len(out2) >= len(everything), 5)
    finally:
        second.stop()
    assert out1 + out2 == everything


def _encoding() -> str:
    import locale

    return locale.getpreferredencoding(False)


@pytest.mark.parametrize("seed", range(4))
def test_filenames_resumes_without_the_names_it_emitted(tmp_path: Any, seed: int) -> None:
    rng = random.Random(seed)
    names = sorted({f"f{rng.randrange(100):03d}.csv" for _ in range(rng.randrange(1, 12))})
    for name in names:
        (tmp_path / name).touch()
    k = rng.randrange(len(names) + 1)
    first = Stream.filenames(str(tmp_path / "*.csv"), poll_interval=0.005)
    out1: list[str] = []

    def take(x: str) -> None:
        out1.append(os.path.basename(x))
        if len(out1) == k:
            first.stop()

    first.sink(take)
    if k:
        first.start()
        wait_for(lambda: first.stopped and len(out1) >= k, 5)
        time.sleep(0.02)
    state = pickle.loads(pickle.dumps(first.snapshot()))
    (tmp_path / "zzz-new.csv").touch()
    second = Stream.filenames(str(tmp_path / "*.csv"), poll_interval=0.005)
    out2: list[str] = []
    second.sink(lambda x: out2.append(os.path.basename(x)))
    second.restore(state)
    second.start()
    try:
        wait_for(lambda: len(out1) + len(out2) >= len(names) + 1, 5)
    finally:
        second.stop()
    assert out1 + out2 == [*names, "zzz-new.csv"]


# -- snapshots are detached -----------------------------------------------------------------
def test_accumulate_state_changed_in_place_does_not_change_a_snapshot() -> None:
    source = Stream()
    node = source.accumulate(lambda acc, x: acc.append(x) or acc, start=[])
    source.emit(1)
    state = node.snapshot()
    source.emit(2)
    assert state == {"state": [1]}
    node.restore(state)
    source.emit(3)
    assert state == {"state": [1]} and node.snapshot() == {"state": [1, 3]}


def test_window_accumulators_changed_in_place_do_not_change_a_snapshot() -> None:
    source = Stream()
    node = source.window(CountTumbling(5), "collect")
    source.emit("a")
    state = node.snapshot()
    source.emit("b")
    assert [entry[2] for entry in state["open"]] == [["a"]]
    other = Stream()
    fresh = other.window(CountTumbling(5), "collect")
    fresh.restore(state)
    other.emit("c")
    assert [entry[2] for entry in state["open"]] == [["a"]]


def test_unique_seen_primed_by_hand_after_a_snapshot() -> None:
    source = Stream()
    node = source.unique()
    source.emit(1)
    state = node.snapshot()
    node.seen[2] = 1
    assert state == {"seen": [[1, 1]]}


def test_frequencies_snapshot_of_100k_keys_is_a_dict_copy() -> None:
    source = Stream()
    node = source.frequencies()
    for i in range(100_000):
        source.emit(i)
    started = time.perf_counter()
    state = node.snapshot()
    took = time.perf_counter() - started
    source.emit(0)
    assert state["counts"][0] == 1 and len(state["counts"]) == 100_000
    assert took < 0.05  # a dict copy (a few ms), not a pickle round trip


# -- restore checks what it gets --------------------------------------------------------------
def fed(case: Case) -> tuple[list[Stream], list[Stream], Any]:
    """A node of ``case`` fed a few elements (a time case on a ManualClock, no loop run)."""
    clock = ManualClock()
    with use_clock(clock):
        heads = [Stream() for _ in range(case.inputs)]
        nodes, _ = case.build(heads)
    if case.mode == "sync":
        for i, x in [(0, ("a", 3, 1)), (0, ("b", 12, 2)), (case.inputs - 1, ("a", 14, 3))]:
            heads[i].emit(x if "window" in case.name or "timestamps" in case.name else x[1] % 7)
    return heads, nodes, clock


def junk_states(case: Case, state: Any) -> list[Any]:
    out: list[Any] = [None, "junk", 42, [], object()]
    if isinstance(state, dict):
        for key in state:
            if key not in case.optional:
                out.append({k: v for k, v in state.items() if k != key})  # a field missing
            if key not in case.any_value:
                out.append({**state, key: "junk"})
                out.append({**state, key: object()})
    return out


LOOPLESS = [case for case in CASES if case.mode != "loop"]


@pytest.mark.parametrize("case", LOOPLESS, ids=[case.name for case in LOOPLESS])
def test_restore_refuses_junk_and_leaves_the_node_as_it_was(case: Case) -> None:
    _, nodes, _ = fed(case)
    node = nodes[0]
    before = pickle.dumps(node.snapshot())
    for junk in junk_states(case, node.snapshot()):
        with pytest.raises(StateError) as info:
            node.restore(junk)
        assert str(node) in str(info.value)
        assert node.snapshot() == pickle.loads(before), junk


@pytest.mark.parametrize("name", ["buffer", "latest", "map_async"])
def test_restore_of_async_nodes_refuses_junk(name: str) -> None:
    case = BY_NAME[name]

    async def main() -> None:
        heads = [Stream(asynchronous=True)]
        node = case.build(heads)[0][0]
        for junk in junk_states(case, node.snapshot()):
            with pytest.raises(StateError, match=re.escape(str(node))):
                node.restore(junk)
            assert node.snapshot() == {"pending": []}

    asyncio.run(main())


def test_window_restore_of_a_junk_watermark_names_the_node_and_changes_nothing() -> None:
    # the case of the issue: accepted, then a TypeError on the next element
    source = Stream()
    node = source.window(Tumbling(10), "sum", timestamp=lambda x: x)
    L = node.sink_to_list()
    source.emit(3)
    snap = node.snapshot()
    with pytest.raises(StateError, match=r"<window.*field 'watermark' must be a number or None"):
        node.restore({**snap, "watermark": "junk"})
    with pytest.raises(StateError, match="<window"):
        node.restore(None)
    assert node.snapshot() == snap
    source.emit(15)
    assert [r.value for r in L] == [3]


BAD_WINDOW_PARTS = {
    "open": [[(0, "k")], [("x", None, 1, 0)], [(0, ["unhashable"], 1, 0)], [(0, None, 1, -1)]],
    "kept": [[(0,)], [("x", None, 1)]],
    "keys": [[["unhashable"]]],
    "positions": [[1]],
    "tracker": [{"partitions": [("p",)], "floor": 0.0, "ended": False}, {"floor": 1}],
    "late_count": [-1, 1.5, True],
    "kind": ["session"],
}


@pytest.mark.parametrize("field", sorted(BAD_WINDOW_PARTS))
def test_window_restore_checks_every_field(field: str) -> None:
    source = Stream()
    node = source.window(Tumbling(10), "sum", key=key0, value=value2, timestamp=ts1)
    L = node.sink_to_list()
    for event in [("a", 1, 1), ("b", 12, 2)]:
        source.emit(event)
    snap = node.snapshot()
    for bad in BAD_WINDOW_PARTS[field]:
        with pytest.raises(StateError, match="<window"):
            node.restore({**snap, field: bad})
        assert node.snapshot() == snap
    source.emit(("b", 13, 3))
    node.flush()
    assert [r.value for r in L] == [1, 5]


BAD_STATES = {
    "partition": [
        {"buffers": [[None, [1, 2, 3]]]},
        {"buffers": [[None, [1]], [None, [2]]]},
        {"buffers": [["k", [1]]]},
        {"buffers": [[None]]},
    ],
    "partition-timeout": [
        {"buffers": [[0, [1]]], "due_in": [-1]},
        {"buffers": [[0, [1]]], "due_in": [1, 2]},
    ],
    "partition_unique": [{"buffer": [[1, 1], [1, 1]]}, {"buffer": [[1, 1], [2, 2], [3, 3]]}],
    "slice": [{"count": -1}, {"count": 1.0}],
    "unique": [{"seen": [[["x"], 1]]}, {"seen": [1, 2]}],
    "zip": [
        {"buffers": [[1]], "literals": []},
        {"buffers": [[1], 2], "literals": []},
        {"buffers": [[], []], "literals": [("0", 1)]},
    ],
    "combine_latest": [{"last": [1], "arrived": [True]}, {"last": [1, 2], "arrived": [1, 0]}],
    "zip_latest": [{"buffer": [], "last": [1], "arrived": [True]}],
    "frequencies": [{"counts": {"a": 0}}, {"counts": {"a": "1"}}, {"counts": [("a", 1)]}],
    "delay": [{"pending": [(-1, "x")]}, {"pending": [("1", "x")]}, {"pending": ["x"]}],
    "rate_limit": [{"next_in": -1}, {"next_in": float("inf")}, {"next_in": "1"}],
    "timed_window": [{"buffer": [], "closes_in": -1.0}],
    "timed_window_unique": [{"buffer": [[1, 1], [1, 2]]}, {"buffer": [1]}],
    "with_timestamps": [
        {"tracker": {"partitions": [], "floor": "x", "ended": False}, "notified": 0.0},
        {
            "tracker": {"partitions": [([], 1.0, None)], "floor": 0.0, "ended": False},
            "notified": 0.0,
        },
    ],
}


@pytest.mark.parametrize("name", sorted(BAD_STATES))
def test_restore_refuses_malformed_state(name: str) -> None:
    _, nodes, _ = fed(BY_NAME[name])
    node = nodes[0]
    before = node.snapshot()
    for bad in BAD_STATES[name]:
        with pytest.raises(StateError) as info:
            node.restore(bad)
        assert str(node) in str(info.value), info.value
        assert node.snapshot() == before, bad


def test_sources_refuse_junk_positions(tmp_path: Any) -> None:
    path = tmp_path / "f.txt"
    path.write_text("x\n")
    sources: list[tuple[Stream, list[Any]]] = [
        (Stream.from_iterable([1]), [None, -1, "1", 1.0]),
        (TestingSource([1]), [None, -1, "1", 1.5]),
        (
            Stream.from_textfile(str(path)),
            [None, {"offset": -1, "buffer": ""}, {"offset": 0, "buffer": b""}, {"offset": 0}],
        ),
        (Stream.filenames(str(tmp_path)), [None, "abc", [1]]),
    ]
    for source, junk in sources:
        before = source.snapshot()
        for state in junk:
            with pytest.raises(StateError, match=re.escape(str(source))):
                source.restore(state)
            assert source.snapshot() == before
        source.stop()


def test_states_of_the_earlier_formats_still_restore(manual_clock: ManualClock) -> None:
    # timed windows had no 'closes_in', partition(timeout=) no 'due_in'; a window's
    # watermark may be None (no watermark yet)
    source = Stream()
    window = source.timed_window(2, emit_empty=False)
    L = window.sink_to_list()
    window.restore({"buffer": [1, 2]})
    manual_clock.advance(2)
    wait_for(lambda: L == [[1, 2]], 5)
    unique = Stream().timed_window_unique(1)
    unique.restore({"buffer": [(1, 1)]})
    assert unique.snapshot()["buffer"] == [(1, 1)]
    source = Stream()
    groups = source.partition(2, timeout=5)
    out = groups.sink_to_list()
    groups.restore({"buffers": [[None, [1]]]})
    manual_clock.advance(5)
    wait_for(lambda: out == [(1,)], 5)
    events = Stream()
    node = events.window(Tumbling(10), "sum", timestamp=lambda x: x)
    state = {**node.snapshot(), "watermark": None}
    node.restore(state)
    assert node.watermark == float("-inf")


def test_a_stateless_node_takes_only_none() -> None:
    node = Stream().map(str)
    node.restore(None)
    with pytest.raises(StateError, match="keeps no state"):
        node.restore({"x": 1})


# -- every stateful node has a case --------------------------------------------------------------
def stateful_classes() -> set[type]:
    """Every node class of millstream with its own ``snapshot``/``restore`` (inherited ones
    included: a Dask node over a local one holds futures)."""

    def walk(cls: type) -> list[type]:
        out = []
        for sub in cls.__subclasses__():
            out += [sub, *walk(sub)]
        return out

    return {
        cls
        for cls in walk(Stream)
        if cls.__module__.startswith("millstream.")
        and not cls.__name__.startswith("_")
        and (cls.snapshot is not Stream.snapshot or cls.restore is not Stream.restore)
    }


#: Sources, covered by the tests above besides :data:`CASES` or (they need a broker) by
#: ``tests/kafka/test_kafka_checkpoints.py`` (positions exact while records flow, restore
#: checks, snapshots detached) and ``tests/kafka/test_kafka_checkpoint_restart.py``.
SOURCES_COVERED = {
    "from_iterable",
    "from_textfile",
    "filenames",
    "TestingSource",
    "KafkaSource",
    "from_kafka",
    "FromKafkaBatched",
    # the directory-following readers: tests/parquet/test_file_sources.py (positions
    # restored mid-file, resumed from a checkpoint, bad states)
    "FileReader",
    "from_parquet",
    "from_csv",
    "from_jsonl",
    # the connectors' sources, against their servers: tests/pulsar_connector
    # (test_checkpoints.py: resumed through the coordinator; positions restored), and
    # tests/redis_streams (the group keeps the position; the snapshot counts acks)
    "from_pulsar",
    "from_redis_stream",
}


def test_every_stateful_node_has_a_case() -> None:
    local = {c for c in stateful_classes() if not c.__module__.startswith("millstream.dask")}
    covered = {case.cls for case in CASES}
    missing = sorted(
        f"{c.__module__}.{c.__qualname__}"
        for c in local
        if c not in covered and c.__name__ not in SOURCES_COVERED
    )
    assert not missing, (
        f"stateful nodes without a case in tests/checkpoint/test_node_state.py: {missing}"
    )
