"""Event timestamps and watermarks.

A *watermark* is the claim "no element with a timestamp below this will come any more".
Window nodes close a window once the watermark passes its end. It comes from
:class:`with_timestamps` nodes, which read each element's timestamp and keep a
:class:`WatermarkTracker`: per partition (a Kafka partition, a sensor, any key the user
names) the largest timestamp seen, minus the out-of-orderness the user allows. The slowest
partition holds the watermark back, unless it has been silent for ``idle_timeout`` seconds
of processing time (``self.clock``), after which it no longer counts.

Any node's watermark is :func:`watermark`: the minimum over the nearest
:class:`with_timestamps` nodes upstream of it (through maps, filters, unions, zips...).

Timestamps are numbers in one unit chosen by the user (seconds in these docs);
timezone-aware ``datetime`` values (and ``pandas.Timestamp``) become POSIX seconds.
"""

from __future__ import annotations

import datetime
import logging
import math
import numbers
import weakref
from collections.abc import Callable, Hashable, Iterable
from typing import Any

from .._utils import annotate_error, check_callable, convert_interval, short_repr
from ..core.awaitables import run_on_graph_loop
from ..core.clock import Clock, get_default_clock
from ..core.state import NUMBER, SEQUENCE, bad_state, expect_fields
from ..core.stream import Stream, graph_version
from .idle import IdleTimer

__all__ = [
    "NO_WATERMARK",
    "WatermarkTracker",
    "call_watermark_listeners",
    "to_timestamp",
    "watermark",
    "watermark_metrics",
    "watermark_sources",
    "with_timestamps",
]

logger = logging.getLogger("millstream.time")

#: The watermark before any element: nothing is known, no window may close.
NO_WATERMARK: float = float("-inf")

_END: float = float("inf")


def to_timestamp(value: Any, node: Any = None, x: Any = None) -> float:
    """Convert a timestamp to a float: numbers as they are, aware datetimes to POSIX seconds.

    A naive ``datetime`` (no time zone), a string, ``None``, ``NaN`` or anything else is a
    ``TypeError`` naming ``node`` and the element ``x`` when given.

    Examples
    --------
    >>> import datetime
    >>> to_timestamp(3)
    3.0
    >>> to_timestamp(datetime.datetime(1970, 1, 1, 0, 1, tzinfo=datetime.timezone.utc))
    60.0
    >>> to_timestamp('12:00')
    Traceback (most recent call last):
    ...
    TypeError: to_timestamp: a timestamp must be a number or a timezone-aware datetime, got str...
    """
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        ts = float(value)
        if ts == ts:  # not NaN
            return ts
        problem = "a timestamp must not be NaN"
    elif isinstance(value, datetime.datetime):
        if value.tzinfo is not None and value.utcoffset() is not None:
            return value.timestamp()
        problem = (
            f"a naive datetime ({short_repr(value)}) is ambiguous as a timestamp: give it a "
            "time zone, e.g. dt.replace(tzinfo=datetime.timezone.utc)"
        )
    else:
        problem = (
            "a timestamp must be a number or a timezone-aware datetime, "
            f"got {type(value).__name__} {short_repr(value)}"
        )
    where = "to_timestamp" if node is None else str(node)
    element = "" if x is None else f" (element {short_repr(x)})"
    raise TypeError(f"{where}: {problem}{element}")


def _duration(name: str, value: Any, positive: bool) -> float:
    """Validate a ``with_timestamps``/tracker duration argument; return it as a float."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool) and value < 0:
        raise ValueError(f"with_timestamps: {name} must not be negative, got {short_repr(value)}")
    try:
        seconds = convert_interval(value)
    except (TypeError, ValueError) as e:
        raise type(e)(f"with_timestamps: bad {name} {short_repr(value)}: {e}") from None
    if math.isnan(seconds) or seconds < 0:
        raise ValueError(f"with_timestamps: {name} must not be negative, got {short_repr(value)}")
    if positive and seconds == 0:
        raise ValueError(
            f"with_timestamps: {name} must be greater than 0 (or None), got {short_repr(value)}"
        )
    return seconds


class WatermarkTracker:
    """Bounded out-of-orderness watermark over one or more partitions.

    The watermark is, over the partitions still active, the smallest of ``largest
    timestamp seen - max_out_of_orderness``. With ``idle_timeout`` a partition that got no
    element for that many seconds of ``clock`` time (processing time) stops counting;
    when every partition is idle the watermark is the largest over them. It starts at
    ``-inf`` and never goes back (a partition that wakes up, or a new one, with older
    timestamps does not lower it: its elements are late).

    Parameters
    ----------
    max_out_of_orderness : float or str
        How far (in event time) an element may trail the largest timestamp of its
        partition and still not be late. Strings such as ``'2s'`` mean seconds.
    idle_timeout : float or str, optional
        Seconds of processing time after which a silent partition no longer holds the
        watermark back. ``None``: partitions never go idle.
    clock : Clock, optional
        The processing-time clock (default: the default clock when the tracker is built).
    partitions : iterable, optional
        Partitions known in advance (the partitions of a Kafka topic, the sensors...). Each
        holds the watermark at ``-inf`` until it reports (or goes idle). Without this, a
        partition first seen after the watermark has passed its timestamps brings only
        late elements.

    Examples
    --------
    >>> from millstream import ManualClock
    >>> clock = ManualClock()
    >>> t = WatermarkTracker(max_out_of_orderness=2, idle_timeout=10, clock=clock)
    >>> t.watermark
    -inf
    >>> t.observe(10, partition='a'); t.observe(30, partition='b'); t.watermark
    8.0
    >>> clock.advance(10)   # both silent for 10 s: all idle, the largest counts
    >>> t.watermark
    28.0
    >>> t.observe(12, partition='a'); t.watermark   # 'a' is back, but the watermark stays
    28.0
    """

    def __init__(
        self,
        max_out_of_orderness: Any = 0.0,
        idle_timeout: Any = None,
        clock: Clock | None = None,
        *,
        partitions: Iterable[Hashable] | None = None,
    ):
        self.max_out_of_orderness = _duration(
            "max_out_of_orderness", max_out_of_orderness, positive=False
        )
        self.idle_timeout: float | None = (
            None if idle_timeout is None else _duration("idle_timeout", idle_timeout, True)
        )
        self.clock: Clock = clock if clock is not None else get_default_clock()
        self._max: dict[Hashable, float] = {}
        self._last_seen: dict[Hashable, float] = {}
        self._low: float | None = None  # min of _max without idle timeout; None: recompute
        self._floor = NO_WATERMARK
        self._ended = False
        if partitions is not None:
            now = self._now()
            for p in partitions:
                self._max[p] = NO_WATERMARK
                if now is not None:
                    self._last_seen[p] = now

    def _compute(self, now: float | None) -> float:
        """The watermark from the partitions' state alone (idle ones out at ``now``)."""
        maxima = self._max
        if not maxima:
            return NO_WATERMARK
        if now is None:  # no idle timeout: every partition counts
            low = self._low
            if low is None:
                low = self._low = min(maxima.values())
        else:
            cutoff = now - self.idle_timeout  # type: ignore[operator]
            seen = self._last_seen
            active = [m for p, m in maxima.items() if seen[p] > cutoff]
            low = min(active) if active else max(maxima.values())
        return low - self.max_out_of_orderness

    def _now(self) -> float | None:
        return None if self.idle_timeout is None else self.clock.now()

    def observe(self, ts: float, partition: Hashable = None) -> None:
        """Record an element with timestamp ``ts`` (a float) from ``partition``."""
        now = self._now()
        maxima = self._max
        old = maxima.get(partition)
        if now is not None or old is None:
            # fix the watermark reached so far (idle partitions counted out as of now)
            # before this element can wake its partition up, or a new partition can pull
            # the minimum back
            current = self._compute(now)
            if current > self._floor:
                self._floor = current
        if old is None:
            maxima[partition] = ts
            low = self._low
            if low is not None and ts < low:
                self._low = ts
        elif ts > old:
            maxima[partition] = ts
            low = self._low
            if low is not None and old <= low:
                self._low = None  # the slowest partition moved: recompute when asked
        if now is not None:
            self._last_seen[partition] = now

    @property
    def watermark(self) -> float:
        """The watermark now (idle partitions left out); ``-inf`` before any element."""
        if self._ended:
            return _END
        current = self._compute(self._now())
        if current > self._floor:
            self._floor = current
        return self._floor

    @property
    def partitions(self) -> list[Hashable]:
        """The partitions seen so far, in first-seen order."""
        return list(self._max)

    def idle_partitions(self) -> list[Hashable]:
        """The partitions that count as idle now (none without ``idle_timeout``)."""
        if self.idle_timeout is None:
            return []
        cutoff = self.clock.now() - self.idle_timeout
        return [p for p, t in self._last_seen.items() if t <= cutoff]

    def idle_deadline(self) -> float | None:
        """Clock time at which the next active partition goes idle (``None`` if none will)."""
        if self.idle_timeout is None or self._ended:
            return None
        now = self.clock.now()
        deadlines = [t + self.idle_timeout for t in self._last_seen.values()]
        upcoming = [d for d in deadlines if d > now]
        return min(upcoming) if upcoming else None

    def advance_to_end(self) -> None:
        """The input has ended: the watermark becomes ``+inf`` (every window may close)."""
        self._ended = True
        self._floor = _END

    def snapshot(self) -> dict[str, Any]:
        """The tracker's state as plain data.

        Idle times are kept as ages (seconds since each partition's last element), so a
        tracker restored in another process, on another clock, sees the same ages.
        """
        now = self._now()
        return {
            "partitions": [
                (p, m, None if now is None else now - self._last_seen[p])
                for p, m in self._max.items()
            ],
            "floor": self._floor,
            "ended": self._ended,
        }

    def restore(self, state: dict[str, Any], owner: Any = None) -> None:
        """Load a state made by :meth:`snapshot`.

        It is checked first: a :class:`~millstream.exceptions.StateError` naming ``owner``
        (the node of this tracker; default the tracker) leaves the tracker as it was.
        """
        node = self if owner is None else owner
        expect_fields(node, state, {"partitions": SEQUENCE, "floor": NUMBER, "ended": bool})
        now = self._now()
        maxima: dict[Hashable, float] = {}
        last_seen: dict[Hashable, float] = {}
        for entry in state["partitions"]:
            if (
                type(entry) not in SEQUENCE
                or len(entry) != 3
                or not NUMBER(entry[1])
                or not (entry[2] is None or NUMBER(entry[2]))
            ):
                raise bad_state(
                    node,
                    state,
                    "each partition must be (partition, largest timestamp, "
                    f"seconds since its last element or None), got {short_repr(entry)}",
                )
            partition, maximum, age = entry
            try:
                maxima[partition] = float(maximum)
            except TypeError:
                raise bad_state(
                    node, state, f"partition {short_repr(partition)} is not hashable"
                ) from None
            if now is not None:
                # an age unknown (saved without idle timeout) counts as "just seen"
                last_seen[partition] = now - (age or 0.0)
        self._max, self._last_seen, self._low = maxima, last_seen, None
        self._floor = float(state["floor"])
        self._ended = state["ended"]

    def __repr__(self) -> str:
        return (
            f"<WatermarkTracker watermark={self.watermark} "
            f"partitions={len(self._max)} max_out_of_orderness={self.max_out_of_orderness}>"
        )


def call_watermark_listeners(listeners: Iterable[Callable[[], Any]]) -> list[Any]:
    """Call each watermark listener (the watermark advanced); return what they gave back
    as one list of awaitables (a listener returns a list of them, one, or ``None``).

    >>> call_watermark_listeners([lambda: None, lambda: ['a', 'b'], lambda: 'c'])
    ['a', 'b', 'c']
    """
    pending: list[Any] = []
    for listener in tuple(listeners):
        r = listener()
        if r is not None:
            if type(r) is list:
                pending.extend(r)
            else:
                pending.append(r)
    return pending


def watermark_metrics(wm: float) -> dict[str, Any]:
    """A node's watermark as metrics: ``watermark`` (None while it is ``-inf``, before any
    element, or ``+inf``, after the end of input: plain JSON has no infinities) and, when
    it reads as seconds since the epoch (1973 to 5138), ``watermark_iso`` (UTC).

    >>> watermark_metrics(1_700_000_000.5)
    {'watermark': 1700000000.5, 'watermark_iso': '2023-11-14T22:13:20.500000+00:00'}
    >>> watermark_metrics(42), watermark_metrics(NO_WATERMARK)
    ({'watermark': 42}, {'watermark': None})
    """
    if not math.isfinite(wm):
        return {"watermark": None}
    if not 1e8 <= wm < 1e11:
        return {"watermark": wm}
    iso = datetime.datetime.fromtimestamp(wm, datetime.timezone.utc).isoformat()
    return {"watermark": wm, "watermark_iso": iso}


def _kafka_timestamp(record: Any) -> float:
    """The timestamp of a ``keys=True`` Kafka record, in seconds (Kafka gives milliseconds)."""
    ms = record["timestamp"]
    if ms is None:
        raise ValueError("the Kafka record has no timestamp (its 'timestamp' is None)")
    return ms / 1000


def _kafka_partition(record: Any) -> Any:
    """The partition of a ``keys=True`` Kafka record."""
    return record["partition"]


@Stream.register_api()
class with_timestamps(Stream):
    """Give elements event timestamps and track the watermark of the stream.

    Elements (and their metadata) pass through unchanged. Each element's timestamp,
    ``timestamp(x)``, feeds a :class:`WatermarkTracker`; window nodes downstream read
    :attr:`watermark` (through :func:`watermark`) and are told when it advances: the
    listeners registered with :meth:`add_watermark_listener` are called after the element
    has been emitted, and the awaitables they return are returned by ``update`` (so the
    emitter waits for the windows the element closed).

    With ``idle_timeout`` the node runs a timer on the graph's loop (``self.clock``): when
    a silent partition goes idle and the watermark moves, the listeners are called
    without any new element. :meth:`end_of_input` moves the watermark to ``+inf``.

    Parameters
    ----------
    timestamp : callable or 'kafka'
        ``timestamp(x)`` returns a number or a timezone-aware ``datetime``. ``'kafka'``
        reads the records of ``from_kafka(..., keys=True)`` (or the flattened batches of
        ``from_kafka_batched(..., keys=True)``): ``x['timestamp'] / 1000`` (Kafka's
        milliseconds as seconds), with ``x['partition']`` as the default partition (for
        several topics pass ``partition=lambda r: (r['topic'], r['partition'])``).
    max_out_of_orderness : float or str
        How far behind the largest timestamp of its partition an element may come and
        still be on time (event-time units; strings such as ``'2s'`` mean seconds).
    idle_timeout : float or str, optional
        Seconds of processing time after which a partition without elements stops holding
        the watermark back (``None``: never).
    partition : callable, optional
        ``partition(x)`` names the partition of an element (default: one partition).
    clock : Clock, optional
        Processing-time clock for ``idle_timeout`` (default: the default clock).
    partitions : iterable, optional
        Partitions known in advance (e.g. ``range(n)`` for a Kafka topic of ``n``
        partitions): each holds the watermark back until it reports or goes idle. A
        partition first seen after the watermark passed its timestamps brings late
        elements only.

    Examples
    --------
    >>> source = Stream()
    >>> events = source.with_timestamps(lambda e: e['t'], max_out_of_orderness=2)
    >>> L = events.sink_to_list()
    >>> for t in [5, 3, 9]:
    ...     source.emit({'t': t})
    >>> events.watermark, L
    (7.0, [{'t': 5}, {'t': 3}, {'t': 9}])
    >>> seen = []
    >>> events.add_watermark_listener(lambda: seen.append(events.watermark))
    >>> source.emit({'t': 8}); source.emit({'t': 12})   # 8 does not advance it
    >>> seen
    [10.0]
    """

    _graphviz_shape = "parallelogram"
    str_list = ["timestamp", "max_out_of_orderness", "idle_timeout"]
    #: with ``idle_timeout`` a timer moves the watermark (and fires windows): a checkpoint
    #: holds it
    emits_from_task = True

    def __init__(
        self,
        upstream: Stream,
        timestamp: Callable[[Any], Any] | str,
        max_out_of_orderness: Any = 0,
        idle_timeout: Any = None,
        partition: Callable[[Any], Hashable] | None = None,
        clock: Clock | None = None,
        *,
        partitions: Iterable[Hashable] | None = None,
        **kwargs: Any,
    ):
        if isinstance(timestamp, str):
            if timestamp != "kafka":
                raise ValueError(
                    "with_timestamps: timestamp must be a function of the element or 'kafka', "
                    f"got {short_repr(timestamp)}"
                )
            timestamp_func: Callable[[Any], Any] = _kafka_timestamp
            if partition is None:
                partition = _kafka_partition
        else:
            check_callable("with_timestamps", "timestamp", timestamp)
            timestamp_func = timestamp
        if partition is not None:
            check_callable("with_timestamps", "partition", partition)
        self.timestamp = timestamp
        # not ``self.partition``: that is the ``partition`` node's method every Stream has
        self.partition_func = partition
        self._timestamp_func = timestamp_func
        self.max_out_of_orderness = _duration(
            "max_out_of_orderness", max_out_of_orderness, positive=False
        )
        self.idle_timeout: float | None = (
            None if idle_timeout is None else _duration("idle_timeout", idle_timeout, True)
        )
        if partitions is not None:
            partitions = list(partitions)
        self._listeners: list[Callable[[], Any]] = []
        self._notified = NO_WATERMARK
        self._idle_timer = IdleTimer(
            self, self._on_idle, "a watermark listener failed after a partition went idle", logger
        )
        if self.idle_timeout is not None:
            kwargs["ensure_io_loop"] = True
        super().__init__(upstream, clock=clock, **kwargs)
        self.clock = self.clock  # keep the clock this node was built with
        self.tracker = WatermarkTracker(
            self.max_out_of_orderness, self.idle_timeout, self.clock, partitions=partitions
        )
        if partitions is not None and self.idle_timeout is not None:
            self._idle_timer.arm_from_any_thread()
        self._watch_sources()

    def _watch_sources(self) -> None:
        """If every input comes from bounded-capable sources (``from_iterable``...), call
        :meth:`end_of_input` once all of them have emitted their whole input."""
        from ..sources.base import on_end_of_input

        me = weakref.ref(self)

        def ended() -> list[Any]:
            node = me()
            return [] if node is None else node.end_of_input()

        on_end_of_input(self, ended)

    # -- elements ---------------------------------------------------------------------
    def timestamp_of(self, x: Any) -> float:
        """The timestamp of element ``x`` as a float (errors name this node and ``x``)."""
        try:
            value = self._timestamp_func(x)
        except Exception as e:
            annotate_error(e, self, self._timestamp_func, x)
            raise
        return to_timestamp(value, self, x)

    def _partition_of(self, x: Any) -> Hashable:
        func = self.partition_func
        if func is None:
            return None
        try:
            p = func(x)
            hash(p)
        except Exception as e:
            annotate_error(e, self, func, x)
            raise
        return p

    def update(self, x: Any, who: Stream | None = None, metadata: list[dict] | None = None) -> Any:
        ts = self.timestamp_of(x)
        self.tracker.observe(ts, self._partition_of(x))
        pending = self._emit(x, metadata=metadata)
        if self.tracker.watermark > self._notified:
            more = self._notify()
            if more:
                pending = pending + more if pending else more
        if self.idle_timeout is not None:
            self._idle_timer.arm()
        return pending

    # -- watermark --------------------------------------------------------------------
    @property
    def watermark(self) -> float:
        """This stream's watermark now (``-inf`` before any element)."""
        return self.tracker.watermark

    def extra_metrics(self) -> dict[str, Any]:
        """``watermark`` (event-time units; None before any element) and, for seconds
        since the epoch, ``watermark_iso``."""
        return watermark_metrics(self.tracker.watermark)

    def add_watermark_listener(self, listener: Callable[[], Any]) -> None:
        """Call ``listener()`` whenever the watermark advances.

        It may return a list of awaitables (or one awaitable, or ``None``): they are
        handed to the emitter of the element that moved the watermark. Adding the same
        listener twice has no effect.
        """
        check_callable("with_timestamps.add_watermark_listener", "listener", listener)
        if listener not in self._listeners:
            self._listeners.append(listener)

    def remove_watermark_listener(self, listener: Callable[[], Any]) -> None:
        """Stop calling ``listener`` (``ValueError`` if it was not added)."""
        try:
            self._listeners.remove(listener)
        except ValueError:
            raise ValueError(f"{self}: {listener!r} is not a watermark listener") from None

    def _notify(self) -> list[Any]:
        """Call the listeners (the watermark advanced); return their awaitables."""
        self._notified = self.tracker.watermark
        return call_watermark_listeners(self._listeners)

    def end_of_input(self) -> list[Any]:
        """The input has ended: move the watermark to ``+inf``, tell the listeners.

        Called by the node itself once every source it is fed from has emitted all of
        its input (``Stream.from_iterable(...)``: windows downstream then close); call it
        for an input you ``emit`` yourself. Called from another thread than the graph's
        running loop, it runs on the loop, blocks until downstream is done and returns
        ``[]``.

        Returns the awaitables the listeners gave back (await them, or pass them to
        :func:`millstream.core.awaitables.run_awaitables` in a graph without a loop).

        >>> source = Stream()
        >>> events = source.with_timestamps(lambda t: t)
        >>> source.emit(4)
        >>> events.end_of_input(), events.watermark
        ([], inf)
        """
        if run_on_graph_loop(self.loop, self._end):
            return []  # it ran on the graph's loop, downstream is done
        return self._end()

    def _end(self) -> list[Any]:
        self.tracker.advance_to_end()
        self._idle_timer.cancel()
        if self.tracker.watermark > self._notified:
            return self._notify()
        return []

    # -- idle partitions ----------------------------------------------------------------
    def _on_idle(self) -> list[Any]:
        """The :class:`IdleTimer` fired: a partition may have gone idle; tell the
        listeners if the watermark moved (what they return, windows they fired, counts
        as in hand for a checkpoint until it is absorbed)."""
        if self.tracker.watermark > self._notified:
            return self._notify()
        return []

    # -- state --------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """``{'tracker': tracker state, 'notified': watermark the listeners last saw}``."""
        return {"tracker": self.tracker.snapshot(), "notified": self._notified}

    def restore(self, state: dict[str, Any]) -> None:
        """Load a :meth:`snapshot` (checked first: a
        :class:`~millstream.exceptions.StateError` leaves the node as it was)."""
        expect_fields(self, state, {"tracker": dict, "notified": NUMBER})
        self.tracker.restore(state["tracker"], owner=self)
        self._notified = float(state["notified"])
        self._idle_timer.cancel()
        if self.idle_timeout is not None:
            self._idle_timer.arm_from_any_thread()


# -- watermarks of any node -------------------------------------------------------------
_sources_cache: weakref.WeakKeyDictionary[Stream, tuple[int, list[with_timestamps]]] = (
    weakref.WeakKeyDictionary()
)


def watermark_sources(node: Stream) -> list[with_timestamps]:
    """The nearest :class:`with_timestamps` nodes upstream of ``node`` on every path.

    ``node`` itself if it is one; the search does not go above a ``with_timestamps``.
    Paths without one contribute nothing. Cached until the graph changes. A node of
    another kind whose class sets ``provides_watermark = True`` counts as one too: it has
    ``watermark``, ``timestamp_of``, ``add_watermark_listener`` and
    ``remove_watermark_listener`` (the event-time stage of streaming frames does).

    Examples
    --------
    >>> a, b = Stream(), Stream()
    >>> ta = a.with_timestamps(lambda x: x)
    >>> tb = b.map(abs).with_timestamps(lambda x: x)
    >>> u = ta.map(str).union(tb.filter(None))
    >>> watermark_sources(u) == [ta, tb], watermark_sources(a)
    (True, [])
    """
    version = graph_version()
    try:
        cached = _sources_cache.get(node)
    except TypeError:  # not weak-referenceable
        cached = None
    if cached is not None and cached[0] == version:
        return list(cached[1])
    found: list[with_timestamps] = []
    seen: set[int] = set()
    stack: list[Stream] = [node]
    while stack:
        n = stack.pop()
        if id(n) in seen:
            continue
        seen.add(id(n))
        if isinstance(n, with_timestamps) or getattr(type(n), "provides_watermark", False):
            found.append(n)  # type: ignore[arg-type]  # a with_timestamps look-alike
            continue
        # reversed so that the first upstream is searched first (stable order)
        stack.extend(u for u in reversed(n.upstreams) if u is not None)
    try:
        _sources_cache[node] = (version, found)
    except TypeError:
        pass
    return list(found)


def watermark(node: Stream) -> float:
    """The watermark ``node`` sees: the smallest of its :func:`watermark_sources`.

    ``-inf`` (:data:`NO_WATERMARK`) when no :class:`with_timestamps` is upstream.

    Examples
    --------
    >>> a, b = Stream(), Stream()
    >>> z = a.with_timestamps(lambda x: x).zip(b.with_timestamps(lambda x: x))
    >>> a.emit(10); b.emit(4)
    >>> watermark(z), watermark(a)
    (4.0, -inf)
    """
    sources = watermark_sources(node)
    if not sources:
        return NO_WATERMARK
    return min(s.watermark for s in sources)
