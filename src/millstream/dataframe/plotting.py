"""``sdf.plot``: live hvplot plots of streaming frames (Streamz's ``plot`` property).

hvplot only recognises Streamz's own frame classes, so instead of ``hvplot.streamz``
the plot is built on a HoloViews stream that the frame feeds: a ``Buffer`` of the last
1000 rows for frames whose elements are new rows (``DataFrame``, ``Series``), a ``Pipe``
of the latest element for updating ones (``DataFrames``, ``Seriess``), as hvplot does for
Streamz frames. cuDF chunks are sent as pandas (HoloViews plots pandas).

>>> import pandas as pd
>>> from millstream.dataframe import DataFrame
>>> sdf = DataFrame(example=pd.DataFrame({'x': [0.0]}))
>>> plot = sdf.plot.line()  # doctest: +SKIP
"""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["BACKLOG", "INSTALL", "hvplot_accessor"]

#: How many rows a plot of a streaming frame keeps (hvplot's default ``backlog``).
BACKLOG = 1000

INSTALL = "pip install hvplot"


def _import_hvplot(what: str) -> Any:
    try:
        import hvplot
        from holoviews.streams import Buffer, Pipe
    except ImportError as e:
        raise ImportError(f"{what}.plot needs hvplot ({e}); install it with: {INSTALL}") from None
    return hvplot, Buffer, Pipe


def _as_pandas_frame(chunk: Any) -> Any:
    to_pandas = getattr(chunk, "to_pandas", None)  # cudf
    if callable(to_pandas):
        chunk = to_pandas()
    if not hasattr(chunk, "columns") and hasattr(chunk, "to_frame"):  # a Series
        chunk = chunk.to_frame()
    return chunk


class _Send:
    """Sink function: each chunk, as a pandas frame, into the HoloViews stream."""

    __slots__ = ("target",)

    def __init__(self, target: Any):
        self.target = target

    def __call__(self, chunk: Any) -> None:
        self.target.send(_as_pandas_frame(chunk))


def hvplot_accessor(frame: Any) -> Any:
    """The ``hvPlotTabular`` of a streaming frame, fed live by ``frame``'s chunks."""
    hvplot, Buffer, Pipe = _import_hvplot(type(frame).__name__)
    example = _as_pandas_frame(frame.example)
    if frame.stream_type == "updating":
        target = Pipe(data=example)
    else:
        target = Buffer(data=example.iloc[:0], length=BACKLOG, index=False)
    _gathered(frame.stream).sink(_Send(target))
    return hvplot.hvPlotTabular(example.iloc[:0], stream=target)


def _gathered(stream: Any) -> Any:
    """``stream``, or ``stream.gather()`` for a Dask stream (of futures)."""
    dask = sys.modules.get("millstream.dask")
    if dask is not None and isinstance(stream, dask.DaskStream):
        return stream.gather()
    return stream
