"""Streaming frames against pandas on the concatenated input."""

from __future__ import annotations

import itertools

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from millstream import Stream
from millstream.dataframe import DataFrame, DataFrames, Series, Seriess, Streaming

CHUNKS = [
    pd.DataFrame({"x": [1, -2, 3], "y": [1.5, 2.0, -1.0]}, index=[0, 1, 2]),
    pd.DataFrame({"x": [4, 5], "y": [0.5, 3.0]}, index=[3, 4]),
    pd.DataFrame({"x": [-6, 7, 8, 2], "y": [2.0, 1.0, 4.0, 2.5]}, index=[5, 6, 7, 8]),
]
WHOLE = pd.concat(CHUNKS)
EXAMPLE = CHUNKS[0].iloc[:0]


def run(build):  # type: ignore[no-untyped-def]
    sdf = DataFrame(example=EXAMPLE)
    out = build(sdf)
    L = out.stream.sink_to_list()
    for chunk in CHUNKS:
        sdf.emit(chunk)
    return out, L


@pytest.mark.parametrize("op", ["cumsum", "cumprod", "cummin", "cummax"])
def test_cumulative_equals_pandas_over_the_concatenation(op: str) -> None:
    out, L = run(lambda s: getattr(s, op)())
    assert isinstance(out, DataFrame)
    pd.testing.assert_frame_equal(pd.concat(L), getattr(WHOLE, op)())
    out, L = run(lambda s: getattr(s.x, op)())
    assert isinstance(out, Series)
    pd.testing.assert_series_equal(pd.concat(L), getattr(WHOLE.x, op)())


@pytest.mark.parametrize("name", ["sum", "count", "mean", "var", "std"])
def test_running_reductions_equal_pandas_on_the_rows_so_far(name: str) -> None:
    out, L = run(lambda s: getattr(s, name)())
    assert isinstance(out, Seriess)
    for i, result in enumerate(L):
        pd.testing.assert_series_equal(result, getattr(pd.concat(CHUNKS[: i + 1]), name)())
    out, L = run(lambda s: getattr(s.y, name)())
    assert type(out) is Streaming and out.stream_type == "updating"
    assert pytest.approx([getattr(pd.concat(CHUNKS[: i + 1]).y, name)() for i in range(3)]) == L


def test_size_counts_values_as_pandas_does() -> None:
    _out, L = run(lambda s: s.size)
    assert L == [pd.concat(CHUNKS[: i + 1]).size for i in range(3)] == [6, 10, 18]
    _out, L = run(lambda s: s.x.size)
    assert L == [3, 5, 9]


def test_filter_columns_arithmetic_and_assignment() -> None:
    _out, L = run(lambda s: s[s.x > 0].y.sum())
    assert pytest.approx([0.5, 4.0, 11.5]) == L
    _out, L = run(lambda s: s[["y", "x"]])
    pd.testing.assert_frame_equal(pd.concat(L), WHOLE[["y", "x"]])
    _out, L = run(lambda s: (s.x + 1) * s.y - 2)
    pd.testing.assert_series_equal(pd.concat(L), (WHOLE.x + 1) * WHOLE.y - 2)
    _out, L = run(lambda s: 10 - s["x"])
    pd.testing.assert_series_equal(pd.concat(L), 10 - WHOLE.x)
    _out, L = run(lambda s: s.assign(z=s.x * 2, w=1))
    pd.testing.assert_frame_equal(pd.concat(L), WHOLE.assign(z=WHOLE.x * 2, w=1))
    sdf = DataFrame(example=EXAMPLE)
    sdf["z"] = sdf.x + sdf.y
    assert list(sdf.columns) == ["x", "y", "z"]


def test_tail_reset_index_map_partitions_and_accumulate_partitions() -> None:
    _out, L = run(lambda s: s.tail(2))
    assert [len(c) for c in L] == [2, 2, 2]
    _out, L = run(lambda s: s.reset_index())
    assert list(L[1]["index"]) == [3, 4] and list(L[1].index) == [0, 1]
    _out, L = run(lambda s: s.map_partitions(lambda df, k: df.x * k, s, 3))
    pd.testing.assert_series_equal(pd.concat(L), WHOLE.x * 3)
    _out, L = run(
        lambda s: s.accumulate_partitions(
            lambda n, df: (n + len(df), n + len(df)), start=0, returns_state=True
        )
    )
    assert L == [3, 5, 9]


def test_verify_checks_type_and_columns() -> None:
    sdf = DataFrame(example=EXAMPLE)
    with pytest.raises(TypeError):
        sdf.emit([1, 2])
    with pytest.raises(IndexError):
        sdf.emit(pd.DataFrame({"x": [1]}))
    with pytest.raises(TypeError, match="example"):
        DataFrame(stream=Stream())


def test_to_dataframe_and_updating_frames() -> None:
    source = Stream()
    sdf = source.to_dataframe(EXAMPLE)
    assert isinstance(sdf, DataFrame) and sdf.stream is source
    total = sdf.sum()
    assert isinstance(total, Seriess)
    frames = DataFrames(stream=Stream(), example=EXAMPLE)
    L = frames.mean().stream.sink_to_list()
    frames.emit(WHOLE)
    pd.testing.assert_series_equal(L[0], WHOLE.mean())


@pytest.mark.parametrize("op", ["cumsum", "cumprod", "cummin", "cummax"])
@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(st.one_of(st.none(), st.integers(-5, 5).map(float)), min_size=1, max_size=12),
    cuts=st.lists(st.integers(0, 12), max_size=4),
)
def test_cumulative_carries_past_missing_values_like_pandas(
    op: str, values: list[float | None], cuts: list[int]
) -> None:
    """A chunk that ends in a missing value: pandas goes on from the value before it."""
    whole = pd.DataFrame({"x": values, "y": values[::-1]}, dtype=float)
    bounds = sorted({0, len(whole), *(c for c in cuts if c < len(whole))})
    sdf = DataFrame(example=whole.iloc[:0])
    frames = getattr(sdf, op)().stream.sink_to_list()
    series = getattr(sdf.x, op)().stream.sink_to_list()
    for a, b in itertools.pairwise(bounds):
        sdf.emit(whole.iloc[a:b])
    pd.testing.assert_frame_equal(pd.concat(frames), getattr(whole, op)())
    pd.testing.assert_series_equal(pd.concat(series), getattr(whole.x, op)())
