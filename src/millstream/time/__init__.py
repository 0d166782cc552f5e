"""Event time: timestamps, watermarks, window assigners, windowed aggregations, late data.

Importing :mod:`millstream` registers ``Stream.with_timestamps`` and ``Stream.window``.
"""

from __future__ import annotations

from .aggregations import (
    AGGREGATIONS,
    Aggregation,
    Collect,
    Count,
    Fold,
    Max,
    Mean,
    Min,
    Reduce,
    Sum,
)
from .idle import IdleTimer
from .operators import WindowResult, window
from .watermarks import (
    NO_WATERMARK,
    WatermarkTracker,
    call_watermark_listeners,
    to_timestamp,
    watermark,
    watermark_sources,
    with_timestamps,
)
from .windows import (
    GLOBAL_WINDOW,
    CountSliding,
    CountTumbling,
    Global,
    Session,
    Sliding,
    Tumbling,
    Window,
    WindowAssigner,
)

__all__ = [
    "AGGREGATIONS",
    "GLOBAL_WINDOW",
    "NO_WATERMARK",
    "Aggregation",
    "Collect",
    "Count",
    "CountSliding",
    "CountTumbling",
    "Fold",
    "Global",
    "IdleTimer",
    "Max",
    "Mean",
    "Min",
    "Reduce",
    "Session",
    "Sliding",
    "Sum",
    "Tumbling",
    "WatermarkTracker",
    "Window",
    "WindowAssigner",
    "WindowResult",
    "call_watermark_listeners",
    "to_timestamp",
    "watermark",
    "watermark_sources",
    "window",
    "with_timestamps",
]
