"""Streamz's ``streamz.dataframe.core`` import path: the frame classes and the demo data
functions (``from millstream.dataframe.core import random_datapoint``).

Every public name of :mod:`millstream.dataframe` can be imported from here too.

>>> from millstream.dataframe.core import DataFrame, Random, random_datapoint
>>> list(random_datapoint().columns)
['a']
"""

from __future__ import annotations

from typing import Any

from .. import dataframe as _package
from ..collection import Streaming
from .frames import DataFrame, DataFrames, Frame, Frames, Index, Series, Seriess
from .periodic import PeriodicDataFrame, Random, random_datablock, random_datapoint
from .utils import is_dataframe_like, is_index_like, is_series_like

__all__ = [
    "DataFrame",
    "DataFrames",
    "Frame",
    "Frames",
    "Index",
    "PeriodicDataFrame",
    "Random",
    "Series",
    "Seriess",
    "Streaming",
    "is_dataframe_like",
    "is_index_like",
    "is_series_like",
    "random_datablock",
    "random_datapoint",
]


def __getattr__(name: str) -> Any:
    """The other public names of ``millstream.dataframe`` (``Rolling``, ``Window``, ...)."""
    if not name.startswith("_") and name in getattr(_package, "__all__", ()):
        return getattr(_package, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
