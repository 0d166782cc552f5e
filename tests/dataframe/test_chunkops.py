"""The fast paths of millstream.dataframe.chunkops give exactly what the plain pandas
expression gives: the same values bit for bit (``-0.0``, ``nan`` and ``inf`` included),
the same index, names and dtypes; and every case they do not cover falls back to it."""

from __future__ import annotations

import operator
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from millstream.dataframe import DataFrame
from millstream.dataframe.chunkops import (
    Compare,
    chunk_sum,
    columns_equal,
    continue_cumulative,
    getitem,
)

OPS = ["cumsum", "cumprod", "cummin", "cummax"]
SPECIAL = [np.nan, -0.0, 0.0, np.inf, -np.inf, 1e308, -1e308, 1.5, -2.25, 3.0]


def same(a: object, b: object) -> None:
    """Equal pandas objects, and the same bytes in their values (so ``-0.0 != 0.0``)."""
    if isinstance(a, pd.DataFrame):
        pd.testing.assert_frame_equal(a, b, check_exact=True)  # type: ignore[arg-type]
    else:
        pd.testing.assert_series_equal(a, b, check_exact=True)  # type: ignore[arg-type]
    assert a.to_numpy().tobytes() == b.to_numpy().tobytes()  # type: ignore[union-attr]


def plain_cumulative(last: object, new: object, op: str) -> object:
    return getattr(pd.concat([last, new]), op)().iloc[1:]  # type: ignore[list-item]


floats = st.lists(st.sampled_from(SPECIAL) | st.floats(-1e6, 1e6), min_size=1, max_size=8)
ints = st.lists(st.integers(-(2**62), 2**62), min_size=1, max_size=8)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # overflow, inf - inf: as pandas
@settings(max_examples=150, deadline=None)
@given(last=floats, new=floats, op=st.sampled_from(OPS))
def test_float_series_continue_like_the_concatenation(last: list, new: list, op: str) -> None:
    carried = pd.Series(last[-1:], index=[7], name="x")
    chunk = pd.Series(new, index=range(8, 8 + len(new)), name="x")
    same(continue_cumulative(carried, chunk, op), plain_cumulative(carried, chunk, op))


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@settings(max_examples=100, deadline=None)
@given(last=ints, new=ints, op=st.sampled_from(OPS), dtype=st.sampled_from(["int64", "uint64"]))
def test_int_series_continue_like_the_concatenation(
    last: list, new: list, op: str, dtype: str
) -> None:
    """Overflow wraps the same way as pandas' (numpy's) accumulation."""
    carried = pd.Series(last[-1:], index=[0]).astype(dtype)
    chunk = pd.Series(new, index=range(1, 1 + len(new))).astype(dtype)
    same(continue_cumulative(carried, chunk, op), plain_cumulative(carried, chunk, op))


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@settings(max_examples=100, deadline=None)
@given(rows=st.lists(st.tuples(*[st.sampled_from(SPECIAL)] * 3), min_size=2, max_size=7),
       op=st.sampled_from(OPS))  # fmt: skip
def test_float_frames_continue_like_the_concatenation(rows: list, op: str) -> None:
    frame = pd.DataFrame(rows, columns=["a", "b", "c"])
    carried, chunk = frame.iloc[:1], frame.iloc[1:]
    same(continue_cumulative(carried, chunk, op), plain_cumulative(carried, chunk, op))


@pytest.mark.parametrize(
    ("carried", "chunk"),
    [
        # mixed dtypes, a name that differs, an index of another dtype, float32, int32,
        # nullable and object dtypes, columns that differ: the concatenation itself
        (pd.DataFrame({"a": [1], "b": [1.5]}), pd.DataFrame({"a": [2, 3], "b": [0.5, np.nan]})),
        (pd.Series([1.0], name="p"), pd.Series([2.0, 3.0], name="q")),
        (pd.Series([1.0], index=["s"]), pd.Series([2.0, 3.0])),
        (pd.Series([1.5], dtype="float32"), pd.Series([2.5, np.nan], dtype="float32")),
        (pd.Series([2**31 - 1], dtype="int32"), pd.Series([1, 2], dtype="int32")),
        (pd.Series([1], dtype="Int64"), pd.Series([2, None], dtype="Int64")),
        (pd.Series([1.0], dtype=object), pd.Series([2.0, 3.0], dtype=object)),
        (pd.DataFrame({"a": [1.0]}), pd.DataFrame({"b": [2.0, 3.0]})),
        (pd.Series([True]), pd.Series([False, True])),
    ],
)
@pytest.mark.parametrize("op", OPS)
def test_other_chunks_take_the_concatenation(carried: object, chunk: object, op: str) -> None:
    try:
        expected = plain_cumulative(carried, chunk, op)
    except TypeError:
        with pytest.raises(TypeError):
            continue_cumulative(carried, chunk, op)
        return
    result = continue_cumulative(carried, chunk, op)
    if isinstance(expected, pd.DataFrame):
        pd.testing.assert_frame_equal(result, expected, check_exact=True)
    else:
        pd.testing.assert_series_equal(result, expected, check_exact=True)


def test_cumsum_across_many_chunks_is_pandas_on_the_concatenation_bit_for_bit() -> None:
    rng = np.random.default_rng(5)
    whole = pd.DataFrame({"x": rng.standard_normal(3000), "y": rng.standard_normal(3000)})
    whole.loc[rng.random(3000) < 0.05, "y"] = np.nan
    sdf = DataFrame(example=whole.iloc[:0])
    x, frame = sdf.x.cumsum().stream.sink_to_list(), sdf.cumsum().stream.sink_to_list()
    for start in range(0, 3000, 100):
        sdf.emit(whole.iloc[start : start + 100])
    same(pd.concat(x), whole.x.cumsum())
    # a chunk that ends with a missing value carries it (as Streamz and the concatenation do)
    carried = [pd.concat(frame[:i]).iloc[-1:] for i in range(1, 30)]
    chunks = [whole.iloc[i * 100 : i * 100 + 100] for i in range(1, 30)]
    plain = pd.concat(
        [whole.iloc[:100].cumsum()]
        + [plain_cumulative(c, chunk, "cumsum") for c, chunk in zip(carried, chunks, strict=True)]
    )
    same(pd.concat(frame), plain)


def test_getitem_filters_rows_like_pandas() -> None:
    frame = pd.DataFrame(
        {"k": [1, 2, 3, 4], "x": [1.0, -1.0, np.nan, 2.0], "s": ["a", "b", "c", "d"]},
        index=[10, 11, 12, 13],
    )
    for mask in (frame.x > 0, frame.x > -5, frame.x > 10, frame.k > 0):
        pd.testing.assert_frame_equal(getitem(frame, mask), frame[mask])
    assert getitem(frame, "x") is not None
    pd.testing.assert_series_equal(getitem(frame, "x"), frame["x"])
    pd.testing.assert_frame_equal(getitem(frame, ["s", "k"]), frame[["s", "k"]])
    pd.testing.assert_series_equal(getitem(frame.x, frame.x > 0), frame.x[frame.x > 0])
    # a mask on another index: pandas' alignment (and its warning) is kept
    shuffled = (frame.x > 0).iloc[::-1]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pd.testing.assert_frame_equal(getitem(frame, shuffled), frame[frame.x > 0])
    assert any("reindexed" in str(w.message) for w in caught)
    nullable = pd.Series([True, None, False, True], index=frame.index, dtype="boolean")
    pd.testing.assert_frame_equal(getitem(frame, nullable), frame[nullable])


@pytest.mark.parametrize("op", [operator.gt, operator.ge, operator.lt, operator.le,
                                operator.eq, operator.ne])  # fmt: skip
@pytest.mark.parametrize(
    "series",
    [
        pd.Series([1.0, np.nan, -0.0, np.inf, 3.0], index=[5, 6, 7, 8, 9], name="x"),
        pd.Series([1, -3, 0, 2**62], name=("a", 1)),
        pd.Series([1, 3, 0], dtype="uint64"),
        pd.Series([1.5, None], dtype="Float64"),
        pd.Series(["a", "b"]),
        pd.Series([True, False]),
    ],
)
@pytest.mark.parametrize("other", [0, 1.5, -1, np.nan, np.int64(2), np.float64(-0.0), "a"])
def test_compare_is_the_pandas_comparison(op: object, series: pd.Series, other: object) -> None:
    try:
        expected = op(series, other)  # type: ignore[operator]
    except TypeError:
        with pytest.raises(TypeError):
            Compare(op)(series, other)
        return
    pd.testing.assert_series_equal(Compare(op)(series, other), expected)


def test_compare_of_two_streams_and_of_a_scalar_on_the_left() -> None:
    chunk = pd.DataFrame({"x": [1.0, 5.0, 3.0], "y": [2.0, 2.0, 4.0]})
    sdf = DataFrame(example=chunk.iloc[:0])
    both = (sdf.x > sdf.y).stream.sink_to_list()
    left = (2 < sdf.x).stream.sink_to_list()  # noqa: SIM300 (the reflected comparison)
    sdf.emit(chunk)
    pd.testing.assert_series_equal(both[0], chunk.x > chunk.y)
    pd.testing.assert_series_equal(left[0], 2 < chunk.x)  # noqa: SIM300


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # inf - inf: pandas warns too
@pytest.mark.parametrize(
    "series",
    [
        pd.Series([1.5, np.nan, 2.25]),
        pd.Series([np.inf, -np.inf, 1.0]),
        pd.Series([np.inf, 1.0]),
        pd.Series([np.nan, np.nan]),
        pd.Series([], dtype=float),
        pd.Series([0.1] * 1000 + [1e16, -1e16]),
        pd.Series([2**62, 2**62, 5]),
        pd.Series([1.5, 2.5], dtype="float32"),
        pd.Series([1, None], dtype="Int64"),
    ],
)
def test_chunk_sum_is_the_pandas_sum(series: pd.Series) -> None:
    result, expected = chunk_sum(series), series.sum()
    assert type(result) is type(expected)
    assert np.asarray(result).tobytes() == np.asarray(expected).tobytes()


def test_columns_equal_is_list_equality() -> None:
    a = pd.Index(["x", "y"])
    assert columns_equal(a, a)
    assert columns_equal(a, pd.Index(["x", "y"]))
    assert not columns_equal(a, pd.Index(["y", "x"]))
    assert not columns_equal(a, pd.Index(["x"]))
    assert columns_equal(pd.Index([1, 2]), pd.Index([1.0, 2.0]))
    assert columns_equal(pd.RangeIndex(2), pd.Index([0, 1]))
    assert not columns_equal(pd.MultiIndex.from_tuples([("a", 1)]), pd.Index(["a"]))
