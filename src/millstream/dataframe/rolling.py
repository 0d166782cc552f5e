"""Rolling aggregations of streaming frames (Streamz's ``sdf.rolling(window).<op>()``).

Each chunk comes out as its own rows of pandas' ``rolling(window).<op>()`` over every
row so far, but only the backlog the next chunk needs is kept: the last ``window - 1``
rows for a window of rows, the rows within ``window`` (plus the ``allowed_lateness`` of a
``with_timestamps(late='update')`` stage upstream) of the newest index for a time window
(a datetime index).

Rows older than the newest one (``late='update'`` chunks of ``with_timestamps``, or a
chunk not sorted) are taken by a time window: see :meth:`RollingAggregation.on_new`.

``min_periods``: Streamz stores it but never passes it on, so its users see pandas'
default (``window`` for a window of rows, 1 for a time window). Here ``None`` (the
default) gives that same output, and a given value is passed on as pandas would use it.

>>> import pandas as pd
>>> from millstream.dataframe import DataFrame
>>> sdf = DataFrame(example=pd.DataFrame({'x': [0.0]}))
>>> L = sdf.rolling(2).x.sum().stream.sink_to_list()
>>> sdf.emit(pd.DataFrame({'x': [1.0, 2.0]}))
>>> sdf.emit(pd.DataFrame({'x': [3.0]}, index=[2]))
>>> [s.tolist() for s in L]
[[nan, 3.0], [5.0]]
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
import pandas as pd

from ..collection import Streaming, get_stream_type
from .aggregations import Aggregation
from .nodes import accumulate_chunks
from .plain import from_plain, to_plain
from .views import ColumnView

__all__ = ["Rolling", "RollingAggregation"]

#: The operations computed on numpy arrays (pandas chunks of numbers, no arguments).
FAST_OPERATIONS = ("sum", "mean", "count")


def _package(x: Any) -> Any:
    """The frame package of ``x`` (pandas or cudf)."""
    return sys.modules[type(x).__module__.split(".")[0]]


def is_numeric_pandas(x: Any) -> bool:
    """Whether ``x`` is a pandas Series or DataFrame of ints and floats only."""
    if isinstance(x, pd.Series):
        return x.dtype.kind in "iuf"
    if isinstance(x, pd.DataFrame):
        return len(x.columns) > 0 and all(t.kind in "iuf" for t in x.dtypes)
    return False


class RollingAggregation(Aggregation):
    """``<frame>.rolling(window, min_periods).<operation>(*args, **kwargs)`` chunk by
    chunk. The state is the backlog: a frame of the last rows (any operation), or for
    ``sum``/``mean``/``count`` on pandas numbers ``(values, times)``, numpy arrays of
    those rows (``times``: int64 nanoseconds, for a time window only). With
    ``rows_state=True`` (what ``with_state=True`` uses) it is always Streamz's state: a
    frame of the last ``window`` rows (of the rows from the newest index - ``window`` on).

    >>> import pandas as pd
    >>> agg = RollingAggregation(3, 'mean')
    >>> state, out = agg.on_new(None, pd.Series([1.0, 2.0, 3.0, 4.0]))
    >>> out.tolist()
    [nan, nan, 2.0, 3.0]
    >>> state, out = agg.on_new(state, pd.Series([8.0], index=[4]))
    >>> out.tolist()
    [5.0]
    >>> agg.restore(agg.snapshot(state))[0].ravel().tolist()
    [4.0, 8.0]
    """

    def __init__(
        self,
        window: int | pd.Timedelta,
        operation: str,
        min_periods: int | None = None,
        args: tuple = (),
        kwargs: dict[str, Any] | None = None,
        rows_state: bool = False,
        lateness: Any = None,
    ):
        if isinstance(window, bool) or not isinstance(window, (int, np.integer, pd.Timedelta)):
            raise TypeError(
                f"rolling: window must be an int (rows) or a time (str or Timedelta), "
                f"got {window!r}"
            )
        if isinstance(window, (int, np.integer)) and window < 0:
            raise ValueError(f"rolling: window must be 0 or more rows, got {window}")
        if isinstance(window, pd.Timedelta) and window <= pd.Timedelta(0):
            raise ValueError(f"rolling: a time window must be positive, got {window}")
        if min_periods is not None and min_periods < 0:
            raise ValueError(f"rolling: min_periods must be 0 or more, got {min_periods}")
        self.window = window
        self.operation = operation
        self.min_periods = min_periods
        self.lateness = _lateness(window, lateness)
        self.args = tuple(args)
        self.kwargs = dict(kwargs or {})
        self.rows_state = rows_state

    # -- the protocol --

    def initial(self, new: Any) -> Any:
        return None

    def on_new(self, state: Any, new: Any) -> tuple[Any, Any]:
        """The rows of ``new`` as pandas' rolling over every row so far gives them.

        A time window takes rows older than the newest row seen (a late row, or a chunk
        not sorted): the rows kept (those within ``window + lateness`` of the newest
        row) and the chunk's rows are sorted by time (stable: rows kept first), and the
        result has, in that order, the chunk's rows and the rows kept whose window now
        holds a row of the chunk (corrections: their index labels come again), as
        pandas' rolling over those sorted rows gives them. A late row older than the
        newest row seen minus ``window + lateness`` is ignored (it would have left).
        Rows at most ``lateness`` older than the newest get the values of pandas over
        every row (sorted); older ones miss rows that already left.
        """
        if self.rows_state:  # Streamz's state, for with_state=True: the last rows, a frame
            return self._frame_new(self._as_frame(state, new), new)
        if isinstance(state, tuple) or state is None:
            result = self._fast_new(state, new)  # None also when rows are not in order
            if result is not None:
                return result
            if self._timed and _is_late(state, new):
                return self._late_new(state, new)
            state = self._as_frame(state, new)
        elif self._timed and _is_late(state, new):
            return self._late_new(state, new)
        return self._frame_new(state, new)

    def on_old(self, state: Any, old: Any) -> tuple[Any, Any]:
        raise NotImplementedError("a rolling aggregation has no old chunks to take away")

    def snapshot(self, state: Any) -> Any:
        """``{'rows': backlog frame}`` or ``{'values': [...], 'times': [...] or None}``."""
        if state is None:
            return None
        if isinstance(state, tuple):
            values, times = state
            return {
                "values": values.tolist(),
                "shape": list(values.shape),
                "times": None if times is None else times.tolist(),
            }
        return {"rows": to_plain(state)}

    def restore(self, data: Any) -> Any:
        if data is None:
            return None
        if not isinstance(data, dict):
            raise TypeError(f"not a rolling backlog: {data!r:.80}")
        if "rows" in data:
            return from_plain(data["rows"])
        values = np.asarray(data["values"], dtype="float64").reshape(data["shape"])
        times = None if data["times"] is None else np.asarray(data["times"], dtype="int64")
        if times is not None and len(times) != len(values):
            raise ValueError("one time per backlog row expected")
        return (values, times)

    def __repr__(self) -> str:
        return f"RollingAggregation({self.window!r}, {self.operation!r})"

    @property
    def _timed(self) -> bool:
        return isinstance(self.window, pd.Timedelta)

    # -- rows older than the newest: again over the rows kept, sorted --

    def _late_new(self, state: Any, new: Any) -> tuple[Any, Any]:
        backlog = self._as_frame(state, new) if isinstance(state, tuple) else state
        new = _sorted_by_time(new)
        index = new.index
        if backlog is not None and len(backlog):
            before = backlog.index[-1]
            horizon = before - self.window - self.lateness
            outside = int(index.searchsorted(horizon, side="right"))
            if outside:  # late rows that would have left: ignored
                new = new.iloc[outside:]
                index = new.index
            kept = len(backlog)
            merged = _package(new).concat([backlog, new])
            order = np.argsort(merged.index.to_numpy(), kind="stable")
            merged = merged.take(order)
            position = np.argsort(order)  # where each row went
            old_times = _nanoseconds(backlog.index)
            new_times = _nanoseconds(index)
            # rows kept whose window (t - window, t] gained a row of the chunk (before it)
            span = pd.Timedelta(self.window).value
            ends: Any = np.searchsorted(new_times, old_times, side="left")
            gained = ends - np.searchsorted(new_times, old_times - span, side="right")
            chosen = np.zeros(len(merged), dtype=bool)
            chosen[position[kept:]] = True
            chosen[position[:kept][gained > 0]] = True
        else:
            merged = new
            chosen = np.ones(len(new), dtype=bool)
        result = getattr(self._rolling(merged), self.operation)(*self.args, **self.kwargs)
        result = result.iloc[np.flatnonzero(chosen)]
        backlog = self._keep(merged)
        if (isinstance(state, tuple) or state is None) and self._fast(new):
            arrays = _as_arrays(backlog)
            if arrays is not None:
                return arrays, result
        return backlog, result

    # -- the general way: pandas (or cudf) rolling over backlog + chunk --

    def _rolling(self, frame: Any) -> Any:
        if self.min_periods is None:
            return frame.rolling(self.window)
        return frame.rolling(self.window, min_periods=self.min_periods)

    def _frame_new(self, backlog: Any, new: Any) -> tuple[Any, Any]:
        if backlog is None or not len(backlog):
            frame = new
            kept = 0
        else:
            frame = _package(new).concat([backlog, new])
            kept = len(backlog)
        result = getattr(self._rolling(frame), self.operation)(*self.args, **self.kwargs)
        return self._keep(frame), result.iloc[kept:]

    def _keep(self, frame: Any) -> Any:
        if isinstance(self.window, pd.Timedelta):
            if not len(frame):
                return frame
            if self.rows_state:  # as Streamz: the rows from the newest index - window on
                return frame[frame.index >= frame.index.max() - self.window]
            return frame[frame.index > frame.index.max() - self.window - self.lateness]
        width = self.window if self.rows_state else max(self.window - 1, 0)
        return frame.iloc[len(frame) - min(len(frame), width) :]

    def _as_frame(self, state: Any, new: Any) -> Any:
        """A numpy backlog as a frame like ``new`` (when the fast way must stop)."""
        if not isinstance(state, tuple):
            return state
        values, times = state
        if times is None:
            index: Any = pd.RangeIndex(len(values))
        else:
            index = pd.DatetimeIndex(times.astype("datetime64[ns]"))
            tz = getattr(new.index, "tz", None)
            if tz is not None:
                index = index.tz_localize("UTC").tz_convert(tz)
            index = index.as_unit(new.index.unit)
        if isinstance(new, pd.DataFrame):
            return pd.DataFrame(values, index=index, columns=new.columns)
        return pd.Series(values.ravel(), index=index, name=new.name)

    # -- the fast way: sums and counts of numpy arrays --

    def _fast(self, new: Any) -> bool:
        return (
            self.operation in FAST_OPERATIONS
            and not self.args
            and not self.kwargs
            and isinstance(new, (pd.DataFrame, pd.Series))
            and (
                not isinstance(self.window, pd.Timedelta) or isinstance(new.index, pd.DatetimeIndex)
            )
        )

    def _fast_new(self, state: Any, new: Any) -> tuple[Any, Any] | None:
        """``None`` when the chunk does not suit the numpy way (then pandas decides)."""
        if not self._fast(new):
            return None
        x = new.to_numpy()  # the common dtype: numbers only if every column holds numbers
        if x.dtype.kind not in "iuf":
            return None
        x = x.astype("float64", copy=False)
        if x.ndim == 1:
            x = x[:, None]
        window = self.window
        timed = isinstance(window, pd.Timedelta)
        span = int(window.value) if isinstance(window, pd.Timedelta) else 0
        width = 0 if isinstance(window, pd.Timedelta) else int(window)
        times: np.ndarray = new.index.as_unit("ns").asi8 if timed else np.empty(0, "int64")
        kept = 0
        if state is not None:
            old, old_times = state
            if old.shape[1] != x.shape[1]:
                return None
            if len(old):
                x = np.concatenate([old, x])
                if timed:
                    times = np.concatenate([old_times, times])
            kept = len(old)
        total = len(x)
        rows = np.arange(kept, total)
        if timed:
            if total > 1 and not bool(np.all(times[1:] >= times[:-1])):
                return None  # pandas raises its own error on an unordered index
            starts = np.searchsorted(times, times[kept:] - span, side="right")
            min_periods = 1 if self.min_periods is None else self.min_periods
        else:
            starts = np.maximum(rows - width + 1, 0)
            min_periods = width if self.min_periods is None else self.min_periods
        lengths = rows + 1 - starts  # rows in each window
        missing = np.isnan(x)
        if missing.any():
            counts = np.zeros((total + 1, x.shape[1]), dtype="int64")
            np.cumsum(~missing, axis=0, out=counts[1:])
            n = counts[rows + 1] - counts[starts]
            filled = np.where(missing, 0.0, x)
        else:
            n = np.broadcast_to(lengths[:, None], (len(rows), x.shape[1]))
            filled = x
        if self.operation == "count":
            out = n.astype("float64")
            out[lengths < min_periods] = np.nan
        else:
            sums = np.zeros((total + 1, x.shape[1]))
            np.cumsum(filled, axis=0, out=sums[1:])
            out = sums[rows + 1] - sums[starts]
            if self.operation == "mean":
                with np.errstate(invalid="ignore", divide="ignore"):
                    out = out / n
            out[n < max(min_periods, 1 if self.operation == "mean" else 0)] = np.nan
        if timed:
            horizon = span + self.lateness.value
            keep = times > times[-1] - horizon if total else np.zeros(0, bool)
            state = (x[keep], times[keep])
        else:
            state = (x[total - min(total, max(width - 1, 0)) :], None)
        if isinstance(new, pd.DataFrame):
            return state, pd.DataFrame(out, index=new.index, columns=new.columns)
        return state, pd.Series(out[:, 0], index=new.index, name=new.name)


def _lateness(window: Any, lateness: Any) -> pd.Timedelta:
    if lateness is None:
        return pd.Timedelta(0)
    if not isinstance(window, pd.Timedelta):
        raise ValueError("rolling: lateness needs a time window")
    lateness = pd.Timedelta(lateness)
    if lateness < pd.Timedelta(0):
        raise ValueError(f"rolling: lateness must not be negative, got {lateness}")
    return lateness


def _is_late(state: Any, new: Any) -> bool:
    """Whether ``new`` (rows with a datetime index) has rows older than its own newest
    one, or than the backlog's newest one."""
    index = getattr(new, "index", None)
    if index is None or not len(index) or getattr(index.dtype, "kind", None) != "M":
        return False
    if not index.is_monotonic_increasing:
        return True
    if state is None:
        return False
    if isinstance(state, tuple):
        times = state[1]
        return times is not None and len(times) > 0 and _nanoseconds(index[:1])[0] < times[-1]
    return len(state) > 0 and index[0] < state.index[-1]


def _nanoseconds(index: Any) -> np.ndarray:
    """A datetime index as int64 nanoseconds (UTC for a tz-aware one)."""
    if getattr(index, "tz", None) is not None:
        index = index.tz_convert(None)
    return np.asarray(index.to_numpy().astype("datetime64[ns]").view("int64"))


def _sorted_by_time(rows: Any) -> Any:
    if rows.index.is_monotonic_increasing:
        return rows
    return rows.take(np.argsort(rows.index.to_numpy(), kind="stable"))


def _as_arrays(frame: Any) -> tuple[Any, Any] | None:
    """A pandas backlog frame of numbers as the fast way's ``(values, times)``."""
    if not is_numeric_pandas(frame) and len(frame):
        return None
    values = frame.to_numpy().astype("float64", copy=False)
    if values.ndim == 1:
        values = values[:, None]
    return values, _nanoseconds(frame.index)


def stage_lateness(stream: Any) -> pd.Timedelta | None:
    """The ``allowed_lateness`` of the ``with_timestamps(late='update')`` stage upstream
    of ``stream`` (``None`` without one, or when it has no finite ``allowed_lateness``)."""
    from ..time import watermark_sources
    from .event_time import EventTimeOrder

    found = [
        float(getattr(s, "allowed_lateness", 0.0))
        for s in watermark_sources(stream)
        if isinstance(s, EventTimeOrder) and s.late_policy == "update"
    ]
    if not found or max(found) == float("inf"):
        return None
    return pd.Timedelta(seconds=max(found))


class Rolling(ColumnView):
    """``sdf.rolling(window, min_periods=None)``: pick an aggregation (``sum()``,
    ``mean()``, ...), or columns first (``r['x']``, ``r.x``). Every aggregation gives a
    streaming frame of the new chunk's rows.

    >>> import pandas as pd
    >>> from millstream.dataframe import DataFrame
    >>> index = pd.to_datetime(['2024-01-01 00:00:00', '2024-01-01 00:00:01'])
    >>> sdf = DataFrame(example=pd.DataFrame({'x': [0]}, index=index[:0]))
    >>> L = sdf.rolling('2s').x.count().stream.sink_to_list()
    >>> sdf.emit(pd.DataFrame({'x': [1, 2]}, index=index))
    >>> sdf.emit(pd.DataFrame({'x': [3]}, index=pd.to_datetime(['2024-01-01 00:00:02'])))
    >>> [s.tolist() for s in L]
    [[1.0, 2.0], [2.0]]
    """

    _fields = ("root", "window", "min_periods", "with_state", "start")

    def __init__(
        self,
        sdf: Any,
        window: Any,
        min_periods: int | None = None,
        with_state: bool = False,
        start: Any = (),
    ):
        if isinstance(window, (str, pd.Timedelta)) or hasattr(window, "total_seconds"):
            window = pd.Timedelta(window)
        self.root = sdf
        self.window = window
        self.min_periods = min_periods
        self.with_state = with_state
        self.start = start
        RollingAggregation(window, "sum", min_periods)  # checks the arguments now

    def _like(self, root: Any) -> Rolling:
        return Rolling(root, self.window, self.min_periods, self.with_state, self.start)

    def _aggregate(self, operation: str, *args: Any, **kwargs: Any) -> Streaming:
        lateness = None
        if isinstance(self.window, pd.Timedelta):
            lateness = stage_lateness(self.root.stream)
        aggregation = RollingAggregation(
            self.window,
            operation,
            self.min_periods,
            args,
            kwargs,
            rows_state=self.with_state,
            lateness=lateness,
        )
        example = self.root.example
        try:
            example = aggregation.on_new(None, example)[1]
        except Exception:  # an example pandas cannot roll (e.g. no datetime index)
            pass
        start = None if isinstance(self.start, tuple) and not self.start else self.start
        node = accumulate_chunks(self.root.stream, aggregation, start, self.with_state)
        return wrap(node, example, "streaming", self.with_state)

    def sum(self) -> Streaming:
        """Rolling sum."""
        return self._aggregate("sum")

    def mean(self) -> Streaming:
        """Rolling mean."""
        return self._aggregate("mean")

    def min(self) -> Streaming:
        """Rolling minimum."""
        return self._aggregate("min")

    def max(self) -> Streaming:
        """Rolling maximum."""
        return self._aggregate("max")

    def median(self) -> Streaming:
        """Rolling median."""
        return self._aggregate("median")

    def std(self, *args: Any, **kwargs: Any) -> Streaming:
        """Rolling standard deviation (pandas' arguments, e.g. ``ddof``)."""
        return self._aggregate("std", *args, **kwargs)

    def var(self, *args: Any, **kwargs: Any) -> Streaming:
        """Rolling variance (pandas' arguments, e.g. ``ddof``)."""
        return self._aggregate("var", *args, **kwargs)

    def count(self, *args: Any, **kwargs: Any) -> Streaming:
        """Rolling count of non-missing values."""
        return self._aggregate("count", *args, **kwargs)

    def aggregate(self, *args: Any, **kwargs: Any) -> Streaming:
        """Rolling ``aggregate`` (pandas' arguments)."""
        return self._aggregate("aggregate", *args, **kwargs)

    def quantile(self, *args: Any, **kwargs: Any) -> Streaming:
        """Rolling quantile (pandas' arguments)."""
        return self._aggregate("quantile", *args, **kwargs)

    def __repr__(self) -> str:
        return f"Rolling(window={self.window!r}, min_periods={self.min_periods!r})"


def wrap(node: Any, example: Any, stream_type: str, with_state: bool = False) -> Streaming:
    """The collection for ``node``'s elements like ``example`` (a plain ``Streaming``
    when they are ``(state, result)`` pairs)."""
    cls = None if with_state else get_stream_type(example, stream_type)
    if cls is None:
        return Streaming(node, example, stream_type)
    return cls(node, example)
