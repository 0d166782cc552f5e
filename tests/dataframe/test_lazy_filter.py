"""Filtered frames (``sdf[mask]``) build their own node only when their stream is used;
their columns come from the unfiltered chunks and the mask, with the same results as
``chunk[mask][key]``: values bit for bit, index (type included), dtype, name, flags."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd
import pytest
from frames_testing import assert_frame_equal, assert_series_equal
from hypothesis import given, settings
from hypothesis import strategies as st

from millstream import Stream
from millstream.checkpoint.ids import graph_nodes, node_ids
from millstream.dataframe import DataFrame, DataFrames, RunningAggregation
from millstream.dataframe.chunkops import filtered_getitem, getitem, take_rows
from millstream.dataframe.filters import FilteredRows, RowFilter, selects_columns

SPECIAL = [np.nan, -0.0, 0.0, np.inf, -np.inf, 1.5, -2.25, 3.0]


def exactly(a: Any, b: Any) -> None:
    """The same pandas object: values (bytes), index (type, names), dtype, name, flags."""
    assert type(a) is type(b)
    if isinstance(a, pd.DataFrame):
        assert_frame_equal(a, b, check_exact=True, check_index_type=True, check_flags=True)
    else:
        assert_series_equal(a, b, check_exact=True, check_index_type=True, check_flags=True)
    assert type(a.index) is type(b.index)
    a_columns = [a.iloc[:, i] for i in range(a.shape[1])] if a.ndim == 2 else [a]
    b_columns = [b.iloc[:, i] for i in range(b.shape[1])] if b.ndim == 2 else [b]
    for x, y in zip(a_columns, b_columns, strict=True):
        assert x.to_numpy().tobytes() == y.to_numpy().tobytes()


def example(xd: Any) -> Any:
    return xd.DataFrame({"x": [0.0], "y": [0.0], "n": [0], "b": [True]}).iloc[:0]


def chunk(xd: Any, xs: list[float], start: int = 0) -> Any:
    n = len(xs)
    return xd.DataFrame(
        {
            "x": xs,
            "y": [float(i) * 1.5 - 2 for i in range(n)],
            "n": list(range(start, start + n)),
            "b": [i % 2 == 0 for i in range(n)],
        },
        index=pd.RangeIndex(start, start + n),
    )


def row_filter_nodes(*nodes: Stream) -> list[Stream]:
    return [n for n in graph_nodes(*nodes) if _maps(n, RowFilter)]


def _maps(node: Stream, kind: type) -> bool:
    """Whether ``node`` is a map of a zip whose function is a ``kind``."""
    args = getattr(node, "args", ())
    return bool(args) and isinstance(args[0], kind)


# -- the per-chunk functions ---------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(
    xs=st.lists(st.sampled_from(SPECIAL) | st.floats(-10, 10), min_size=0, max_size=12),
    key=st.sampled_from(["x", "y", "n", "b", ["y"], ["b", "x"], ["n", "n"]]),
    index=st.sampled_from(["range", "step", "labels", "dates", "named"]),
)
def test_filtered_getitem_is_the_filter_then_the_selection(xs: list, key: Any, index: str) -> None:
    df = chunk(pd, xs, start=3)
    n = len(df)
    if index == "step":
        df.index = pd.RangeIndex(0, 2 * n, 2)
    elif index == "labels":
        df.index = pd.Index([i // 2 for i in range(n)], dtype="int64")  # repeated labels
    elif index == "dates":
        df.index = pd.date_range("2026-01-01", periods=n, freq="s")
    elif index == "named":
        df.index = pd.RangeIndex(5, 5 + n, name="row")
    mask = df.x > 0
    exactly(filtered_getitem(df, mask, key), df[mask][key])
    exactly(getitem(df, mask), df[mask])


@pytest.mark.filterwarnings("ignore:Boolean Series key will be reindexed")
def test_filtered_getitem_other_cases_are_the_plain_expression() -> None:
    df = pd.DataFrame({"x": [1.0, -1.0, 2.0], "s": ["a", "b", "c"], "e": pd.array([1, None, 3])})
    mask = df.x > 0
    for key in ["s", "e", ["s", "e"]]:
        exactly(filtered_getitem(df, mask, key), df[mask][key])
    shifted = pd.Series([True, False, True], index=[1, 2, 0])  # aligned by pandas
    exactly(filtered_getitem(df, shifted, "x"), df[shifted]["x"])
    with_attrs = df.copy()
    with_attrs.attrs["unit"] = "m"
    out = filtered_getitem(with_attrs, with_attrs.x > 0, "x")
    assert out.attrs == {"unit": "m"}
    exactly(out, with_attrs[with_attrs.x > 0]["x"])
    with pytest.raises(KeyError):
        filtered_getitem(df, mask, "missing")


def test_take_rows_keeps_all_rows_as_pandas_does() -> None:
    s = pd.Series([1.0, 2.0], index=[4, 5], name="y")
    exactly(take_rows(s, np.array([True, True])), s[np.array([True, True])])
    exactly(take_rows(s, np.array([False, False])), s[np.array([False, False])])


def test_selects_columns_only_for_labels_of_columns() -> None:
    df = pd.DataFrame({0: [1], 1: [2], "a": [3]})
    assert selects_columns(df, 0) and selects_columns(df, "a") and selects_columns(df, [1, "a"])
    for key in [[True, False, True], slice(0, 1), lambda d: d[0] > 0, "zz", [0, "zz"], [], None]:
        assert not selects_columns(df, key)


# -- streaming frames ----------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 7), min_size=1, max_size=6),
    seed=st.integers(0, 2**16),
    key=st.sampled_from(["y", "n", "b", ["y"], ["n", "x"]]),
)
def test_filtered_columns_equal_pandas_chunk_by_chunk(sizes: list, seed: int, key: Any) -> None:
    rng = np.random.default_rng(seed)
    sdf = DataFrame(example=example(pd))
    positive = sdf[sdf.x > 0]
    selected = positive[key] if isinstance(key, list) else getattr(positive, key)
    out = selected.stream.sink_to_list()
    total = positive.y.sum().stream.sink_to_list()
    assert not row_filter_nodes(sdf.stream)  # the full filtered frame was never used
    chunks, start = [], 0
    for size in sizes:
        c = chunk(pd, list(rng.choice(SPECIAL, size)), start)
        start += size
        chunks.append(c)
        sdf.emit(c)
    for c, got in zip(chunks, out, strict=True):
        exactly(got, c[c.x > 0][key])
    full = pd.concat(chunks)
    assert total[-1] == full[full.x > 0].y.sum()
    exactly(selected.example, example(pd)[example(pd).x > 0][key])


def test_the_filtered_frame_works_used_directly(xd: Any) -> None:
    sdf = DataFrame(example=example(xd))
    positive = sdf[sdf.x > 0]
    assert isinstance(positive, DataFrame) and type(positive) is DataFrame
    rows = positive.stream.sink_to_list()
    sums = positive.sum().stream.sink_to_list()
    chunks = [chunk(xd, [1.0, -1.0, 2.0]), chunk(xd, [-3.0, 4.0], 3)]
    for c in chunks:
        sdf.emit(c)
    for c, got in zip(chunks, rows, strict=True):
        assert_frame_equal(got, c[c.x > 0])
    full = xd.concat(chunks)
    assert_series_equal(sums[-1], full[full.x > 0].sum())
    assert len(row_filter_nodes(sdf.stream)) == 1


@pytest.mark.parametrize("frame_first", [False, True])
def test_the_filtered_frame_used_for_a_column_and_as_a_whole(xd: Any, frame_first: bool) -> None:
    sdf = DataFrame(example=example(xd))
    positive = sdf[sdf.x > 0]
    if frame_first:
        rows = positive.stream.sink_to_list()
        ys = positive.y.stream.sink_to_list()
    else:
        ys = positive.y.stream.sink_to_list()
        rows = positive.stream.sink_to_list()
    xs = positive["x"].cumsum().stream.sink_to_list()
    chunks = [chunk(xd, [1.0, -1.0, 2.0]), chunk(xd, [], 3), chunk(xd, [5.0, -0.0], 3)]
    for c in chunks:
        sdf.emit(c)
    for c, row, y in zip(chunks, rows, ys, strict=True):
        assert_frame_equal(row, c[c.x > 0])
        assert_series_equal(y, c[c.x > 0].y)
    full = xd.concat(chunks)
    assert_series_equal(xd.concat(xs), full[full.x > 0].x.cumsum())
    assert len(row_filter_nodes(sdf.stream)) == 1


def test_other_keys_of_a_filtered_frame_filter_it_first(xd: Any) -> None:
    sdf = DataFrame(example=example(xd))
    positive = sdf[sdf.x > 0]
    outs = {
        "rows": positive[positive.n > 1].stream.sink_to_list(),
        "rows_y": positive[positive.n > 1].y.stream.sink_to_list(),
        "query": positive.query("n > 1").stream.sink_to_list(),
        "assign": positive.assign(z=positive.y * 2).stream.sink_to_list(),
        "slice": positive[1:].stream.sink_to_list(),
        "slice_y": positive[1:].y.stream.sink_to_list(),
    }
    c = chunk(xd, [1.0, -1.0, 2.0, 3.0, 0.5])
    sdf.emit(c)
    f = c[c.x > 0]
    assert_frame_equal(outs["rows"][0], f[f.n > 1])
    assert_series_equal(outs["rows_y"][0], f[f.n > 1].y)
    assert_frame_equal(outs["query"][0], f.query("n > 1"))
    assert_frame_equal(outs["assign"][0], f.assign(z=f.y * 2))
    assert_frame_equal(outs["slice"][0], f[1:])
    assert_series_equal(outs["slice_y"][0], f[1:].y)


def test_setitem_on_a_filtered_frame(xd: Any) -> None:
    sdf = DataFrame(example=example(xd))
    positive = sdf[sdf.x > 0]
    positive["z"] = positive.y * 2
    rows = positive.stream.sink_to_list()
    zs = positive.z.stream.sink_to_list()
    c = chunk(xd, [1.0, -1.0, 2.0])
    sdf.emit(c)
    f = c[c.x > 0]
    assert_frame_equal(rows[0], f.assign(z=f.y * 2))
    assert_series_equal(zs[0], (f.y * 2).rename("z"))


def test_an_updating_frame_filters_lazily_too(xd: Any) -> None:
    sdf = DataFrames(example=example(xd))
    positive = sdf[sdf.x > 0]
    assert type(positive) is DataFrames and positive.stream_type == "updating"
    ys = positive.y.stream.sink_to_list()
    c = chunk(xd, [1.0, -1.0, 2.0])
    sdf.emit(c)
    assert_series_equal(ys[0], c[c.x > 0].y)


def test_the_stream_stays_pending_until_used() -> None:
    sdf = DataFrame(example=example(pd))
    positive = sdf[sdf.x > 0]
    assert isinstance(vars(positive)["_stream"], FilteredRows)
    positive.y
    assert isinstance(vars(positive)["_stream"], FilteredRows)
    node = positive.stream
    assert positive.stream is node and isinstance(node, Stream)
    assert row_filter_nodes(sdf.stream) == [node]


def build_sum() -> tuple[DataFrame, Any, Any]:
    sdf = DataFrame(example=example(pd))
    positive = sdf[sdf.x > 0]
    total = positive.y.sum()
    frame_total = positive.sum()
    return sdf, total, frame_total


def stateful(ids: dict[Stream, str]) -> dict[str, Stream]:
    return {i: n for n, i in ids.items() if isinstance(n, RunningAggregation)}


def test_checkpoint_node_ids_are_stable_and_state_restores() -> None:
    sdf_a, total_a, _ = build_sum()
    sdf_b, total_b, frame_b = build_sum()
    ids_a, ids_b = node_ids(sdf_a.stream), node_ids(sdf_b.stream)
    assert sorted(ids_a.values()) == sorted(ids_b.values())
    state_a, state_b = stateful(ids_a), stateful(ids_b)
    assert len(state_a) == 2 and state_a.keys() == state_b.keys()
    chunks = [chunk(pd, [1.0, -1.0, 2.0]), chunk(pd, [3.0, -2.0], 3), chunk(pd, [0.5], 5)]
    out_a = total_a.stream.sink_to_list()
    for c in chunks[:2]:
        sdf_a.emit(c)
    for node_id, node in state_a.items():  # restore into a fresh graph, mid-stream
        state_b[node_id].restore(node.snapshot())
    out_b = total_b.stream.sink_to_list()
    frames_b = frame_b.stream.sink_to_list()
    sdf_a.emit(chunks[2])
    sdf_b.emit(chunks[2])
    full = pd.concat(chunks)
    assert out_b[-1] == out_a[-1] == full[full.x > 0].y.sum()
    assert_series_equal(frames_b[-1], full[full.x > 0].sum())


def test_on_a_dask_stream() -> None:
    distributed = pytest.importorskip("distributed")
    from millstream.dask import DaskStream

    with distributed.Client(
        processes=False, n_workers=1, threads_per_worker=1, dashboard_address=None
    ):
        source = Stream()
        sdf = DataFrame(stream=source.scatter(), example=example(pd))
        positive = sdf[sdf.x > 0]
        ys = positive.y.stream.gather().sink_to_list()
        pairs = positive[["y", "x"]].stream.gather().sink_to_list()
        rows = positive.stream.gather().sink_to_list()
        assert isinstance(positive.stream, DaskStream)
        chunks = [chunk(pd, [1.0, -1.0, 2.0]), chunk(pd, [-3.0, 4.0], 3)]
        for c in chunks:
            source.emit(c)
        deadline = time.monotonic() + 20
        while min(len(ys), len(pairs), len(rows)) < len(chunks) and time.monotonic() < deadline:
            time.sleep(0.02)
    for c, y, pair, row in zip(chunks, ys, pairs, rows, strict=True):
        exactly(y, c[c.x > 0].y)
        exactly(pair, c[c.x > 0][["y", "x"]])
        exactly(row, c[c.x > 0])
