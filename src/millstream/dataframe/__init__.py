"""Streaming DataFrames on pandas (Streamz's ``streamz.dataframe``).

>>> import pandas as pd
>>> from millstream.dataframe import DataFrame
>>> sdf = DataFrame(example=pd.DataFrame({'x': [0]}))
>>> isinstance(sdf.x.sum(), Streaming)
True
"""

try:
    import pandas  # noqa: F401  # every module below needs it
except ImportError:
    raise ImportError(
        "millstream.dataframe needs pandas: pip install 'millstream[dataframe]'"
    ) from None

from ..collection import Streaming, map_partitions
from .aggregations import Aggregation, Count, Mean, Size, Sum, Var
from .event_time import EventTimeOrder
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
    to_dataframe,
)
from .groupby import (
    GroupBy,
    GroupbyAggregation,
    GroupbyCount,
    GroupbyMean,
    GroupbySize,
    GroupbySum,
    GroupbyValueCounts,
    GroupbyVar,
    WindowedGroupBy,
)
from .nodes import Cumulative, RunningAggregation

# -- periodic, utils, display --
from .periodic import PeriodicDataFrame, Random, random_datablock, random_datapoint
from .rolling import Rolling, RollingAggregation
from .utils import (
    get_base_frame_type,
    get_dataframe_package,
    is_dataframe_like,
    is_index_like,
    is_series_like,
)
from .windows import Full, ValueCounts, Window, WindowAggregation

__all__ = [  # noqa: RUF022 (one block per area, for merges)
    "Aggregation",
    "Count",
    "Cumulative",
    "DataFrame",
    "DataFrames",
    "EventTimeOrder",
    "Frame",
    "Frames",
    "Full",
    "GroupBy",
    "GroupbyAggregation",
    "GroupbyCount",
    "GroupbyMean",
    "GroupbySize",
    "GroupbySum",
    "GroupbyValueCounts",
    "GroupbyVar",
    "Index",
    "Mean",
    "RunningAggregation",
    "Series",
    "Seriess",
    "Size",
    "Streaming",
    "Sum",
    "ValueCounts",
    "Var",
    "Window",
    "WindowAggregation",
    "WindowedGroupBy",
    "is_dataframe_like",
    "is_index_like",
    "is_series_like",
    "map_partitions",
    "to_dataframe",
    # -- periodic, utils, display --
    "PeriodicDataFrame",
    "Random",
    "get_base_frame_type",
    "get_dataframe_package",
    "random_datablock",
    "random_datapoint",
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
