"""Streaming frames on Dask give the local results, with their state on the cluster.

:data:`OPERATIONS` is the table every frame operation is checked through: ``(name, build)``
where ``build(sdf)`` returns the collection to compare. Each one runs locally
(``DataFrame(example=...)``) and on the session's ``LocalCluster`` (``scatter()`` ->
``to_dataframe`` -> op -> ``.stream.gather()``, the same over Dask batches, and
``DataFrame(stream=DaskStream())``),
and the outputs must be equal chunk by chunk. An operation that keeps state (a graph with
an aggregation node) is also checkpointed mid-stream on Dask: its snapshot equals the
local one, and a fresh Dask graph restored from it continues as if uninterrupted.

A new operation is one line in :data:`OPERATIONS`, e.g.
``("window-sum", lambda s: s.window(2).x.sum()),``; functions the tasks call must be
picklable (module-level, as every frame operation's are).
"""

from __future__ import annotations

import pickle
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import cloudpickle
import numpy as np
import pandas as pd
import pytest
from distributed import Future
from frames_testing import assert_frame_equal, assert_series_equal

from millstream import Stream
from millstream.collection import Streaming
from millstream.dask import ClusterAggregation, DaskStream
from millstream.dataframe import DataFrame, RunningAggregation
from millstream.testing import wait_for

CHUNKS = [
    pd.DataFrame({"x": [1, -2, 3], "y": [1.5, 2.0, -1.0]}, index=[0, 1, 2]),
    pd.DataFrame({"x": [4, 5], "y": [0.5, 3.0]}, index=[3, 4]),
    pd.DataFrame({"x": [-6, 7, 8, 2], "y": [2.0, 1.0, 4.0, 2.5]}, index=[5, 6, 7, 8]),
    pd.DataFrame({"x": [9, -1], "y": [-0.5, 6.0]}, index=[9, 10]),
]
EXAMPLE = CHUNKS[0].iloc[:0]

# the functions below reach the workers by value (as tests/dask's do)
cloudpickle.register_pickle_by_value(sys.modules[__name__])


def times_k(df: pd.DataFrame, k: int) -> pd.Series:
    return df.x * k


def count_rows(n: int, df: pd.DataFrame) -> tuple[int, int]:
    return n + len(df), n + len(df)


def max_x(df: pd.DataFrame) -> Any:
    return df.x.max()


def rows_so_far(sdf: DataFrame) -> Streaming:
    return sdf.accumulate_partitions(count_rows, start=0, returns_state=True)


def set_z(sdf: DataFrame) -> DataFrame:
    out = DataFrame(sdf.stream, sdf.example)  # sdf itself still takes the input
    out["z"] = out.x + out.y
    return out


def filter_column_and_frame(sdf: DataFrame) -> Streaming:
    positive = sdf[sdf.x > 0]
    return positive.assign(z=positive.y * 2)  # a column of it, then the whole of it


#: ``(name, build)``: every frame operation, built on a streaming DataFrame of CHUNKS
OPERATIONS: list[tuple[str, Callable[[Any], Streaming]]] = [
    ("column", lambda s: s.x),
    ("columns", lambda s: s[["y", "x"]]),
    ("filter", lambda s: s[s.x > 0]),
    ("filter-column-sum", lambda s: s[s.x > 0].y.sum()),
    ("arithmetic", lambda s: (s.x + 1) * s.y - 2),
    ("reflected", lambda s: 10 - s["x"]),
    ("comparison", lambda s: (s.x >= s.y) | (s.y < 0)),
    ("unary", lambda s: -abs(s.y)),
    ("assign", lambda s: s.assign(z=s.x * 2, w=1)),
    ("setitem", set_z),
    ("query", lambda s: s.query("x > y")),
    ("round-astype", lambda s: s.y.round().astype(int)),
    ("index", lambda s: s.index),
    ("to_frame", lambda s: s.x.to_frame()),
    ("tail", lambda s: s.tail(2)),
    ("reset_index", lambda s: s.reset_index()),
    ("map_partitions", lambda s: s.map_partitions(times_k, s, 3)),
    ("accumulate_partitions", rows_so_far),
    ("cumsum", lambda s: s.cumsum()),
    ("cumprod", lambda s: s.y.cumprod()),
    ("cummin", lambda s: s.cummin()),
    ("cummax", lambda s: s.x.cummax()),
    ("sum", lambda s: s.sum()),
    ("count", lambda s: s.count()),
    ("mean", lambda s: s.mean()),
    ("size", lambda s: s.size),
    ("var", lambda s: s.var()),
    ("std", lambda s: s.y.std(ddof=0)),
    ("series-sum", lambda s: s.x.sum()),
    ("series-mean", lambda s: s.y.mean()),
    ("sum-then-arithmetic", lambda s: s.sum() * 2),
    ("updating-nlargest", lambda s: s.sum().nlargest(1)),
    ("cumsum-then-sum", lambda s: s.x.cumsum().sum()),
    ("empty-chunks-cumsum", lambda s: s[s.x > 6].cumsum()),
    # -- windows and groupby --
    ("window-n-sum", lambda s: s.window(n=4).x.sum()),
    ("window-n-mean", lambda s: s.window(4).mean()),
    ("window-var", lambda s: s.window(n=5).y.var()),
    ("window-full", lambda s: s.window(n=3).full()),
    ("window-apply", lambda s: s.window(n=3).apply(max_x)),
    ("window-value_counts", lambda s: s.window(n=5).x.value_counts()),
    ("value_counts", lambda s: (s.x % 3).value_counts()),
    ("groupby-streaming-key-sum", lambda s: s.groupby(s.x > 0).y.sum()),
    ("groupby-column-mean", lambda s: s.assign(k=s.x % 2).groupby("k").mean()),
    ("groupby-var", lambda s: s.assign(k=s.x % 2).groupby("k").y.var()),
    ("groupby-size-count-std", lambda s: s.assign(k=s.x % 2).groupby("k").y.std()),
    ("windowed-groupby", lambda s: s.window(n=5).groupby(s.x % 2).y.sum()),
    # -- rolling, expanding, ewm --
    ("rolling-mean", lambda s: s.rolling(3).x.mean()),
    ("rolling-frame-sum", lambda s: s.rolling(2).sum()),
    ("rolling-median", lambda s: s.y.rolling(3).median()),
    ("expanding-mean", lambda s: s.expanding().mean()),
    ("expanding-var", lambda s: s.y.expanding().var()),
    ("ewm-mean", lambda s: s.ewm(alpha=0.3).mean()),
    ("ewm-std", lambda s: s.y.ewm(span=3).std()),
    # -- filters (a filtered frame's columns come from the unfiltered chunks) --
    ("filter-columns", lambda s: s[s.x > 0][["y", "x"]]),
    ("filter-column-and-frame", filter_column_and_frame),
]
NAMES = [name for name, _ in OPERATIONS]


# -- running a build locally and on Dask ------------------------------------------------------
def run_local(build: Callable[[Any], Streaming], chunks: list[pd.DataFrame]) -> tuple:
    """The collection, its output and how much output each prefix of ``chunks`` gave."""
    sdf = DataFrame(example=EXAMPLE)
    out = build(sdf)
    L = out.stream.sink_to_list()
    counts = [0]
    for chunk in chunks:
        sdf.emit(chunk)
        counts.append(len(L))
    return out, L, counts


def build_on_dask(build: Callable[[Any], Streaming], entry: str) -> tuple:
    """``(emit, collection)`` of ``build`` over a Dask stream: ``scatter()`` of a local
    source, ``scatter().flatten()`` of lists of chunks (Dask batches: the fold runs one
    task per batch), or a bare ``DaskStream()`` fed local chunks."""
    if entry == "scatter":
        source = Stream()
        return source.emit, build(source.scatter().to_dataframe(EXAMPLE))
    if entry == "batches":
        source = Stream()
        return (lambda chunk: source.emit([chunk])), build(
            source.scatter().flatten().to_dataframe(EXAMPLE)
        )
    sdf = DataFrame(stream=DaskStream(), example=EXAMPLE)
    return sdf.emit, build(sdf)


def run_dask(
    build: Callable[[Any], Streaming],
    chunks: list[pd.DataFrame],
    wanted: int,
    entry: str = "scatter",
    restore: list[Any] | None = None,
) -> tuple:
    emit, out = build_on_dask(build, entry)
    if restore is not None:
        for node, state in zip(aggregation_nodes(out), restore, strict=True):
            node.restore(state)
    L = out.stream.gather().sink_to_list()
    for chunk in chunks:
        emit(chunk)
    wait_for(lambda: len(L) >= wanted, 30)
    return out, L


def assert_same(a: Any, b: Any) -> None:
    if isinstance(b, pd.DataFrame):
        assert_frame_equal(a, b)
    elif isinstance(b, (pd.Series, pd.Index)):
        if isinstance(b, pd.Index):
            pd.testing.assert_index_equal(a, b)
        else:
            assert_series_equal(a, b)
    elif isinstance(b, tuple):
        assert type(a) is tuple and len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            assert_same(x, y)
    else:
        assert type(a) is type(b), (a, b)
        assert a == pytest.approx(b) or (np.isnan(a) and np.isnan(b)), (a, b)


def assert_outputs_equal(got: list[Any], expected: list[Any]) -> None:
    assert len(got) == len(expected)
    for a, b in zip(got, expected, strict=True):
        assert_same(a, b)


def aggregation_nodes(collection: Streaming) -> list[Any]:
    """The aggregation nodes (local or Dask) upstream of ``collection``, in a fixed order."""
    found: list[Any] = []
    seen: set[int] = set()

    def walk(node: Any) -> None:
        if node is None or id(node) in seen:
            return
        seen.add(id(node))
        for upstream in node.upstreams:
            walk(upstream)
        if isinstance(node, (RunningAggregation, ClusterAggregation)):
            found.append(node)

    walk(collection.stream)
    return found


# -- the same results ---------------------------------------------------------------------------
@pytest.mark.parametrize("entry", ["scatter", "DaskStream", "batches"])
@pytest.mark.parametrize(("name", "build"), OPERATIONS, ids=NAMES)
def test_operation_on_dask_equals_local(client, name: str, build: Callable, entry: str) -> None:
    local, expected, _ = run_local(build, CHUNKS)
    out, got = run_dask(build, CHUNKS, len(expected), entry)
    assert type(out) is type(local) and out.stream_type == local.stream_type
    assert_outputs_equal(got, expected)
    # each aggregation of the local graph runs on the cluster on Dask
    assert [type(n) for n in aggregation_nodes(local)] == [RunningAggregation] * len(
        aggregation_nodes(out)
    )
    assert all(type(n) is ClusterAggregation for n in aggregation_nodes(out))


@pytest.mark.parametrize("entry", ["scatter", "batches"])
def test_state_and_results_stay_on_the_cluster_until_gather(client, entry: str) -> None:
    emit, sdf = build_on_dask(lambda s: s, entry)
    total = sdf[sdf.x > 0].y.sum()
    (node,) = aggregation_nodes(total)
    before_gather = total.stream.sink_to_list()
    L = total.stream.gather().sink_to_list()
    for chunk in CHUNKS:
        emit(chunk)
    wait_for(lambda: len(L) == len(CHUNKS), 30)
    # the fold's state: a future per element (Streamz's chain), or per batch of chunks
    state = node.state if entry == "scatter" else node.cluster_state
    assert isinstance(state, Future)
    assert client.who_has([state])[state.key]  # held by a worker
    assert before_gather and all(isinstance(getattr(x, "future", x), Future) for x in before_gather)
    assert pytest.approx([0.5, 4.0, 11.5, 11.0]) == L


def test_with_state_and_start_on_dask(client) -> None:
    from millstream.dataframe import Sum
    from millstream.dataframe.nodes import accumulate_chunks

    source = Stream()
    node = accumulate_chunks(source.scatter(), Sum(), start=100, with_state=True)
    L = node.gather().sink_to_list()
    for chunk in CHUNKS[:2]:
        source.emit(chunk.x)
    wait_for(lambda: len(L) == 2, 30)
    assert [tuple(int(v) for v in pair) for pair in L] == [(102, 102), (111, 111)]


# -- checkpoints ----------------------------------------------------------------------------
STATEFUL = [(n, b) for n, b in OPERATIONS if aggregation_nodes(b(DataFrame(example=EXAMPLE)))]


@pytest.mark.parametrize(("cut", "entry"), [(1, "scatter"), (3, "batches")])
@pytest.mark.parametrize(("name", "build"), STATEFUL, ids=[n for n, _ in STATEFUL])
def test_dask_checkpoint_mid_stream_continues_as_uninterrupted(
    client, name: str, build: Callable, cut: int, entry: str
) -> None:
    _, expected, counts = run_local(build, CHUNKS)
    local_part, _, _ = run_local(build, CHUNKS[:cut])
    first, part1 = run_dask(build, CHUNKS[:cut], counts[cut], entry)
    snapshot = [node.snapshot() for node in aggregation_nodes(first)]
    # the same plain state as the local fold's
    assert repr(snapshot) == repr([node.snapshot() for node in aggregation_nodes(local_part)])
    saved = pickle.loads(pickle.dumps(snapshot))
    _, part2 = run_dask(build, CHUNKS[cut:], counts[-1] - counts[cut], entry, restore=saved)
    assert_outputs_equal(part1 + part2, expected)


def test_a_dask_snapshot_restores_locally_and_the_other_way(client) -> None:
    build = dict(OPERATIONS)["mean"]
    _, expected, counts = run_local(build, CHUNKS)
    first, part1 = run_dask(build, CHUNKS[:2], counts[2])
    (dask_node,) = aggregation_nodes(first)
    # Dask -> local
    local = DataFrame(example=EXAMPLE)
    out = build(local)
    (local_node,) = aggregation_nodes(out)
    local_node.restore(dask_node.snapshot())
    L = out.stream.sink_to_list()
    for chunk in CHUNKS[2:]:
        local.emit(chunk)
    assert_outputs_equal(part1 + L, expected)
    # local -> Dask
    local_first, _, _ = run_local(build, CHUNKS[:2])
    state = [node.snapshot() for node in aggregation_nodes(local_first)]
    _, part2 = run_dask(build, CHUNKS[2:], counts[-1] - counts[2], restore=state)
    assert_outputs_equal(part1 + part2, expected)


def test_checkpoints_of_a_dask_frame_graph_while_chunks_flow(client, tmp_path) -> None:
    """The checkpoint coordinator over a Dask frame graph: each checkpoint holds the sum of
    exactly the chunks the source had emitted; after a crash the restored graph ends with
    the uninterrupted total."""
    from millstream.checkpoint import CheckpointStore, enable

    chunks = [pd.DataFrame({"x": [i, 2 * i]}, index=[2 * i, 2 * i + 1]) for i in range(80)]
    where = tmp_path / "checkpoints"

    def build() -> tuple[Stream, Any]:
        source = Stream.from_iterable(chunks, chunk_size=4, stream_name="in")
        total = source.scatter().to_dataframe(chunks[0].iloc[:0]).x.sum()
        total.stream.gather().sink(lambda v: None)
        (node,) = aggregation_nodes(total)
        return source, node

    source, node = build()
    checkpoints = enable(source, where, interval=None)
    source.start()
    positions = []
    for target in (10, 30):
        wait_for(lambda t=target: source.stopped or source.snapshot() >= t, 60)
        info = checkpoints.checkpoint(timeout=60)
        assert info is not None
        record = pickle.loads(CheckpointStore(where).read(info.id))
        states = {i: entry["state"] for i, entry in record["nodes"].items()}
        position = states[checkpoints.ids[source]]
        assert states[checkpoints.ids[node]] == {"state": 3 * sum(range(position))}
        positions.append(position)
    source.stop()  # the crash
    checkpoints.close(final=False)
    source, node = build()
    checkpoints = enable(source, where, interval=None)
    assert checkpoints.restored is not None
    source.start()
    wait_for(lambda: source.stopped, 60)
    wait_for(lambda: node.snapshot() == {"state": 3 * sum(range(80))}, 60, period=0.05)
    checkpoints.close()
    assert any(0 < p < 80 for p in positions), positions


def test_local_frames_do_not_import_dask() -> None:
    code = (
        "import sys, pandas as pd\n"
        "from millstream.dataframe import DataFrame\n"
        "sdf = DataFrame(example=pd.DataFrame({'x': [0]}))\n"
        "L = sdf.x.sum().stream.sink_to_list(); sdf.cumsum()\n"
        "sdf.emit(pd.DataFrame({'x': [1, 2]}))\n"
        "names = ('dask', 'distributed', 'millstream.dask')\n"
        "print(L, sorted(m for m in names if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.split("\n")[0] == "[np.int64(3)] []"
