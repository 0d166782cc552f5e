"""Comparisons that work for pandas and cudf results alike (cudf values are moved to
pandas first)."""

from __future__ import annotations

from typing import Any

import pandas as pd


def to_pandas(x: Any) -> Any:
    """``x`` as a pandas object (cudf frames, series and indexes have ``to_pandas``)."""
    return x.to_pandas() if hasattr(x, "to_pandas") else x


def assert_frame_equal(a: Any, b: Any, **kwargs: Any) -> None:
    pd.testing.assert_frame_equal(to_pandas(a), to_pandas(b), **kwargs)


def assert_series_equal(a: Any, b: Any, **kwargs: Any) -> None:
    pd.testing.assert_series_equal(to_pandas(a), to_pandas(b), **kwargs)
