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

The node keeps what every assigner shares: its arguments, the reading of each
element's timestamp, key and value, the watermark and its listeners, the first-seen
order of keys, the late policies, the emission of results (holding the refs of their
elements' metadata until downstream is done) and the framing of
:meth:`~window.snapshot`. Each family of assigners keeps its windows in a store, chosen
when the node is built, that works through the narrow contract of
:mod:`millstream.time._store` (it gets the aggregation, the key order and a way to hand
results back; the node alone emits):

* :class:`~millstream.time._buckets.TimeBuckets` (``Tumbling``, ``Sliding``): a dict
  ``bucket number -> {key: accumulator}`` with a heap of open bucket numbers
  (:class:`~millstream.time._buckets.TumblingBuckets`: the short path of ``Tumbling``);
* :class:`~millstream.time._sessions.SessionWindows` (``Session``): a dict
  ``key -> [open sessions]`` with a heap of closing times;
* :class:`~millstream.time._counts.CountWindows` (``CountTumbling``, ``CountSliding``,
  ``Global``): a dict per key.
"""

from __future__ import annotations

import dataclasses
import math
import operator
from collections.abc import Callable, Mapping
from typing import Any

from .._utils import annotate_error, check_positive_int, convert_interval, short_repr
from ..core.awaitables import push_from_outside, release_refs_after
from ..core.fusion import Stage
from ..core.refs import Metadata, release_refs
from ..core.state import (
    COUNT,
    IMMUTABLE,
    NUMBER,
    SEQUENCE,
    Check,
    bad_state,
    detached,
    expect_fields,
)
from ..core.stream import Stream
from ..exceptions import StateError
from ._buckets import time_buckets
from ._counts import count_windows
from ._results import WindowResult
from ._sessions import SessionWindows
from ._store import Accumulators, KeyOrder, StoreContext, WindowOutput, WindowStore
from .aggregations import as_aggregation
from .watermarks import WatermarkTracker, to_timestamp, watermark_metrics, watermark_sources
from .windows import Window, WindowAssigner

__all__ = ["WindowResult", "window"]

_INF = math.inf
_LATE_POLICIES = ("drop", "side", "update")

#: The store of each kind of assigner (``WindowAssigner.kind``).
_STORES: dict[str, Callable[[StoreContext], WindowStore]] = {
    "time": time_buckets,
    "session": SessionWindows,
    "count": count_windows,
    "global": count_windows,
}


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

    Notes
    -----
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

        # -- watermark: the with_timestamps nodes upstream, or our own tracker ----------
        sources = watermark_sources(upstream) if upstream is not None else []
        self._sources = sources
        self._tracker: WatermarkTracker | None = None
        self._wm: float = -_INF
        self._max_ts: float = -_INF
        # None for count and global windows, which read no timestamp
        self._timestamp: Callable[[Any], Any] | None = None
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
                    self._timestamp = sources[0].timestamp_of  # gives floats
                else:
                    self._timestamp = user_timestamp
            else:
                if user_timestamp is None:
                    raise TypeError(
                        "window: timestamp= is required for event-time windows without a "
                        "with_timestamps node upstream"
                    )
                self._timestamp = user_timestamp
                self._tracker = WatermarkTracker(self.max_out_of_orderness)

        # -- the windows: a store for this kind of assigner ------------------------------
        self._keys = KeyOrder()
        context = StoreContext(
            assigner=assigner,
            agg=Accumulators(agg, self._note_error),
            keys=self._keys,
            out=WindowOutput(
                final=self._emit_final,
                result=self._emit,
                late=self._late,
                dropped=self._count_dropped,
            ),
            note_error=self._note_error,
            allowed_lateness=self.allowed_lateness,
            update_for=self.update_for,
            early=self.early,
            keep_fired=late == "update",
        )
        self._context = context
        self._store = _STORES[kind](context)
        self._place = self._store.add  # looked up once: called for every element

        # -- every argument checked: join the graph -------------------------------------
        Stream.__init__(self, upstream, **kwargs)
        self.late: Stream = Stream(stream_name="late", loop=self.loop)
        """Late elements as ``(window, element)`` pairs, with ``late='side'``."""
        self.late_count = 0
        self.dropped_count = 0
        for source in sources:
            source.add_watermark_listener(self._on_watermark)

    # -- public --------------------------------------------------------------------------
    @property
    def watermark(self) -> float:
        """The event time up to which this node considers its input complete."""
        return self._wm

    def extra_metrics(self) -> dict[str, Any]:
        """``watermark`` (and ``watermark_iso``), and ``late``: the elements that came after
        their window closed (dropped or sent to :attr:`late`)."""
        return {**watermark_metrics(self._wm), "late": self.late_count}

    def flush(self, _: Any = None) -> Any:
        """End of input: fire every open window (complete or not), as ``'final'`` results.

        The node's watermark becomes ``+inf``, so later elements of event-time windows are
        late (count and global windows simply start again). Returns ``None``, or, when
        downstream gave back awaitables and an event loop runs in this thread, a task
        finishing with them. Called from another thread than the graph's running loop,
        it runs on the loop and blocks until downstream is done.
        """
        return push_from_outside(self.loop, self._flush_all)

    def _flush_all(self) -> list[Any]:
        return self._advance(_INF)

    # -- elements ------------------------------------------------------------------------
    def update(self, x: Any, who: Stream | None = None, metadata: Metadata | None = None) -> Any:
        """Read ``x``'s timestamp, key and value; its store places it in its windows."""
        func = self._timestamp
        ts: Any = None
        if func is not None:
            try:
                ts = func(x)
            except Exception as e:
                annotate_error(e, self, func, x)
                raise
            if type(ts) is not float and type(ts) is not int:
                ts = to_timestamp(ts, self, x)
            elif ts != ts:
                self._nan_timestamp(func, x)
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
        pending = self._place(ts, key, v, x, metadata, self._wm)
        if self._tracker is not None and ts > self._max_ts:
            more = self._observe(ts)
            if more:
                return pending + more if pending else more
        return pending

    _fusion_update = update

    def _fusion_stage(self) -> Stage:
        # a source's fused code calls update(x) directly (elements without metadata):
        # the same call the per-element path makes, without the hop through _emit
        return Stage("push", self.update)

    def _nan_timestamp(self, func: Any, x: Any) -> None:
        error = ValueError(f"window: timestamp is NaN for element {short_repr(x)}")
        annotate_error(error, self, func, x)
        raise error

    def _note_error(self, error: BaseException, func: Any, arrived: Any, what: str) -> None:
        """For the store: name this node, ``func`` and the element (or accumulator)."""
        annotate_error(error, self, func, arrived, what=what)

    # -- results and late elements -------------------------------------------------------
    def _emit_final(self, result: WindowResult, held: Metadata | None) -> list[Any]:
        """Emit ``result`` with the metadata the node held; release it once downstream is done."""
        try:
            pending = self._emit(result, metadata=held)
        except BaseException as e:
            release_refs(held, error=e)
            raise
        if held:
            if pending:
                return [release_refs_after(pending, held)]
            release_refs(held)
        return pending

    def _late(self, w: Window, x: Any, metadata: Metadata | None) -> list[Any] | None:
        """Count ``x``, late for its closed window ``w``, and apply ``late='drop'`` or
        ``'side'`` (what to await is returned); ``None`` for ``late='update'``: the caller
        adds ``x`` to the kept state of ``w``."""
        self.late_count += 1
        policy = self.late_policy
        if policy == "drop":
            self.dropped_count += 1
            return []
        if policy == "side":
            return self.late._emit((w, x), metadata)
        return None

    def _count_dropped(self) -> None:
        """A late element was dropped by the store: its window is no longer kept."""
        self.dropped_count += 1

    # -- the watermark -------------------------------------------------------------------
    def _observe(self, ts: float) -> list[Any]:
        """Own watermark: feed a new largest timestamp; fire what closed."""
        self._max_ts = ts
        tracker = self._tracker
        assert tracker is not None
        tracker.observe(ts)
        wm = tracker.watermark
        if wm > self._wm:
            store = self._store
            if wm >= store.next_close or wm >= store.next_purge:
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
        return self._store.advance(self._wm)

    # -- state ---------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """Open windows, windows kept for updates, the watermark and the counters.

        Plain data, a copy (accumulators included): ``{'kind', 'watermark', 'max_ts',
        'tracker', 'late_count', 'dropped_count', 'keys', 'open', 'kept', 'positions'}``;
        ``keys`` lists the keys with open windows in first-seen order.
        """
        store = self._store
        open_, kept, positions = store.snapshot()
        state = {
            "kind": self._kind,
            "watermark": self._wm,
            "max_ts": self._max_ts,
            "tracker": self._tracker.snapshot() if self._tracker is not None else None,
            "late_count": self.late_count,
            "dropped_count": self.dropped_count,
            "keys": self._keys.keys(),
            "open": open_,
            "kept": kept,
            "positions": positions,
        }
        # the containers are new; accumulators may be changed in place by the aggregation
        return state if _plain(store, state) else detached(state)

    def restore(self, state: dict[str, Any]) -> None:
        """Load a :meth:`snapshot` (a copy of it: the node never changes ``state``).

        Everything is checked before the node changes (a
        :class:`~millstream.exceptions.StateError` leaves it as it was). The refs held for
        the elements of the current windows are then released (marked failed: those
        elements are discarded).
        """
        expect_fields(self, state, _STATE_FIELDS)
        if state["kind"] != self._kind:
            raise bad_state(
                self,
                state,
                f"it holds {state['kind']!r} windows, this node "
                f"{self.assigner!r} windows ({self._kind!r})",
            )
        keys = KeyOrder()
        store = _STORES[self._kind](dataclasses.replace(self._context, keys=keys))
        if not _plain(store, state):
            state = detached(state)  # the node's own accumulators
        tracker = self._tracker
        try:
            if tracker is not None:
                tracker = WatermarkTracker(self.max_out_of_orderness)
                if state["tracker"] is not None:
                    tracker.restore(state["tracker"], owner=self)
            keys.restore(state["keys"])
            store.restore(state["open"], state["kept"], state["positions"])
        except (TypeError, ValueError) as e:
            if isinstance(e, StateError):
                raise
            raise bad_state(self, state, str(e)) from e
        keys.forget_unused()
        self._store.release_held(RuntimeError(f"{self}: element discarded by restore()"))
        self._keys, self._store, self._place = keys, store, store.add
        self._context = dataclasses.replace(self._context, keys=keys)
        self._tracker = tracker
        wm = state["watermark"]
        self._wm = -_INF if wm is None else wm
        self._max_ts = state["max_ts"]
        self.late_count = state["late_count"]
        self.dropped_count = state["dropped_count"]


def _plain(store: WindowStore, state: dict[str, Any]) -> bool:
    """Whether every accumulator in ``state`` is immutable (a number...): the state then
    shares nothing that changes with the store it comes from or goes to."""
    i = store.accumulator_index
    try:
        return all(type(e[i]) in IMMUTABLE for e in state["open"]) and all(
            type(e[i]) in IMMUTABLE for e in state["kept"]
        )
    except (TypeError, IndexError, KeyError):
        return False  # not entries: the store says what is wrong


_OPTIONAL_NUMBER = Check("a number or None", lambda v: v is None or NUMBER(v))

#: What :meth:`window.restore` checks before anything else.
_STATE_FIELDS: dict[str, Any] = {
    "kind": str,
    "watermark": _OPTIONAL_NUMBER,
    "max_ts": NUMBER,
    "tracker": (dict, type(None)),
    "late_count": COUNT,
    "dropped_count": COUNT,
    "keys": SEQUENCE,
    "open": SEQUENCE,
    "kept": SEQUENCE,
    "positions": Mapping,
}
