"""Windows of streaming frames against pandas on the concatenated input (and Streamz)."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd
import pytest
from frames_testing import (
    assert_frame_equal,
    assert_series_equal,
    chunks_of,
    resumed_outputs,
    run,
    streamz_outputs,
    to_pandas,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from millstream import Stream
from millstream.dataframe import (
    DataFrame,
    DataFrames,
    Seriess,
    Streaming,
    Window,
    WindowAggregation,
)
from millstream.dataframe.aggregations import Sum
from millstream.exceptions import StateError


def frame(rows: int, seed: int = 0, times: bool = False) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    index: Any = pd.RangeIndex(rows)
    if times:
        steps = rng.integers(0, 4, rows).cumsum()
        index = pd.DatetimeIndex(pd.Timestamp("2026-01-01") + pd.to_timedelta(steps, "s"))
    return pd.DataFrame(
        {
            "k": rng.integers(0, 4, rows),
            "x": rng.normal(size=rows).round(3),
            "y": rng.integers(-5, 5, rows),
        },
        index=index,
    )


def so_far(chunks: list[Any], i: int) -> pd.DataFrame:
    return pd.concat([to_pandas(c) for c in chunks[: i + 1]])


def in_time(df: pd.DataFrame, value: str) -> pd.DataFrame:
    return df[df.index > df.index.max() - pd.Timedelta(value)]


REDUCTIONS = ["sum", "count", "mean", "var", "std"]


def check(result: Any, expected: Any) -> None:
    if isinstance(expected, pd.Series):
        assert_series_equal(result, expected, check_exact=False, rtol=1e-9, atol=1e-9)
    elif isinstance(expected, pd.DataFrame):
        assert_frame_equal(result, expected, check_exact=False, rtol=1e-9, atol=1e-9)
    else:
        assert result == pytest.approx(expected, rel=1e-9, abs=1e-9, nan_ok=True)


@pytest.mark.parametrize("name", REDUCTIONS)
def test_row_window_reductions_equal_pandas_on_the_last_n_rows(xd: ModuleType, name: str) -> None:
    whole = frame(40)
    chunks = chunks_of(xd, whole, [3, 7, 1, 12, 0, 9, 8])
    out, L = run(chunks, lambda s: getattr(s.window(n=10), name)())
    assert isinstance(out, Seriess)
    for i, result in enumerate(L):
        check(result, getattr(so_far(chunks, i).tail(10), name)())
    out, L = run(chunks, lambda s: getattr(s.window(n=10).x, name)())
    assert type(out) is Streaming and out.stream_type == "updating"
    for i, result in enumerate(L):
        check(result, getattr(so_far(chunks, i).x.tail(10), name)())


@pytest.mark.parametrize("name", REDUCTIONS)
def test_time_window_reductions_equal_pandas_on_the_last_span(xd: ModuleType, name: str) -> None:
    whole = frame(60, times=True)
    chunks = chunks_of(xd, whole, [5, 1, 20, 4, 30])
    _out, L = run(chunks, lambda s: getattr(s.window("10s").y, name)())
    for i, result in enumerate(L):
        check(result, getattr(in_time(so_far(chunks, i), "10s").y, name)())
    _out, L = run(chunks, lambda s: getattr(s.window(value=pd.Timedelta("4s")), name)())
    for i, result in enumerate(L):
        check(result, getattr(in_time(so_far(chunks, i), "4s"), name)())


@settings(max_examples=25, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 15), min_size=1, max_size=8),
    n=st.integers(1, 30),
    seed=st.integers(0, 1000),
)
def test_any_chunking_gives_the_pandas_window(sizes: list[int], n: int, seed: int) -> None:
    whole = frame(sum(sizes), seed=seed)
    chunks = chunks_of(pd, whole, sizes)
    _out, means = run(chunks, lambda s: s.window(n=n).x.mean())
    _out, fulls = run(chunks, lambda s: s.window(n=n).full())
    _out, sums = run(chunks, lambda s: s.window(n=n)[["x", "y"]].sum())
    for i in range(len(chunks)):
        last = so_far(chunks, i).tail(n)
        check(means[i], last.x.mean())
        pd.testing.assert_frame_equal(fulls[i], last)
        check(sums[i], last[["x", "y"]].sum())


@settings(max_examples=25, deadline=None)
@given(sizes=st.lists(st.integers(0, 12), min_size=1, max_size=8), seed=st.integers(0, 1000))
def test_any_chunking_gives_the_pandas_time_window(sizes: list[int], seed: int) -> None:
    whole = frame(sum(sizes), seed=seed, times=True)
    chunks = chunks_of(pd, whole, sizes)
    _out, L = run(chunks, lambda s: s.window("5s").x.sum())
    _out, fulls = run(chunks, lambda s: s.window("5s").full())
    for i in range(len(chunks)):
        check(L[i], in_time(so_far(chunks, i), "5s").x.sum())
        pd.testing.assert_frame_equal(fulls[i], in_time(so_far(chunks, i), "5s"))


def test_size_full_apply_value_counts_and_aggregate(xd: ModuleType) -> None:
    whole = frame(30)
    chunks = chunks_of(xd, whole, [4, 9, 2, 15])
    _out, sizes = run(chunks, lambda s: s.window(n=8).size)
    _out, ysizes = run(chunks, lambda s: s.window(n=8).y.size)
    _out, fulls = run(chunks, lambda s: s.window(n=8).full())
    _out, applied = run(chunks, lambda s: s.window(n=8).apply(lambda df: df.x.max()))
    out, counts = run(chunks, lambda s: s.window(n=8).k.value_counts())
    assert isinstance(out, Seriess)
    _out, sums = run(chunks, lambda s: s.window(n=8).x.aggregate(Sum()))
    for i in range(len(chunks)):
        last = so_far(chunks, i).tail(8)
        assert sizes[i] == last.size and ysizes[i] == last.y.size
        assert_frame_equal(fulls[i], last)
        assert applied[i] == last.x.max()
        assert_series_equal(counts[i], last.k.value_counts().sort_index())
        check(sums[i], last.x.sum())
    out, _L = run(chunks, lambda s: s.window(n=8).full())
    assert isinstance(out, DataFrames)


def test_column_access_arithmetic_index_and_reset_index() -> None:
    whole = frame(20, times=True)
    chunks = chunks_of(pd, whole, [6, 6, 8])
    _out, L = run(chunks, lambda s: (s.window(n=5).x * 2 + s.window(n=5).y).sum())
    for i, result in enumerate(L):
        last = so_far(chunks, i).tail(5)
        check(result, (last.x * 2 + last.y).sum())
    _out, L = run(chunks, lambda s: (-s.window(n=5)["y"]).mean())
    assert L[-1] == pytest.approx(-whole.y.tail(5).mean())
    _out, L = run(chunks, lambda s: s.window(n=5).reset_index().full())
    assert list(L[-1].columns) == ["index", "k", "x", "y"]
    _out, L = run(chunks, lambda s: s.window(n=5).index.size)
    assert L == [5, 5, 5]
    w = DataFrame(example=chunks[0].iloc[:0]).window(n=5)
    assert "x" in dir(w) and isinstance(w.x, Window)
    with pytest.raises(AttributeError, match="nope"):
        _ = w.nope


def test_equal_to_streamz() -> None:
    whole = frame(50)
    chunks = chunks_of(pd, whole, [10, 5, 20, 15])
    cases: list[Callable[[Any], Any]] = [
        lambda s: s.window(n=12).x.sum(),
        lambda s: s.window(n=12).mean(),
        lambda s: s.window(n=12)[["x", "y"]].var(),  # Series var: Streamz divides by 0
        lambda s: s.window(n=12).count(),
        lambda s: s.window(n=12).full(),
    ]
    for build in cases:
        _out, ours = run(chunks, build)
        for a, b in zip(ours, streamz_outputs(chunks, build), strict=True):
            check(a, b)


def test_with_state_and_start_resume_a_window() -> None:
    whole = frame(30)
    chunks = chunks_of(pd, whole, [10, 10, 10])
    _out, L = run(chunks[:2], lambda s: s.window(n=15, with_state=True).x.sum())
    state, result = L[-1]
    assert result == pytest.approx(whole.x.iloc[5:20].sum())
    assert state["state"] == pytest.approx(result)
    pd.testing.assert_series_equal(pd.concat(state["dfs"]), whole.x.iloc[5:20])
    _out, L = run(chunks[2:], lambda s: s.window(n=15, start=state).x.sum())
    assert L[-1] == pytest.approx(whole.x.tail(15).sum())
    streamz_state = {"dfs": [whole.x.iloc[10:20]], "state": whole.x.iloc[10:20].sum()}
    _out, L = run(chunks[2:], lambda s: s.window(n=15, start=streamz_state).x.sum())
    assert L[-1] == pytest.approx(whole.x.tail(15).sum())


@pytest.mark.parametrize(
    "build",
    [
        lambda s: s.window(n=7).x.mean(),
        lambda s: s.window(n=7).var(),
        lambda s: s.window("6s").full(),
        lambda s: s.window("6s").k.value_counts(),
        lambda s: s.window(n=9).groupby("k").x.mean(),
    ],
)
def test_snapshot_restore_mid_stream_continues_as_uninterrupted(build: Any) -> None:
    whole = frame(40, times=True)
    chunks = chunks_of(pd, whole, [5, 8, 3, 10, 14])
    _out, expected = run(chunks, build)
    pickle.loads(pickle.dumps(build(DataFrame(example=chunks[0].iloc[:0])).stream.aggregation))
    for a, b in zip(resumed_outputs(chunks, build, 3), expected[3:], strict=True):
        check(a, b)


def test_a_time_window_names_the_node_and_what_arrived() -> None:
    sdf = DataFrame(example=pd.DataFrame({"x": [0.0]}).iloc[:0])
    out = sdf.window("2s").x.sum()
    with pytest.raises(TypeError, match=r"WindowAggregation\(.*value=.*datetime.*RangeIndex"):
        sdf.emit(pd.DataFrame({"x": [1.0, 2.0]}))
    assert "WindowAggregation" in str(out.stream)
    with pytest.raises(ValueError, match="exactly one"):
        sdf.window()
    with pytest.raises(ValueError, match="n must be"):
        WindowAggregation(Sum(), n=-1)


def test_a_time_window_takes_rows_out_of_order_over_the_span_of_the_newest() -> None:
    """Rows older than the newest one (a chunk not sorted, or starting before the newest
    row) count when they are within ``value`` of the newest row seen, else are ignored
    (counted in the state's ``ignored``)."""
    t = pd.DatetimeIndex(["2026-01-01 00:00:02", "2026-01-01 00:00:01"])
    sdf = DataFrame(example=pd.DataFrame({"x": [0.0]}, index=t[:0]))
    out = sdf.window("2s").x.sum().stream
    L = out.sink_to_list()
    sdf.emit(pd.DataFrame({"x": [1.0, 2.0]}, index=t))  # not sorted: both in (0s, 2s]
    sdf.emit(pd.DataFrame({"x": [4.0]}, index=t[1:] - pd.Timedelta("0.5s")))  # in
    sdf.emit(pd.DataFrame({"x": [8.0]}, index=t[1:] - pd.Timedelta("1s")))  # at 0s: out
    sdf.emit(pd.DataFrame({"x": [16.0]}, index=t[:1] + pd.Timedelta("1s")))  # newest 3s
    assert L == [3.0, 7.0, 7.0, 17.0]  # at 3s the rows at 1s and 0.5s have left
    assert out.state.ignored == 1
    assert pd.concat(out.state.chunks).tolist() == [1.0, 16.0]  # the rows kept, in order


def test_rows_at_the_time_boundary_leave_as_in_pandas() -> None:
    t = pd.DatetimeIndex(["2026-01-01 00:00:00", "2026-01-01 00:00:01", "2026-01-01 00:00:02"])
    sdf = DataFrame(example=pd.DataFrame({"x": [0]}, index=t[:0]))
    L = sdf.window("2s").x.sum().stream.sink_to_list()
    sdf.emit(pd.DataFrame({"x": [1, 2, 4]}, index=t))
    assert L == [6]  # the row at exactly newest - 2s has left
    assert pd.Series([1, 2, 4], index=t).rolling("2s").sum().iloc[-1] == 6


def test_an_empty_chunk_emits_the_unchanged_window() -> None:
    source = Stream()
    sdf = DataFrame(source, example=pd.DataFrame({"x": [0.0]}).iloc[:0])
    L = sdf.window(n=2).x.sum().stream.sink_to_list()
    source.emit(pd.DataFrame({"x": [1.0, 2.0, 3.0]}))
    source.emit(pd.DataFrame({"x": []}, dtype=float))
    assert L == [5.0, 5.0]


def test_restoring_something_else_names_the_node() -> None:
    sdf = DataFrame(example=frame(3).iloc[:0])
    node = sdf.window(n=3).x.sum().stream
    with pytest.raises(StateError, match="RunningAggregation: WindowAggregation"):
        node.restore({"state": {"chunks": "oops", "state": 0}})
    with pytest.raises(StateError):
        node.restore({"state": {"rows": []}})
    node.restore({"state": None})
