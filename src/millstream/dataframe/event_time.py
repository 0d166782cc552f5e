"""Event time for streaming frames: ``sdf.with_timestamps(...)``.

Streamz's frame algorithms assume rows arrive in time order. :class:`EventTimeOrder` is
the stage that makes it so: it holds each row until the *watermark* (the largest event
time seen, minus ``max_out_of_orderness``; per partition, the slowest counting, as in
:mod:`millstream.time`) reaches it, then passes the rows on sorted by event time. A row
older than the watermark already passed on is *late*: dropped, sent to the ``late``
stream, or passed on in a chunk of its own (``late='drop'|'side'|'update'``).

Event times are the frame's index (or the column ``on``): datetimes (tz-naive ones are
read as UTC, tz-aware ones by their UTC time) or numbers. The watermark is a float, as in
:mod:`millstream.time`: POSIX seconds for datetimes, the numbers' own unit otherwise.

>>> import pandas as pd
>>> from millstream.dataframe import DataFrame
>>> sdf = DataFrame(example=pd.DataFrame({'x': [0]}))
>>> ordered = sdf.with_timestamps(max_out_of_orderness=2)
>>> out = ordered.stream.sink_to_list()
>>> sdf.emit(pd.DataFrame({'x': [1, 2, 3]}, index=[5, 3, 9]))
>>> sdf.emit(pd.DataFrame({'x': [4]}, index=[8]))
>>> [chunk.index.tolist() for chunk in out], ordered.stream.watermark
([[3, 5]], 7.0)
>>> ordered.stream.end_of_input()
[]
>>> [chunk.index.tolist() for chunk in out]
[[3, 5], [8, 9]]
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable, Hashable, Iterable
from typing import Any

import numpy as np
import pandas as pd

from .._utils import convert_interval, short_repr
from ..collection import get_stream_type
from ..core import (
    Clock,
    Metadata,
    Stream,
    get_default_clock,
    release_refs,
    release_refs_after,
    retain_refs,
    run_on_graph_loop,
)
from ..core.state import COUNT, NUMBER, bad_state, expect_fields
from ..sources.base import on_end_of_input
from ..time import NO_WATERMARK, IdleTimer, WatermarkTracker, call_watermark_listeners
from .nodes import _is_dask_stream
from .plain import from_plain, to_plain
from .utils import get_dataframe_package

__all__ = ["LATE_POLICIES", "EventTimeOrder", "event_times", "with_timestamps"]

logger = logging.getLogger("millstream.dataframe")

#: What ``late=`` may be.
LATE_POLICIES = ("drop", "side", "update")

_INF = float("inf")


def event_times(values: Any) -> np.ndarray:
    """Event times (an Index or Series of datetimes, timedeltas or numbers, pandas or
    cudf) as a float64 numpy array: POSIX seconds for datetimes (tz-naive ones read as
    UTC), seconds for timedeltas, numbers as they are. Missing values and other dtypes
    are errors.

    >>> import pandas as pd
    >>> event_times(pd.DatetimeIndex(['1970-01-01 00:01:00', '1970-01-01 00:00:00.5']))
    array([60. ,  0.5])
    >>> event_times(pd.Series([3, 1]))
    array([3., 1.])
    >>> event_times(pd.Series(['a']))
    Traceback (most recent call last):
    ...
    TypeError: event times must be datetimes, timedeltas or numbers, got dtype str
    """
    dtype = values.dtype
    if getattr(dtype, "tz", None) is not None:  # tz-aware: to naive UTC
        values = values.dt.tz_convert(None) if hasattr(values, "dt") else values.tz_convert(None)
        dtype = values.dtype
    kind = getattr(dtype, "kind", "O")
    if kind in "Mm":
        array = values.to_numpy()
        if np.isnat(array).any():
            raise ValueError("event times must not be missing (NaT)")
        unit = "datetime64[ns]" if kind == "M" else "timedelta64[ns]"
        return array.astype(unit).view("int64") / 1e9
    if kind in "iuf":
        array = values.to_numpy(dtype="float64", na_value=np.nan)
        if np.isnan(array).any():
            raise ValueError("event times must not be missing (NaN)")
        return array
    raise TypeError(f"event times must be datetimes, timedeltas or numbers, got dtype {dtype}")


def _first(pair: tuple[Any, Any]) -> Any:
    return pair[0]


def _sorted(rows: Any, times: np.ndarray) -> Any:
    """``rows`` sorted by ``times`` (stable: equal times keep their order)."""
    if len(times) > 1 and (times[1:] < times[:-1]).any():
        return rows.take(np.argsort(times, kind="stable"))
    return rows


def _concat(chunks: list[Any]) -> Any:
    return chunks[0] if len(chunks) == 1 else get_dataframe_package(chunks[0]).concat(chunks)


class EventTimeOrder(Stream):
    """Hold the rows of frame chunks until the watermark passes them; emit them sorted by
    event time. Built by ``DataFrame.with_timestamps`` / ``Series.with_timestamps``
    (see there for the arguments).

    Attributes
    ----------
    watermark : float
        The watermark up to which rows were passed on (``-inf`` before any,
        ``+inf`` after :meth:`end_of_input`).
    late : Stream
        Late rows as frame chunks, with ``late='side'``.
    late_count, dropped_count : int
        Rows that came late; of them, rows dropped (``late='drop'``, or older than
        ``allowed_lateness`` with ``late='update'``).
    tracker : WatermarkTracker
        The watermark of the rows seen (it runs ahead of :attr:`watermark` while a
        partition goes idle and the timer has not fired yet).

    Rows held keep their chunk's refs (Kafka acknowledgements) retained until they are
    passed on and downstream is done with them; late rows passed on or sent to ``late``
    carry their chunk's metadata; dropped rows release nothing of their own.

    >>> import pandas as pd
    >>> source = Stream()
    >>> order = EventTimeOrder(source, late='side')
    >>> out, late = order.sink_to_list(), order.late.sink_to_list()
    >>> source.emit(pd.Series([1.0, 2.0], index=[4, 2]))
    >>> source.emit(pd.Series([3.0], index=[1]))
    >>> [s.index.tolist() for s in out], [s.index.tolist() for s in late], order.late_count
    ([[2, 4]], [[1]], 1)
    """

    _graphviz_shape = "parallelogram"
    #: with ``idle_timeout`` a timer releases rows: a checkpoint holds it
    emits_from_task = True
    #: ``millstream.time.watermark(node)`` finds this stage upstream of ``node``
    provides_watermark = True

    def __init__(
        self,
        upstream: Stream | None,
        on: Hashable | None = None,
        max_out_of_orderness: Any = 0,
        allowed_lateness: Any = None,
        late: str = "drop",
        partition: Hashable | None = None,
        partitions: Iterable[Hashable] | None = None,
        idle_timeout: Any = None,
        clock: Clock | None = None,
        example: Any = None,
        **kwargs: Any,
    ):
        if late not in LATE_POLICIES:
            raise ValueError(
                f"with_timestamps: late must be 'drop', 'side' or 'update', got {short_repr(late)}"
            )
        if allowed_lateness is not None:
            if late != "update":
                raise ValueError("with_timestamps: allowed_lateness needs late='update'")
            allowed_lateness = _duration("allowed_lateness", allowed_lateness)
        if example is not None:
            _check_columns(example, on, partition)
        self.on = on
        # not ``self.partition``: that is the ``partition`` node's method every Stream has
        self.partition_column = partition
        self.late_policy = late
        self.allowed_lateness: float = _INF if allowed_lateness is None else allowed_lateness
        self.example = example
        # the tracker checks the durations before the stage joins the graph
        self.tracker = WatermarkTracker(
            max_out_of_orderness,
            idle_timeout,
            clock if clock is not None else get_default_clock(),
            partitions=None if partitions is None else list(partitions),
        )
        if idle_timeout is not None:
            kwargs["ensure_io_loop"] = True
        Stream.__init__(self, upstream, clock=self.tracker.clock, **kwargs)
        self.max_out_of_orderness = self.tracker.max_out_of_orderness
        self.idle_timeout = self.tracker.idle_timeout
        self.late: Stream = Stream(stream_name="late", loop=self.loop)
        self.late_count = 0
        self.dropped_count = 0
        self._emitted = NO_WATERMARK
        self._rows: Any = None  # the rows held, in arrival order
        self._times = np.empty(0)  # their event times
        self._origin_of: np.ndarray | None = None  # their chunk's id in _origins (-1: none)
        self._origins: dict[int, Metadata] = {}  # id -> metadata retained for held rows
        self._next_origin = 0
        self._listeners: list[Callable[[], Any]] = []
        self._idle_timer = IdleTimer(
            self, self._on_idle, "passing rows on after a partition went idle failed", logger
        )
        if partitions is not None and self.idle_timeout is not None:
            self._idle_timer.arm_from_any_thread()
        me = weakref.ref(self)

        def ended() -> list[Any]:
            node = me()
            return [] if node is None else node.end_of_input()

        on_end_of_input(self, ended)

    # -- the watermark -----------------------------------------------------------------
    @property
    def watermark(self) -> float:
        """The watermark up to which rows were passed on."""
        return self._emitted

    def add_watermark_listener(self, listener: Callable[[], Any]) -> None:
        """Call ``listener()`` after this stage's watermark advanced (its rows passed on);
        what it returns (awaitables) goes to the emitter, as for
        :meth:`millstream.time.with_timestamps.add_watermark_listener`."""
        if listener not in self._listeners:
            self._listeners.append(listener)

    def remove_watermark_listener(self, listener: Callable[[], Any]) -> None:
        """Stop calling ``listener`` (``ValueError`` if it was not added)."""
        try:
            self._listeners.remove(listener)
        except ValueError:
            raise ValueError(f"{self}: {listener!r} is not a watermark listener") from None

    def timestamp_of(self, x: Any) -> float:
        """A chunk has no single timestamp: a ``window`` downstream needs ``timestamp=``."""
        raise TypeError(
            f"{self}: its elements are frame chunks, which have no single event time; "
            "pass timestamp= to the window"
        )

    def end_of_input(self) -> list[Any]:
        """The input has ended: pass every held row on (the watermark becomes ``+inf``).

        Called by the stage itself once every source it is fed from has emitted all of
        its input (``Stream.from_iterable(...)``); call it for an input you ``emit``
        yourself. Rows that come after it are late. Returns the awaitables of downstream
        (``[]`` when called from another thread than a running graph's loop: it then
        runs on the loop and waits).
        """
        if run_on_graph_loop(self.loop, self._end):
            return []
        return self._end()

    def _end(self) -> list[Any]:
        self.tracker.advance_to_end()
        self._idle_timer.cancel()
        return self._release(_INF, [], None)

    # -- rows --------------------------------------------------------------------------
    def update(self, x: Any, who: Stream | None = None, metadata: Metadata | None = None) -> Any:
        if self.example is None:
            _check_columns(x, self.on, self.partition_column)
        try:
            values = x.index if self.on is None else x[self.on]
            times = event_times(values)
            parts = None if self.partition_column is None else x[self.partition_column].to_numpy()
        except (TypeError, ValueError, KeyError) as e:
            where = "index" if self.on is None else f"column {self.on!r}"
            if self.partition_column is not None:
                where += f" or partition column {self.partition_column!r}"
            raise type(e)(f"{self}: bad event times in the {where} of {short_repr(x)}: {e}") from e
        self._observe(times, parts)
        pending: list[Any] = []
        late_rows = None
        if len(times) and times.min() < self._emitted:
            on_time = times >= self._emitted
            late_rows, late_times = x.take(np.flatnonzero(~on_time)), times[~on_time]
            x, times = x.take(np.flatnonzero(on_time)), times[on_time]
        before = self._emitted
        ident = self._hold(x, times, metadata) if len(times) else None
        pending = self._release(self.tracker.watermark, pending, metadata, ident)
        if late_rows is not None:
            more = self._late(late_rows, late_times, before, metadata)
            if more:
                pending.extend(more)
        if self.idle_timeout is not None:
            self._idle_timer.arm()
        return pending

    def _observe(self, times: np.ndarray, parts: np.ndarray | None) -> None:
        if not len(times):
            return
        observe = self.tracker.observe
        if parts is None:
            observe(float(times.max()))
            return
        # the rows of a chunk come together: partitions new to the tracker first, the
        # earliest first, so that none fixes the watermark before the others are in
        largest = pd.Series(times).groupby(parts, sort=False).max()
        known = set(self.tracker.partitions)
        new = sorted(((ts, p) for p, ts in largest.items() if p not in known), key=_first)
        for ts, partition in new:
            observe(float(ts), partition)
        for partition, ts in largest.items():
            if partition in known:
                observe(float(ts), partition)

    def _hold(self, rows: Any, times: np.ndarray, metadata: Metadata | None) -> int | None:
        """Add on-time rows to the rows held (they may be passed on at once); return the
        id their chunk's refs are tracked under (``None``: the chunk has no metadata)."""
        origin_of = self._origin_of
        ident = None
        if metadata:
            ident = self._next_origin
            self._next_origin += 1
            if origin_of is None:
                origin_of = np.full(len(self._times), -1)
            origin_of = np.concatenate([origin_of, np.full(len(times), ident)])
        elif origin_of is not None:
            origin_of = np.concatenate([origin_of, np.full(len(times), -1)])
        if self._rows is None:
            self._rows, self._times = rows, times
        else:
            self._rows = _concat([self._rows, rows])
            self._times = np.concatenate([self._times, times])
        self._origin_of = origin_of
        return ident

    def _release(
        self,
        wm: float,
        pending: list[Any],
        metadata: Metadata | None = None,
        ident: int | None = None,
    ) -> list[Any]:
        """Pass on the held rows up to ``wm`` (sorted), which becomes the watermark; then
        tell the listeners. ``metadata``, ``ident``: those of the chunk being taken."""
        moved = wm > self._emitted
        if moved:
            self._emitted = wm
        rows, times = self._rows, self._times
        if rows is not None:
            # sorted (stable: equal times keep their arrival order), the rows passed on
            # are a prefix; those still held stay sorted for the next chunk
            if len(times) > 1 and (times[1:] < times[:-1]).any():
                order = np.argsort(times, kind="stable")
                rows, times = rows.take(order), times[order]
                if self._origin_of is not None:
                    self._origin_of = self._origin_of[order]
            k = int(np.searchsorted(times, self._emitted, side="right"))
            if k == len(times):
                self._rows, self._times = None, np.empty(0)
                pending = self._emit_rows(rows, None, metadata, ident, pending)
            elif k:
                self._rows, self._times = rows.iloc[k:], times[k:]
                pending = self._emit_rows(rows.iloc[:k], k, metadata, ident, pending)
            else:
                self._rows, self._times = rows, times
        if ident is not None:
            held = self._origin_of
            if held is not None and (held == ident).any():
                retain_refs(metadata)  # rows of this chunk stay held
                self._origins[ident] = metadata  # type: ignore[assignment]
        if moved and self._listeners:
            pending.extend(call_watermark_listeners(self._listeners))
        return pending

    def _emit_rows(
        self,
        out: Any,
        k: int | None,
        metadata: Metadata | None,
        ident: int | None,
        pending: list[Any],
    ) -> list[Any]:
        """Emit ``out``, the first ``k`` rows held (``None``: all), with the metadata of
        its rows' chunks; release the refs of the chunks none of whose rows is held any
        more once downstream is done."""
        origin_of = self._origin_of
        if origin_of is None:
            more = self._emit(out, metadata=metadata)
            return pending + more if more else pending
        released = origin_of if k is None else origin_of[:k]
        remaining = None if k is None else origin_of[k:]
        if remaining is not None and not (remaining >= 0).any():
            remaining = None
        self._origin_of = remaining
        meta: list[Any] = list(metadata or ())
        done: list[Any] = []
        for other in np.unique(released[released >= 0]).tolist():
            if other == ident:
                continue
            held = self._origins[other]
            meta.extend(held)
            if remaining is None or not (remaining == other).any():
                del self._origins[other]
                done.extend(held)
        try:
            more = self._emit(out, metadata=meta or None)
        except BaseException as e:
            release_refs(done, error=e)
            raise
        if done:
            if more:
                more = [release_refs_after(more, done)]
            else:
                release_refs(done)
        return pending + more if more else pending

    def _late(
        self, rows: Any, times: np.ndarray, emitted: float, metadata: Metadata | None
    ) -> list[Any]:
        """Apply the late policy to ``rows``, older than ``emitted``, the watermark passed
        on before their chunk."""
        n = len(times)
        self.late_count += n
        policy = self.late_policy
        if policy == "drop":
            self.dropped_count += n
            return []
        if policy == "update" and self.allowed_lateness != _INF:
            within = times >= emitted - self.allowed_lateness
            if not within.all():
                self.dropped_count += int((~within).sum())
                if not within.any():
                    return []
                rows, times = rows.take(np.flatnonzero(within)), times[within]
        rows = _sorted(rows, times)
        target = self.late if policy == "side" else self
        return list(target._emit(rows, metadata=metadata) or ())

    # -- idle partitions ---------------------------------------------------------------
    def _on_idle(self) -> list[Any]:
        """The :class:`~millstream.time.IdleTimer` fired: a partition may have gone idle;
        pass on the rows the watermark now passes (what downstream returns counts as in
        hand for a checkpoint until it is absorbed)."""
        if self.tracker.watermark > self._emitted:
            return self._release(self.tracker.watermark, [], None)
        return []

    # -- state -------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """``{'rows', 'index_name', 'tracker', 'watermark', 'late_count', 'dropped_count'}``:
        the rows held (plain data, :mod:`.plain`; ``None`` when none), the watermark
        tracker's state, the watermark passed on and the counters. Refs are not kept."""
        rows = self._rows
        if rows is not None and not isinstance(rows, (pd.DataFrame, pd.Series)):
            rows = rows.to_pandas()
        return {
            "rows": None if rows is None else to_plain(rows),
            "index_name": None if rows is None else rows.index.name,
            "tracker": self.tracker.snapshot(),
            "watermark": self._emitted,
            "late_count": self.late_count,
            "dropped_count": self.dropped_count,
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Load a :meth:`snapshot` (checked first: a
        :class:`~millstream.exceptions.StateError` leaves the stage as it was). The refs
        of the rows held before are released, marked failed."""
        expect_fields(
            self,
            state,
            {
                "rows": None,
                "index_name": None,
                "tracker": dict,
                "watermark": NUMBER,
                "late_count": COUNT,
                "dropped_count": COUNT,
            },
        )
        try:
            rows = from_plain(state["rows"])
        except (TypeError, ValueError, KeyError) as e:
            raise bad_state(self, state, f"field 'rows' must be rows of a frame: {e}") from e
        if rows is not None and not isinstance(rows, (pd.DataFrame, pd.Series)):
            raise bad_state(self, state, "field 'rows' must be rows of a frame or None")
        times = np.empty(0)
        if rows is not None:
            rows.index.name = state["index_name"]
            try:
                times = event_times(rows.index if self.on is None else rows[self.on])
            except (TypeError, ValueError, KeyError) as e:
                raise bad_state(self, state, f"bad event times in 'rows': {e}") from e
            if self.example is not None and get_dataframe_package(self.example) is not pd:
                rows = get_dataframe_package(self.example).from_pandas(rows)
        tracker = WatermarkTracker(self.max_out_of_orderness, self.idle_timeout, self.clock)
        tracker.restore(state["tracker"], owner=self)
        error = RuntimeError(f"{self}: rows discarded by restore()")
        for metadata in self._origins.values():
            release_refs(metadata, error=error)
        self._origins, self._origin_of = {}, None
        self.tracker = tracker
        self._rows, self._times = rows, times
        self._emitted = float(state["watermark"])
        self.late_count = state["late_count"]
        self.dropped_count = state["dropped_count"]
        self._idle_timer.cancel()
        if self.idle_timeout is not None:
            self._idle_timer.arm_from_any_thread()

    def __str__(self) -> str:
        on = "index" if self.on is None else repr(self.on)
        return f"<with_timestamps: on={on}, late={self.late_policy!r}>"


def _duration(name: str, value: Any) -> float:
    try:
        seconds = convert_interval(value)
    except (TypeError, ValueError) as e:
        raise type(e)(f"with_timestamps: bad {name} {short_repr(value)}: {e}") from None
    if not seconds >= 0:
        raise ValueError(f"with_timestamps: {name} must not be negative, got {short_repr(value)}")
    return seconds


def _check_columns(example: Any, on: Hashable | None, partition: Hashable | None) -> None:
    columns = getattr(example, "columns", None)
    for name, column in (("on", on), ("partition", partition)):
        if column is None:
            continue
        if columns is None:
            raise TypeError(
                f"with_timestamps: {name}={column!r} names a column, but the chunks are "
                f"{type(example).__name__}s (use the index)"
            )
        if column not in columns:
            raise KeyError(
                f"with_timestamps: {name}={column!r} is not a column; columns: {list(columns)}"
            )


def with_timestamps(
    frame: Any,
    on: Hashable | None = None,
    max_out_of_orderness: Any = 0,
    allowed_lateness: Any = None,
    late: str = "drop",
    partition: Hashable | None = None,
    partitions: Iterable[Hashable] | None = None,
    idle_timeout: Any = None,
    clock: Clock | None = None,
) -> Any:
    """``frame.with_timestamps(...)``: the streaming frame of ``frame``'s rows in event
    time order (see :meth:`millstream.dataframe.Frame.with_timestamps`). The result's
    ``stage`` (and ``stream``) is the :class:`EventTimeOrder` stage; its ``late``
    attribute the streaming frame of late rows (``late='side'``). On a Dask stream the
    stage runs on this machine: the chunks are gathered before it and its output is
    scattered back (``stream`` is then that ``scatter`` node)."""
    example = frame.example
    if not hasattr(example, "index"):
        raise TypeError(
            "with_timestamps: needs DataFrame or Series chunks (rows with an index), got "
            f"{type(example).__name__} chunks"
        )
    stream = frame.stream
    on_dask = _is_dask_stream(stream)
    if on_dask:  # the stage orders the rows here: gathered, then scattered back
        stream = stream.gather()
    node = EventTimeOrder(
        stream,
        on=on,
        max_out_of_orderness=max_out_of_orderness,
        allowed_lateness=allowed_lateness,
        late=late,
        partition=partition,
        partitions=partitions,
        idle_timeout=idle_timeout,
        clock=clock,
        example=example,
    )
    cls = get_stream_type(example, "streaming")
    if cls is None:  # pragma: no cover - frames are registered
        raise TypeError(f"with_timestamps: no streaming frame type for {type(example).__name__}")
    if on_dask:
        from ..dask import scatter

        result = cls(scatter(node), example)
        result.late = cls(scatter(node.late), example)  # type: ignore[attr-defined]
    else:
        result = cls(node, example)
        result.late = cls(node.late, example)  # type: ignore[attr-defined]
    result.stage = node  # type: ignore[attr-defined]
    return result
