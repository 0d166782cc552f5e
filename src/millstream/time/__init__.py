"""Event time: timestamps, watermarks, window assigners, windowed aggregations, late data.

Importing :mod:`millstream` registers ``Stream.with_timestamps`` and ``Stream.window``.
"""

from __future__ import annotations

from .watermarks import (
    NO_WATERMARK,
    WatermarkTracker,
    to_timestamp,
    watermark,
    watermark_sources,
    with_timestamps,
)

__all__ = [
    "NO_WATERMARK",
    "WatermarkTracker",
    "to_timestamp",
    "watermark",
    "watermark_sources",
    "with_timestamps",
]
