"""Filtered streaming frames (``sdf[mask]``) that take only the columns used.

``sdf[sdf.x > 0]`` is a streaming DataFrame whose chunks are the rows of ``sdf``'s
chunks where the mask is true. Taking those rows costs about the same per column, so
a filtered frame that is only used for a column (``sdf[sdf.x > 0].y.sum()``) would
take every column's rows to throw all but one away. Here the filtered frame remembers
where it comes from (a :class:`FilteredRows`: the frame and the mask) and builds its
own node only when its ``stream`` is first used; a column (or list of columns) of it
is built from the unfiltered frame and the mask directly, as ``sdf[mask][key]`` per
chunk with the column(s) selected first (:func:`~.chunkops.filtered_getitem`). The
results are those of ``sdf[mask][key]``; only the work differs.

>>> import pandas as pd
>>> from millstream.dataframe import DataFrame
>>> sdf = DataFrame(example=pd.DataFrame({'x': [0], 'y': [0.0]}))
>>> positive = sdf[sdf.x > 0]
>>> ys = positive.y.stream.sink_to_list()
>>> rows = positive.stream.sink_to_list()  # builds the filtered frame's own node
>>> sdf.emit(pd.DataFrame({'x': [1, -1, 2], 'y': [1.0, 5.0, 2.0]}))
>>> ys[0].tolist(), rows[0].x.tolist()
([1.0, 2.0], [1, 2])
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

from ..collection import Streaming, get_stream_type, map_partitions
from ..core.stream import Stream
from .chunkops import filtered_getitem, getitem

__all__ = ["FilteredColumns", "FilteredRows", "RowFilter", "filter_rows", "is_streaming_mask"]


def is_streaming_mask(key: Any) -> bool:
    """Whether ``key`` is a streaming Series of booleans (``sdf.x > 0``).

    >>> import pandas as pd
    >>> from millstream.dataframe import DataFrame
    >>> sdf = DataFrame(example=pd.DataFrame({'x': [0]}))
    >>> is_streaming_mask(sdf.x > 0), is_streaming_mask(sdf.x), is_streaming_mask('x')
    (True, False, False)
    """
    if not isinstance(key, Streaming):
        return False
    dtype = getattr(key.example, "dtype", None)
    return dtype is not None and getattr(dtype, "kind", None) == "b" and key.example.ndim == 1


def selects_columns(example: Any, key: Any) -> bool:
    """Whether ``frame[key]`` selects columns of a frame like ``example`` (a column label
    or a list of them), so that ``frame[mask][key] == frame[key][mask]``.

    >>> import pandas as pd
    >>> df = pd.DataFrame({'x': [0], 'y': [0]})
    >>> selects_columns(df, 'x'), selects_columns(df, ['y', 'x']), selects_columns(df, 0)
    (True, True, False)
    >>> selects_columns(df, slice(0, 1)), selects_columns(df, [True, False])
    (False, False)
    """
    columns = example.columns
    try:
        if type(key) is list:
            return bool(key) and all(
                isinstance(k, Hashable) and not _is_bool(k) and k in columns for k in key
            )
        return (
            isinstance(key, Hashable)
            and not isinstance(key, slice)
            and not callable(key)
            and key in columns
        )
    except (TypeError, ValueError):  # a key pandas cannot look up among the labels
        return False


def _is_bool(value: Any) -> bool:
    return isinstance(value, bool) or type(value).__name__ == "bool_"


class RowFilter:
    """``x[mask]`` per chunk (picklable): the filtered frame's own node maps it."""

    __slots__ = ()

    def __call__(self, x: Any, mask: Any) -> Any:
        return getitem(x, mask)

    def __repr__(self) -> str:
        return "RowFilter()"


class FilteredColumns:
    """``x[mask][key]`` per chunk (picklable), with ``key`` selected first (see
    :func:`~.chunkops.filtered_getitem`)."""

    __slots__ = ("key",)

    def __init__(self, key: Any):
        self.key = key

    def __call__(self, x: Any, mask: Any) -> Any:
        return filtered_getitem(x, mask, self.key)

    def __repr__(self) -> str:
        return f"FilteredColumns({self.key!r})"


class FilteredRows:
    """What a filtered frame's stream is until it is used: the frame and the mask it
    filters. :meth:`build` makes the node (``map_partitions(RowFilter(), frame, mask)``,
    as ``frame[mask]`` always did); :meth:`select` builds a column (or columns) of the
    filtered frame from ``frame`` and ``mask`` instead."""

    __slots__ = ("frame", "mask")

    def __init__(self, frame: Streaming, mask: Streaming):
        self.frame = frame
        self.mask = mask

    def build(self) -> Stream:
        """The filtered frame's node, below a zip of the frame's and the mask's streams."""
        return map_partitions(RowFilter(), self.frame, self.mask).stream

    def select(self, key: Any) -> Streaming:
        """``filtered[key]`` for a ``key`` that :func:`selects_columns`."""
        return map_partitions(FilteredColumns(key), self.frame, self.mask)

    def __repr__(self) -> str:
        return f"<FilteredRows of {type(self.frame).__name__} by {type(self.mask).__name__}>"


def filter_rows(frame: Any, mask: Streaming) -> Streaming | None:
    """``frame[mask]`` as a frame of the same kind whose stream is a
    :class:`FilteredRows` until used, or None where the result is not such a frame."""
    example = getitem(frame.example, mask.example)
    if frame.stream_type == "streaming" or mask.stream_type == "streaming":
        stream_type = "streaming"
    else:
        stream_type = "updating"
    cls = get_stream_type(example, stream_type)
    if cls is None or not getattr(cls, "filters_lazily", False):
        return None
    return cls(FilteredRows(frame, mask), example, stream_type=stream_type)  # type: ignore[arg-type]
