"""Processing-time nodes: windows, delays, rate limits, buffers, ``latest``
(``map_async`` is in :mod:`.asynchronous`).

Every node here runs on the graph's event loop (``ensure_io_loop=True``) and asks
``self.clock`` for the time and for every wait, so a :class:`~millstream.core.clock.ManualClock`
makes them deterministic. Work that outlives an ``update`` call (a window timer, the
consumer of a queue) runs as a task started with
``self.loop.add_callback(coroutine_function)``.

Elements held by a node keep their refs (:mod:`millstream.core.refs`) until they have been
emitted downstream and downstream has finished with them; a failure downstream releases
them marked failed. A node that drops an element (``latest`` replacing a value,
``timed_window_unique`` dropping a duplicate) releases its refs at once.

Checkpoints: every node here emits from a task or timer of its own, so it takes part in
a checkpoint (``emits_from_task``, see :mod:`millstream.core.hold`): while the
coordinator holds it, its task takes no new element (a window does not close, a queue
is not popped) and the element it is emitting counts as in hand until downstream has
absorbed it. A node's ``snapshot()`` lists what it still holds. With ``self.hold``
None (no checkpoint enabled) none of this costs anything.

Where these nodes differ from Streamz (a ``delay`` that really delays, bounded queues,
``map_async`` concurrency, windows that keep firing under a busy source…), the class
docstring says so; ``docs/differences-from-streamz.md`` lists every difference.
"""

from __future__ import annotations

import asyncio
import logging
import math
import weakref
from collections import deque
from collections.abc import Callable, Hashable, Iterable
from typing import Any

from .._utils import (
    annotate_error,
    check_positive_int,
    convert_interval,
    identity,
    short_repr,
)
from ..core.awaitables import await_all
from ..core.hold import Hold
from ..core.refs import Metadata, release_refs, retain_refs
from ..core.state import NUMBER, SEQUENCE, bad_state, dict_of_pairs, expect_fields
from ..core.stream import Stream

__all__ = [
    "buffer",
    "delay",
    "latest",
    "rate_limit",
    "timed_window",
    "timed_window_unique",
]

logger = logging.getLogger("millstream.operators")


_MISSING: Any = object()


# -- helpers ---------------------------------------------------------------------------
def _interval(node_name: str, interval: Any, positive: bool = False) -> tuple[Any, float]:
    """Validate ``interval``; return (value to show in ``str()``, seconds as a float)."""
    try:
        seconds = convert_interval(interval)
    except (TypeError, ValueError) as e:
        raise type(e)(f"{node_name}: bad interval: {e}") from None
    if seconds < 0 or math.isnan(seconds):
        raise ValueError(f"{node_name}: interval must not be negative, got {short_repr(interval)}")
    if positive and seconds == 0:
        raise ValueError(
            f"{node_name}: interval must be greater than 0, got {short_repr(interval)}"
        )
    # keep numbers as given so that str() matches Streamz ('<timed_window: 1>')
    shown = interval if isinstance(interval, (int, float)) else seconds
    return shown, seconds


async def _deliver(
    node: Stream,
    x: Any,
    metadata: Metadata | None,
    hold: Hold | None = None,
    log: bool = True,
) -> BaseException | None:
    """Emit ``x`` from ``node``, wait for downstream, then release the node's hold on the refs.

    With a checkpoint ``hold``, the element counts as in hand while downstream absorbs it
    (:meth:`Hold.carry`). A failure downstream is logged unless ``log`` is false (nobody
    else would see it: this runs in a background task), the refs are released marked
    failed, and the error is returned.
    """
    try:
        pending = node._emit(x, metadata=metadata)
        if pending:
            if hold is None:
                await await_all(pending)
            else:
                await hold.carry(pending)
    except Exception as e:
        if log:
            logger.error(
                "%s: downstream failed on %s; element dropped", node, short_repr(x), exc_info=e
            )
        release_refs(metadata, error=e)
        return e
    release_refs(metadata)
    return None


def _cancel_soon(loop: asyncio.AbstractEventLoop, task: asyncio.Task[Any] | None) -> None:
    """Cancel ``task`` from any thread (a finalizer may run in any thread)."""
    if task is not None and not task.done() and not loop.is_closed():
        try:
            loop.call_soon_threadsafe(task.cancel)
        except RuntimeError:  # the loop closed meanwhile
            pass


def _resolve(future: asyncio.Future[Any] | None) -> None:
    if future is not None and not future.done():
        future.set_result(None)


class _Queue:
    """A FIFO of pending elements with an optional capacity.

    ``put`` always accepts the element (nothing is lost if the caller ignores
    backpressure) and returns a future when the queue is over capacity; the future
    completes once enough elements have been taken that this one fits.
    """

    __slots__ = ("_added", "_taken", "_waiters", "items", "maxsize")

    def __init__(self, maxsize: int | None):
        self.maxsize = maxsize
        self.items: deque[Any] = deque()
        self._added = 0
        self._taken = 0
        self._waiters: deque[tuple[int, asyncio.Future[Any]]] = deque()

    def put(self, item: Any, loop: asyncio.AbstractEventLoop) -> asyncio.Future[Any] | None:
        self.items.append(item)
        self._added += 1
        if self.maxsize is not None and len(self.items) > self.maxsize:
            room = loop.create_future()
            # this element fits once the queue has given out (added - maxsize) elements
            self._waiters.append((self._added - self.maxsize, room))
            return room
        return None

    def popleft(self) -> Any:
        item = self.items.popleft()
        self._taken += 1
        waiters = self._waiters
        while waiters and waiters[0][0] <= self._taken:
            _resolve(waiters.popleft()[1])
        return item

    def replace(self, items: Iterable[Any]) -> None:
        for _, room in self._waiters:
            _resolve(room)
        self.items = deque(items)
        self._added = len(self.items)
        self._taken = 0
        self._waiters.clear()


# -- windows -----------------------------------------------------------------------------
async def _run_windows(ref: weakref.ReferenceType[_TimedWindowBase], token: int) -> None:
    """The window timer of one node; holds only a weak reference while it sleeps.

    So a graph nobody references any more is freed, and its timer ends at its next tick.
    """
    node = ref()
    if node is None:
        return
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    if node._finalizer is not None:
        node._finalizer.detach()
    # when the node is collected, end this task properly (not as a destroyed pending task)
    node._finalizer = weakref.finalize(node, _cancel_soon, loop, task)
    while True:
        if node._token != token:
            return
        if node.stopped:
            if node.has_elements():
                await node._flush()
            return
        wait = node._deadline - node.clock.now()
        if wait > 0:
            wake = node._wake = loop.create_future()
            handle = node.clock.call_later(loop, wait, _resolve, wake)
            del node
            try:
                await wake
            finally:
                handle.cancel()
            node = ref()
            if node is None:
                return
            node._wake = None
            continue
        await node._flush()
        # next tick on the fixed grid t0 + k * interval; skip ticks missed while emitting
        now = node.clock.now()
        node._deadline += node._seconds
        if node._deadline <= now:
            missed = math.floor((now - node._deadline) / node._seconds) + 1
            node._deadline += missed * node._seconds


class _TimedWindowBase(Stream):
    """Timer, backpressure, metadata and stop/start shared by the two timed windows."""

    _graphviz_shape = "octagon"
    #: the timer emits windows: a checkpoint holds it (the open window is in the snapshot)
    emits_from_task = True

    def __init__(self, upstream: Stream, interval: Any, emit_empty: bool, **kwargs: Any):
        self.interval, self._seconds = _interval(type(self).__name__, interval, positive=True)
        self.emit_empty = emit_empty
        self.stopped = False
        self._token = 0
        self._wake: asyncio.Future[Any] | None = None
        self._flushed: asyncio.Future[Any] | None = None
        self._emitting = False
        self._finalizer: weakref.finalize[Any, Any] | None = None
        kwargs["ensure_io_loop"] = True
        super().__init__(upstream, **kwargs)
        self.clock = self.clock  # keep the clock this node was built with
        self._deadline = self.clock.now() + self._seconds
        self.loop.add_callback(_run_windows, weakref.ref(self), self._token)

    # hooks: what is buffered (documented on timed_window and timed_window_unique)
    def has_elements(self) -> bool:
        """Whether the open window holds elements."""
        raise NotImplementedError

    def take_window(self) -> tuple[Any, Metadata]:
        """Empty the buffer; return (window to emit, all metadata in it)."""
        raise NotImplementedError

    def backpressure(self) -> Any:
        """What ``update`` returns: backpressure while a window is being emitted or is due."""
        if self._emitting or (not self.stopped and self.clock.now() >= self._deadline):
            # Streamz hands back the previous window's emit; we also make the emitter wait
            # for a window that is due, so a source that never yields cannot starve the timer.
            if self._flushed is None:
                self._flushed = self.loop.asyncio_loop.create_future()
            return self._flushed
        return None

    async def _flush(self) -> None:
        hold = self.hold
        if hold is not None and hold.closed:  # a checkpoint: the window stays open meanwhile
            await hold.wait_open()
        window, metadata = self.take_window()
        try:
            if window or self.emit_empty:
                self._emitting = True
                await _deliver(self, window, metadata, hold)
        finally:
            self._emitting = False
            waiter, self._flushed = self._flushed, None
            _resolve(waiter)

    def _wake_up(self) -> None:
        _resolve(self._wake)

    def stop(self) -> None:
        """Stop the sources feeding this node, emit what the window holds, and stop the timer."""
        super().stop()
        if not self.stopped:
            self.stopped = True
            self.loop.add_callback(self._wake_up)

    def start(self) -> None:
        """Restart the timer (next window ``interval`` from now) and the sources upstream."""
        if self.stopped:
            self.stopped = False
            self._token += 1
            self._deadline = self.clock.now() + self._seconds
            self.loop.add_callback(_run_windows, weakref.ref(self), self._token)
        super().start()


@Stream.register_api()
class timed_window(_TimedWindowBase):
    """Emit a list of the elements received during each ``interval`` (processing time).

    Windows close every ``interval`` seconds of ``self.clock`` from the node's creation.
    As in Streamz a window is a ``list`` and an empty window emits ``[]``; pass
    ``emit_empty=False`` to skip empty windows. The metadata of a window is the
    metadata of all its elements; their refs are held until the window has been
    emitted and downstream has finished with it.

    While a window is being emitted downstream, or once a window is due, ``update``
    returns an awaitable that completes when that window is out: the emitter waits
    (backpressure), and the timer gets the loop even under a source that never yields.
    ``stop()`` emits the elements held and stops the timer; ``start()`` resumes it.

    Hooks for subclasses (the Dask node builds its window on a worker through them):
    ``has_elements()``, ``take_window() -> (window, metadata)`` (empties the open window)
    and ``backpressure()`` (what ``update`` returns after adding an element).

    Parameters
    ----------
    interval : float or str
        Seconds, or a duration string such as ``'500ms'``.
    emit_empty : bool
        Emit ``[]`` for a window without elements (Streamz does).

    Examples
    --------
    >>> from millstream import ManualClock
    >>> clock = ManualClock()
    >>> source = Stream()
    >>> L = source.timed_window('1s', clock=clock).sink_to_list()
    >>> for i in range(3):
    ...     source.emit(i)
    >>> clock.advance(1)
    >>> source.emit(3)
    >>> clock.advance(2)
    >>> L
    [[0, 1, 2], [3], []]
    """

    def __init__(self, upstream: Stream, interval: Any, emit_empty: bool = True, **kwargs: Any):
        self._buffer: list[Any] = []
        self._metadata_buffer: Metadata = []
        super().__init__(upstream, interval, emit_empty, **kwargs)

    def update(self, x: Any, who: Stream | None = None, metadata: Metadata | None = None) -> Any:
        self._buffer.append(x)
        if metadata:
            retain_refs(metadata)
            self._metadata_buffer.extend(metadata)
        return self.backpressure()

    def has_elements(self) -> bool:
        return bool(self._buffer)

    def take_window(self) -> tuple[list[Any], Metadata]:
        window, self._buffer = self._buffer, []
        metadata, self._metadata_buffer = self._metadata_buffer, []
        return window, metadata

    def snapshot(self) -> dict[str, Any]:
        """``{'buffer': [elements of the open window], 'closes_in': seconds until it closes}``
        (``closes_in`` is ``None`` while the node is stopped)."""
        now = self.clock.now()
        closes_in = None if self.stopped else max(0.0, self._deadline - now)
        return {"buffer": list(self._buffer), "closes_in": closes_in}

    def extra_metrics(self) -> dict[str, Any]:
        """``backlog``: the elements of the open window."""
        return {"backlog": len(self._buffer)}

    def restore(self, state: dict[str, Any]) -> None:
        """Make ``state['buffer']`` the open window (its elements hold no refs), closing
        ``state['closes_in']`` seconds from now (a state without it keeps this node's
        timer); the refs of the elements it replaces are released marked failed."""
        buffer = list(expect_fields(self, state, {"buffer": SEQUENCE})["buffer"])
        closes_in = state.get("closes_in")
        if closes_in is not None and not (NUMBER(closes_in) and 0 <= closes_in < math.inf):
            raise bad_state(self, state, "field 'closes_in' must be a number >= 0 or None")
        release_refs(self._metadata_buffer, error=RuntimeError(f"{self}: discarded by restore()"))
        self._buffer = buffer
        self._metadata_buffer = []
        if closes_in is not None and not self.stopped:
            self._deadline = self.clock.now() + closes_in
            self.loop.add_callback(self._wake_up)  # the timer waits for the new deadline


@Stream.register_api()
class timed_window_unique(_TimedWindowBase):
    """Emit, every ``interval``, a tuple of the elements of the window with distinct keys.

    ``key`` is a callable (``key(x)``) or an index/key into the element (``x[key]``).
    ``keep='first'`` keeps the first element seen for a key, ``keep='last'`` the most
    recent one (which then takes the place of the latest arrival). Elements keep their
    arrival order. Empty windows emit ``()`` unless ``emit_empty=False``.

    The metadata emitted is that of the kept elements; a dropped duplicate's refs are
    released when it is dropped (Streamz retains them forever).

    Hooks for subclasses, as on ``timed_window``: ``has_elements()``, ``take_window()``,
    ``backpressure()``.

    Examples
    --------
    >>> from millstream import ManualClock
    >>> clock = ManualClock()
    >>> source = Stream()
    >>> L = source.timed_window_unique(1.0, key=len, keep='last', clock=clock).sink_to_list()
    >>> for word in ['f', 'b', 'fo', 'ba', 'foo', 'bar']:
    ...     source.emit(word)
    >>> clock.advance(1)
    >>> L
    [('b', 'ba', 'bar')]
    """

    def __init__(
        self,
        upstream: Stream,
        interval: Any,
        key: Hashable | Callable[[Any], Hashable] = identity,
        keep: str = "first",
        emit_empty: bool = True,
        **kwargs: Any,
    ):
        if keep not in ("first", "last"):
            raise ValueError(
                f"timed_window_unique: keep must be 'first' or 'last', got {short_repr(keep)}"
            )
        self.key = key
        self.keep = keep
        self._buffer: dict[Any, tuple[Any, Metadata | None]] = {}
        super().__init__(upstream, interval, emit_empty, **kwargs)

    def _key_of(self, x: Any) -> Any:
        key = self.key
        try:
            return key(x) if callable(key) else x[key]
        except Exception as e:
            annotate_error(e, self, key if callable(key) else None, x)
            raise

    def update(self, x: Any, who: Stream | None = None, metadata: Metadata | None = None) -> Any:
        k = self._key_of(x)
        buffer = self._buffer
        try:
            old: Any = buffer.get(k, _MISSING)
        except TypeError as e:  # unhashable key
            annotate_error(e, self, None, x)
            raise
        if old is not _MISSING:
            if self.keep == "first":
                return self.backpressure()
            del buffer[k]  # 'last': the new element takes the place of the latest arrival
            release_refs(old[1])
        retain_refs(metadata)
        buffer[k] = (x, metadata)
        return self.backpressure()

    def has_elements(self) -> bool:
        return bool(self._buffer)

    def take_window(self) -> tuple[tuple[Any, ...], Metadata]:
        entries, self._buffer = self._buffer, {}
        metadata = [m for _, md in entries.values() if md for m in md]
        return tuple(x for x, _ in entries.values()), metadata

    def snapshot(self) -> dict[str, Any]:
        """``{'buffer': [(key, element), ...], 'closes_in': seconds}``, in arrival order
        (``closes_in`` as on ``timed_window``)."""
        now = self.clock.now()
        closes_in = None if self.stopped else max(0.0, self._deadline - now)
        return {"buffer": [(k, x) for k, (x, _) in self._buffer.items()], "closes_in": closes_in}

    def extra_metrics(self) -> dict[str, Any]:
        """``backlog``: the elements of the open window."""
        return {"backlog": len(self._buffer)}

    def restore(self, state: dict[str, Any]) -> None:
        """Make ``state['buffer']`` the open window (its elements hold no refs), closing
        ``state['closes_in']`` seconds from now (a state without it keeps this node's
        timer); the refs of the elements it replaces are released marked failed."""
        expect_fields(self, state, {"buffer": SEQUENCE})
        buffer = dict_of_pairs(self, state, "buffer")
        closes_in = state.get("closes_in")
        if closes_in is not None and not (NUMBER(closes_in) and 0 <= closes_in < math.inf):
            raise bad_state(self, state, "field 'closes_in' must be a number >= 0 or None")
        error = RuntimeError(f"{self}: discarded by restore()")
        for _, metadata in self._buffer.values():
            release_refs(metadata, error=error)
        self._buffer = {k: (x, None) for k, x in buffer.items()}
        if closes_in is not None and not self.stopped:
            self._deadline = self.clock.now() + closes_in
            self.loop.add_callback(self._wake_up)  # the timer waits for the new deadline


# -- queues ------------------------------------------------------------------------------
class _QueueNode(Stream):
    """A node whose elements wait in a queue emptied, in order, by a task on the loop.

    The task runs only while the queue has elements. ``stop()`` stops the sources
    upstream; elements already queued are still delivered.

    In a checkpoint the task stops before it pops the next element, and the queue is in
    the snapshot; with ``drains_for_checkpoint`` (elements that cannot be saved, such as
    Dask futures) each element counts as in hand from its arrival until downstream has
    it, so a checkpoint waits until the queue is empty instead.

    Hook for subclasses: ``element_done(x, error)``, called once downstream has absorbed
    an element emitted from the queue, with what downstream raised or None (default: an
    error is logged, the element dropped).
    """

    emits_from_task = True
    #: a checkpoint waits until the queue is empty, rather than saving what it holds
    drains_for_checkpoint = False

    def __init__(self, upstream: Stream, maxsize: int | None, **kwargs: Any):
        self._queue = _Queue(maxsize)
        self._worker_running = False
        self._delivering = 0  # 1 while an element taken from the queue is downstream
        self.work_task: asyncio.Task[Any] | None = None
        kwargs["ensure_io_loop"] = True
        super().__init__(upstream, **kwargs)
        self.clock = self.clock  # keep the clock this node was built with

    @property
    def queued(self) -> int:
        """How many elements wait in the queue (not counting the one being emitted)."""
        return len(self._queue.items)

    def is_idle(self) -> bool:
        """True when no element waits in the queue or is being emitted."""
        return not self._queue.items and not self._worker_running

    def extra_metrics(self) -> dict[str, Any]:
        """``backlog``: the elements queued, and the one downstream is busy with."""
        return {"backlog": len(self._queue.items) + self._delivering}

    async def until_idle(self) -> None:
        """Wait until :meth:`is_idle` (the end of input waits so: nothing is overtaken)."""
        while not self.is_idle():
            task = self.work_task
            if task is None or task.done():
                await asyncio.sleep(0.001)  # the worker is scheduled, not started yet
            else:
                await asyncio.wait([task])

    def _put(self, item: tuple[Any, Any, Metadata | None]) -> Any:
        retain_refs(item[2])
        hold = self.hold
        if hold is not None and self.drains_for_checkpoint:
            hold.take()
        room = self._queue.put(item, self.loop.asyncio_loop)
        self._ensure_worker()
        return room

    def _ensure_worker(self) -> None:
        if not self._worker_running:
            self._worker_running = True
            self.loop.add_callback(self._drain)

    async def _wait_until_due(self, due: float | None) -> None:
        return None

    def element_done(self, x: Any, error: BaseException | None) -> None:
        """Hook: ``x``, emitted from the queue, has been absorbed downstream (``error``:
        what downstream raised on it; then it is logged and the element dropped)."""
        if error is not None:
            logger.error(
                "%s: downstream failed on %s; element dropped", self, short_repr(x), exc_info=error
            )

    async def _drain(self) -> None:
        self.work_task = asyncio.current_task()
        try:
            queue = self._queue
            # the hook is called for every element only where a subclass overrides it
            every = type(self).element_done is not _QueueNode.element_done
            while queue.items:
                await self._wait_until_due(queue.items[0][0])
                hold = self.hold
                counted = hold is not None and self.drains_for_checkpoint
                if hold is not None and not counted and hold.closed:
                    await hold.wait_open()  # a checkpoint: the queue is in the snapshot
                    continue
                if not queue.items:  # emptied by restore() while we waited
                    break
                _, x, metadata = queue.popleft()
                self._delivering = 1
                try:
                    error = await _deliver(self, x, metadata, None if counted else hold, log=False)
                finally:
                    self._delivering = 0
                    if counted:
                        hold.leave()  # type: ignore[union-attr]
                if every or error is not None:
                    self.element_done(x, error)
        finally:
            self._worker_running = False
            self.work_task = None


@Stream.register_api()
class delay(_QueueNode):
    """Emit each element ``interval`` seconds after it arrived, in arrival order.

    Unlike Streamz's ``delay`` (which only spaces elements, and lets the first element
    after an idle period through at once), every element is held for ``interval``. Use
    ``rate_limit`` to space elements out.

    At most ``maxsize`` elements wait (default 10 000, ``None`` for no bound); beyond that
    ``update`` returns an awaitable that completes when there is room (backpressure).
    An element's refs are held until it has been emitted and downstream has finished.

    Examples
    --------
    >>> from millstream import ManualClock
    >>> clock = ManualClock()
    >>> source = Stream()
    >>> L = source.delay(2, clock=clock).sink_to_list()
    >>> source.emit('a')
    >>> clock.advance(1)
    >>> source.emit('b')
    >>> clock.advance(1)
    >>> L
    ['a']
    >>> clock.advance(1)
    >>> L
    ['a', 'b']
    """

    _graphviz_shape = "octagon"

    def __init__(
        self, upstream: Stream, interval: Any, maxsize: int | None = 10_000, **kwargs: Any
    ):
        self.interval, self._seconds = _interval("delay", interval)
        if maxsize is not None:
            check_positive_int("delay", "maxsize", maxsize)
        super().__init__(upstream, maxsize, **kwargs)

    def update(self, x: Any, who: Stream | None = None, metadata: Metadata | None = None) -> Any:
        return self._put((self.clock.now() + self._seconds, x, metadata))

    async def _wait_until_due(self, due: float | None) -> None:
        assert due is not None
        wait = due - self.clock.now()
        if wait > 0:
            await self.clock.sleep(wait)

    def snapshot(self) -> dict[str, Any]:
        """``{'pending': [(seconds still to wait, element), ...]}`` for elements not yet emitted."""
        now = self.clock.now()
        return {"pending": [(max(0.0, due - now), x) for due, x, _ in self._queue.items]}

    def restore(self, state: dict[str, Any]) -> None:
        """Queue the elements of ``state['pending']``, each due after its wait; the refs of
        the elements they replace are released marked failed."""
        pending = expect_fields(self, state, {"pending": SEQUENCE})["pending"]
        for entry in pending:
            if (
                type(entry) not in SEQUENCE
                or len(entry) != 2
                or not (NUMBER(entry[0]) and entry[0] >= 0)
            ):
                raise bad_state(
                    self,
                    state,
                    f"each pending entry must be [seconds to wait (>= 0), element], "
                    f"got {short_repr(entry)}",
                )
        error = RuntimeError(f"{self}: discarded by restore()")
        for _, _, metadata in self._queue.items:
            release_refs(metadata, error=error)
        now = self.clock.now()
        self._queue.replace((now + wait, x, None) for wait, x in pending)
        if self._queue.items:
            self._ensure_worker()


@Stream.register_api()
class buffer(_QueueNode):
    """Let up to ``n`` elements pile up here, decoupling upstream from a slow downstream.

    A task on the loop emits the queued elements in order, waiting for downstream after
    each. ``update`` returns nothing while the queue has room and, once ``n`` elements
    are waiting, an awaitable that completes when one has been taken (so ``await
    source.emit(x)`` waits). Refs are held until the element has been emitted and
    downstream has finished.

    Examples
    --------
    >>> from millstream.testing import wait_for
    >>> source = Stream()
    >>> L = source.buffer(10).map(str).sink_to_list()
    >>> for i in range(3):
    ...     source.emit(i)
    >>> wait_for(lambda: len(L) == 3, 5)
    >>> L
    ['0', '1', '2']
    """

    _graphviz_shape = "diamond"

    def __init__(self, upstream: Stream, n: int, **kwargs: Any):
        self.n = check_positive_int("buffer", "n", n)
        super().__init__(upstream, n, **kwargs)

    def update(self, x: Any, who: Stream | None = None, metadata: Metadata | None = None) -> Any:
        return self._put((None, x, metadata))

    def snapshot(self) -> dict[str, Any]:
        """``{'pending': [elements not yet emitted]}``."""
        return {"pending": [x for _, x, _ in self._queue.items]}

    def restore(self, state: dict[str, Any]) -> None:
        """Queue the elements of ``state['pending']``; the refs of the elements they
        replace are released marked failed."""
        pending = expect_fields(self, state, {"pending": SEQUENCE})["pending"]
        error = RuntimeError(f"{self}: discarded by restore()")
        for _, _, metadata in self._queue.items:
            release_refs(metadata, error=error)
        self._queue.replace((None, x, None) for x in pending)
        if self._queue.items:
            self._ensure_worker()


@Stream.register_api()
class rate_limit(Stream):
    """Let elements through at most one per ``interval`` seconds.

    The first element (and any element arriving after a quiet ``interval``) passes at
    once; the others wait their turn, and ``update`` returns the wait as an awaitable, so
    the emitter is slowed down. A waiting element's refs are held until it has been
    emitted and downstream has finished (Streamz does not hold them).

    Examples
    --------
    >>> import asyncio
    >>> from millstream import ManualClock
    >>> clock = ManualClock()
    >>> async def main():
    ...     source = Stream(asynchronous=True)
    ...     L = source.rate_limit(0.5, clock=clock).sink_to_list()
    ...     for i in range(3):
    ...         _ = asyncio.ensure_future(source.emit(i))
    ...     await clock.advance_async(0)
    ...     first = list(L)
    ...     await clock.advance_async(0.5)
    ...     return first, L
    >>> asyncio.run(main())
    ([0], [0, 1])
    """

    _graphviz_shape = "octagon"
    #: a waiting element is emitted by a task: a checkpoint waits until it is out
    emits_from_task = True

    def __init__(self, upstream: Stream, interval: Any, **kwargs: Any):
        self.interval, self._seconds = _interval("rate_limit", interval)
        self.next = -math.inf
        self._waiting_turn = 0  # elements waiting for their turn
        kwargs["ensure_io_loop"] = True
        super().__init__(upstream, **kwargs)
        self.clock = self.clock  # keep the clock this node was built with

    def update(self, x: Any, who: Stream | None = None, metadata: Metadata | None = None) -> Any:
        now = self.clock.now()
        wait = self.next - now
        self.next = max(now, self.next) + self._seconds
        if wait <= 0:
            return self._emit(x, metadata=metadata)
        retain_refs(metadata)
        hold = self.hold
        if hold is not None:  # in hand (not in the snapshot) until emitted and absorbed
            hold.take()
        self._waiting_turn += 1
        return self.loop.asyncio_loop.create_task(self._emit_later(wait, x, metadata, hold))

    def extra_metrics(self) -> dict[str, Any]:
        """``backlog``: the elements waiting for their turn (or being emitted)."""
        return {"backlog": self._waiting_turn}

    async def _emit_later(
        self, wait: float, x: Any, metadata: Metadata | None, hold: Hold | None = None
    ) -> None:
        try:
            await self.clock.sleep(wait)
            pending = self._emit(x, metadata=metadata)
            if pending:
                await await_all(pending)
        except BaseException as e:
            release_refs(metadata, error=e)
            raise
        finally:
            self._waiting_turn -= 1
            if hold is not None:
                hold.leave()
        release_refs(metadata)

    def snapshot(self) -> dict[str, Any]:
        """``{'next_in': seconds until the next element may pass}`` (0 if one may pass now)."""
        return {"next_in": max(0.0, self.next - self.clock.now())}

    def restore(self, state: dict[str, Any]) -> None:
        next_in = expect_fields(self, state, {"next_in": NUMBER})["next_in"]
        if not 0 <= next_in < math.inf:
            raise bad_state(self, state, f"field 'next_in' must be >= 0 and finite, got {next_in}")
        self.next = self.clock.now() + next_in if next_in > 0 else -math.inf


@Stream.register_api()
class latest(Stream):
    """Pass on only the newest element whenever downstream is free; drop the ones in between.

    A task on the loop emits the pending element and waits for downstream; elements that
    arrive meanwhile replace each other, and a replaced element's refs are released at
    once. ``update`` never applies backpressure. The refs of the element emitted are held
    until downstream has finished with it (Streamz holds them until the next element).

    Examples
    --------
    >>> from millstream.testing import wait_for
    >>> source = Stream()
    >>> L = source.latest().sink_to_list()
    >>> source.emit(1)
    >>> wait_for(lambda: L == [1], 5)
    >>> L
    [1]
    """

    _graphviz_shape = "octagon"
    emits_from_task = True
    #: a checkpoint waits until the pending element is out, rather than saving it
    drains_for_checkpoint = False

    def __init__(self, upstream: Stream, **kwargs: Any):
        self._pending: tuple[Any, Metadata | None] | None = None
        self._worker_running = False
        self.work_task: asyncio.Task[Any] | None = None
        kwargs["ensure_io_loop"] = True
        super().__init__(upstream, **kwargs)

    def update(self, x: Any, who: Stream | None = None, metadata: Metadata | None = None) -> Any:
        retain_refs(metadata)
        dropped, self._pending = self._pending, (x, metadata)
        if dropped is not None:
            release_refs(dropped[1])
        elif self.drains_for_checkpoint and self.hold is not None:
            self.hold.take()
        self._ensure_worker()
        return None

    def _ensure_worker(self) -> None:
        if not self._worker_running:
            self._worker_running = True
            self.loop.add_callback(self._drain)

    async def _drain(self) -> None:
        self.work_task = asyncio.current_task()
        try:
            while self._pending is not None:
                hold = self.hold
                if hold is None:
                    (x, metadata), self._pending = self._pending, None
                    await _deliver(self, x, metadata)
                elif self.drains_for_checkpoint:
                    (x, metadata), self._pending = self._pending, None
                    try:
                        await _deliver(self, x, metadata)
                    finally:
                        hold.leave()
                elif hold.closed:  # a checkpoint: the pending element is in the snapshot
                    await hold.wait_open()
                else:
                    (x, metadata), self._pending = self._pending, None
                    await _deliver(self, x, metadata, hold)
        finally:
            self._worker_running = False
            self.work_task = None

    def extra_metrics(self) -> dict[str, Any]:
        """``backlog``: 1 while an element waits to be emitted, else 0."""
        return {"backlog": 0 if self._pending is None else 1}

    def snapshot(self) -> dict[str, Any]:
        """``{'pending': [element]}`` while an element waits to be emitted, else ``[]``."""
        return {"pending": [] if self._pending is None else [self._pending[0]]}

    def restore(self, state: dict[str, Any]) -> None:
        """Make the element of ``state['pending']`` (if any) the one waiting; the refs of
        the one it replaces are released marked failed."""
        pending = expect_fields(self, state, {"pending": SEQUENCE})["pending"]
        if len(pending) > 1:
            raise bad_state(self, state, "field 'pending' holds at most one element")
        if self._pending is not None:
            release_refs(self._pending[1], error=RuntimeError(f"{self}: discarded by restore()"))
        self._pending = (pending[-1], None) if pending else None
        if self._pending is not None:
            self._ensure_worker()


# -- map_async ---------------------------------------------------------------------------
