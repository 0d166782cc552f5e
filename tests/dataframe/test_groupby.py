"""Groupby aggregations of streaming frames against pandas on the concatenated input (and
Streamz), over all rows so far and over windows."""

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

from millstream.dataframe import (
    DataFrame,
    DataFrames,
    GroupBy,
    GroupbyMean,
    GroupbySum,
    Seriess,
    WindowedGroupBy,
)


def frame(rows: int, seed: int = 0, keys: int = 4, times: bool = False) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    index: Any = pd.RangeIndex(rows)
    if times:
        steps = rng.integers(0, 3, rows).cumsum()
        index = pd.DatetimeIndex(pd.Timestamp("2026-01-01") + pd.to_timedelta(steps, "s"))
    return pd.DataFrame(
        {
            "k": rng.integers(0, keys, rows),
            "s": rng.choice(["a", "b", "c"], rows),
            "x": rng.normal(size=rows).round(3),
            "y": rng.integers(-5, 5, rows),
        },
        index=index,
    )


def so_far(chunks: list[Any], i: int) -> pd.DataFrame:
    return pd.concat([to_pandas(c) for c in chunks[: i + 1]])


def check(result: Any, expected: Any) -> None:
    if isinstance(expected, pd.DataFrame):
        assert_frame_equal(result, expected, check_exact=False, rtol=1e-9, atol=1e-9)
    else:
        assert_series_equal(result, expected, check_exact=False, rtol=1e-9, atol=1e-9)


NAMES = ["sum", "count", "mean", "size", "var", "std"]
SIZES = [6, 1, 0, 13, 9, 20]


def apply(grouped: Any, name: str) -> Any:
    return getattr(grouped, name)()


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(
    "select",
    [
        lambda g: g.x,
        lambda g: g["y"],
        lambda g: g[["x", "y"]],
    ],
    ids=["attr", "item", "columns"],
)
def test_groupby_a_column_equals_pandas_on_the_rows_so_far(
    xd: ModuleType, name: str, select: Any
) -> None:
    whole = frame(49)
    chunks = chunks_of(xd, whole, SIZES)
    out, L = run(chunks, lambda s: apply(select(s.groupby("k")), name))
    assert isinstance(out, (Seriess, DataFrames))
    for i, result in enumerate(L):
        check(result, apply(select(so_far(chunks, i).groupby("k")), name))


@pytest.mark.parametrize("name", ["sum", "count", "mean", "size"])
def test_groupby_whole_frame_string_keys_and_several_keys(xd: ModuleType, name: str) -> None:
    whole = frame(49).drop(columns="s")
    chunks = chunks_of(xd, whole, SIZES)
    _out, L = run(chunks, lambda s: apply(s.groupby("k"), name))
    for i, result in enumerate(L):
        check(result, apply(so_far(chunks, i).groupby("k"), name))
    whole = frame(49)
    chunks = chunks_of(xd, whole, SIZES)
    _out, L = run(chunks, lambda s: apply(s.groupby("s").x, name))
    for i, result in enumerate(L):
        check(result, apply(so_far(chunks, i).groupby("s").x, name))
    _out, L = run(chunks, lambda s: apply(s.groupby(["s", "k"]).y, name))
    for i, result in enumerate(L):
        check(result, apply(so_far(chunks, i).groupby(["s", "k"]).y, name))


def remainders(df: Any) -> Any:
    return (df.y % 3).rename("r")


@pytest.mark.parametrize("name", NAMES)
def test_groupby_a_streaming_series(xd: ModuleType, name: str) -> None:
    whole = frame(49)
    chunks = chunks_of(xd, whole, SIZES)
    _out, L = run(chunks, lambda s: apply(s.groupby(s.map_partitions(remainders, s)).x, name))
    for i, result in enumerate(L):
        df = so_far(chunks, i)
        check(result, apply(df.groupby((df.y % 3).rename("r")).x, name))
    _out, L = run(chunks, lambda s: apply(s[["x", "y"]].groupby(s.k), name))
    for i, result in enumerate(L):
        df = so_far(chunks, i)
        check(result, apply(df[["x", "y"]].groupby(df.k), name))


def test_groupby_an_array_missing_keys_and_values_and_new_groups() -> None:
    whole = frame(40)
    chunks = chunks_of(pd, whole, [10, 10, 10, 10])
    keys = np.array([0, 1] * 5)
    _out, L = run(chunks, lambda s: s.groupby(keys).x.sum())
    for i, result in enumerate(L):
        df = so_far(chunks, i)
        check(result, df.x.groupby(np.tile(keys, i + 1)).sum())
    holes = whole.assign(
        k=whole.k.astype(float).where(whole.index % 7 != 3),
        x=whole.x.where(whole.index % 5 != 1),
    )
    holes.loc[30:, "k"] = holes.loc[30:, "k"] + 10  # new groups late in the stream
    chunks = chunks_of(pd, holes, [10, 10, 10, 10])
    for name in NAMES:
        _out, L = run(chunks, lambda s, n=name: apply(s.groupby("k").x, n))
        for i, result in enumerate(L):
            check(result, apply(so_far(chunks, i).groupby("k").x, name))


@settings(max_examples=30, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 15), min_size=1, max_size=8),
    seed=st.integers(0, 1000),
    keys=st.integers(1, 6),
)
def test_any_chunking_gives_the_pandas_groupby(sizes: list[int], seed: int, keys: int) -> None:
    whole = frame(sum(sizes), seed=seed, keys=keys)
    chunks = chunks_of(pd, whole, sizes)
    _out, sums = run(chunks, lambda s: s.groupby("k")[["x", "y"]].sum())
    _out, means = run(chunks, lambda s: s.groupby("k").x.mean())
    _out, variances = run(chunks, lambda s: s.groupby("k").y.var())
    for i in range(len(chunks)):
        df = so_far(chunks, i)
        check(sums[i], df.groupby("k")[["x", "y"]].sum())
        check(means[i], df.groupby("k").x.mean())
        check(variances[i], df.groupby("k").y.var())


@settings(max_examples=30, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 12), min_size=1, max_size=8),
    seed=st.integers(0, 1000),
    n=st.integers(1, 25),
)
def test_any_chunking_gives_the_pandas_windowed_groupby(
    sizes: list[int], seed: int, n: int
) -> None:
    whole = frame(sum(sizes), seed=seed, keys=6)
    chunks = chunks_of(pd, whole, sizes)
    _out, sums = run(chunks, lambda s: s.window(n=n).groupby("k").x.sum())
    _out, counts = run(chunks, lambda s: s.window(n=n).groupby(s.y).size())
    for i in range(len(chunks)):
        last = so_far(chunks, i).tail(n)
        check(sums[i], last.groupby("k").x.sum())
        check(counts[i], last.groupby(last.y).size())


@pytest.mark.parametrize("name", NAMES)
def test_windowed_groupby_drops_groups_that_left(xd: ModuleType, name: str) -> None:
    whole = frame(49, times=True, keys=8)
    chunks = chunks_of(xd, whole, SIZES)
    out, L = run(chunks, lambda s: apply(s.window(n=7).groupby("k").x, name))
    assert isinstance(out, Seriess)
    for i, result in enumerate(L):
        check(result, apply(so_far(chunks, i).tail(7).groupby("k").x, name))
    _out, L = run(chunks, lambda s: apply(s.window("5s").groupby(s.k % 3)[["x", "y"]], name))
    for i, result in enumerate(L):
        df = so_far(chunks, i)
        last = df[df.index > df.index.max() - pd.Timedelta("5s")]
        check(result, apply(last[["x", "y"]].groupby(last.k % 3), name))


def test_groupby_over_a_window_of_an_array() -> None:
    whole = frame(30)
    chunks = chunks_of(pd, whole, [10, 10, 10])
    keys = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 3])
    out = DataFrame(example=chunks[0].iloc[:0])
    L = out.window(n=15).groupby(keys).x.sum().stream.sink_to_list()
    for chunk in chunks:
        out.emit(chunk)
    last = whole.tail(15)
    check(L[-1], last.x.groupby(np.tile(keys, 3)[-15:]).sum())


def test_equal_to_streamz() -> None:
    whole = frame(60)
    chunks = chunks_of(pd, whole, [10, 15, 5, 30])
    cases: list[Callable[[Any], Any]] = [
        lambda s: s.groupby("k").x.sum(),
        lambda s: s.groupby("k").y.count(),
        lambda s: s.groupby("k").x.mean(),
        lambda s: s.groupby("k").x.size(),
        lambda s: s.groupby("k").x.var(),
        lambda s: s.groupby(s.y).x.sum(),
        lambda s: s.window(n=12).groupby("k").x.sum(),
        lambda s: s.window(n=12).groupby("k").x.mean(),
    ]
    for build in cases:
        _out, ours = run(chunks, build)
        for a, b in zip(ours, streamz_outputs(chunks, build), strict=True):
            check(a, b)


def test_with_state_and_start() -> None:
    whole = frame(40)
    chunks = chunks_of(pd, whole, [20, 20])
    _out, L = run(chunks[:1], lambda s: s.groupby("k").x.mean(with_state=True))
    state, result = L[-1]
    check(result, whole.iloc[:20].groupby("k").x.mean())
    _out, L = run(chunks[1:], lambda s: s.groupby("k").x.mean(start=state))
    check(L[-1], whole.groupby("k").x.mean())
    # a Streamz groupby-sum state is the table of sums
    start = whole.iloc[:20].groupby("k").x.sum()
    _out, L = run(chunks[1:], lambda s: s.groupby("k").x.sum(start=start))
    check(L[-1], whole.groupby("k").x.sum())


def test_start_state_dtypes_follow_the_chunks() -> None:
    # The example declares floats, the chunks hold ints: the sums are pandas' on the
    # chunks (int64); Streamz's start from the example's groupby, so come out float64
    # with the same values (Streamz's test_groupby_aggregate_with_start_state pins that).
    example = pd.DataFrame({"name": [], "amount": []})
    first = pd.DataFrame({"name": ["Alice", "Tom"], "amount": [50, 100]})
    second = pd.DataFrame({"name": ["Alice", "Tom", "Linda"], "amount": [50, 100, 200]})
    builds: list[Callable[[Any], Any]] = [
        lambda s: s.groupby(["name"]).amount.sum(),
        lambda s: s.window(5).groupby(["name"]).amount.sum(),
    ]
    for build in builds:
        _out, ours = run([first, second], build, example)
        theirs = streamz_outputs([first, second], build, example)
        want = pd.concat([first, second]).groupby(["name"]).amount.sum()
        pd.testing.assert_series_equal(ours[-1], want)
        assert ours[-1].dtype == "int64" and theirs[-1].dtype == "float64"
        pd.testing.assert_series_equal(ours[-1], theirs[-1], check_dtype=False)


@pytest.mark.parametrize(
    "build",
    [
        lambda s: s.groupby("k").x.var(),
        lambda s: s.groupby(["s", "k"])[["x", "y"]].sum(),
        lambda s: s[["x", "y"]].groupby(s.k % 2).mean(),
        lambda s: s.window(n=6).groupby("s").y.count(),
        lambda s: s.window("4s").groupby(s.k).x.sum(),
    ],
)
def test_snapshot_restore_mid_stream_continues_as_uninterrupted(build: Any) -> None:
    whole = frame(40, times=True)
    chunks = chunks_of(pd, whole, [5, 8, 3, 10, 14])
    _out, expected = run(chunks, build)
    pickle.loads(pickle.dumps(build(DataFrame(example=chunks[0].iloc[:0])).stream.aggregation))
    for a, b in zip(resumed_outputs(chunks, build, 3), expected[3:], strict=True):
        check(a, b)


def test_running_value_counts_and_the_api_types() -> None:
    whole = frame(30)
    chunks = chunks_of(pd, whole, [10, 5, 15])
    out, L = run(chunks, lambda s: s.s.value_counts())
    assert isinstance(out, Seriess)
    for i, result in enumerate(L):
        check(result, so_far(chunks, i).s.value_counts().sort_index())
    sdf = DataFrame(example=chunks[0].iloc[:0])
    assert isinstance(sdf.groupby("k"), GroupBy)
    assert isinstance(sdf.window(n=3).groupby("k").x, WindowedGroupBy)
    with pytest.raises(AttributeError, match="nope"):
        _ = sdf.groupby("k").nope
    assert repr(GroupbySum("x", grouper="k")) == "GroupbySum(columns='x', grouper='k')"
    mean = GroupbyMean("x", grouper="k")
    state = mean.initial(whole.iloc[:0])
    state, result = mean.on_new(state, whole.iloc[:10])
    state, result = mean.on_old(state, whole.iloc[:5])
    check(result, whole.iloc[5:10].groupby("k").x.mean().reindex(result.index))


def test_groupby_value_counts_and_series_roots(xd: ModuleType) -> None:
    whole = frame(45)
    chunks = chunks_of(xd, whole, [10, 20, 15])
    _out, L = run(chunks, lambda s: s.groupby("k").s.value_counts())
    _out, W = run(chunks, lambda s: s.window(n=12).groupby("k").y.value_counts())
    _out, S = run(chunks, lambda s: s.x.groupby(s.k).sum())
    _out, V = run(chunks, lambda s: s.x.window(n=12).groupby(s.k).mean())
    for i in range(len(chunks)):
        df = so_far(chunks, i)
        check(L[i], df.groupby("k").s.value_counts().sort_index())
        check(W[i], df.tail(12).groupby("k").y.value_counts().sort_index())
        check(S[i], df.x.groupby(df.k).sum())
        check(V[i], df.x.tail(12).groupby(df.k.tail(12)).mean())
    sdf = DataFrame(example=chunks[0].iloc[:0])
    with pytest.raises(TypeError, match="one selected column"):
        sdf.groupby("k")[["x", "y"]].value_counts()


def test_grouping_by_a_missing_column_names_it() -> None:
    sdf = DataFrame(example=frame(3).iloc[:0])
    with pytest.raises(KeyError, match="no column 'kk'"):
        sdf.groupby("kk")
    with pytest.raises(KeyError, match="no column 'z'"):
        sdf.window(n=3).groupby(["k", "z"])


def test_variances_stay_exact_far_from_zero() -> None:
    whole = frame(60)
    whole["x"] = 1e9 + whole.x  # sums of squares lose every digit of the variance here
    chunks = chunks_of(pd, whole, [7, 13, 20, 20])
    _out, L = run(chunks, lambda s: s.groupby("k").x.var())
    _out, W = run(chunks, lambda s: s.window(n=15).groupby("k").x.std())
    _out, V = run(chunks, lambda s: s.window(n=15).x.var())
    for i in range(len(chunks)):
        df = so_far(chunks, i)
        assert_series_equal(L[i], df.groupby("k").x.var(), rtol=1e-6)
        assert_series_equal(W[i], df.tail(15).groupby("k").x.std(), rtol=1e-6)
        assert V[i] == pytest.approx(df.x.tail(15).var(), rel=1e-6)
