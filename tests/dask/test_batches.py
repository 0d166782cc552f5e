"""Batches on a DaskStream: where the work runs, what reaches the client, refs, errors, state."""

from __future__ import annotations

import asyncio
import operator
import time
from collections import Counter

import pytest
from distributed import Future, get_worker

from millstream import RefCounter, Stream
from millstream.dask import Batch, DaskStream
from millstream.testing import metadata, wait_for


def inc(x):
    return x + 1


def on_a_worker(x):
    get_worker()  # raises ValueError outside a worker
    return x % 2 == 1


def words(lines):
    return [w for line in lines for w in line.split()]


def count_words(lines):
    return Counter(words(lines))


def one_over(x):
    return 1 / x


def slow_inc(x):
    time.sleep(0.2)
    return x + 1


@pytest.fixture
def gathers(client, monkeypatch):
    """Keys of the futures the client fetches (every ``client.gather``), in order."""
    from distributed import futures_of

    fetched: list[str] = []
    real = client.gather

    def counting(futures, *args, **kwargs):
        fetched.extend(f.key for f in futures_of(futures))
        return real(futures, *args, **kwargs)

    monkeypatch.setattr(client, "gather", counting)
    return fetched


# -- where the work runs -----------------------------------------------------------------------
def test_flatten_of_an_element_future_is_a_batch_of_that_future_without_a_task(client):
    source = Stream()
    mapped = source.scatter().map(str.split)
    futures = mapped.sink_to_list()
    flat = mapped.flatten()
    assert isinstance(flat, DaskStream) and flat._may_batch and not mapped._may_batch
    raw: list = []
    flat.downstreams.append(_Recorder(raw))
    elements = flat.sink_to_list()  # a sink splits a batch into element futures
    source.emit("a b c")
    assert type(raw[0]) is Batch and raw[0].future.key == futures[0].key
    assert repr(raw[0]) == f"<Batch {futures[0].key!r}>"
    wait_for(lambda: len(elements) == 3, 10)
    assert client.gather(elements) == ["a", "b", "c"]


class _Recorder(Stream):
    """Records the units that reach it, as they are (no splitting)."""

    def __init__(self, out):
        self.out = out
        super().__init__()

    def update(self, x, who=None, metadata=None):
        self.out.append(x)


def test_filter_runs_the_predicate_on_the_workers_and_nothing_comes_back(client, gathers):
    source = Stream()
    node = source.scatter().filter(on_a_worker)
    raw: list = []
    node.downstreams.append(_Recorder(raw))
    values = node.gather().sink_to_list()
    for i in range(5):
        source.emit(i)
    assert values == [1, 3]
    assert all(type(u) is Batch for u in raw)  # a batch of 0 or 1 element per element
    # the only fetches are the gather's, of the filter's 5 batches
    assert gathers == [u.future.key for u in raw]
    assert all(k.startswith("filter_items-") for k in gathers)


def test_per_element_nodes_run_one_task_per_batch(client, gathers):
    source = Stream()
    pairs = source.scatter().flatten().map(lambda x: (x, x))
    node = pairs.starmap(operator.add).map(inc)
    raw: list = []
    node.downstreams.append(_Recorder(raw))
    L = node.gather().sink_to_list()
    source.emit([1, 2, 3])
    source.emit([4])
    assert L == [3, 5, 7, 9]
    assert len(raw) == 2 and all(type(u) is Batch for u in raw)
    assert [k.split("-")[0] for k in gathers] == ["map_items", "map_items"]


def test_a_batched_word_count_through_a_buffer_stays_fast(client):
    batches = [[f"w{i % 7} w{i % 3} end" for i in range(j, j + 50)] for j in range(0, 2000, 50)]
    source = Stream()
    L = source.scatter().map(count_words).buffer(8).gather().sink_to_list()
    start = time.perf_counter()
    for batch in batches:
        source.emit(batch)
    wait_for(lambda: len(L) == len(batches), 20)
    elapsed = time.perf_counter() - start
    total = sum(L, Counter())
    assert total == Counter(w for b in batches for w in words(b))
    assert elapsed < 5, elapsed


# -- partial aggregates: only small results reach the client -----------------------------------
def test_frequencies_counts_each_batch_where_it_is_then_merges_on_the_cluster(client, gathers):
    lines = [["a b a", "c"], ["b b"], [], ["a"]]
    source = Stream()
    counts = source.scatter().map(words).flatten().frequencies()
    for batch in lines:
        source.emit(batch)
    wait_for(lambda: isinstance(counts.cluster_state, Future), 10)
    wait_for(lambda: counts.cluster_state.status == "finished" and not counts._jobs, 10)
    assert gathers == []  # nothing came to the client
    assert counts.cluster_state.key.startswith("merge_counts-")
    table = client.gather(counts.cluster_state)
    assert table == Counter(w for b in lines for line in b for w in line.split())
    assert counts.snapshot() == {"counts": {"a": 3, "b": 3, "c": 1}}


def test_frequencies_emits_one_table_per_batch(client):
    source = Stream()
    tables = source.scatter().flatten().frequencies().gather().sink_to_list()
    source.emit(["x", "y", "x"])
    source.emit([])
    source.emit(["y"])
    wait_for(lambda: len(tables) == 3, 10)
    assert tables == [{"x": 2, "y": 1}, {"x": 2, "y": 1}, {"x": 2, "y": 2}]


def test_accumulate_on_batches_keeps_its_state_on_the_cluster(client, gathers):
    source = Stream()
    acc = source.scatter().flatten().accumulate(operator.add, start=10)
    L = acc.gather().sink_to_list()
    source.emit([1, 2])
    source.emit([3])
    wait_for(lambda: len(L) == 3, 10)
    assert L == [11, 13, 16]
    assert isinstance(acc.cluster_state, Future) and acc.cluster_state.key.startswith("state_of-")
    assert all(k.startswith("outputs_of-") for k in gathers)  # only outputs were fetched
    assert acc.snapshot() == {"state": 16}


def test_a_stateful_node_keeps_its_history_on_the_cluster(client, gathers):
    source = Stream()
    node = source.scatter().flatten().unique()
    L = node.gather().sink_to_list()
    source.emit([1, 2, 1])
    source.emit([2, 3])
    wait_for(lambda: len(L) == 3, 10)
    assert L == [1, 2, 3]
    assert isinstance(node.cluster_state, Future)
    assert all(k.startswith("outputs_of-") for k in gathers)
    assert node.snapshot() == {"seen": [[1, 1], [2, 1], [3, 1]]}


# -- snapshot / restore of the state on the cluster --------------------------------------------
@pytest.mark.parametrize(
    "build, batches",
    [
        (lambda s: s.unique(), [[1, 2], [1, 3], [3, 4], [5, 1]]),
        (lambda s: s.partition(3), [[1, 2], [3, 4], [5], [6, 7]]),
        (lambda s: s.sliding_window(2), [[1, 2], [3], [4, 5], [6]]),
        (lambda s: s.frequencies(), [["a", "b"], ["a"], ["c"], ["b"]]),
        (lambda s: s.accumulate(operator.add), [[1, 2], [3], [4], [5]]),
        (lambda s: s.partition_unique(2, keep="last"), [[1, 1], [2, 3], [3], [4, 4]]),
    ],
    ids=["unique", "partition", "sliding_window", "frequencies", "accumulate", "pu"],
)
def test_snapshot_restore_round_trip(client, build, batches):
    def run(units, state=None):
        source = Stream()
        node = build(source.scatter().flatten())
        if state is not None:
            node.restore(state)
        out = node.gather().sink_to_list()
        for unit in units:
            source.emit(unit)
        wait_for(lambda: not node._jobs and len(out) >= 1, 10)
        time.sleep(0.1)
        return node, out

    _, whole = run(batches)
    first, part1 = run(batches[:2])
    state = first.snapshot()
    _, part2 = run(batches[2:], state)
    assert part1 + part2 == whole


# -- errors ------------------------------------------------------------------------------------
def test_an_error_inside_a_batch_raises_from_gather_with_a_note(client):
    ref = RefCounter()
    source = Stream()
    L = source.scatter().flatten().map(one_over).gather().sink_to_list()
    with pytest.raises(ZeroDivisionError) as info:
        source.emit([1, 2, 0, 4], metadata=[{"ref": ref}])
    note = info.value.__notes__[0]
    assert note.startswith("millstream: <map: one_over> failed calling function 'one_over'")
    assert note.endswith("on element 2 of a batch of type int: 0")
    assert L == [] and ref.count == 0 and ref.failed
    source.emit([4])  # the graph keeps working
    assert L == [0.25]


def test_flatten_of_a_non_iterable_names_flatten(client):
    source = Stream()
    source.scatter().flatten().gather().sink_to_list()
    with pytest.raises(TypeError) as info:
        source.emit(5)
    assert info.value.__notes__[0].startswith("millstream: <flatten> failed on element of type int")


def test_a_failed_unit_does_not_break_the_state_chain(client):
    ref = RefCounter()
    source = Stream()
    tables = source.scatter().flatten().map(one_over).frequencies().gather().sink_to_list()
    source.emit([1, 2])
    with pytest.raises(ZeroDivisionError) as info:  # raised to the caller, as locally
        source.emit([1, 0], metadata=[{"ref": ref}])
    assert info.value.__notes__[0].startswith(
        "millstream: <map: one_over> failed calling function 'one_over'"
    )
    assert info.value.__notes__[0].endswith("on element 1 of a batch of type int: 0")
    source.emit([2])
    wait_for(lambda: len(tables) == 2 and ref.count == 0, 10)
    assert tables == [{1.0: 1, 0.5: 1}, {1.0: 1, 0.5: 2}]  # the failed batch is not counted
    assert ref.failed


def test_an_error_in_a_node_on_the_workers_leaves_its_state_usable(client):
    def key(x):
        return 1 / x

    source = Stream()
    L = source.scatter().flatten().unique(key=key).gather().sink_to_list()
    source.emit([1, 2])
    with pytest.raises(ZeroDivisionError) as info:
        source.emit([0, 3])
    assert info.value.__notes__[0].startswith("millstream: <unique> failed calling function")
    source.emit([2, 4])
    assert L == [1, 2, 4]  # the failing batch ends at its failing element, as locally


# -- refs --------------------------------------------------------------------------------------
def test_refs_are_held_until_every_element_of_the_batch_is_done(client):
    done: list[int] = []
    counts: list[int] = []
    ref = RefCounter(cb=lambda: done.append(len(seen)))
    seen: list[int] = []

    async def slow_sink(x):
        counts.append(ref.count)
        await asyncio.sleep(0.01)
        seen.append(x)

    source = Stream()
    source.scatter().flatten().map(inc).gather().sink(slow_sink)
    source.emit([1, 2, 3], metadata=[{"ref": ref}])
    assert seen == [2, 3, 4] and min(counts) >= 2
    assert done == [3] and ref.count == 0 and not ref.failed


def test_gather_gives_every_element_the_batchs_metadata(client):
    ref = RefCounter()
    source = Stream()
    seen = metadata(source.scatter().flatten().gather()).sink_to_list()
    source.emit(["a", "b"], metadata=[{"ref": ref, "offset": 3}])
    assert seen == [[{"ref": ref, "offset": 3}]] * 2


def test_a_node_on_the_workers_holds_refs_until_its_elements_leave(client):
    refs = [RefCounter() for _ in range(4)]
    source = Stream()
    L = source.scatter().flatten().partition(3).gather().sink_to_list()
    source.emit([1, 2], metadata=[{"ref": refs[0]}])
    source.emit([], metadata=[{"ref": refs[1]}])
    wait_for(lambda: refs[1].count == 0, 10)
    time.sleep(0.2)
    assert refs[0].count == 1  # 1 and 2 wait in the partition on a worker
    source.emit([3], metadata=[{"ref": refs[2]}])
    source.emit([4], metadata=[{"ref": refs[3]}])
    wait_for(lambda: refs[0].count == 0 and refs[2].count == 0, 10)
    time.sleep(0.2)
    assert L == [(1, 2, 3)] and refs[3].count == 1
    assert not any(r.failed for r in refs)


def test_sliding_window_on_the_workers_releases_an_element_when_it_leaves(client):
    refs = [RefCounter() for _ in range(3)]
    source = Stream()
    L = source.scatter().flatten().sliding_window(2).gather().sink_to_list()
    for i, ref in enumerate(refs):
        source.emit([i], metadata=[{"ref": ref}])
    wait_for(lambda: len(L) == 3 and refs[0].count == 0, 10)
    time.sleep(0.2)
    assert [r.count for r in refs] == [0, 1, 1]
    assert L == [(0,), (0, 1), (1, 2)]


def test_zip_on_the_workers_holds_an_element_until_it_is_paired(client):
    ra, rb = RefCounter(), RefCounter()
    a, b = Stream(), Stream()
    L = a.scatter().flatten().zip(b.scatter().flatten()).gather().sink_to_list()
    a.emit([1, 2], metadata=[{"ref": ra}])
    time.sleep(0.3)
    assert ra.count == 1
    b.emit(["x", "y"], metadata=[{"ref": rb}])
    wait_for(lambda: ra.count == 0 and rb.count == 0, 10)
    assert L == [(1, "x"), (2, "y")]


def test_a_sink_of_futures_holds_refs_until_the_task_is_done(client):
    done: list[bool] = []
    ref = RefCounter(cb=lambda: done.append(True))
    source = Stream()
    futures = source.scatter().map(slow_inc).sink_to_list()
    source.emit(1, metadata=[{"ref": ref}])
    assert len(futures) == 1 and futures[0].status == "pending"
    assert ref.count == 1 and done == []
    wait_for(lambda: done == [True], 10)
    assert futures[0].result() == 2 and not ref.failed


def test_a_sink_of_futures_marks_a_failed_task_failed(client):
    ref = RefCounter()
    source = Stream()
    source.scatter().map(one_over).sink_to_list()
    source.emit(0, metadata=[{"ref": ref}])
    wait_for(lambda: ref.count == 0, 10)
    assert ref.failed


# -- a batch where the node expected element futures -------------------------------------------
def test_a_client_side_node_splits_a_batch_it_receives(client):
    a = Stream()
    part = a.scatter().partition(2)  # element futures: tuples of futures on the client
    L = part.gather().sink_to_list()
    b = Stream()
    b.scatter().flatten().connect(part)
    a.emit(1)
    b.emit([2, 3, 4])
    wait_for(lambda: len(L) == 2, 10)
    assert L == [(1, 2), (3, 4)]


def test_collect_on_the_workers_flushed_by_another_stream(client):
    source, trigger = Stream(), Stream()
    collector = source.scatter().flatten().collect()
    L = collector.gather().sink_to_list()
    trigger.sink(collector.flush)
    source.emit([1, 2])
    source.emit([3])
    trigger.emit("now")
    wait_for(lambda: len(L) == 1, 10)
    trigger.emit("again")
    wait_for(lambda: len(L) == 2, 10)
    assert L == [(1, 2, 3), ()]


# -- order ------------------------------------------------------------------------------------
def sleepy(x):
    time.sleep(0.05 * (5 - x))
    return x


@pytest.mark.asyncio
async def test_gather_emits_in_arrival_order_when_elements_overlap(client):
    source = Stream(asynchronous=True)
    L = source.scatter().map(sleepy).gather().sink_to_list()
    # five emits in flight at once: the first task is the slowest
    await asyncio.gather(*(source.emit(i) for i in range(5)))
    assert L == [0, 1, 2, 3, 4]


def test_behind_a_buffer_gather_fetches_ahead_and_keeps_arrival_order(client):
    """Tasks finishing in reverse order: results are fetched as they finish (up to the
    buffer's size at once) and emitted in arrival order."""
    source = Stream()
    gathered = source.scatter().map(sleepy).buffer(5).gather()
    L = gathered.sink_to_list()
    for i in range(5):
        source.emit(i)  # the buffer takes each at once: emit does not wait for results
    # the buffer hands them all over to gather (without fetching ahead it holds one)
    wait_for(lambda: len(gathered._ahead or ()) >= 4, 10)
    wait_for(lambda: len(L) == 5, 20)
    assert L == [0, 1, 2, 3, 4]
