"""sdf.rolling(...): each chunk's rows as pandas' rolling over every row so far."""

from __future__ import annotations

import itertools
import pickle
from typing import Any

import numpy as np
import pandas as pd
import pytest
from frames_testing import (
    assert_frame_equal,
    assert_series_equal,
    resumed_outputs,
    run,
    streamz_outputs,
    to_pandas,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from millstream.dataframe import DataFrame, Rolling, RollingAggregation, Series

OPS: list[tuple[str, tuple, dict]] = [
    ("sum", (), {}),
    ("mean", (), {}),
    ("count", (), {}),
    ("min", (), {}),
    ("max", (), {}),
    ("median", (), {}),
    ("std", (), {}),
    ("var", (), {"ddof": 0}),
    ("quantile", (0.25,), {}),
    ("aggregate", ("sum",), {}),
]


def make_chunks(xd: Any, sizes: list[int], timed: bool = False, seed: int = 0) -> list[Any]:
    rng = np.random.default_rng(seed)
    n = sum(sizes)
    x = rng.normal(size=n)
    x[rng.random(n) < 0.2] = np.nan
    y = rng.integers(-5, 5, size=n)
    if timed:
        steps = rng.integers(0, 3, size=n)
        index = pd.Timestamp("2024-01-01") + pd.to_timedelta(np.cumsum(steps), unit="s")
    else:
        index = pd.RangeIndex(n)
    whole = pd.DataFrame({"x": x, "y": y}, index=index)
    bounds = np.cumsum([0, *sizes])
    return [xd.DataFrame(whole.iloc[a:b]) for a, b in itertools.pairwise(bounds)]


def expected(xd: Any, chunks: list[Any], build: Any) -> Any:
    return build(to_pandas(xd.concat(chunks)))


def check(xd: Any, chunks: list[Any], stream_build: Any, pandas_build: Any) -> None:
    _out, results = run(chunks, stream_build)
    assert sum(len(r) for r in results) == sum(len(c) for c in chunks)
    got = to_pandas(xd.concat(results))
    want = expected(xd, chunks, pandas_build)
    if isinstance(want, pd.DataFrame):
        assert_frame_equal(got, want, check_dtype=False, rtol=1e-9, atol=1e-9)
    else:
        assert_series_equal(got, want, check_dtype=False, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize(("op", "args", "kwargs"), OPS, ids=[o[0] for o in OPS])
@pytest.mark.parametrize("window", [1, 3, 7, "3s"])
def test_every_aggregation_equals_pandas_over_the_concatenation(
    xd: Any, op: str, args: tuple, kwargs: dict, window: Any
) -> None:
    timed = isinstance(window, str)
    chunks = make_chunks(xd, [4, 1, 6, 2, 9, 3], timed=timed)
    check(
        xd,
        chunks,
        lambda s: getattr(s.rolling(window), op)(*args, **kwargs),
        lambda df: getattr(df.rolling(window), op)(*args, **kwargs),
    )
    check(
        xd,
        chunks,
        lambda s: getattr(s.rolling(window).x, op)(*args, **kwargs),
        lambda df: getattr(df.x.rolling(window), op)(*args, **kwargs),
    )
    check(
        xd,
        chunks,
        lambda s: getattr(s.y.rolling(window, min_periods=1), op)(*args, **kwargs),
        lambda df: getattr(df.y.rolling(window, min_periods=1), op)(*args, **kwargs),
    )


@settings(max_examples=60, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 9), min_size=1, max_size=8).filter(lambda s: sum(s) > 0),
    op=st.sampled_from(["sum", "mean", "count", "max", "std"]),
    window=st.sampled_from([1, 2, 3, 5, 11, "1s", "2s", "5500ms"]),
    min_periods=st.sampled_from([None, 0, 1, 2]),
    seed=st.integers(0, 1000),
)
def test_any_chunking_equals_pandas(
    sizes: list[int], op: str, window: Any, min_periods: int | None, seed: int
) -> None:
    import pandas as xd  # hypothesis does not take function-scoped fixtures

    timed = isinstance(window, str)
    chunks = make_chunks(xd, sizes, timed=timed, seed=seed)
    if isinstance(window, int) and min_periods is not None and min_periods > window:
        min_periods = window
    kw = {} if min_periods is None else {"min_periods": min_periods}
    check(
        xd,
        chunks,
        lambda s: getattr(s.rolling(window, **kw), op)(),
        lambda df: getattr(df.rolling(window, **kw), op)(),
    )


def test_types_and_streamz_first_chunk(xd: Any) -> None:
    """Streamz: ``rolling(2).sum()`` on the first chunk emits ``[nan, 3.0]`` (pandas'
    default min_periods, whatever min_periods says)."""
    sdf = DataFrame(example=xd.DataFrame({"x": [0.0]}).iloc[:0])
    r = sdf.rolling(2)
    assert isinstance(r, Rolling) and isinstance(r.sum(), DataFrame)
    assert isinstance(r.x.mean(), Series) and isinstance(r["x"].mean(), Series)
    out = sdf.x.rolling(2).sum()
    assert isinstance(out, Series)
    results = out.stream.sink_to_list()
    sdf.emit(xd.DataFrame({"x": [1.0, 2.0]}))
    assert to_pandas(results[0]).tolist()[1] == 3.0 and np.isnan(to_pandas(results[0]).iloc[0])


def test_equal_to_streamz_without_missing_values() -> None:
    chunks = make_chunks(pd, [5, 1, 8, 3, 6], seed=3)
    chunks = [c.fillna(0.5) for c in chunks]
    for build in [
        lambda s: s.rolling(3).mean(),
        lambda s: s.rolling(2).x.sum(),
        lambda s: s.rolling(4).y.std(),
        lambda s: s.rolling(3).max(),
        lambda s: s.rolling(3).count(),
    ]:
        _out, ours = run(chunks, build)
        theirs = streamz_outputs(chunks, build)
        assert len(ours) == len(theirs)
        for a, b in zip(ours, theirs, strict=True):
            pd.testing.assert_index_equal(a.index, b.index)
            np.testing.assert_allclose(np.asarray(a, float), np.asarray(b, float), rtol=1e-9)


def test_time_window_needs_a_datetime_index(xd: Any) -> None:
    sdf = DataFrame(example=xd.DataFrame({"x": [0.0]}).iloc[:0])
    sdf.rolling("2s").x.sum()  # the example cannot tell yet
    with pytest.raises(ValueError):
        sdf.emit(xd.DataFrame({"x": [1.0, 2.0]}))


def test_backlog_stays_bounded(xd: Any) -> None:
    sdf = DataFrame(example=xd.DataFrame({"x": [0.0]}).iloc[:0])
    node = sdf.rolling(4).sum().stream
    for i in range(50):
        sdf.emit(xd.DataFrame({"x": [float(i)] * 3}, index=range(3 * i, 3 * i + 3)))
    assert len(node.state[0]) == 3
    index = pd.date_range("2024", periods=300, freq="s")
    sdf = DataFrame(example=xd.DataFrame({"x": [0.0]}, index=index[:1]).iloc[:0])
    node = sdf.rolling("10s").median().stream  # the pandas way: a frame backlog
    for i in range(100):
        sdf.emit(xd.DataFrame({"x": [1.0, 2.0, 3.0]}, index=index[3 * i : 3 * i + 3]))
    assert len(node.state) == 10


@pytest.mark.parametrize("op", ["mean", "median", "count"])
@pytest.mark.parametrize("window", [3, "3s"])
def test_snapshot_restore_mid_stream(xd: Any, op: str, window: Any) -> None:
    chunks = make_chunks(xd, [4, 2, 5, 1, 6], timed=isinstance(window, str), seed=7)

    def build(s: Any) -> Any:
        return getattr(s.rolling(window), op)()

    _out, whole = run(chunks, build)
    for a, b in zip(resumed_outputs(chunks, build, 2, same_snapshot=False), whole[2:], strict=True):
        assert_frame_equal(a, b)
    assert pickle.loads(pickle.dumps(RollingAggregation(3, "sum"))).window == 3


def test_with_state_and_start(xd: Any) -> None:
    sdf = DataFrame(example=xd.DataFrame({"x": [0.0]}).iloc[:0])
    results = sdf.rolling(2, with_state=True).sum().stream.sink_to_list()
    sdf.emit(xd.DataFrame({"x": [1.0, 2.0]}))
    _state, result = results[0]
    assert to_pandas(result).x.tolist()[1] == 3.0
    backlog = xd.Series([10.0], index=[-1], name="x")  # the last window - 1 rows
    out = sdf.rolling(2, start=backlog).x.sum().stream.sink_to_list()
    sdf.emit(xd.DataFrame({"x": [1.0]}, index=[0]))
    assert to_pandas(out[0]).tolist() == [11.0]


def test_errors(xd: Any) -> None:
    sdf = DataFrame(example=xd.DataFrame({"x": [0.0]}).iloc[:0])
    with pytest.raises(TypeError, match="window must be an int"):
        sdf.rolling(2.5)
    with pytest.raises(ValueError, match="0 or more rows"):
        sdf.rolling(-1)
    with pytest.raises(ValueError, match="positive"):
        sdf.rolling("-2s")
    with pytest.raises(ValueError, match="min_periods"):
        sdf.rolling(2, min_periods=-1)
    with pytest.raises(AttributeError, match="'nope'"):
        sdf.rolling(2).nope
    with pytest.raises(ValueError, match="one time per backlog row"):
        RollingAggregation(2, "sum").restore({"values": [[1.0]], "shape": [1, 1], "times": [1, 2]})
    with pytest.raises(TypeError):
        RollingAggregation(2, "sum").restore([1, 2])


@pytest.mark.parametrize("window", [2, "2s"])
def test_columns_numpy_cannot_sum_go_to_pandas(xd: Any, window: Any) -> None:
    chunks = make_chunks(xd, [3, 2, 4], timed=isinstance(window, str), seed=11)
    chunks = [c.assign(b=c.y > 0) for c in chunks]
    check(xd, chunks, lambda s: s.rolling(window).sum(), lambda df: df.rolling(window).sum())
    check(xd, chunks, lambda s: s.b.rolling(window).mean(), lambda df: df.b.rolling(window).mean())


def test_a_chunk_numpy_cannot_sum_mid_stream_hands_the_backlog_to_pandas(xd: Any) -> None:
    index = pd.date_range("2024", periods=6, freq="s", tz="Europe/Paris")
    whole = xd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]}, index=index)
    chunks = [whole.iloc[:3], whole.iloc[3:].astype({"x": object})]
    _out, results = run(chunks, lambda s: s.rolling("2s").sum())
    want = whole.rolling("2s").sum()
    assert_frame_equal(xd.concat(results), want, check_dtype=False, check_freq=False)
