"""Streaming DataFrames on pandas (Streamz's ``streamz.dataframe``).

>>> import pandas as pd
>>> from millstream.dataframe import DataFrame
>>> sdf = DataFrame(example=pd.DataFrame({'x': [0]}))
>>> isinstance(sdf.x.sum(), Streaming)
True
"""

from ..collection import Streaming, map_partitions
from .aggregations import Aggregation, Count, Mean, Size, Sum, Var
from .ewm import EWM, EWMAggregation, ewm_alpha
from .expanding import Expanding, ExpandingMoments, ValueCountsSoFar
from .frames import (
    DataFrame,
    DataFrames,
    Frame,
    Frames,
    Index,
    Series,
    Seriess,
    is_dataframe_like,
    is_index_like,
    is_series_like,
    to_dataframe,
)
from .nodes import Cumulative, RunningAggregation
from .rolling import Rolling, RollingAggregation

__all__ = [
    "Aggregation",
    "Count",
    "Cumulative",
    "DataFrame",
    "DataFrames",
    "Frame",
    "Frames",
    "Index",
    "Mean",
    "RunningAggregation",
    "Series",
    "Seriess",
    "Size",
    "Streaming",
    "Sum",
    "Var",
    "is_dataframe_like",
    "is_index_like",
    "is_series_like",
    "map_partitions",
    "to_dataframe",
]
__all__ += [  # rolling, expanding, ewm
    "EWM",
    "EWMAggregation",
    "Expanding",
    "ExpandingMoments",
    "Rolling",
    "RollingAggregation",
    "ValueCountsSoFar",
    "ewm_alpha",
]
