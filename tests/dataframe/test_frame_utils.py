"""millstream.dataframe.utils (Streamz's streamz.dataframe.utils) and the
millstream.dataframe.core import path."""

from __future__ import annotations

import pandas as pd
import pytest

from millstream.dataframe import utils


def objects(xd):
    df = xd.DataFrame({"x": [1, 2], "y": [1.0, 2.0]}, index=[10, 11])
    return [
        df, df.x, df.index, xd.RangeIndex(3), pd.DatetimeIndex(["2026-01-01"]),
        [1, 2], {"x": [1]}, 3, "text", None,
    ]  # fmt: skip


@pytest.mark.parametrize("name", ["is_dataframe_like", "is_series_like", "is_index_like"])
def test_duck_typing_agrees_with_streamz(name, xd):
    streamz_utils = pytest.importorskip("streamz.dataframe.utils")
    mine, theirs = getattr(utils, name), getattr(streamz_utils, name)
    assert [mine(o) for o in objects(xd)] == [theirs(o) for o in objects(xd)]


def test_each_frame_kind_is_exactly_one_kind(xd):
    df = xd.DataFrame({"x": [1]})
    kinds = [utils.is_dataframe_like, utils.is_series_like, utils.is_index_like]
    assert [[k(o) for k in kinds] for o in (df, df.x, df.index)] == [
        [True, False, False], [False, True, False], [False, False, True],
    ]  # fmt: skip


def test_get_base_frame_type_and_dataframe_package(xd):
    df = xd.DataFrame({"x": [1]})
    assert utils.get_base_frame_type("DataFrame", utils.is_dataframe_like, df) is type(df)
    assert utils.get_base_frame_type("Series", utils.is_series_like, df.x) is type(df.x)
    with pytest.raises(TypeError, match="Streaming Index expects an example of Index"):
        utils.get_base_frame_type("Index", utils.is_index_like, df.x)
    assert utils.get_dataframe_package(df) is xd
    assert utils.get_dataframe_package(df.x) is xd and utils.get_dataframe_package(df.index) is xd


def test_index_of_a_frame_is_a_streaming_index(xd):
    from millstream.dataframe import DataFrame, Index

    sdf = DataFrame(example=xd.DataFrame({"x": [1]}))
    assert isinstance(sdf.index, Index)


def test_streamz_core_import_path():
    import millstream.dataframe as package
    from millstream.dataframe import core

    names = ["DataFrame", "DataFrames", "Series", "Seriess", "Index", "Frame", "Frames",
             "PeriodicDataFrame", "Random", "random_datablock", "random_datapoint"]  # fmt: skip
    for name in names:
        assert getattr(core, name) is getattr(package, name)
    assert core.Aggregation is package.Aggregation  # any public name of the package
    with pytest.raises(AttributeError):
        core.no_such_name


def test_without_pandas_the_import_is_a_one_line_error_naming_the_install():
    import subprocess
    import sys

    code = "import sys; sys.modules['pandas'] = None; import millstream.dataframe"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        "ImportError: millstream.dataframe needs pandas: pip install 'millstream[dataframe]'"
    )
