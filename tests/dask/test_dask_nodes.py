"""Dask nodes: scatter, map, starmap, accumulate, gather, and the local nodes over futures.

Expected outputs marked "streamz 0.6.6" were checked by running streamz on a Dask cluster.
"""

from __future__ import annotations

import operator

import pytest
from distributed import Future

from millstream import Stream
from millstream.dask import DaskStream, gather
from millstream.testing import wait_for

# the modules of millstream.dask that define its nodes (border, task nodes, client nodes)
DASK_NODE_MODULES = {
    "millstream.dask.border",
    "millstream.dask.stateless",
    "millstream.dask.stateful",
    "millstream.dask.multi_input",
    "millstream.dask.on_client",
}


def inc(x):
    return x + 1


def test_scatter_on_a_stream_gives_a_dask_stream_and_gather_a_plain_stream(client):
    source = Stream()
    assert source.gather() is source  # local gather stays a no-op
    scattered = source.scatter()
    assert isinstance(scattered, DaskStream) and type(scattered).__name__ == "scatter"
    g = scattered.map(inc).gather()
    assert type(g) is gather and not isinstance(g, DaskStream)
    assert isinstance(g, Stream)
    assert type(g.map(inc)).__module__ == "millstream.operators.elementwise"
    assert str(scattered) == "<scatter>" and str(g) == "<gather>"
    assert str(scattered.map(inc)) == "<map: inc>"  # streamz 0.6.6


@pytest.mark.parametrize(
    "name, args",
    [
        ("map", (inc,)),
        ("starmap", (operator.add,)),
        ("accumulate", (operator.add,)),
        ("buffer", (2,)),
        ("combine_latest", ()),
        ("delay", (0.1,)),
        ("latest", ()),
        ("partition", (2,)),
        ("rate_limit", (0.1,)),
        ("sliding_window", (2,)),
        ("timed_window", (0.1,)),
        ("union", ()),
        ("zip", ()),
    ],
)
def test_dask_nodes_keep_the_chain_dask_typed(client, name, args):
    node = getattr(Stream().scatter(), name)(*args)
    assert isinstance(node, DaskStream)
    assert type(node).__name__ == name and type(node).__module__ in DASK_NODE_MODULES
    assert getattr(DaskStream, name).__name__ == name
    assert getattr(DaskStream, name) is not getattr(Stream, name)


def test_other_nodes_on_a_dask_stream_are_dask_nodes(client):
    # streamz 0.6.6: DaskStream.filter is the core filter, which receives futures; here every
    # node of a DaskStream is a Dask node (tests/dask/test_every_node.py covers them all)
    source = Stream()
    node = source.scatter().filter(lambda x: x > 0)
    L = node.gather().sink_to_list()
    source.emit(1)
    source.emit(0)
    assert isinstance(node, DaskStream) and L == [1]


def test_scatter_map_gather_in_order(client):
    source = Stream()
    L = source.scatter().map(inc).gather().sink_to_list()
    for i in range(5):
        source.emit(i)
    assert L == [1, 2, 3, 4, 5]


def test_scatter_emits_futures_and_keeps_dicts_and_equal_values_apart(client):
    source = Stream()
    futures = source.scatter().sink_to_list()
    values = source.scatter().gather().sink_to_list()
    source.emit({"a": 1, "b": 2})
    source.emit(5)
    source.emit(5)
    assert all(isinstance(f, Future) for f in futures)
    assert futures[1].key != futures[2].key  # hash=False: no deduplication (streamz #397)
    assert values == [{"a": 1, "b": 2}, 5, 5]  # a dict is one element (streamz #336)


def test_gather_passes_local_values_through(client):
    source = DaskStream()
    L = source.gather().gather().sink_to_list()
    source.emit(5)
    assert L == [5]  # streamz 0.6.6


def test_dask_stream_as_a_source_submits_local_values(client):
    source = DaskStream()
    L = source.map(inc).gather().sink_to_list()
    for i in range(3):
        source.emit(i)
    assert L == [1, 2, 3]


def test_map_passes_args_and_kwargs_to_the_task(client):
    source = Stream()
    L = source.scatter().map(lambda x, y, z=0: x * y + z, 10, z=1).gather().sink_to_list()
    source.emit(2)
    assert L == [21]


def test_map_stream_kwargs_configure_the_node_not_func(client):
    def f(x, **kwargs):
        return (x, kwargs)

    source = Stream()
    node = source.scatter().map(f, stream_name="foo", extra=1)
    L = node.gather().sink_to_list()
    source.emit(1)
    # streamz 0.6.6 gives [(1, {'stream_name': 'foo', 'extra': 1})] and '<map: f>'
    assert L == [(1, {"extra": 1})]
    assert str(node) == "<foo; map: f>"


def test_map_passes_submit_options_to_submit(client):
    import random

    source = Stream()
    L = source.scatter().map(lambda x: random.random(), pure=False).gather().sink_to_list()
    source.emit(1)
    source.emit(1)
    assert len(L) == 2 and L[0] != L[1]


def test_map_checks_func_at_construction():
    with pytest.raises(TypeError, match="map: func must be callable"):
        DaskStream().map(3)


def test_starmap(client):
    source = Stream()
    L = source.scatter().starmap(lambda a, b, c=0: a * b + c, c=1).gather().sink_to_list()
    source.emit((2, 3))
    assert L == [7]  # streamz 0.6.6


def test_starmap_with_extra_args_and_stream_name(client):
    source = Stream()
    node = source.scatter().starmap(lambda a, b, c: (a, b, c), "c", stream_name="s")
    L = node.gather().sink_to_list()
    source.emit(("a", "b"))
    assert L == [("a", "b", "c")] and str(node).startswith("<s; starmap")


def test_accumulate_without_start_keeps_the_state_on_the_cluster(client):
    source = Stream()
    acc = source.scatter().accumulate(operator.add)
    L = acc.gather().sink_to_list()
    for i in range(4):
        source.emit(i)
    assert L == [0, 1, 3, 6]  # streamz 0.6.6
    assert isinstance(acc.state, Future) and acc.state.result() == 6


def test_accumulate_with_start_and_kwargs(client):
    source = Stream()
    L = (
        source.scatter()
        .accumulate(lambda acc, x, k=1: acc + k * x, start=100, k=10)
        .gather()
        .sink_to_list()
    )
    for i in range(3):
        source.emit(i)
    assert L == [100, 110, 130]


def test_accumulate_returns_state(client):
    source = Stream()
    L = (
        source.scatter()
        .accumulate(lambda acc, x: (acc + x, acc), start=10, returns_state=True)
        .gather()
        .sink_to_list()
    )
    for i in range(4):
        source.emit(i)
    assert L == [10, 10, 11, 13]  # streamz 0.6.6


def test_accumulate_with_state_emits_pairs_of_futures(client):
    source = Stream()
    acc = source.scatter().accumulate(
        lambda acc, x: (acc + x, -acc), start=0, returns_state=True, with_state=True
    )
    L = acc.gather().sink_to_list()
    for i in range(3):
        source.emit(i)
    assert L == [(0, 0), (1, 0), (3, -1)]  # streamz 0.6.6

    source = Stream()
    L = source.scatter().scan(operator.add, with_state=True).gather().sink_to_list()
    for i in range(3):
        source.emit(i)
    assert L == [(0, 0), (1, 1), (3, 3)]  # streamz 0.6.6


def test_accumulate_snapshot_restore_round_trip(client):
    def run(values, node_state=None):
        source = Stream()
        acc = source.scatter().accumulate(operator.add, start=0)
        if node_state is not None:
            acc.restore(node_state)
        out = acc.gather().sink_to_list()
        for v in values:
            source.emit(v)
        return acc, out

    _, whole = run(range(6))
    first, part1 = run(range(3))
    state = first.snapshot()
    assert state == {"state": 3}
    _, part2 = run(range(3, 6), state)
    assert part1 + part2 == whole == [0, 1, 3, 6, 10, 15]


def test_partition_of_futures_then_gather_gives_tuples_of_values(client):
    source = Stream()
    part = source.scatter().partition(2)
    raw = part.sink_to_list()
    L = part.gather().sink_to_list()
    for i in range(5):
        source.emit(i)
    assert L == [(0, 1), (2, 3)]  # streamz 0.6.6
    assert all(isinstance(f, Future) for t in raw for f in t)


def test_zip_of_two_scattered_streams_then_map(client):
    a, b = Stream(), Stream()
    z = a.scatter().zip(b.scatter())
    L = z.map(lambda t: t[0] * t[1]).gather().sink_to_list()
    pairs = z.gather().sink_to_list()
    a.emit(3)
    a.emit(4)
    b.emit(10)
    b.emit(20)
    assert L == [30, 80]
    assert pairs == [(3, 10), (4, 20)]  # streamz 0.6.6 (zip then map: [(1, 2)] for 1, 2)


def test_sliding_window_union_combine_latest_over_futures(client):
    source = Stream()
    sw = source.scatter().sliding_window(2).gather().sink_to_list()
    for i in range(3):
        source.emit(i)
    assert sw == [(0,), (0, 1), (1, 2)]  # streamz 0.6.6

    a, b = Stream(), Stream()
    u = a.scatter().union(b.scatter()).map(inc).gather().sink_to_list()
    a.emit(1)
    b.emit(10)
    assert u == [2, 11]

    a, b = Stream(), Stream()
    c = a.scatter().combine_latest(b.scatter()).gather().sink_to_list()
    a.emit(1)
    b.emit("x")
    a.emit(2)
    assert c == [(1, "x"), (2, "x")]


def test_buffer_and_latest_over_futures(client):
    source = Stream()
    L = source.scatter().map(inc).buffer(4).gather().sink_to_list()
    for i in range(6):
        source.emit(i)
    wait_for(lambda: len(L) == 6, 10)
    assert L == [1, 2, 3, 4, 5, 6]

    source = Stream()
    last = source.scatter().latest().gather().sink_to_list()
    source.emit(1)
    wait_for(lambda: last == [1], 10)


def test_timed_delay_rate_limit_over_futures(client, manual_clock):
    source = Stream()
    tw = source.scatter().timed_window(1).gather().sink_to_list()
    source.emit(1)
    source.emit(2)
    manual_clock.advance(1)
    wait_for(lambda: [1, 2] in tw, 10)

    source = Stream()
    d = source.scatter().delay(1).gather().sink_to_list()
    source.emit("a")
    assert d == []
    manual_clock.advance(1)
    wait_for(lambda: d == ["a"], 10)

    source = Stream()
    rl = source.scatter().rate_limit(1).gather().sink_to_list()
    source.emit("x")
    assert rl == ["x"]
