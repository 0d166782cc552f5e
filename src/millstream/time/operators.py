"""The ``window`` node: windowed aggregations on event time, counts or triggers.

``stream.window(assigner, agg)`` groups elements into the windows of ``assigner``
(:mod:`millstream.time.windows`), per key if ``key=`` is given, folds their values with
``agg`` (:mod:`millstream.time.aggregations`) and emits one
:class:`WindowResult` ``(key, window, value, kind)`` per window and key.

Event-time windows close on the **watermark**: the one of the nearest
``with_timestamps`` nodes upstream (the node registers a listener on each and uses the
smallest of their watermarks), or, without one, its own
:class:`~millstream.time.watermarks.WatermarkTracker` fed with the timestamps it sees
(``max_out_of_orderness=``). A window ``w`` closes, and emits its ``'final'`` result, once
``watermark >= w.end + allowed_lateness``. Closed windows' state is freed (kept for
``update_for`` with ``late='update'``).

State layout, chosen for a short per-element path: time windows live in a dict
``bucket number -> {key: accumulator}`` with a heap of open bucket numbers; sessions in
a dict ``key -> [open sessions]`` with a heap of closing times; count and global windows
in a dict per key. The metadata of held elements (whose refs the node retains until the
window's result has been emitted and downstream is done) and the per-window element
counts used by ``early=`` are kept in separate dicts, touched only when used.
"""

from __future__ import annotations

import asyncio
import copy
import heapq
import math
import operator
from collections.abc import Callable
from typing import Any, NamedTuple

from .._utils import annotate_error, check_positive_int, convert_interval, short_repr
from ..core.loop import in_loop_thread, sync
from ..core.refs import release_refs, retain_refs
from ..core.stream import Stream, run_awaitables
from .aggregations import Count, Sum, as_aggregation
from .watermarks import WatermarkTracker, to_timestamp, watermark_sources
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

__all__ = ["WindowResult", "window"]

Metadata = list[dict[str, Any]]

_MISSING: Any = object()
_INF = math.inf
_LATE_POLICIES = ("drop", "side", "update")


class WindowResult(NamedTuple):
    """What the ``window`` node emits: the result of one window of one key.

    ``kind`` is ``'final'`` (the window closed), ``'early'`` (a result while it is still
    open, with ``early=``) or ``'update'`` (a corrected result after late data, with
    ``late='update'``; it replaces the earlier result of the same key and window).

    Examples
    --------
    >>> r = WindowResult('a', Window(0, 10), 3, 'final')
    >>> r.key, r.window.end, r.value, r.kind
    ('a', 10, 3, 'final')
    """

    key: Any
    window: Window
    value: Any
    kind: str


class _Session:
    """One open (or kept) session window of one key."""

    __slots__ = ("acc", "alive", "count", "end", "held", "key", "next_early", "start")

    def __init__(self, key: Any, start: float, end: float, acc: Any):
        self.key, self.start, self.end, self.acc = key, start, end, acc
        self.count = 0
        self.held: Metadata | None = None
        self.alive = True
        self.next_early = 0


class _CountWindow:
    """One open count window (or the global window) of one key."""

    __slots__ = ("acc", "count", "held", "start")

    def __init__(self, start: int, acc: Any):
        self.start, self.acc, self.count = start, acc, 0
        self.held: Metadata | None = None


def _no_timestamp(x: Any) -> Any:
    raise TypeError("window: count and global windows read no timestamp")


def _getter(name: str, arg: Any) -> Callable[[Any], Any] | None:
    """``None``, a callable, or a hashable index into each element (``x[arg]``)."""
    if arg is None or callable(arg):
        return arg
    try:
        hash(arg)
    except TypeError:
        raise TypeError(
            f"window: {name} must be callable or a hashable index into each element, "
            f"got {short_repr(arg)}"
        ) from None
    return operator.itemgetter(arg)


def _duration(name: str, value: Any, allow_inf: bool = False) -> float:
    if isinstance(value, bool):
        raise TypeError(f"window: {name} must be a number or a duration, got {value!r}")
    if allow_inf and isinstance(value, float) and value == _INF:
        return value
    try:
        seconds = convert_interval(value)
    except (TypeError, ValueError) as e:
        raise type(e)(f"window: bad {name}: {e}") from None
    if not seconds >= 0 or (math.isinf(seconds) and not allow_inf):
        raise ValueError(f"window: {name} must be >= 0 and finite, got {short_repr(value)}")
    return value if isinstance(value, int) else seconds


async def _release_after(pending: list[Any], held: Metadata) -> None:
    try:
        if len(pending) == 1:
            await pending[0]
        else:
            await asyncio.gather(*pending)
    except BaseException as e:
        release_refs(held, error=e)
        raise
    release_refs(held)


@Stream.register_api()
class window(Stream):
    """Aggregate the elements of each window (per key), emitting a result when it closes.

    Parameters
    ----------
    assigner : WindowAssigner
        ``Tumbling(size)``, ``Sliding(size, slide)``, ``Session(gap)`` (event time),
        ``CountTumbling(n)``, ``CountSliding(n, slide)`` (element counts per key) or
        ``Global(trigger)``.
    agg : str or Aggregation
        ``'collect'`` (default), ``'sum'``, ``'count'``, ``'min'``, ``'max'``, ``'mean'``,
        ``Reduce(func)``, ``Fold(start, func, merge=None)`` or any object with
        ``create``/``add``/``result`` (and ``merge`` for sessions).
    key : callable or index, optional
        Window per key: ``key(x)`` (or ``x[key]``). Results carry the key (``None``
        without ``key=``).
    value : callable or index, optional
        What is aggregated: ``value(x)`` (or ``x[value]``); default the element.
    timestamp : callable or index, optional
        The event time of an element (a number, or a timezone-aware datetime). Default:
        the ``timestamp`` of the ``with_timestamps`` node upstream; pass it when a node in
        between changed the elements, or when several ``with_timestamps`` feed this node.
        Required without a ``with_timestamps`` upstream (event-time windows only).
    allowed_lateness : number or str
        A window closes when the watermark reaches ``end + allowed_lateness``; elements
        arriving until then are still added (default 0).
    late : {'drop', 'side', 'update'}
        What happens to an element whose window is closed (``window.end +
        allowed_lateness <= watermark`` before this element was seen; for sessions: an
        element that would only join or create closed sessions). ``'drop'``: counted in
        :attr:`late_count` and :attr:`dropped_count`, its refs released at once.
        ``'side'``: ``(window, element)`` is emitted on :attr:`late`, a stream you can
        connect like any other (``node.late.sink_to_list()``), with the element's
        metadata, once per closed window it belongs to. ``'update'``: the closed window's
        state is kept for ``update_for`` more (event time) after it fired; the element
        is added and a ``'update'`` result with the corrected value is emitted (with the
        element's metadata). Late elements are counted in :attr:`late_count` whatever
        the policy; once per closed window they belong to (so an element of a sliding
        window can count more than once, and can be late for one of its windows and on
        time for another).
    early : int, optional
        Also emit an ``'early'`` result of a window each time it has received another
        ``early`` elements (without metadata).
    max_out_of_orderness : number or str
        Without a ``with_timestamps`` upstream: the node's watermark is the largest
        timestamp seen minus this bound. (With one, set it on ``with_timestamps``.)
    update_for : number or str
        With ``late='update'``: how long (event time, past ``end + allowed_lateness``) a
        fired window's state is kept for updates. Default ``inf``: forever, so memory grows
        with the number of windows fired: set a bound for unbounded streams. A late
        element past it is dropped (counted in :attr:`dropped_count`).

    Results are emitted in order of window end, then of key in first-seen order (a key
    whose windows have all closed is new when it comes back). A final result carries the
    metadata of all the elements of its window, whose refs the node holds until that
    result has been emitted and downstream is done with it.

    Count windows (``CountTumbling``, ``CountSliding``) fire when they hold ``n``
    elements, ``Global`` windows when their trigger says so; neither uses timestamps
    or lateness. :meth:`flush` (or the end of the input of a ``with_timestamps``
    upstream, which moves the watermark to ``+inf``) fires every open window, complete
    or not.

    Examples
    --------
    Tumbling windows of 10 time units, keyed, summing; the node keeps its own watermark
    (no ``with_timestamps`` upstream):

    >>> from millstream import Stream
    >>> from millstream.time import Tumbling
    >>> source = Stream()
    >>> node = source.window(Tumbling(10), 'sum', key=lambda e: e[0], value=lambda e: e[2],
    ...                      timestamp=lambda e: e[1])
    >>> L = node.sink_to_list()
    >>> for event in [('a', 1, 5), ('b', 3, 1), ('a', 9, 2), ('a', 12, 7), ('b', 25, 1)]:
    ...     source.emit(event)
    >>> for r in L:
    ...     print(r)
    WindowResult(key='a', window=Window(start=0, end=10), value=7, kind='final')
    WindowResult(key='b', window=Window(start=0, end=10), value=1, kind='final')
    WindowResult(key='a', window=Window(start=10, end=20), value=7, kind='final')
    >>> node.watermark
    25.0
    >>> source.emit(('a', 8, 100))  # window [0, 10) closed: late, dropped
    >>> node.late_count
    1
    >>> node.flush()
    >>> L[-1]
    WindowResult(key='b', window=Window(start=20, end=30), value=1, kind='final')

    Late data on a side stream:

    >>> source = Stream()
    >>> node = source.window(Tumbling(10), 'count', timestamp=lambda t: t, late='side')
    >>> late = node.late.sink_to_list()
    >>> for t in [1, 15, 3]:
    ...     source.emit(t)
    >>> late
    [(Window(start=0, end=10), 3)]
    """

    _graphviz_shape = "octagon"
    str_list = ["assigner", "agg"]

    def __init__(
        self,
        upstream: Stream,
        assigner: WindowAssigner,
        agg: Any = "collect",
        *,
        key: Any = None,
        value: Any = None,
        timestamp: Any = None,
        allowed_lateness: Any = 0,
        late: str = "drop",
        early: int | None = None,
        max_out_of_orderness: Any = 0,
        update_for: Any = _INF,
        **kwargs: Any,
    ):
        if isinstance(assigner, type) and issubclass(assigner, WindowAssigner):
            raise TypeError(
                f"window: assigner must be an instance, got the class {assigner.__name__}; "
                f"write e.g. {assigner.__name__}(...)"
            )
        if not isinstance(assigner, WindowAssigner):
            raise TypeError(
                "window: assigner must be a window assigner (Tumbling, Sliding, Session, "
                f"CountTumbling, CountSliding, Global), got {short_repr(assigner)}"
            )
        self.assigner = assigner
        self.agg = agg = as_aggregation(agg, "window")
        kind = assigner.kind
        self._kind = kind
        if kind == "session" and not getattr(
            agg, "mergeable", callable(getattr(agg, "merge", None))
        ):
            raise ValueError(
                f"window: agg {agg!r} cannot merge accumulators, which Session windows need; "
                "give it a merge (e.g. Fold(start, func, merge=...))"
            )
        self._key = _getter("key", key)
        self._value = _getter("value", value)
        user_timestamp = _getter("timestamp", timestamp)
        if late not in _LATE_POLICIES:
            raise ValueError(
                f"window: late must be 'drop', 'side' or 'update', got {short_repr(late)}"
            )
        self.late_policy = late
        self.allowed_lateness = _duration("allowed_lateness", allowed_lateness)
        self.update_for = _duration("update_for", update_for, allow_inf=True)
        self.max_out_of_orderness = _duration("max_out_of_orderness", max_out_of_orderness)
        self.early = None if early is None else check_positive_int("window", "early", early)
        if kind in ("count", "global"):
            for name, given in [
                ("timestamp", timestamp is not None),
                ("allowed_lateness", self.allowed_lateness != 0),
                ("late", late != "drop"),
                ("max_out_of_orderness", self.max_out_of_orderness != 0),
                ("update_for", self.update_for != _INF),
            ]:
                if given:
                    raise ValueError(
                        f"window: {name} has no meaning for {assigner!r} windows, "
                        "which do not use event time"
                    )
        elif update_for != _INF and late != "update":
            raise ValueError("window: update_for needs late='update'")

        Stream.__init__(self, upstream, **kwargs)
        self.late: Stream = Stream(stream_name="late", loop=self.loop)
        """Late elements as ``(window, element)`` pairs, with ``late='side'``."""
        self.late_count = 0
        self.dropped_count = 0

        # -- watermark: the with_timestamps nodes upstream, or our own tracker ----------
        sources = watermark_sources(upstream) if upstream is not None else []
        self._sources = sources
        self._tracker: WatermarkTracker | None = None
        self._wm: float = -_INF
        self._max_ts: float = -_INF
        self._timestamp: Callable[[Any], Any] = _no_timestamp
        self._convert = True
        if kind in ("time", "session"):
            if sources:
                if self.max_out_of_orderness:
                    raise ValueError(
                        "window: max_out_of_orderness is for a window without a "
                        "with_timestamps upstream; set it on with_timestamps"
                    )
                if user_timestamp is None:
                    if len(sources) > 1:
                        raise TypeError(
                            f"window: {len(sources)} with_timestamps nodes feed this window; "
                            "pass timestamp= to say how to read an element's time"
                        )
                    self._timestamp = sources[0].timestamp_of
                    self._convert = False
                else:
                    self._timestamp, self._convert = user_timestamp, True
            else:
                if user_timestamp is None:
                    raise TypeError(
                        "window: timestamp= is required for event-time windows without a "
                        "with_timestamps node upstream"
                    )
                self._timestamp, self._convert = user_timestamp, True
                self._tracker = WatermarkTracker(self.max_out_of_orderness)
        for source in sources:
            source.add_watermark_listener(self._on_watermark)

        # -- aggregation functions --------------------------------------------------------
        self._create = agg.create
        self._add = agg.add
        self._merge = getattr(agg, "merge", None)
        self._result = agg.result
        self._agg_func = getattr(agg, "func", None)
        add_fn: Callable[[Any, Any], Any] | None = None
        if type(agg) is Sum:
            add_fn = operator.add
        self._fast_add = add_fn
        self._result_is_identity = type(agg) in (Sum, Count)

        # -- state ----------------------------------------------------------------------
        self._ranks: dict[Any, list[int]] = {}  # key -> [first-seen rank, open windows]
        self._rank_seq = 0
        self._held: dict[Any, dict[Any, Metadata]] = {}
        self._counts: dict[Any, dict[Any, int]] = {}
        self._next_close = _INF  # watermark at which the next window closes
        self._next_purge = _INF  # watermark at which the next kept window expires
        self._keep = late == "update"
        lateness = self.allowed_lateness
        if kind == "time":
            if isinstance(assigner, Tumbling):
                self._step, size = assigner.size, assigner.size
            else:
                assert isinstance(assigner, Sliding)
                self._step, size = assigner.slide, assigner.size
            self._offset = assigner.offset
            self._size = size
            # bucket k closes when k * step + close_base <= watermark
            self._close_base = assigner.offset + size + lateness
            self._open: dict[Any, dict[Any, Any]] = {}
            self._heap: list[Any] = []
            self._kept: dict[Any, dict[Any, Any]] = {}
            self._kept_heap: list[Any] = []
            if isinstance(assigner, Tumbling) and self.early is None:
                self.update = self._update_tumbling  # type: ignore[method-assign]
            else:
                self.update = self._update_time  # type: ignore[method-assign]
        elif kind == "session":
            assert isinstance(assigner, Session)
            self._gap = assigner.gap
            self._sessions: dict[Any, list[_Session]] = {}
            self._session_heap: list[tuple[float, int, _Session]] = []
            self._kept_sessions: dict[Any, list[_Session]] = {}
            self._kept_session_heap: list[tuple[float, int, _Session]] = []
            self._seq = 0
            self.update = self._update_session  # type: ignore[method-assign]
        else:
            self._windows: dict[Any, Any] = {}  # key -> _CountWindow or list of them
            self._positions: dict[Any, int] = {}  # CountSliding: key -> next position
            if isinstance(assigner, CountTumbling):
                self.update = self._update_count_tumbling  # type: ignore[method-assign]
            elif isinstance(assigner, CountSliding):
                self.update = self._update_count_sliding  # type: ignore[method-assign]
            else:
                assert isinstance(assigner, Global)
                self.update = self._update_global  # type: ignore[method-assign]

    # -- public --------------------------------------------------------------------------
    @property
    def watermark(self) -> float:
        """The event time up to which this node considers its input complete."""
        return self._wm

    def flush(self, _: Any = None) -> Any:
        """End of input: fire every open window (complete or not), as ``'final'`` results.

        The node's watermark becomes ``+inf``, so later elements of event-time windows are
        late (count and global windows simply start again). Returns ``None``, or, when
        downstream gave back awaitables and an event loop runs in this thread, a task
        finishing with them. Called from another thread than the graph's running loop,
        it runs on the loop and blocks until downstream is done.
        """
        loop = self.loop
        if loop is not None and not in_loop_thread(loop):
            asyncio_loop = getattr(loop, "asyncio_loop", None)
            if asyncio_loop is not None and asyncio_loop.is_running():

                async def flush_on_loop() -> None:
                    pending = self._advance(_INF)
                    if pending:
                        await asyncio.gather(*pending)

                sync(loop, flush_on_loop)
                return None
        pending = self._advance(_INF)
        if not pending:
            return None
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            run_awaitables(pending)
            return None
        return asyncio.ensure_future(asyncio.gather(*pending))

    # -- helpers -------------------------------------------------------------------------
    def _timestamp_of(self, x: Any) -> Any:
        func = self._timestamp
        try:
            ts = func(x)
        except Exception as e:
            annotate_error(e, self, func, x)
            raise
        if self._convert and type(ts) is not float and type(ts) is not int:
            ts = to_timestamp(ts, self, x)
        if ts != ts:
            error = ValueError(f"window: timestamp is NaN for element {short_repr(x)}")
            annotate_error(error, self, func, x)
            raise error
        return ts

    def _key_of(self, x: Any) -> Any:
        func = self._key
        if func is None:
            return None
        try:
            return func(x)
        except Exception as e:
            annotate_error(e, self, func, x)
            raise

    def _value_of(self, x: Any) -> Any:
        func = self._value
        if func is None:
            return x
        try:
            return func(x)
        except Exception as e:
            annotate_error(e, self, func, x)
            raise

    def _fold(self, acc: Any, v: Any, x: Any) -> Any:
        try:
            return self._add(acc, v)
        except Exception as e:
            annotate_error(e, self, self._agg_func, x)
            raise

    def _value_for(self, acc: Any) -> Any:
        try:
            return self._result(acc)
        except Exception as e:
            annotate_error(e, self, self._agg_func, acc, what="accumulator")
            raise

    def _merge_accs(self, a: Any, b: Any, x: Any) -> Any:
        try:
            return self._merge(a, b)  # type: ignore[misc]
        except Exception as e:
            annotate_error(e, self, self._agg_func, x)
            raise

    def _open_key(self, key: Any) -> None:
        """``key`` gets one more open window (a rank the first time)."""
        r = self._ranks.get(key)
        if r is None:
            self._ranks[key] = [self._rank_seq, 1]
            self._rank_seq += 1
        else:
            r[1] += 1

    def _close_key(self, key: Any) -> None:
        r = self._ranks.get(key)
        if r is not None:
            r[1] -= 1
            if r[1] <= 0:
                del self._ranks[key]

    def _rank(self, key: Any) -> int:
        r = self._ranks.get(key)
        return r[0] if r is not None else self._rank_seq

    def _hold(self, store: dict[Any, dict[Any, Metadata]], w: Any, key: Any, md: Metadata) -> None:
        retain_refs(md)
        per_window = store.get(w)
        if per_window is None:
            per_window = store[w] = {}
        held = per_window.get(key)
        if held is None:
            per_window[key] = list(md)
        else:
            held.extend(md)

    def _emit_final(self, result: WindowResult, held: Metadata | None) -> list[Any]:
        """Emit ``result`` with the metadata the node held; release it once downstream is done."""
        try:
            pending = self._emit(result, metadata=held)
        except BaseException as e:
            release_refs(held, error=e)
            raise
        if held:
            if pending:
                return [_release_after(pending, held)]
            release_refs(held)
        return pending

    def _emit_early(self, key: Any, w: Window, acc: Any) -> list[Any]:
        return self._emit(WindowResult(key, w, self._value_for(acc), "early"))

    def _observe(self, ts: float) -> list[Any]:
        """Own watermark: feed a new largest timestamp; fire what closed."""
        self._max_ts = ts
        tracker = self._tracker
        assert tracker is not None
        tracker.observe(ts)
        wm = tracker.watermark
        if wm > self._wm:
            if wm >= self._next_close or wm >= self._next_purge:
                return self._advance(wm)
            self._wm = wm
        return []

    def _on_watermark(self) -> list[Any] | None:
        """Listener of the with_timestamps nodes upstream."""
        sources = self._sources
        wm = sources[0].watermark if len(sources) == 1 else min(s.watermark for s in sources)
        if wm > self._wm:
            return self._advance(wm)
        return None

    def _advance(self, wm: float) -> list[Any]:
        """Move the watermark to ``wm`` (if later) and fire every window that closed."""
        if wm > self._wm:
            self._wm = wm
        wm = self._wm
        kind = self._kind
        if kind == "time":
            pending = self._fire_time(wm) if wm >= self._next_close else []
            if wm >= self._next_purge:
                self._purge_time(wm)
        elif kind == "session":
            pending = self._fire_sessions(wm) if wm >= self._next_close else []
            if wm >= self._next_purge:
                self._purge_sessions(wm)
        else:
            pending = self._fire_counts() if wm == _INF else []
        return pending

    # -- tumbling and sliding windows -------------------------------------------------------
    def _window_of(self, k: Any) -> Window:
        start = k * self._step + self._offset
        return Window(start, start + self._size)

    def _update_tumbling(self, x: Any, who: Any = None, metadata: Metadata | None = None) -> Any:
        """Tumbling windows without ``early=``: the short path."""
        if metadata:
            return self._update_time(x, who, metadata)
        ts_func = self._timestamp
        try:
            ts = ts_func(x)
        except Exception as e:
            annotate_error(e, self, ts_func, x)
            raise
        if type(ts) is not float and type(ts) is not int:
            ts = to_timestamp(ts, self, x)
        func = self._key
        if func is None:
            key = None
        else:
            try:
                key = func(x)
            except Exception as e:
                annotate_error(e, self, func, x)
                raise
        func = self._value
        if func is None:
            v = x
        else:
            try:
                v = func(x)
            except Exception as e:
                annotate_error(e, self, func, x)
                raise
        step = self._step
        k = (ts - self._offset) // step
        if k * step + self._close_base <= self._wm:
            pending = self._late_time(k, key, v, x, metadata)
        else:
            bucket = self._open.get(k)
            if bucket is None:
                bucket = self._new_bucket(k)
            acc = bucket.get(key, _MISSING)
            if acc is _MISSING:
                self._open_key(key)
                acc = self._create()
            add = self._fast_add
            if add is not None:
                try:
                    bucket[key] = add(acc, v)
                except Exception as e:
                    annotate_error(e, self, None, x)
                    raise
            else:
                bucket[key] = self._fold(acc, v, x)
            pending = []
        if ts > self._max_ts and self._tracker is not None:
            return pending + self._observe(ts) if pending else self._observe(ts)
        return pending

    def _update_time(self, x: Any, who: Any = None, metadata: Metadata | None = None) -> Any:
        ts = self._timestamp_of(x)
        key = self._key_of(x)
        v = self._value_of(x)
        step, offset, base, wm = self._step, self._offset, self._close_base, self._wm
        k = (ts - offset) // step
        if self._size == step:
            ks = [k]
        else:  # sliding: every window k' <= k whose end is after ts
            ks = []
            size = self._size
            while k * step + offset + size > ts:
                ks.append(k)
                k -= 1
            ks.reverse()
        pending: list[Any] = []
        early = self.early
        for k in ks:
            if k * step + base <= wm:
                pending += self._late_time(k, key, v, x, metadata)
                continue
            bucket = self._open.get(k)
            if bucket is None:
                bucket = self._new_bucket(k)
            acc = bucket.get(key, _MISSING)
            if acc is _MISSING:
                self._open_key(key)
                acc = self._create()
            bucket[key] = acc = self._fold(acc, v, x)
            if metadata:
                self._hold(self._held, k, key, metadata)
            if early is not None:
                counts = self._counts.get(k)
                if counts is None:
                    counts = self._counts[k] = {}
                n = counts[key] = counts.get(key, 0) + 1
                if n % early == 0:
                    pending += self._emit_early(key, self._window_of(k), acc)
        if ts > self._max_ts and self._tracker is not None:
            pending += self._observe(ts)
        return pending

    def _new_bucket(self, k: Any) -> dict[Any, Any]:
        if k != k or k in (_INF, -_INF):
            raise ValueError(f"window: timestamp must be a finite number, window number is {k}")
        bucket: dict[Any, Any] = {}
        self._open[k] = bucket
        heapq.heappush(self._heap, k)
        close = k * self._step + self._close_base
        if close < self._next_close:
            self._next_close = close
        return bucket

    def _late_time(self, k: Any, key: Any, v: Any, x: Any, metadata: Metadata | None) -> list[Any]:
        self.late_count += 1
        policy = self.late_policy
        if policy == "drop":
            self.dropped_count += 1
            return []
        if policy == "side":
            return self.late._emit((self._window_of(k), x), metadata)
        close = k * self._step + self._close_base
        if close + self.update_for <= self._wm and self.update_for != _INF:
            self.dropped_count += 1
            return []
        kept = self._kept.get(k)
        if kept is None:
            kept = self._kept[k] = {}
            heapq.heappush(self._kept_heap, k)
            if close + self.update_for < self._next_purge:
                self._next_purge = close + self.update_for
        acc = kept.get(key, _MISSING)
        if acc is _MISSING:
            acc = self._create()
        kept[key] = acc = self._fold(acc, v, x)
        result = WindowResult(key, self._window_of(k), self._value_for(acc), "update")
        return self._emit(result, metadata)

    def _fire_time(self, wm: float) -> list[Any]:
        heap, open_, step, base = self._heap, self._open, self._step, self._close_base
        pending: list[Any] = []
        ranks = self._ranks
        keep = self._keep
        result_of = None if self._result_is_identity else self._value_for
        try:
            while heap and heap[0] * step + base <= wm:
                k = heap[0]
                bucket = open_[k]
                w = self._window_of(k)
                keys = list(bucket)
                if len(keys) > 1:
                    keys.sort(key=lambda key: ranks[key][0])
                held_bucket = self._held.get(k)
                if self.early is not None:
                    self._counts.pop(k, None)
                kept = None
                if keep:
                    kept = self._kept.get(k)
                    if kept is None:
                        kept = self._kept[k] = {}
                        heapq.heappush(self._kept_heap, k)
                        purge_at = k * step + base + self.update_for
                        if purge_at < self._next_purge:
                            self._next_purge = purge_at
                for key in keys:
                    acc = bucket.pop(key)
                    self._close_key(key)
                    held = held_bucket.pop(key, None) if held_bucket else None
                    if kept is not None:
                        kept[key] = acc
                    value = acc if result_of is None else result_of(acc)
                    result = WindowResult(key, w, value, "final")
                    more = self._emit(result) if held is None else self._emit_final(result, held)
                    if more:
                        pending += more
                heapq.heappop(heap)
                del open_[k]
                if held_bucket is not None:
                    del self._held[k]
        finally:
            self._next_close = heap[0] * step + base if heap else _INF
        return pending

    def _purge_time(self, wm: float) -> None:
        kept_heap, step, base, keep_for = (
            self._kept_heap,
            self._step,
            self._close_base,
            self.update_for,
        )
        while kept_heap and kept_heap[0] * step + base + keep_for <= wm and keep_for != _INF:
            del self._kept[heapq.heappop(kept_heap)]
        self._next_purge = (
            kept_heap[0] * step + base + keep_for if kept_heap and keep_for != _INF else _INF
        )

    # -- sessions --------------------------------------------------------------------------
    def _update_session(self, x: Any, who: Any = None, metadata: Metadata | None = None) -> Any:
        ts = self._timestamp_of(x)
        key = self._key_of(x)
        v = self._value_of(x)
        gap, lateness, wm = self._gap, self.allowed_lateness, self._wm
        end = ts + gap
        sessions = self._sessions.get(key)
        overlapping = (
            [s for s in sessions if s.start < end and ts < s.end] if sessions is not None else []
        )
        pending: list[Any] = []
        if not overlapping and end + lateness <= wm:
            pending += self._late_session(key, ts, end, v, x, metadata)
        else:
            if not overlapping:
                session = _Session(key, ts, end, self._create())
                if sessions is None:
                    sessions = self._sessions[key] = []
                sessions.append(session)
                self._open_key(key)
                self._schedule(session)
            else:
                overlapping.sort(key=lambda s: s.start)
                session = overlapping[0]
                old_end = session.end
                for other in overlapping[1:]:
                    session.acc = self._merge_accs(session.acc, other.acc, x)
                    session.count += other.count
                    if other.held:
                        if session.held is None:
                            session.held = []
                        session.held.extend(other.held)
                    session.end = max(session.end, other.end)
                    other.alive = False
                    assert sessions is not None
                    sessions.remove(other)
                    self._close_key(key)
                session.start = min(session.start, ts)
                session.end = max(session.end, end)
                if session.end != old_end:
                    self._schedule(session)
            session.acc = self._fold(session.acc, v, x)
            session.count += 1
            if metadata:
                retain_refs(metadata)
                if session.held is None:
                    session.held = list(metadata)
                else:
                    session.held.extend(metadata)
            early = self.early
            if early is not None and session.count >= session.next_early:
                session.next_early = (session.count // early + 1) * early
                if session.count >= early:
                    w = Window(session.start, session.end)
                    pending += self._emit_early(key, w, session.acc)
        if ts > self._max_ts and self._tracker is not None:
            pending += self._observe(ts)
        return pending

    def _schedule(self, session: _Session) -> None:
        close = session.end + self.allowed_lateness
        self._seq += 1
        heapq.heappush(self._session_heap, (close, self._seq, session))
        if close < self._next_close:
            self._next_close = close

    def _late_session(
        self, key: Any, ts: Any, end: Any, v: Any, x: Any, metadata: Metadata | None
    ) -> list[Any]:
        self.late_count += 1
        policy = self.late_policy
        if policy == "drop":
            self.dropped_count += 1
            return []
        if policy == "side":
            return self.late._emit((Window(ts, end), x), metadata)
        kept_list = self._kept_sessions.get(key)
        overlapping = [s for s in kept_list if s.start < end and ts < s.end] if kept_list else []
        keep_for = self.update_for
        if not overlapping:
            if end + self.allowed_lateness + keep_for <= self._wm and keep_for != _INF:
                self.dropped_count += 1
                return []
            session = _Session(key, ts, end, self._create())
            if kept_list is None:
                kept_list = self._kept_sessions[key] = []
            kept_list.append(session)
        else:
            overlapping.sort(key=lambda s: s.start)
            session = overlapping[0]
            for other in overlapping[1:]:
                session.acc = self._merge_accs(session.acc, other.acc, x)
                session.end = max(session.end, other.end)
                other.alive = False
                assert kept_list is not None
                kept_list.remove(other)
            session.start = min(session.start, ts)
            session.end = max(session.end, end)
        session.acc = self._fold(session.acc, v, x)
        self._keep_session(session)
        value = self._value_for(session.acc)
        return self._emit(
            WindowResult(key, Window(session.start, session.end), value, "update"), metadata
        )

    def _keep_session(self, session: _Session) -> None:
        if self.update_for == _INF:
            return
        expires = session.end + self.allowed_lateness + self.update_for
        self._seq += 1
        heapq.heappush(self._kept_session_heap, (expires, self._seq, session))
        if expires < self._next_purge:
            self._next_purge = expires

    def _fire_sessions(self, wm: float) -> list[Any]:
        heap = self._session_heap
        lateness = self.allowed_lateness
        due: list[_Session] = []
        while heap and heap[0][0] <= wm:
            close, _, session = heapq.heappop(heap)
            if session.alive and session.end + lateness == close:
                session.alive = False
                due.append(session)
        self._next_close = heap[0][0] if heap else _INF
        if len(due) > 1:
            due.sort(key=lambda s: (s.end, self._rank(s.key)))
        pending: list[Any] = []
        for i, session in enumerate(due):
            key = session.key
            sessions = self._sessions[key]
            sessions.remove(session)
            if not sessions:
                del self._sessions[key]
            self._close_key(key)
            held, session.held = session.held, None
            if self._keep:
                session.alive = True
                self._kept_sessions.setdefault(key, []).append(session)
                self._keep_session(session)
            result = WindowResult(
                key, Window(session.start, session.end), self._value_for(session.acc), "final"
            )
            try:
                pending += self._emit_final(result, held)
            except BaseException as e:
                for rest in due[i + 1 :]:  # give the others back their places
                    rest.alive = True
                    self._schedule(rest)
                raise e
        return pending

    def _purge_sessions(self, wm: float) -> None:
        heap = self._kept_session_heap
        while heap and heap[0][0] <= wm:
            expires, _, session = heapq.heappop(heap)
            if not session.alive:
                continue
            if session.end + self.allowed_lateness + self.update_for != expires:
                continue  # extended since: a later entry stands for it
            session.alive = False
            kept = self._kept_sessions.get(session.key)
            if kept is not None:
                kept.remove(session)
                if not kept:
                    del self._kept_sessions[session.key]
        self._next_purge = heap[0][0] if heap else _INF

    # -- count and global windows -----------------------------------------------------------
    def _add_to(self, win: _CountWindow, v: Any, x: Any, metadata: Metadata | None) -> None:
        win.acc = self._fold(win.acc, v, x)
        win.count += 1
        if metadata:
            retain_refs(metadata)
            if win.held is None:
                win.held = list(metadata)
            else:
                win.held.extend(metadata)

    def _update_count_tumbling(
        self, x: Any, who: Any = None, metadata: Metadata | None = None
    ) -> Any:
        key = self._key_of(x)
        v = self._value_of(x)
        windows = self._windows
        win = windows.get(key)
        if win is None:
            start = self._positions.pop(key, 0)
            win = windows[key] = _CountWindow(start, self._create())
            self._open_key(key)
        self._add_to(win, v, x, metadata)
        n = self.assigner.n  # type: ignore[attr-defined]
        if win.count >= n:
            del windows[key]
            self._positions[key] = win.start + n
            self._close_key(key)
            result = WindowResult(
                key, Window(win.start, win.start + n), self._value_for(win.acc), "final"
            )
            return self._emit_final(result, win.held)
        early = self.early
        if early is not None and win.count % early == 0:
            return self._emit_early(key, Window(win.start, win.start + n), win.acc)
        return None

    def _update_count_sliding(
        self, x: Any, who: Any = None, metadata: Metadata | None = None
    ) -> Any:
        key = self._key_of(x)
        v = self._value_of(x)
        assigner = self.assigner
        n, slide = assigner.n, assigner.slide  # type: ignore[attr-defined]
        position = self._positions.get(key, 0)
        self._positions[key] = position + 1
        open_ = self._windows.get(key)
        if position % slide == 0:
            if open_ is None:
                open_ = self._windows[key] = []
                self._open_key(key)
            open_.append(_CountWindow(position, self._create()))
        if not open_:
            return None
        pending: list[Any] = []
        early = self.early
        for win in open_:
            self._add_to(win, v, x, metadata)
            if early is not None and win.count % early == 0 and win.count < n:
                pending += self._emit_early(key, Window(win.start, win.start + n), win.acc)
        first = open_[0]
        if first.count >= n:
            del open_[0]
            if not open_:
                del self._windows[key]
                self._close_key(key)
            result = WindowResult(
                key, Window(first.start, first.start + n), self._value_for(first.acc), "final"
            )
            pending += self._emit_final(result, first.held)
        return pending

    def _update_global(self, x: Any, who: Any = None, metadata: Metadata | None = None) -> Any:
        key = self._key_of(x)
        v = self._value_of(x)
        windows = self._windows
        win = windows.get(key)
        if win is None:
            win = windows[key] = _CountWindow(0, self._create())
            self._open_key(key)
        self._add_to(win, v, x, metadata)
        assigner = self.assigner
        trigger = assigner.trigger  # type: ignore[attr-defined]
        if isinstance(trigger, int):
            fire = win.count % trigger == 0
        else:
            try:
                fire = trigger(win.count, win.acc)
            except Exception as e:
                annotate_error(e, self, trigger, x)
                raise
        early = self.early
        if fire and assigner.purge:  # type: ignore[attr-defined]
            del windows[key]
            self._close_key(key)
            result = WindowResult(key, GLOBAL_WINDOW, self._value_for(win.acc), "final")
            return self._emit_final(result, win.held)
        if fire or (early is not None and win.count % early == 0):
            return self._emit_early(key, GLOBAL_WINDOW, win.acc)
        return None

    def _fire_counts(self) -> list[Any]:
        """Fire every open count or global window (end of input)."""
        due: list[tuple[Any, _CountWindow]] = []
        for key, entry in self._windows.items():
            for win in entry if isinstance(entry, list) else [entry]:
                due.append((key, win))
        is_global = self._kind == "global"

        def window_of(win: _CountWindow) -> Window:
            return GLOBAL_WINDOW if is_global else Window(win.start, win.start + win.count)

        due.sort(key=lambda item: (window_of(item[1]).end, self._rank(item[0])))
        pending: list[Any] = []
        tumbling = isinstance(self.assigner, CountTumbling)
        for key, win in due:
            entry = self._windows[key]
            if isinstance(entry, list):
                entry.remove(win)
            if not isinstance(entry, list) or not entry:
                del self._windows[key]
                self._close_key(key)
            if tumbling:
                self._positions[key] = win.start + win.count
            result = WindowResult(key, window_of(win), self._value_for(win.acc), "final")
            pending += self._emit_final(result, win.held)
        return pending

    # -- state -------------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """Open windows, windows kept for updates, the watermark and the counters.

        Plain data (deep-copied): ``{'kind', 'watermark', 'max_ts', 'tracker',
        'late_count', 'dropped_count', 'keys', 'open', 'kept', 'positions'}``; ``keys``
        lists the keys with open windows in first-seen order.
        """
        kind = self._kind
        open_: list[Any] = []
        kept: list[Any] = []
        if kind == "time":
            for k, bucket in self._open.items():
                counts = self._counts.get(k, {})
                for key, acc in bucket.items():
                    open_.append((k, key, acc, counts.get(key, 0)))
            for k, bucket in self._kept.items():
                for key, acc in bucket.items():
                    kept.append((k, key, acc))
        elif kind == "session":
            for key, sessions in self._sessions.items():
                for s in sessions:
                    open_.append((key, s.start, s.end, s.acc, s.count, s.next_early))
            for key, sessions in self._kept_sessions.items():
                for s in sessions:
                    kept.append((key, s.start, s.end, s.acc))
        else:
            for key, entry in self._windows.items():
                for win in entry if isinstance(entry, list) else [entry]:
                    open_.append((key, win.start, win.acc, win.count))
        state = {
            "kind": kind,
            "watermark": self._wm,
            "max_ts": self._max_ts,
            "tracker": self._tracker.snapshot() if self._tracker is not None else None,
            "late_count": self.late_count,
            "dropped_count": self.dropped_count,
            "keys": sorted(self._ranks, key=self._rank),
            "open": open_,
            "kept": kept,
            "positions": dict(self._positions) if kind in ("count", "global") else {},
        }
        return copy.deepcopy(state)

    def restore(self, state: dict[str, Any]) -> None:
        """Load a :meth:`snapshot`; refs held for the elements of the current windows are
        released (marked failed: those elements are discarded)."""
        if state.get("kind") != self._kind:
            raise ValueError(
                f"window: cannot restore a snapshot of {state.get('kind')!r} windows into "
                f"{self.assigner!r} windows"
            )
        state = copy.deepcopy(state)
        self._discard_held()
        self._wm = state["watermark"]
        self._max_ts = state["max_ts"]
        if self._tracker is not None and state["tracker"] is not None:
            self._tracker.restore(state["tracker"])
        self.late_count = state["late_count"]
        self.dropped_count = state["dropped_count"]
        self._ranks.clear()
        self._rank_seq = 0
        for key in state["keys"]:
            self._ranks[key] = [self._rank_seq, 0]
            self._rank_seq += 1
        self._held.clear()
        self._counts.clear()
        self._next_close = self._next_purge = _INF
        kind = self._kind
        if kind == "time":
            self._open.clear()
            self._heap.clear()
            self._kept.clear()
            self._kept_heap.clear()
            for k, key, acc, count in state["open"]:
                bucket = self._open.get(k)
                if bucket is None:
                    bucket = self._new_bucket(k)
                bucket[key] = acc
                self._open_key(key)
                if self.early is not None:
                    self._counts.setdefault(k, {})[key] = count
            step, base, keep_for = self._step, self._close_base, self.update_for
            for k, key, acc in state["kept"]:
                bucket = self._kept.get(k)
                if bucket is None:
                    bucket = self._kept[k] = {}
                    heapq.heappush(self._kept_heap, k)
                    if keep_for != _INF:
                        self._next_purge = min(self._next_purge, k * step + base + keep_for)
                bucket[key] = acc
        elif kind == "session":
            self._sessions.clear()
            self._session_heap.clear()
            self._kept_sessions.clear()
            self._kept_session_heap.clear()
            for key, start, end, acc, count, next_early in state["open"]:
                s = _Session(key, start, end, acc)
                s.count, s.next_early = count, next_early
                self._sessions.setdefault(key, []).append(s)
                self._open_key(key)
                self._schedule(s)
            for key, start, end, acc in state["kept"]:
                s = _Session(key, start, end, acc)
                self._kept_sessions.setdefault(key, []).append(s)
                self._keep_session(s)
        else:
            self._windows.clear()
            self._positions.clear()
            self._positions.update(state["positions"])
            sliding = isinstance(self.assigner, CountSliding)
            for key, start, acc, count in state["open"]:
                win = _CountWindow(start, acc)
                win.count = count
                if sliding:
                    if key not in self._windows:
                        self._windows[key] = []
                        self._open_key(key)
                    self._windows[key].append(win)
                else:
                    self._windows[key] = win
                    self._open_key(key)
        for key in list(self._ranks):
            if self._ranks[key][1] <= 0:
                del self._ranks[key]

    def _discard_held(self) -> None:
        error = RuntimeError(f"{self}: element discarded by restore()")
        for per_window in self._held.values():
            for held in per_window.values():
                release_refs(held, error=error)
        if self._kind == "session":
            for sessions in self._sessions.values():
                for s in sessions:
                    release_refs(s.held, error=error)
        elif self._kind in ("count", "global"):
            for entry in self._windows.values():
                for win in entry if isinstance(entry, list) else [entry]:
                    release_refs(win.held, error=error)
