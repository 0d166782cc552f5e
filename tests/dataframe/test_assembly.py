"""Frames built from other streaming frames (Streamz's forms): ``DataFrame({...})`` of
streaming Series, ``sdf[[...]] = frame``, ``set_index(streaming Series)``, ``to_frame``;
and rolling's ``with_state`` state in Streamz's shape. Each against pandas per chunk."""

from __future__ import annotations

import pickle
from types import ModuleType

import pandas as pd
import pytest
from frames_testing import assert_frame_equal, assert_series_equal, to_pandas

from millstream import Stream
from millstream.dataframe import DataFrame, RollingAggregation
from millstream.dataframe.assembly import AssignColumns, ColumnsFrame, SetIndex


def chunks(xd: ModuleType) -> list:
    return [
        xd.DataFrame({"x": [1, 2, 3], "y": [4, 5, 6]}),
        xd.DataFrame({"x": [7], "y": [8]}, index=[3]),
    ]


def test_a_frame_of_streaming_series_zips_them_into_columns(xd: ModuleType) -> None:
    source = Stream()
    sdf = DataFrame(source, example=chunks(xd)[0].iloc[:0])
    both = DataFrame({"a": sdf.x, "b": sdf.x * 2, "c": sdf.y % 2, "k": 1})
    assert list(both.columns) == ["a", "b", "c", "k"]
    out = both.stream.sink_to_list()
    for chunk in chunks(xd):
        source.emit(chunk)
        want = to_pandas(chunk)
        want = pd.DataFrame({"a": want.x, "b": want.x * 2, "c": want.y % 2, "k": 1})
        assert_frame_equal(to_pandas(out[-1]), want)
    assert len(out) == 2
    single = DataFrame({"only": sdf.y}).stream.sink_to_list()
    source.emit(chunks(xd)[1])
    assert to_pandas(single[0]).columns.tolist() == ["only"]
    with pytest.raises(TypeError, match="streaming Series"):
        DataFrame({"a": 1})


def test_setting_several_columns_at_once(xd: ModuleType) -> None:
    sdf = DataFrame(example=chunks(xd)[0].iloc[:0])
    source = sdf.stream
    sdf[["c", "d"]] = sdf[["x", "y"]]
    sdf[["e", "f"]] = 10
    out = sdf.stream.sink_to_list()
    for chunk in chunks(xd):
        source.emit(chunk)
        want = to_pandas(chunk).copy()
        want[["c", "d"]] = want[["x", "y"]]
        want[["e", "f"]] = 10
        assert_frame_equal(to_pandas(out[-1]), want)


def test_set_index_from_a_column_or_a_streaming_series(xd: ModuleType) -> None:
    sdf = DataFrame(example=chunks(xd)[0].iloc[:0])
    by_name = sdf.set_index("x", drop=True).stream.sink_to_list()
    by_series = sdf.set_index(sdf.y + 1).stream.sink_to_list()
    for chunk in chunks(xd):
        sdf.emit(chunk)
        want = to_pandas(chunk)
        assert_frame_equal(to_pandas(by_name[-1]), want.set_index("x", drop=True))
        assert_frame_equal(to_pandas(by_series[-1]), want.set_index(want.y + 1))


def test_to_frame_of_a_frame_is_the_frame() -> None:
    sdf = DataFrame(example=pd.DataFrame({"x": [0]}))
    assert sdf.to_frame() is sdf
    assert list(sdf.x.to_frame().columns) == ["x"]


def test_the_callables_pickle() -> None:
    df = pd.DataFrame({"x": [1, 2], "y": [3, 4]})
    for f, args in [
        (ColumnsFrame(["a"]), ((df.x,),)),
        (AssignColumns(["c"]), (df, df[["y"]])),
        (SetIndex({"drop": True}), (df, "x")),
    ]:
        assert_frame_equal(pickle.loads(pickle.dumps(f))(*args), f(*args))


@pytest.mark.parametrize("window", [2, "2s"])
def test_rolling_with_state_emits_streamz_state(xd: ModuleType, window: object) -> None:
    index = pd.date_range("2024-01-01", periods=5, freq="s")
    whole = pd.DataFrame({"name": list("abcde"), "amount": [50, 100, 200, 250, 50]}, index=index)
    first, second = xd.DataFrame(whole.iloc[:3]), xd.DataFrame(whole.iloc[3:4])
    sdf = DataFrame(example=first.iloc[:0])
    out = sdf.rolling(window, with_state=True).amount.sum().stream.sink_to_list()
    sdf.emit(first)
    sdf.emit(second)
    state, result = out[-1]
    # Streamz's state: the last `window` rows (the rows from the newest time - window on)
    kept = 2 if window == 2 else 3  # inclusive of newest - window, as Streamz
    assert_series_equal(to_pandas(state), whole.amount.iloc[4 - kept : 4], check_freq=False)
    assert to_pandas(result).tolist() == [450.0]
    # a fresh graph started from that state continues as pandas over all the rows
    again = DataFrame(example=first.iloc[:0])
    more = again.rolling(window, with_state=True, start=state).amount.sum()
    L = more.stream.sink_to_list()
    again.emit(xd.DataFrame(whole.iloc[4:]))
    assert to_pandas(L[-1][1]).tolist() == whole.amount.rolling(window).sum().iloc[4:].tolist()
    aggregation = RollingAggregation(2, "sum", rows_state=True)
    assert_series_equal(
        to_pandas(aggregation.restore(aggregation.snapshot(state))),
        to_pandas(state),
        check_freq=False,
    )
