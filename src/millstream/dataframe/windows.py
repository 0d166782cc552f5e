"""Sliding windows of streaming frames (Streamz's ``sdf.window(...)``).

``sdf.window(n=3)`` holds the last 3 rows, ``sdf.window('2h')`` (or ``value='2h'``) the
rows whose index lies within two hours of the newest one (a datetime index; rows older
than the newest one are added where they fall, or ignored when already outside: see
:class:`WindowAggregation`). Each chunk emits the aggregate over the window after it
('updating').

The window is an :class:`~.aggregations.Aggregation` itself, :class:`WindowAggregation`:
its state holds the chunks still in the window and the inner aggregation's state; a new
chunk goes through the inner ``on_new``, the rows that leave through ``on_old``, so sums,
means and variances never look at the whole window again.

>>> import pandas as pd
>>> from millstream.dataframe import DataFrame
>>> sdf = DataFrame(example=pd.DataFrame({'x': [0.0]}))
>>> L = sdf.window(n=3).x.sum().stream.sink_to_list()
>>> sdf.emit(pd.DataFrame({'x': [1.0, 2.0]}))
>>> sdf.emit(pd.DataFrame({'x': [3.0, 4.0]}, index=[2, 3]))
>>> [float(v) for v in L]
[3.0, 9.0]
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from ..collection import Streaming, get_stream_type, map_partitions
from .aggregations import Aggregation
from .nodes import accumulate_chunks
from .summaries import (
    Summarized,
    WindowedCount,
    WindowedMean,
    WindowedSize,
    WindowedSum,
    WindowedVar,
)
from .tables import frame_package, from_plain_indexed, to_plain_indexed
from .views import FrameView

#: the fields of a window's snapshot (``ignored`` only when not 0)
_FIELDS = {"chunks", "state", "ignored"}

__all__ = [
    "Full",
    "ValueCounts",
    "Window",
    "WindowAggregation",
    "WindowState",
    "aggregate_updating",
]


def aggregate_updating(
    example: Any,
    stream: Any,
    aggregation: Aggregation,
    start: Any = None,
    with_state: bool = False,
    result_example: Any = None,
) -> Streaming:
    """``aggregation`` folded over ``stream`` (chunks like ``example``) with
    :func:`~.nodes.accumulate_chunks`, wrapped as an 'updating' collection whose class
    comes from the result of the empty example (``Seriess``, ``DataFrames`` or a plain
    ``Streaming`` for a scalar), unless ``result_example`` is given."""
    if result_example is not None:
        example = result_example
    else:
        with np.errstate(divide="ignore", invalid="ignore"):  # 0 / 0 on the empty example
            example = aggregation.on_new(aggregation.initial(example), example)[1]
    node = accumulate_chunks(stream, aggregation, start=start, with_state=with_state)
    cls = get_stream_type(example, "updating")
    if cls is None:
        return Streaming(node, example, stream_type="updating")
    return cls(node, example)


class Full(Aggregation):
    """The whole window as one frame (expensive: prefer the built-in aggregations).

    >>> import pandas as pd
    >>> agg = Full()
    >>> state, whole = agg.on_new(agg.initial(pd.Series([], dtype=int)), pd.Series([1, 2]))
    >>> state, whole = agg.on_old(state, pd.Series([1]))
    >>> whole.tolist()
    [2]
    """

    def initial(self, new: Any) -> Any:
        return _first(new).iloc[:0]

    def on_new(self, state: Any, new: Any) -> tuple[Any, Any]:
        new = _first(new)
        if not len(state):
            return new, new
        result = frame_package(new).concat([state, new])
        return result, result

    def on_old(self, state: Any, old: Any) -> tuple[Any, Any]:
        result = state.iloc[len(_first(old)) :]
        return result, result

    def snapshot(self, state: Any) -> Any:
        return to_plain_indexed(state)

    def restore(self, data: Any) -> Any:
        return from_plain_indexed(data)


class ValueCounts(Aggregation):
    """The count of each value (of a Series), sorted by value; values whose count falls
    to 0 (out of a window) are dropped.

    >>> import pandas as pd
    >>> agg = ValueCounts()
    >>> state, counts = agg.on_new(agg.initial(pd.Series([], dtype=int)), pd.Series([1, 2, 1]))
    >>> counts.to_dict()
    {1: 2, 2: 1}
    >>> agg.on_old(state, pd.Series([2]))[1].to_dict()
    {1: 2}
    """

    def initial(self, new: Any) -> Any:
        return new.iloc[:0].value_counts()

    def on_new(self, state: Any, new: Any) -> tuple[Any, Any]:
        counts = new.value_counts()
        counts = state.add(counts, fill_value=0) if len(state) else counts.sort_index()
        result = _as_counts(counts, state)
        return result, result

    def on_old(self, state: Any, old: Any) -> tuple[Any, Any]:
        counts = state.sub(old.value_counts(), fill_value=0)
        counts = counts[counts != 0]
        result = _as_counts(counts, state)
        return result, result

    def snapshot(self, state: Any) -> Any:
        return to_plain_indexed(state)

    def restore(self, data: Any) -> Any:
        return from_plain_indexed(data)


def _as_counts(counts: Any, like: Any) -> Any:
    if counts.dtype != "int64":
        counts = counts.astype("int64")
    if counts.index.name != like.index.name:
        counts.index.name = like.index.name
    counts.name = like.name
    return counts


def _first(item: Any) -> Any:
    """The chunk of a window item (a chunk, or a chunk and its grouper)."""
    return item[0] if isinstance(item, tuple) else item


def _length(item: Any) -> int:
    return len(item[0]) if isinstance(item, tuple) else len(item)


def _rows(item: Any, start: int, stop: int | None = None) -> Any:
    """Rows ``start:stop`` (by position) of a window item."""
    if isinstance(item, tuple):
        return tuple(_rows(part, start, stop) for part in item)
    if hasattr(item, "iloc"):
        return item.iloc[start:stop]
    return item[start:stop]  # an array or Index grouper


def _in_order(item: Any) -> Any:
    """A window item with its rows sorted by index (stable; as it is when sorted)."""
    index = _first(item).index
    if index.is_monotonic_increasing:
        return item
    order = np.argsort(index.to_numpy(), kind="stable")
    return _take(item, order)


def _take(item: Any, order: np.ndarray) -> Any:
    if isinstance(item, tuple):
        return tuple(_take(part, order) for part in item)
    if hasattr(item, "take"):
        return item.take(order)
    return [item[i] for i in order.tolist()]  # a list grouper


def _concat_items(items: list[Any]) -> Any:
    """Window items (chunks, or pairs of a chunk and its grouper) one after the other."""
    if len(items) == 1:
        return items[0]
    first = items[0]
    if isinstance(first, tuple):
        return tuple(_concat_items([item[i] for item in items]) for i in range(len(first)))
    if hasattr(first, "iloc"):  # a frame or Series
        return frame_package(first).concat(items)
    if hasattr(first, "append") and hasattr(first, "dtype"):  # an Index
        return first.append(list(items[1:]))
    if isinstance(first, np.ndarray):
        return np.concatenate(items)
    return [value for item in items for value in item]


def _rows_at_or_below(index: Any, boundary: Any) -> int:
    """The number of rows of a sorted ``index`` at or below ``boundary``."""
    try:
        return int(index.searchsorted(boundary, side="right"))
    except ValueError:  # boundary finer than the index's unit
        return int((index <= boundary).sum())


class WindowState:
    """What a window holds: its ``chunks`` (a tuple, oldest first: chunks, or pairs of a
    chunk and its grouper), their number of ``rows``, the inner aggregation's ``state``
    and, for a :class:`~.summaries.Summarized` one, each chunk's ``summaries``. Immutable:
    each chunk makes a new one (so states emitted with ``with_state=True`` stay as they
    were). ``ignored``: the rows of a time window that came older than the newest row
    seen and already outside the window (so never counted)."""

    __slots__ = ("chunks", "ignored", "rows", "state", "summaries")

    def __init__(
        self,
        chunks: tuple[Any, ...],
        rows: int,
        state: Any,
        summaries: tuple[Any, ...] | None = None,
        ignored: int = 0,
    ):
        self.chunks = chunks
        self.rows = rows
        self.state = state
        self.summaries = summaries
        self.ignored = ignored

    def __getitem__(self, key: str) -> Any:
        """Streamz's names: ``state['dfs']`` (the chunks) and ``state['state']``."""
        if key == "dfs":
            return list(self.chunks)
        if key == "state":
            return self.state
        raise KeyError(key)

    def __repr__(self) -> str:
        return f"WindowState({len(self.chunks)} chunks, {self.rows} rows, state={self.state!r})"


class WindowAggregation(Aggregation):
    """``aggregation`` over the last ``n`` rows, or over the rows whose index is within
    ``value`` (a ``Timedelta``) of the newest index (rows with an index below
    ``newest - value + 1ns`` leave, as Streamz's ``diff_loc``).

    A time window takes rows in any order: after each chunk the result is the aggregate
    over every row seen whose index is in ``(newest - value, newest]`` (``newest``: the
    largest index seen). A row older than the newest one (a late row, or a chunk not
    sorted) is added where it falls in time; one already outside that span is ignored
    and counted in the state's ``ignored``. Chunks in time order take the fast path;
    others are merged into the window's rows (slower).

    Chunks may be pairs ``(chunk, grouper chunk)`` (a groupby by a streaming Series):
    both are cut alike.

    >>> import pandas as pd
    >>> from millstream.dataframe.aggregations import Sum
    >>> agg = WindowAggregation(Sum(), n=2)
    >>> state = agg.initial(pd.Series([], dtype=int))
    >>> state, total = agg.on_new(state, pd.Series([1, 2, 3]))
    >>> int(total), state.rows
    (5, 2)
    >>> agg.restore(agg.snapshot(state)).chunks[0].tolist()
    [2, 3]
    """

    def __init__(self, aggregation: Aggregation, n: int | None = None, value: Any = None):
        if (n is None) == (value is None):
            raise ValueError("WindowAggregation: give exactly one of n (rows) or value (time)")
        if n is not None and (not isinstance(n, (int, np.integer)) or n < 0):
            raise ValueError(f"WindowAggregation: n must be a count of rows >= 0, got {n!r}")
        self.aggregation = aggregation
        self.n = None if n is None else int(n)
        self.value = None if value is None else pd.Timedelta(value)

    def initial(self, new: Any) -> WindowState:
        summaries = () if isinstance(self.aggregation, Summarized) else None
        return WindowState((), 0, self.aggregation.initial(new), summaries)

    def on_new(self, state: Any, new: Any) -> tuple[WindowState, Any]:
        if not isinstance(state, WindowState):
            state = self._from_streamz(state)
        if self.value is not None and not self._in_time_order(state, _first(new).index):
            return self._on_new_out_of_order(state, new)
        aggregation = self.aggregation
        summaries = state.summaries
        if summaries is not None:
            summary = aggregation.summarize(new)  # type: ignore[attr-defined]
            inner, result = aggregation.add(state.state, summary)  # type: ignore[attr-defined]
        else:
            inner, result = aggregation.on_new(state.state, new)
        length = _length(new)
        if not length:
            return WindowState(state.chunks, state.rows, inner, summaries, state.ignored), result
        chunks = (*state.chunks, new)
        if summaries is not None:
            summaries = (*summaries, summary)
        rows = state.rows + length
        if self.n is not None:
            leaving = rows - self.n
        else:
            leaving = self._rows_out_of_time(_first(new).index[-1], chunks)
        if leaving <= 0:
            return WindowState(chunks, rows, inner, summaries, state.ignored), result
        if summaries is not None:
            done = self._evict_summarized(chunks, summaries, rows, inner, leaving)
        else:
            done = self._evict(chunks, rows, inner, result, leaving)
        done[0].ignored = state.ignored
        return done

    def _evict(
        self, chunks: tuple[Any, ...], rows: int, inner: Any, result: Any, leaving: int
    ) -> tuple[WindowState, Any]:
        kept = list(chunks)
        while leaving > 0:
            head = kept[0]
            size = _length(head)
            if size <= leaving:
                old = kept.pop(0)
                taken = size
            else:
                old = _rows(head, 0, leaving)
                kept[0] = _rows(head, leaving)
                taken = leaving
            inner, result = self.aggregation.on_old(inner, old)
            leaving -= taken
            rows -= taken
        return WindowState(tuple(kept), rows, inner), result

    def _evict_summarized(
        self,
        chunks: tuple[Any, ...],
        summaries: tuple[Any, ...],
        rows: int,
        inner: Any,
        leaving: int,
    ) -> tuple[WindowState, Any]:
        """Whole chunks leave with their summary; a chunk cut in two is summarized
        again (both parts)."""
        aggregation: Any = self.aggregation
        whole = 0
        while whole < len(chunks):
            size = _length(chunks[whole])
            if size > leaving:
                break
            inner, result = aggregation.subtract(inner, summaries[whole])
            leaving -= size
            rows -= size
            whole += 1
        kept = list(chunks[whole:])
        kept_summaries = list(summaries[whole:])
        if leaving > 0:
            head = kept[0]
            inner, result = aggregation.subtract(
                inner, aggregation.summarize(_rows(head, 0, leaving))
            )
            kept[0] = _rows(head, leaving)
            kept_summaries[0] = aggregation.summarize(kept[0])
            rows -= leaving
        return WindowState(tuple(kept), rows, inner, tuple(kept_summaries)), result

    def _rows_out_of_time(self, newest: Any, chunks: tuple[Any, ...]) -> int:
        """The rows of ``chunks`` (in time order) outside the window ending at ``newest``."""
        # rows below newest - value + 1ns leave: those at or below newest - value
        boundary = newest - self.value
        leaving = 0
        for item in chunks:
            below = _rows_at_or_below(_first(item).index, boundary)
            leaving += below
            if below < _length(item):
                break
        return leaving

    def _in_time_order(self, state: WindowState, index: Any) -> bool:
        """Whether a chunk with ``index`` comes in time order (sorted, none of its rows
        older than the window's newest row): then it takes the fast path."""
        if not len(index):
            return True
        if getattr(index.dtype, "kind", None) not in ("M", "m"):
            raise TypeError(
                f"{self!r}: a time window needs chunks with a datetime (or timedelta) index; "
                f"a chunk arrived with a {type(index).__name__} of dtype {index.dtype}: "
                f"{list(index[:3])!r:.80}"
            )
        if not index.is_monotonic_increasing:
            return False
        return not (state.chunks and index[0] < _first(state.chunks[-1]).index[-1])

    def _on_new_out_of_order(self, state: WindowState, new: Any) -> tuple[WindowState, Any]:
        """A chunk with rows older than the newest row (or not sorted): its rows inside
        the window are merged into the window's rows where they fall in time (stable:
        after rows of equal time already there), those outside are ignored."""
        new = _in_order(new)
        index = _first(new).index
        chunks = state.chunks
        before = _first(chunks[-1]).index[-1] if chunks else None
        newest = index[-1] if before is None or index[-1] > before else before
        outside = _rows_at_or_below(index, newest - self.value)
        ignored = state.ignored
        if outside and before is not None:  # late rows already out of the window
            ignored += min(outside, int((index[:outside] < before).sum()))
        added = _rows(new, outside)
        start = len(chunks)  # the first chunk the added rows fall into
        if outside < len(index):
            first = _first(added).index[0]
            while start and _first(chunks[start - 1]).index[-1] > first:
                start -= 1
        merged = added
        if start < len(chunks):
            merged = _in_order(_concat_items([*chunks[start:], added]))
        kept = (*chunks[:start], merged) if _length(merged) else chunks[:start]
        rows = state.rows + _length(added)
        leaving = self._rows_out_of_time(newest, kept) if kept else 0
        aggregation: Any = self.aggregation
        if state.summaries is not None:
            inner, result = aggregation.add(state.state, aggregation.summarize(added))
            summaries = state.summaries[:start]
            if _length(merged):
                summaries = (*summaries, aggregation.summarize(merged))
            if leaving > 0:
                done, result = self._evict_summarized(kept, summaries, rows, inner, leaving)
            else:
                done = WindowState(kept, rows, inner, summaries)
        else:  # any aggregation (some depend on the order): again over the rows kept
            done = WindowState(kept, rows, None)
            if leaving > 0:
                done = self._cut(kept, rows, leaving)
            whole = _concat_items(list(done.chunks)) if done.chunks else _rows(new, 0, 0)
            inner, result = aggregation.on_new(aggregation.initial(new), whole)
            done.state = inner
        done.ignored = ignored
        return done, result

    @staticmethod
    def _cut(chunks: tuple[Any, ...], rows: int, leaving: int) -> WindowState:
        """``chunks`` less their first ``leaving`` rows (no aggregation state)."""
        kept = list(chunks)
        while leaving > 0:
            size = _length(kept[0])
            if size <= leaving:
                kept.pop(0)
            else:
                kept[0] = _rows(kept[0], leaving)
                size = leaving
            leaving -= size
            rows -= size
        return WindowState(tuple(kept), rows, None)

    def on_old(self, state: Any, old: Any) -> tuple[Any, Any]:
        raise NotImplementedError(f"{self!r} decides itself which rows leave")

    def _from_streamz(self, state: Any) -> WindowState:
        """A Streamz window state (``{'dfs': [...], 'state': ...}``) given as ``start``."""
        if not isinstance(state, dict) or "dfs" not in state or "state" not in state:
            raise TypeError(f"{self!r}: not a window state: {state!r:.80}")
        return self._state(tuple(state["dfs"]), state["state"])

    def _state(self, chunks: tuple[Any, ...], inner: Any) -> WindowState:
        """A window state holding ``chunks`` (summarized again where needed)."""
        summaries = None
        if isinstance(self.aggregation, Summarized):
            summaries = tuple(self.aggregation.summarize(c) for c in chunks)
        return WindowState(chunks, sum(_length(c) for c in chunks), inner, summaries)

    def snapshot(self, state: Any) -> Any:
        if state is None:
            return None
        data = {
            "chunks": [to_plain_indexed(c) for c in state.chunks],
            "state": self.aggregation.snapshot(state.state),
        }
        if state.ignored:
            data["ignored"] = state.ignored
        return data

    def restore(self, data: Any) -> Any:
        if data is None:
            return None
        if not isinstance(data, dict) or not {"chunks", "state"} <= set(data) <= _FIELDS:
            raise TypeError(f"not a window state: {data!r:.80}")
        ignored = data.get("ignored", 0)
        if isinstance(ignored, bool) or not isinstance(ignored, int) or ignored < 0:
            raise TypeError(f"not a window state: 'ignored' must be a count, got {ignored!r:.80}")
        chunks = tuple(from_plain_indexed(c) for c in data["chunks"])
        state = self._state(chunks, self.aggregation.restore(data["state"]))
        state.ignored = ignored
        return state

    def __repr__(self) -> str:
        size = f"n={self.n}" if self.n is not None else f"value={self.value!r}"
        return f"WindowAggregation({self.aggregation!r}, {size})"


def _window_method(op: Callable[..., Any], reflected: bool = False) -> Any:
    def method(self: Window, other: Any) -> Window:
        if reflected:
            return self.map_partitions(op, other, self)
        return self.map_partitions(op, self, other)

    return method


class Window(FrameView):
    """Aggregations over a sliding window of a streaming frame:
    ``sdf.window(n=None, value=None, with_state=False, start=None)``.

    ``n``: the last ``n`` rows; ``value``: the rows within that time of the newest index
    (a string or ``Timedelta``; a positional string or ``Timedelta`` is taken as
    ``value``). ``with_state``: emit ``(state, result)``; ``start``: the first state
    (one emitted with ``with_state=True``, or Streamz's ``{'dfs': [...], 'state': ...}``).

    >>> import pandas as pd
    >>> from millstream.dataframe import DataFrame
    >>> sdf = DataFrame(example=pd.DataFrame({'x': [0]}, index=pd.DatetimeIndex([0])))
    >>> L = sdf.window('2s').x.count().stream.sink_to_list()
    >>> t = pd.to_datetime(['2026-01-01 00:00:00', '2026-01-01 00:00:01'])
    >>> sdf.emit(pd.DataFrame({'x': [1, 2]}, index=t))
    >>> sdf.emit(pd.DataFrame({'x': [3]}, index=t[1:] + pd.Timedelta('1.5s')))
    >>> [int(v) for v in L]
    [2, 2]
    """

    _fields = ("root", "n", "value", "with_state", "start")

    def __init__(
        self,
        sdf: Any,
        n: Any = None,
        value: Any = None,
        with_state: bool = False,
        start: Any = None,
    ):
        if value is None and isinstance(n, (str, pd.Timedelta)):
            n, value = None, n
        if (n is None) == (value is None):
            raise ValueError("window: give exactly one of n (rows) or value (a time span)")
        self.root = sdf
        self.n = n
        self.value = None if value is None else pd.Timedelta(value)
        self.with_state = with_state
        self.start = start

    def _like(self, root: Any) -> Window:
        return type(self)(
            root, n=self.n, value=self.value, with_state=self.with_state, start=self.start
        )

    def map_partitions(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Window:
        """A window over ``func`` applied to each chunk (windows among ``args`` stand
        for their frames)."""
        args = tuple(a.root if isinstance(a, Window) else a for a in args)
        return self._like(map_partitions(func, *args, **kwargs))

    def _aggregation(self, aggregation: Aggregation) -> WindowAggregation:
        return WindowAggregation(aggregation, n=self.n, value=self.value)

    def aggregate(self, agg: Aggregation) -> Streaming:
        """``agg`` (an :class:`~.aggregations.Aggregation`) over the window, per chunk."""
        return aggregate_updating(
            self.root.example,
            self.root.stream,
            self._aggregation(agg),
            start=self.start,
            with_state=self.with_state,
        )

    def full(self) -> Streaming:
        """The whole window, as one frame per chunk."""
        return self.aggregate(Full())

    def apply(self, func: Callable[[Any], Any]) -> Streaming:
        """``func`` over the whole window, per chunk."""
        result = self.full()
        return map_partitions(func, result)

    def sum(self) -> Streaming:
        """The sum over the window."""
        return self.aggregate(WindowedSum())

    def count(self) -> Streaming:
        """The count of non-missing values in the window."""
        return self.aggregate(WindowedCount())

    def mean(self) -> Streaming:
        """The mean over the window."""
        return self.aggregate(WindowedMean())

    def var(self, ddof: int = 1) -> Streaming:
        """The variance over the window."""
        return self.aggregate(WindowedVar(ddof=ddof))

    def std(self, ddof: int = 1) -> Streaming:
        """The standard deviation over the window."""
        return self.var(ddof=ddof) ** 0.5

    @property
    def size(self) -> Streaming:
        """The number of rows in the window."""
        return self.aggregate(WindowedSize())

    def value_counts(self) -> Streaming:
        """The count of each value in the window (a Series window)."""
        return self.aggregate(ValueCounts())

    def groupby(self, other: Any) -> Any:
        """Groupby aggregations within the window (a ``WindowedGroupBy``)."""
        from .groupby import WindowedGroupBy

        return WindowedGroupBy(
            self.root, other, None, self.n, self.value, self.with_state, self.start
        )

    def __repr__(self) -> str:
        size = f"n={self.n}" if self.n is not None else f"value={self.value!r}"
        return f"Window({size}) of {self.root!r}"

    __add__ = _window_method(operator.add)
    __radd__ = _window_method(operator.add, reflected=True)
    __sub__ = _window_method(operator.sub)
    __rsub__ = _window_method(operator.sub, reflected=True)
    __mul__ = _window_method(operator.mul)
    __rmul__ = _window_method(operator.mul, reflected=True)
    __truediv__ = _window_method(operator.truediv)
    __rtruediv__ = _window_method(operator.truediv, reflected=True)
    __floordiv__ = _window_method(operator.floordiv)
    __rfloordiv__ = _window_method(operator.floordiv, reflected=True)
    __mod__ = _window_method(operator.mod)
    __rmod__ = _window_method(operator.mod, reflected=True)
    __pow__ = _window_method(operator.pow)
    __rpow__ = _window_method(operator.pow, reflected=True)
    __and__ = _window_method(operator.and_)
    __rand__ = _window_method(operator.and_, reflected=True)
    __or__ = _window_method(operator.or_)
    __ror__ = _window_method(operator.or_, reflected=True)
    __xor__ = _window_method(operator.xor)
    __rxor__ = _window_method(operator.xor, reflected=True)
    __eq__ = _window_method(operator.eq)
    __ne__ = _window_method(operator.ne)
    __lt__ = _window_method(operator.lt)
    __le__ = _window_method(operator.le)
    __gt__ = _window_method(operator.gt)
    __ge__ = _window_method(operator.ge)
    __hash__ = None  # type: ignore[assignment]

    def __neg__(self) -> Window:
        return self.map_partitions(operator.neg, self)

    def __abs__(self) -> Window:
        return self.map_partitions(operator.abs, self)

    def __invert__(self) -> Window:
        return self.map_partitions(operator.invert, self)
