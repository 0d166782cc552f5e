"""Streaming frames on pandas: ``DataFrame``, ``Series``, ``Index`` (each element new rows)
and ``DataFrames``, ``Seriess`` (each element the full, updated result).

>>> import pandas as pd
>>> sdf = DataFrame(example=pd.DataFrame({'x': [0], 'y': [0.0]}))
>>> total = sdf[sdf.x > 0].y.sum()
>>> L = total.stream.sink_to_list()
>>> sdf.emit(pd.DataFrame({'x': [1, -1, 2], 'y': [1.0, 5.0, 2.0]}))
>>> sdf.emit(pd.DataFrame({'x': [3], 'y': [4.0]}))
>>> [float(v) for v in L]
[3.0, 7.0]
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from ..collection import Streaming, map_partitions, register_stream_type
from ..core.stream import Stream
from . import event_time
from .aggregations import Aggregation, Count, Mean, Size, Sum, Var
from .assembly import AssignColumns, SetIndex, columns_frame
from .chunkops import Compare, columns_equal, getitem
from .ewm import EWM
from .expanding import Expanding
from .filters import FilteredRows, filter_rows, is_streaming_mask, selects_columns
from .groupby import GroupBy
from .nodes import Cumulative, accumulate_chunks
from .rolling import Rolling
from .utils import is_dataframe_like, is_index_like, is_series_like
from .windows import ValueCounts, Window, aggregate_updating

__all__ = [
    "DataFrame",
    "DataFrames",
    "Frame",
    "Frames",
    "Index",
    "Series",
    "Seriess",
    "is_dataframe_like",
    "is_index_like",
    "is_series_like",
    "to_dataframe",
]


def _method(name: str, *args: Any, **kwargs: Any) -> Callable[[Any], Any]:
    return _CallMethod(name, args, kwargs)


class _CallMethod:
    """``x.<name>(*args, **kwargs)``, picklable (Streamz's ``M``)."""

    __slots__ = ("args", "kwargs", "name")

    def __init__(self, name: str, args: tuple, kwargs: dict):
        self.name = name
        self.args = args
        self.kwargs = kwargs

    def __call__(self, x: Any) -> Any:
        return getattr(x, self.name)(*self.args, **self.kwargs)


class _GetAttr:
    __slots__ = ("name",)

    def __init__(self, name: str):
        self.name = name

    def __call__(self, x: Any) -> Any:
        return getattr(x, self.name)


class _BaseFrame(Streaming):
    """Per-chunk operations of every frame."""

    _is_like: Callable[[Any], bool] = staticmethod(is_dataframe_like)
    _kind = "DataFrame"

    def __init__(self, *args: Any, **kwargs: Any):
        stream = kwargs.pop("stream", args[0] if args else None)
        example = kwargs.pop("example", args[1] if len(args) > 1 else None)
        if callable(example) and not hasattr(example, "dtype") and not hasattr(example, "dtypes"):
            example = example()
        if example is None:
            raise TypeError("Missing required argument:'example'")
        if self._kind == "DataFrame" and not is_dataframe_like(example):
            example = pd.DataFrame(example)
        if not type(self)._is_like(example):
            raise TypeError(
                f"Streaming {self._kind} expects an example of {self._kind} like objects, "
                f"got {type(example).__name__}"
            )
        self.subtype = type(example)  # type: ignore[misc]  # this frame's chunk type
        Streaming.__init__(self, stream, example, **kwargs)

    def round(self, decimals: int = 0) -> Streaming:
        return self.map_partitions(_method("round", decimals), self)

    def reset_index(self) -> Streaming:
        """Each chunk with a new 0..n-1 index and the old one as a column."""
        return self.map_partitions(_method("reset_index"), self)

    def set_index(self, index: Any, **kwargs: Any) -> Streaming:
        """Each chunk's ``set_index``; ``index`` may be a streaming Series (zipped in)."""
        return self.map_partitions(SetIndex(kwargs), self, index)

    def tail(self, n: int = 5) -> Streaming:
        """The last ``n`` rows of each chunk."""
        return self.map_partitions(_method("tail", n), self)

    def astype(self, dt: Any) -> Streaming:
        return self.map_partitions(_method("astype", dt), self)

    @property
    def index(self) -> Streaming:
        return self.map_partitions(_GetAttr("index"), self)

    def map(self, func: Callable[[Any], Any], na_action: str | None = None) -> Streaming:
        return self.map_partitions(_method("map", func, na_action=na_action), self)

    # -- periodic, utils, display --
    @property
    def plot(self) -> Any:
        """Live hvplot plots (``sdf.plot.line()``); needs ``pip install hvplot``."""
        from .plotting import hvplot_accessor

        return hvplot_accessor(self)


class Frame(_BaseFrame):
    """New rows per element: cumulative operations and running aggregations."""

    default_stream_type = "streaming"

    def aggregate(self, aggregation: Aggregation, start: Any = None) -> Streaming:
        """The running ``aggregation`` over every chunk so far, emitted per chunk."""
        with np.errstate(divide="ignore", invalid="ignore"):  # 0 / 0 on the empty example
            example = aggregation.on_new(aggregation.initial(self.example), self.example)[1]
        node = accumulate_chunks(self.stream, aggregation, start=start)
        return map_partitions(_identity, Streaming(node, example, "updating"))

    def sum(self, start: Any = None) -> Streaming:
        """The running sum (per column for a DataFrame)."""
        return self.aggregate(Sum(), start)

    def count(self, start: Any = None) -> Streaming:
        """The running count of non-missing values."""
        return self.aggregate(Count(), start)

    @property
    def size(self) -> Streaming:
        """The running number of values (rows times columns for a DataFrame, as pandas)."""
        return self.aggregate(Size())

    def mean(self, start: Any = None) -> Streaming:
        """The running mean."""
        return self.aggregate(Mean(), start)

    def var(self, ddof: int = 1) -> Streaming:
        """The running variance (not in Streamz's ``Frame``: there only windows have it)."""
        return self.aggregate(Var(ddof))

    def std(self, ddof: int = 1) -> Streaming:
        """The running standard deviation (``var() ** 0.5``)."""
        return map_partitions(_sqrt, self.var(ddof))

    def _cumulative(self, operation: str) -> Frame:
        node = accumulate_chunks(self.stream, Cumulative(operation))
        return type(self)(node, example=getattr(self.example, operation)())

    def cumsum(self) -> Frame:
        """The cumulative sum across chunks, row by row."""
        return self._cumulative("cumsum")

    def cumprod(self) -> Frame:
        """The cumulative product across chunks, row by row."""
        return self._cumulative("cumprod")

    def cummin(self) -> Frame:
        """The cumulative minimum across chunks, row by row."""
        return self._cumulative("cummin")

    def cummax(self) -> Frame:
        """The cumulative maximum across chunks, row by row."""
        return self._cumulative("cummax")

    # -- windows and groupby --
    def window(
        self, n: Any = None, value: Any = None, with_state: bool = False, start: Any = None
    ) -> Window:
        """Aggregations over the last ``n`` rows or the last ``value`` of index (time)
        range (see :mod:`.windows`)."""
        return Window(self, n=n, value=value, with_state=with_state, start=start)

    def groupby(self, other: Any) -> GroupBy:
        """Groupby aggregations over every row so far (see :mod:`.groupby`)."""
        return GroupBy(self, other)

    # -- event time --
    def with_timestamps(
        self,
        on: Any = None,
        max_out_of_orderness: Any = 0,
        allowed_lateness: Any = None,
        late: str = "drop",
        partition: Any = None,
        partitions: Any = None,
        idle_timeout: Any = None,
        clock: Any = None,
    ) -> Frame:
        """The same rows in event-time order: each row is held until the watermark (the
        largest event time seen minus ``max_out_of_orderness``, per ``partition`` column
        with the slowest counting) reaches it; chunks come out sorted by event time.
        Event times are the index, or the column ``on``: datetimes (tz-naive read as UTC)
        or numbers. A row older than the watermark already passed on is late:
        ``late='drop'`` drops it, ``'side'`` sends it to the frame ``result.late``,
        ``'update'`` passes it on in a chunk of its own after the on-time rows (only
        rows less than ``allowed_lateness`` late, when given). ``partitions``,
        ``idle_timeout`` and ``clock`` as in :class:`millstream.time.with_timestamps`.
        ``result.stream`` is the stage (:class:`.event_time.EventTimeOrder`: its
        ``watermark``, ``late_count``, ``dropped_count``, ``end_of_input()``); docs:
        docs/dataframes.md, "Event time".

        >>> sdf = DataFrame(example=pd.DataFrame({'x': [0]}))
        >>> ordered = sdf.with_timestamps(max_out_of_orderness=1)
        >>> L = ordered.x.cumsum().stream.sink_to_list()
        >>> sdf.emit(pd.DataFrame({'x': [1, 2, 3]}, index=[2, 1, 4]))
        >>> [s.to_dict() for s in L]
        [{1: 2, 2: 3}]
        """
        return event_time.with_timestamps(
            self, on, max_out_of_orderness, allowed_lateness, late, partition, partitions,
            idle_timeout, clock,
        )  # fmt: skip

    # -- rolling, expanding, ewm --

    def rolling(
        self, window: Any, min_periods: int | None = None, with_state: bool = False, start: Any = ()
    ) -> Rolling:
        """Rolling aggregations over ``window`` rows or a time (see :mod:`.rolling`)."""
        return Rolling(self, window, min_periods, with_state, start)

    def expanding(self, with_state: bool = False, start: Any = None) -> Expanding:
        """Aggregations over every row so far, state only (see :mod:`.expanding`)."""
        return Expanding(self, with_state, start)

    def ewm(
        self,
        com: float | None = None,
        span: float | None = None,
        halflife: float | None = None,
        alpha: float | None = None,
        with_state: bool = False,
        start: Any = None,
    ) -> EWM:
        """Exponentially weighted aggregations (see :mod:`.expanding`)."""
        return EWM(self, com, span, halflife, alpha, with_state, start)


def _sqrt(x: Any) -> Any:
    return x**0.5


def _identity(x: Any) -> Any:
    return x


class Frames(_BaseFrame):
    """The full result per element: pandas reductions of each element."""

    default_stream_type = "updating"

    def _reduce(self, name: str, **kwargs: Any) -> Streaming:
        return self.map_partitions(_method(name, **kwargs), self)

    def sum(self, **kwargs: Any) -> Streaming:
        return self._reduce("sum", **kwargs)

    def mean(self, **kwargs: Any) -> Streaming:
        return self._reduce("mean", **kwargs)

    def std(self, **kwargs: Any) -> Streaming:
        return self._reduce("std", **kwargs)

    def var(self, **kwargs: Any) -> Streaming:
        return self._reduce("var", **kwargs)

    def count(self, **kwargs: Any) -> Streaming:
        return self._reduce("count", **kwargs)

    @property
    def size(self) -> Streaming:
        return self.map_partitions(_GetAttr("size"), self)

    def nlargest(self, n: int, *args: Any, **kwargs: Any) -> Streaming:
        return self.map_partitions(_method("nlargest", n, *args, **kwargs), self)


class _DataFrameMixin:
    """Columns of DataFrames: access, assignment, filtering."""

    example: Any

    @property
    def columns(self) -> Any:
        return self.example.columns

    @property
    def dtypes(self) -> Any:
        return self.example.dtypes

    # -- filters: sdf[mask] builds its own node only when its stream is used --
    #: ``stream`` may be given as a :class:`~.filters.FilteredRows` (see :mod:`.filters`)
    filters_lazily = True
    _stream: Any

    @property
    def stream(self) -> Any:
        """The stream of chunks (a filtered frame's node is built at the first use)."""
        stream = self._stream
        if type(stream) is FilteredRows:
            stream = self._stream = stream.build()
        return stream

    @stream.setter
    def stream(self, stream: Any) -> None:
        self._stream = stream

    def __getitem__(self, key: Any) -> Streaming:
        pending = self._stream
        if type(pending) is FilteredRows and selects_columns(self.example, key):
            return pending.select(key)
        if is_streaming_mask(key):
            filtered = filter_rows(self, key)
            if filtered is not None:
                return filtered
        return map_partitions(_getitem, self, key)

    def __getattr__(self, key: str) -> Streaming:
        if key.startswith("_") or key in ("example", "stream", "stream_type"):
            raise AttributeError(key)
        if key in self.example.columns:
            return self[key]
        raise AttributeError(f"{type(self).__name__} has no attribute or column {key!r}")

    def __dir__(self) -> list[str]:
        return sorted(
            {*object.__dir__(self), *(c for c in self.example.columns if isinstance(c, str))}
        )

    def assign(self, **kwargs: Any) -> Streaming:
        """Each chunk with the given columns added (streaming values are zipped in)."""
        names = list(kwargs)
        return map_partitions(_Assign(names), self, *kwargs.values())

    def to_frame(self) -> Streaming:
        """The frame itself, as in Streamz."""
        return self  # type: ignore[return-value]

    def query(self, expr: str, **kwargs: Any) -> Streaming:
        return map_partitions(_method("query", expr, **kwargs), self)

    def verify(self, x: Any) -> None:
        Streaming.verify(self, x)  # type: ignore[arg-type]
        if not columns_equal(x.columns, self.example.columns):
            raise IndexError(
                f"Input expected to have columns {list(self.example.columns)}, "
                f"got {list(x.columns)}"
            )

    def __setitem__(self, key: Any, value: Any) -> None:
        if isinstance(key, list):  # -- streamz compatibility: sdf[['c', 'd']] = sdf[['x', 'y']]
            result = map_partitions(AssignColumns(key), self, value)
        else:
            result = self.assign(**{key: value})
        self.stream = result.stream
        self.example = result.example


def _getitem(x: Any, key: Any) -> Any:
    return getitem(x, key)


class _Assign:
    __slots__ = ("names",)

    def __init__(self, names: list[str]):
        self.names = names

    def __call__(self, frame: Any, *values: Any) -> Any:
        return frame.assign(**dict(zip(self.names, values, strict=True)))


class _SeriesMixin:
    example: Any

    @property
    def dtype(self) -> Any:
        return self.example.dtype

    def to_frame(self) -> Streaming:
        return map_partitions(_method("to_frame"), self)

    # -- comparisons with a fast path for numpy-backed pandas chunks (dfbench) --
    def __eq__(self, other: Any) -> Streaming:  # type: ignore[override]
        return map_partitions(Compare(operator.eq), self, other)

    def __ne__(self, other: Any) -> Streaming:  # type: ignore[override]
        return map_partitions(Compare(operator.ne), self, other)

    def __lt__(self, other: Any) -> Streaming:
        return map_partitions(Compare(operator.lt), self, other)

    def __le__(self, other: Any) -> Streaming:
        return map_partitions(Compare(operator.le), self, other)

    def __gt__(self, other: Any) -> Streaming:
        return map_partitions(Compare(operator.gt), self, other)

    def __ge__(self, other: Any) -> Streaming:
        return map_partitions(Compare(operator.ge), self, other)

    __hash__ = None  # type: ignore[assignment]


class DataFrame(_DataFrameMixin, Frame):
    """A stream of pandas DataFrame chunks: ``DataFrame(stream, example)``, or
    ``DataFrame({'a': sdf.x, 'b': sdf.y * 2})``: streaming Series zipped into columns."""

    # -- streamz compatibility --
    def __init__(self, *args: Any, **kwargs: Any):
        if len(args) == 1 and not kwargs and isinstance(args[0], dict):
            args = columns_frame(args[0])
        super().__init__(*args, **kwargs)


class DataFrames(_DataFrameMixin, Frames):
    """An updating stream of whole DataFrames."""


class Series(_SeriesMixin, Frame):
    """A stream of pandas Series chunks."""

    _is_like = staticmethod(is_series_like)
    _kind = "Series"

    # -- windows and groupby --
    def value_counts(self) -> Streaming:
        """The running count of each value, sorted by value ('updating')."""
        return aggregate_updating(self.example, self.stream, ValueCounts())


class Seriess(_SeriesMixin, Frames):
    """An updating stream of whole Series."""

    _is_like = staticmethod(is_series_like)
    _kind = "Series"


class Index(Series):
    """A stream of pandas Index chunks."""

    _is_like = staticmethod(is_index_like)
    _kind = "Index"


register_stream_type(is_dataframe_like, DataFrame, "streaming")
register_stream_type(is_series_like, Series, "streaming")
register_stream_type(is_index_like, Index, "streaming")
register_stream_type(is_dataframe_like, DataFrames, "updating")
register_stream_type(is_series_like, Seriess, "updating")


def to_dataframe(stream: Stream, example: Any) -> DataFrame:
    """``stream.to_dataframe(example)``: the stream's elements as a streaming DataFrame.

    >>> import pandas as pd
    >>> source = Stream()
    >>> sdf = source.to_dataframe(pd.DataFrame({'x': [0]}))
    >>> L = sdf.x.cumsum().stream.sink_to_list()
    >>> source.emit(pd.DataFrame({'x': [1, 2]})); source.emit(pd.DataFrame({'x': [3]}))
    >>> [s.tolist() for s in L]
    [[1, 3], [6]]
    """
    return DataFrame(stream=stream, example=example)
