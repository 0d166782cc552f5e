"""Nodes that count, group and remember elements.

``slice``, ``partition``, ``partition_unique``, ``sliding_window``, ``unique`` and
``collect``: each keeps a little state between elements, exposes it through
``snapshot()``/``restore()``, and follows the Streamz metadata rules (which refs
it holds and for how long, which metadata it emits) with the Streamz bugs fixed:

* a node holding refs releases them only once the downstream work it started has
  finished (awaitables included), and marks them failed if that work raised;
* elements dropped by ``partition_unique`` release their refs at once (Streamz
  never releases them);
* emitted metadata is always a flat ``list[dict]``, or ``None`` when no element
  carried any (so that metadata-free elements stay on the fused fast path).

Every node except ``partition`` with a ``timeout`` and ``collect`` runs in fused
code (a ``step`` stage, see :mod:`millstream.core.fusion`) when its elements carry
no metadata. When some buffered element still holds refs, the fused step falls
back to the plain ``update`` for that element, so both paths emit the same values
and the same metadata.
"""

from __future__ import annotations

import asyncio
import logging
import operator
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable, Iterable, Iterator, MutableMapping
from typing import Any

from .._utils import (
    annotate_error,
    check_callable,
    check_positive_int,
    convert_interval,
    identity,
    short_repr,
)
from ..core.awaitables import await_all, push_from_outside, release_refs_after, run_awaitables
from ..core.fusion import SKIP, Stage
from ..core.hold import Hold
from ..core.loop import in_loop_thread, sync
from ..core.refs import Metadata, release_refs, retain_refs
from ..core.state import COUNT, NUMBER, SEQUENCE, bad_state, dict_of_pairs, expect_fields
from ..core.stream import Stream

__all__ = [
    "LRU",
    "collect",
    "partition",
    "partition_unique",
    "slice",
    "sliding_window",
    "unique",
]

logger = logging.getLogger("millstream.operators")


_MISSING: Any = object()


# -- helpers shared by the nodes ---------------------------------------------------------
def _emit_then_release(
    node: Stream, x: Any, metadata: Metadata | None, done: Metadata | None
) -> list[Any]:
    """Emit ``x`` with ``metadata``; release the node's hold on ``done`` once downstream is done.

    Returns the awaitables to hand back upstream (one that also releases ``done``).
    If emitting raises, ``done`` is released as failed and the error propagates.
    """
    try:
        pending = node._emit(x, metadata=metadata)
    except BaseException as e:
        release_refs(done, error=e)
        raise
    if done:
        if pending:
            return [release_refs_after(pending, done)]
        release_refs(done)
    return pending


def _run_detached(pending: list[Any]) -> None:
    """Run awaitables produced where nobody can await them (inside fused code)."""
    if pending:
        run_awaitables(pending)


def _discard(held: Iterable[Metadata | None], node: Stream) -> None:
    """Give up refs held for elements that ``restore()`` throws away (marked failed)."""
    error = RuntimeError(f"{node}: element discarded by restore()")
    for metadata in held:
        release_refs(metadata, error=error)


def _check_key(node_name: str, key: Any) -> None:
    """A key that is neither callable nor usable as an index fails at construction."""
    if callable(key):
        return
    try:
        hash(key)
    except TypeError:
        raise TypeError(
            f"{node_name}: key must be callable or a hashable index into each element, "
            f"got {short_repr(key)}"
        ) from None


# -- slice -------------------------------------------------------------------------------
@Stream.register_api()
class slice(Stream):
    """Pass on some elements by position, counting from 0.

    **Streamz semantics, not Python slicing:** the element at position ``i`` is
    emitted when ``i >= start`` and ``i % step == 0``, so ``slice(1, None, 2)``
    passes positions 2, 4, 6… (``[1::2]`` would give 1, 3, 5…). This is kept
    because code written for Streamz relies on it; to get Python slicing with a
    ``start`` that is not a multiple of ``step``, put ``slice(start)`` before
    ``slice(None, None, step)``. Once ``end`` elements have arrived the node
    detaches itself from its upstreams (the hook ``detach_at_end()``, which a
    subclass counting elsewhere overrides).

    Parameters
    ----------
    start : int, optional
        First position that may pass (default 0).
    end : int, optional
        Stop after this many elements (exclusive). ``None`` never stops;
        ``0`` passes nothing.
    step : int, optional
        Pass only positions that are multiples of ``step`` (default 1).

    Notes
    -----
    Negative values (and ``step=0``) raise ``ValueError``.

    Examples
    --------
    >>> source = Stream()
    >>> L = source.slice(2, 6, 2).sink_to_list()
    >>> for i in range(10):
    ...     source.emit(i)
    >>> L
    [2, 4]
    >>> source = Stream()
    >>> L = source.slice(1, None, 2).sink_to_list()
    >>> for i in range(7):
    ...     source.emit(i)
    >>> L
    [2, 4, 6]
    """

    def __init__(
        self,
        upstream: Stream,
        start: int | None = None,
        end: int | None = None,
        step: int | None = None,
        **kwargs: Any,
    ):
        start, end, step = (
            self._check_index("start", start),
            self._check_index("end", end),
            self._check_index("step", step),
        )
        if step == 0:
            raise ValueError("slice: step must not be zero")
        self.state = 0
        self.star = start or 0
        self.end = end
        self.step = step or 1
        Stream.__init__(self, upstream, **kwargs)
        self.detach_at_end()

    @staticmethod
    def _check_index(name: str, value: Any) -> int | None:
        if value is None:
            return None
        if isinstance(value, bool):
            raise TypeError(f"slice: {name} must be an integer or None, got {value!r}")
        try:
            index = operator.index(value)
        except TypeError:
            raise TypeError(
                f"slice: {name} must be an integer or None, got {short_repr(value)}"
            ) from None
        if index < 0:
            raise ValueError(f"slice: negative indices are not supported, got {name}={index}")
        return index

    def detach_at_end(self) -> None:
        """Hook: once ``end`` elements have arrived, detach from the upstreams (a subclass
        that keeps counting elsewhere, as the Dask node on the workers, overrides it)."""
        if self.end is not None and self.state >= self.end:
            for upstream in list(self.upstreams):
                if self in upstream.downstreams:
                    upstream._remove_downstream(self)

    def _step(self, x: Any) -> Any:
        i = self.state
        end = self.end
        if end is not None and i >= end:
            return SKIP
        self.state = i + 1
        if end is not None and i + 1 >= end:
            self.detach_at_end()
        if i >= self.star and i % self.step == 0:
            return x
        return SKIP

    def update(self, x: Any, who: Stream | None = None, metadata: Metadata | None = None) -> Any:
        out = self._step(x)
        if out is SKIP:
            return None
        return self._emit(out, metadata=metadata)

    _fusion_update = update

    def _fusion_stage(self) -> Stage:
        return Stage("step", self._step, may_skip=True)

    def snapshot(self) -> dict[str, Any]:
        """``{'count': elements seen so far}``."""
        return {"count": self.state}

    def restore(self, state: dict[str, Any]) -> None:
        self.state = expect_fields(self, state, {"count": COUNT})["count"]
        if self.end is not None and self.state >= self.end:
            self.detach_at_end()
        else:
            for upstream in self.upstreams:
                if self not in upstream.downstreams:
                    upstream._add_downstream(self)


# -- partition ---------------------------------------------------------------------------
@Stream.register_api()
class partition(Stream):
    """Group elements into tuples of ``n``.

    With ``key``, elements are grouped per key (``key(x)`` if ``key`` is callable,
    else ``x[key]``) and each key's tuple is emitted when it is full. With
    ``timeout`` (seconds, or a string such as ``'500ms'``), a partial tuple is
    emitted ``timeout`` after the first element of its group arrived, if the group
    has not filled up by then; the timer runs on the node's clock.

    Refs are held until an element's tuple has been emitted and downstream is done
    with it; the tuple carries the concatenated metadata of its elements.

    Unlike Streamz, only a ``partition`` with a ``timeout`` needs an event loop: one
    without runs inline in the emitting thread (and in fused code).

    Hooks for subclasses (the Dask node computes keys on the workers through them):
    ``group_key(x)``, the group of an element, and ``take_group(key) -> (values,
    metadata)``, which removes a full or timed-out group before it is emitted.

    Parameters
    ----------
    n : int
        Size of each tuple.
    timeout : float or str, optional
        Emit a partial tuple this long after its first element.
    key : callable or index, optional
        Group elements by this key.

    Examples
    --------
    >>> source = Stream()
    >>> L = source.partition(3).sink_to_list()
    >>> for i in range(10):
    ...     source.emit(i)
    >>> L
    [(0, 1, 2), (3, 4, 5), (6, 7, 8)]
    >>> source = Stream()
    >>> L = source.partition(2, key=lambda x: x % 2).sink_to_list()
    >>> for i in range(6):
    ...     source.emit(i)
    >>> L
    [(0, 2), (1, 3)]
    """

    _graphviz_shape = "diamond"
    #: with a ``timeout`` a timer emits partial tuples: a checkpoint holds it
    emits_from_task = True

    def __init__(
        self,
        upstream: Stream,
        n: int,
        timeout: float | str | None = None,
        key: Hashable | Callable[[Any], Any] | None = None,
        **kwargs: Any,
    ):
        self.n = check_positive_int("partition", "n", n)
        self._timeout: float | None = None
        if timeout is not None:
            try:
                self._timeout = convert_interval(timeout)
            except (TypeError, ValueError) as e:
                raise type(e)(f"partition: bad timeout {short_repr(timeout)}: {e}") from None
            kwargs["ensure_io_loop"] = True
        if key is not None:
            _check_key("partition", key)
        self._key = key
        self._buffer: dict[Any, list[Any]] = {}
        self._metadata_buffer: dict[Any, Metadata] = {}
        self._timers: dict[Any, tuple[object, Any, float]] = {}  # key -> (token, handle, due)
        self._tasks: set[asyncio.Future[Any]] = set()
        Stream.__init__(self, upstream, **kwargs)

    @property
    def timeout(self) -> float | None:
        return self._timeout

    @property
    def key(self) -> Any:
        return self._key

    def group_key(self, x: Any) -> Any:
        """Hook: the group of ``x`` (``None`` without ``key``)."""
        key = self._key
        if key is None:
            return None
        try:
            return key(x) if callable(key) else x[key]
        except Exception as e:
            annotate_error(e, self, key if callable(key) else None, x)
            raise

    def extra_metrics(self) -> dict[str, Any]:
        """``backlog``: the elements held in groups not emitted yet."""
        return {"backlog": sum(len(group) for group in list(self._buffer.values()))}

    def take_group(self, key: Any) -> tuple[tuple[Any, ...], Metadata | None]:
        """Hook: remove ``key``'s group (and its timer); return its values and metadata."""
        values = self._buffer.pop(key)
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer[1].cancel()
        return tuple(values), self._metadata_buffer.pop(key, None)

    def update(self, x: Any, who: Stream | None = None, metadata: Metadata | None = None) -> Any:
        key = self.group_key(x)
        group = self._buffer.get(key)
        if group is None:
            group = self._buffer[key] = []
        group.append(x)
        if metadata:
            retain_refs(metadata)
            held = self._metadata_buffer.get(key)
            if held is None:
                self._metadata_buffer[key] = list(metadata)
            else:
                held.extend(metadata)
        if len(group) >= self.n:
            values, held_metadata = self.take_group(key)
            return _emit_then_release(self, values, held_metadata, held_metadata)
        if len(group) == 1 and self._timeout is not None:
            self._start_timer(key)
        return None

    _fusion_update = update

    def _step(self, x: Any) -> Any:
        if self._metadata_buffer:
            _run_detached(self.update(x) or [])
            return SKIP
        key = self.group_key(x)
        group = self._buffer.get(key)
        if group is None:
            group = self._buffer[key] = []
        group.append(x)
        if len(group) >= self.n:
            del self._buffer[key]
            return tuple(group)
        return SKIP

    def _fusion_stage(self) -> Stage | None:
        if self._timeout is not None:
            return None
        return Stage("step", self._step, may_skip=True, user_func=self._key)

    # -- timeout -------------------------------------------------------------------------
    def _start_timer(self, key: Any, wait: float | None = None) -> None:
        assert self._timeout is not None
        token = object()
        asyncio_loop = getattr(self.loop, "asyncio_loop", self.loop)
        wait = self._timeout if wait is None else wait
        handle = self.clock.call_later(asyncio_loop, wait, self._on_timeout, key, token)
        self._timers[key] = (token, handle, self.clock.now() + wait)

    def _on_timeout(self, key: Any, token: object) -> None:
        timer = self._timers.get(key)
        if timer is None or timer[0] is not token or key not in self._buffer:
            return  # stale: the group filled up (or was restored) meanwhile
        hold = self.hold
        if hold is not None and hold.closed:  # a checkpoint: the group stays in the snapshot
            self._track(self._timeout_when_open(hold, key, token))
            return
        values, held_metadata = self.take_group(key)
        try:
            pending = _emit_then_release(self, values, held_metadata, held_metadata)
        except Exception:
            logger.exception("%s: emitting a partial tuple after the timeout failed", self)
            return
        if pending:
            if hold is not None:  # in hand until downstream has absorbed it
                hold.take()
            self._track(self._finish(pending, hold))

    def _track(self, coroutine: Any) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _timeout_when_open(self, hold: Hold, key: Any, token: object) -> None:
        await hold.wait_open()
        self._on_timeout(key, token)

    async def _finish(self, pending: list[Any], hold: Hold | None = None) -> None:
        try:
            await await_all(pending)
        except Exception:
            logger.exception("%s: downstream of a partial tuple failed", self)
        finally:
            if hold is not None:
                hold.leave()

    # -- state -----------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """``{'buffers': [[key, [values...]], ...]}`` (key ``None`` without ``key=``); with
        a ``timeout``, also ``'due_in'``: the seconds left to each group's timeout."""
        state: dict[str, Any] = {"buffers": [[k, list(v)] for k, v in self._buffer.items()]}
        if self._timeout is not None:
            now, timers = self.clock.now(), self._timers
            state["due_in"] = [
                max(0.0, timers[k][2] - now) if k in timers else self._timeout for k in self._buffer
            ]
        return state

    def restore(self, state: dict[str, Any]) -> None:
        """Load buffers; with a ``timeout``, each restored group times out after its
        ``due_in`` (a full timeout in a state without it)."""
        expect_fields(self, state, {"buffers": SEQUENCE})
        groups = dict_of_pairs(self, state, "buffers")
        due_in = state.get("due_in")
        if due_in is not None and (
            type(due_in) not in SEQUENCE
            or len(due_in) != len(groups)
            or not all(NUMBER(d) and d >= 0 for d in due_in)
        ):
            raise bad_state(self, state, "field 'due_in' must hold seconds >= 0 per group")
        for key, values in groups.items():
            if type(values) not in SEQUENCE or len(values) >= self.n:
                raise bad_state(
                    self,
                    state,
                    f"the group of {short_repr(key)} must be a list of fewer "
                    f"than n={self.n} elements, got {short_repr(values)}",
                )
            if key is not None and self._key is None:
                raise bad_state(self, state, f"a group has a key {short_repr(key)}, without key=")
        _discard(self._metadata_buffer.values(), self)
        for timer in self._timers.values():
            timer[1].cancel()
        self._timers = {}
        self._metadata_buffer = {}
        self._buffer = {k: list(v) for k, v in groups.items() if v}
        if self._timeout is None or not self._buffer:
            return
        waits = dict(zip(groups, due_in, strict=True)) if due_in is not None else {}
        asyncio_loop = getattr(self.loop, "asyncio_loop", self.loop)
        if in_loop_thread(self.loop) or not asyncio_loop.is_running():
            self._start_restored_timers(waits)
        else:

            async def start() -> None:
                self._start_restored_timers(waits)

            sync(self.loop, start)

    def _start_restored_timers(self, waits: dict[Any, float]) -> None:
        for key in self._buffer:
            self._start_timer(key, waits.get(key))


# -- partition_unique --------------------------------------------------------------------
@Stream.register_api()
class partition_unique(Stream):
    """Group elements with distinct keys into tuples of ``n``.

    An element whose key is already in the current group is dropped
    (``keep="first"``) or replaces the earlier one and moves to the end
    (``keep="last"``). The tuple is in element order. A dropped element's refs are
    released at once; kept elements' refs are held until their tuple has been
    emitted and downstream is done with it.

    Parameters
    ----------
    n : int
        Number of distinct keys per tuple.
    key : callable or index
        ``key(x)``, or ``x[key]`` if not callable (default: the element itself).
    keep : {"first", "last"}
        Which of two elements with the same key to keep.

    Examples
    --------
    >>> source = Stream()
    >>> L = source.partition_unique(n=3, keep="first").sink_to_list()
    >>> for x in [1, 2, 1, 3, 1, 3, 3, 2]:
    ...     source.emit(x)
    >>> L
    [(1, 2, 3), (1, 3, 2)]
    >>> source = Stream()
    >>> L = source.partition_unique(n=3, keep="last").sink_to_list()
    >>> for x in [1, 2, 1, 3, 1, 3, 3, 2]:
    ...     source.emit(x)
    >>> L
    [(2, 1, 3), (1, 3, 2)]
    """

    _graphviz_shape = "diamond"

    def __init__(
        self,
        upstream: Stream,
        n: int,
        key: Hashable | Callable[[Any], Hashable] = identity,
        keep: str = "first",
        **kwargs: Any,
    ):
        self.n = check_positive_int("partition_unique", "n", n)
        _check_key("partition_unique", key)
        if keep not in ("first", "last"):
            raise ValueError(
                f'partition_unique: keep must be "first" or "last", got {short_repr(keep)}'
            )
        self.key = key
        self.keep = keep
        self._buffer: dict[Any, Any] = {}
        self._metadata_buffer: dict[Any, Metadata] = {}
        Stream.__init__(self, upstream, **kwargs)

    def _get_key(self, x: Any) -> Any:
        key = self.key
        try:
            return key(x) if callable(key) else x[key]
        except Exception as e:
            annotate_error(e, self, key if callable(key) else None, x)
            raise

    def _add(self, x: Any, metadata: Metadata | None) -> bool:
        """Put ``x`` in the group; True if the group is now full."""
        y = self._get_key(x)
        buffer = self._buffer
        try:
            present = y in buffer
        except TypeError as e:
            annotate_error(e, self, self.key if callable(self.key) else None, x)
            raise
        if self.keep == "last":
            if present:
                del buffer[y]
                replaced = self._metadata_buffer.pop(y, None)
                if replaced:
                    release_refs(replaced)
        elif present:
            return False
        buffer[y] = x
        if metadata:
            retain_refs(metadata)
            self._metadata_buffer[y] = metadata
        return len(buffer) >= self.n

    def _take(self) -> tuple[tuple[Any, ...], Metadata | None]:
        values = tuple(self._buffer.values())
        held = [m for ms in self._metadata_buffer.values() for m in ms]
        self._buffer = {}
        self._metadata_buffer = {}
        return values, held or None

    def update(self, x: Any, who: Stream | None = None, metadata: Metadata | None = None) -> Any:
        if self._add(x, metadata):
            values, held = self._take()
            return _emit_then_release(self, values, held, held)
        return None

    _fusion_update = update

    def _step(self, x: Any) -> Any:
        if self._metadata_buffer:
            _run_detached(self.update(x) or [])
            return SKIP
        if self._add(x, None):
            values = tuple(self._buffer.values())
            self._buffer = {}
            return values
        return SKIP

    def _fusion_stage(self) -> Stage:
        return Stage("step", self._step, may_skip=True, user_func=self.key)

    def snapshot(self) -> dict[str, Any]:
        """``{'buffer': [[key, value], ...]}`` in element order."""
        return {"buffer": [[k, v] for k, v in self._buffer.items()]}

    def extra_metrics(self) -> dict[str, Any]:
        """``backlog``: the elements held (one per key) until the next emission."""
        return {"backlog": len(self._buffer)}

    def restore(self, state: dict[str, Any]) -> None:
        expect_fields(self, state, {"buffer": SEQUENCE})
        buffer = dict_of_pairs(self, state, "buffer")
        if len(buffer) >= self.n:
            raise bad_state(self, state, f"the group must hold fewer than n={self.n} elements")
        _discard(self._metadata_buffer.values(), self)
        self._metadata_buffer = {}
        self._buffer = buffer


# -- sliding_window ----------------------------------------------------------------------
@Stream.register_api()
class sliding_window(Stream):
    """Emit the last ``n`` elements as a tuple, on every element.

    With ``return_partial=False`` nothing is emitted until ``n`` elements have
    arrived. An element's refs are held until it has left the window (after the
    last tuple containing it has been emitted and downstream is done with it);
    each tuple carries the metadata of every element in it.

    Examples
    --------
    >>> source = Stream()
    >>> L = source.sliding_window(3, return_partial=False).sink_to_list()
    >>> for i in range(6):
    ...     source.emit(i)
    >>> L
    [(0, 1, 2), (1, 2, 3), (2, 3, 4), (3, 4, 5)]
    >>> source = Stream()
    >>> L = source.sliding_window(2).sink_to_list()
    >>> for i in range(3):
    ...     source.emit(i)
    >>> L
    [(0,), (0, 1), (1, 2)]
    """

    _graphviz_shape = "diamond"

    def __init__(self, upstream: Stream, n: int, return_partial: bool = True, **kwargs: Any):
        self.n = check_positive_int("sliding_window", "n", n)
        self.partial = bool(return_partial)
        self._buffer: deque[Any] = deque(maxlen=self.n)
        # one entry per element in the window: its metadata list, or None
        self.metadata_buffer: deque[Metadata | None] = deque()
        self._held = 0  # entries of metadata_buffer that hold refs
        Stream.__init__(self, upstream, **kwargs)

    @property
    def return_partial(self) -> bool:
        return self.partial

    def update(self, x: Any, who: Stream | None = None, metadata: Metadata | None = None) -> Any:
        buffer, held_list = self._buffer, self.metadata_buffer
        if metadata:
            retain_refs(metadata)
            self._held += 1
        else:
            metadata = None
        buffer.append(x)
        held_list.append(metadata)
        if not (self.partial or len(buffer) == self.n):
            return None
        flat = [m for ms in held_list if ms for m in ms] if self._held else None
        leaving = held_list.popleft() if len(held_list) == self.n else None
        if leaving:
            self._held -= 1
        return _emit_then_release(self, tuple(buffer), flat or None, leaving)

    _fusion_update = update

    def _step(self, x: Any) -> Any:
        if self._held:
            _run_detached(self.update(x) or [])
            return SKIP
        buffer, held_list = self._buffer, self.metadata_buffer
        buffer.append(x)
        if len(held_list) < self.n - 1:
            held_list.append(None)
        if self.partial or len(buffer) == self.n:
            return tuple(buffer)
        return SKIP

    def _fusion_stage(self) -> Stage:
        return Stage("step", self._step, may_skip=True)

    def snapshot(self) -> dict[str, Any]:
        """``{'window': [values...]}`` (oldest first)."""
        return {"window": list(self._buffer)}

    def extra_metrics(self) -> dict[str, Any]:
        """``backlog``: the elements of the window held now."""
        return {"backlog": len(self._buffer)}

    def restore(self, state: dict[str, Any]) -> None:
        """Take the last ``n`` elements of ``state['window']`` (a list)."""
        values = list(expect_fields(self, state, {"window": SEQUENCE})["window"])[-self.n :]
        _discard(self.metadata_buffer, self)
        self._buffer = deque(values, maxlen=self.n)
        keep = len(values) if len(values) < self.n else self.n - 1
        self.metadata_buffer = deque([None] * keep)
        self._held = 0


# -- unique ------------------------------------------------------------------------------
class LRU(MutableMapping[Any, Any]):
    """A mapping that keeps at most ``maxsize`` keys, evicting the least recently used.

    Reading a key (``[]``, ``get``) or writing it counts as a use; ``in`` does not.
    This is the history of ``unique(maxsize=..., hashable=True)``.

    >>> seen = LRU(2)
    >>> seen['a'] = seen['b'] = 1
    >>> seen.get('a')
    1
    >>> seen['c'] = 1
    >>> list(seen)
    ['a', 'c']
    """

    def __init__(self, maxsize: int, items: Iterable[tuple[Any, Any]] = ()):
        self.maxsize = maxsize
        self._data: OrderedDict[Any, Any] = OrderedDict()
        for k, v in items:
            self[k] = v

    def __getitem__(self, key: Any) -> Any:
        value = self._data[key]
        self._data.move_to_end(key)
        return value

    def get(self, key: Any, default: Any = None) -> Any:
        data = self._data
        value = data.get(key, _MISSING)
        if value is _MISSING:
            return default
        data.move_to_end(key)
        return value

    def __setitem__(self, key: Any, value: Any) -> None:
        data = self._data
        data[key] = value
        data.move_to_end(key)
        while len(data) > self.maxsize:
            data.popitem(last=False)

    def __delitem__(self, key: Any) -> None:
        del self._data[key]

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __iter__(self) -> Iterator[Any]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"LRU({self.maxsize}, {list(self._data.items())!r})"


@Stream.register_api()
class unique(Stream):
    """Drop elements whose ``key(x)`` has been seen before.

    The history is the ``.seen`` attribute (it may be primed by hand, as in
    Streamz): with ``hashable=True`` a dict, or an :class:`LRU` of ``maxsize`` keys
    where a repeated key counts as a use; with ``hashable=False`` a list, most
    recent first, trimmed to ``maxsize`` (for unhashable keys; O(maxsize) per
    element). Metadata passes through unchanged; no ref is held.

    Parameters
    ----------
    maxsize : int, optional
        How many keys to remember (default: all).
    key : callable
        The key of an element (default: the element).
    hashable : bool
        Whether keys are hashable.

    Examples
    --------
    >>> source = Stream()
    >>> L = source.unique(maxsize=1).sink_to_list()
    >>> for x in [1, 1, 2, 2, 2, 1, 3]:
    ...     source.emit(x)
    >>> L
    [1, 2, 1, 3]
    >>> source = Stream()
    >>> L = source.unique(key=lambda d: d['id'], hashable=False).sink_to_list()
    >>> for d in [{'id': [1]}, {'id': [2]}, {'id': [1]}]:
    ...     source.emit(d)
    >>> L
    [{'id': [1]}, {'id': [2]}]
    """

    def __init__(
        self,
        upstream: Stream,
        maxsize: int | None = None,
        key: Callable[[Any], Any] = identity,
        hashable: bool = True,
        **kwargs: Any,
    ):
        if maxsize is not None:
            check_positive_int("unique", "maxsize", maxsize)
        check_callable("unique", "key", key)
        self.key = key
        self.maxsize = maxsize
        self.hashable = hashable
        self.seen: Any
        if hashable:
            self.seen = LRU(maxsize) if maxsize else {}
        else:
            self.seen = []
        Stream.__init__(self, upstream, **kwargs)

    def _step(self, x: Any) -> Any:
        key = self.key
        if key is identity:
            y = x
        else:
            try:
                y = key(x)
            except Exception as e:
                annotate_error(e, self, key, x)
                raise
        seen = self.seen
        if isinstance(seen, list):
            if y in seen:
                seen.remove(y)
                seen.insert(0, y)
                return SKIP
            seen.insert(0, y)
            if self.maxsize:
                del seen[self.maxsize :]
            return x
        try:
            if seen.get(y, _MISSING) is not _MISSING:
                return SKIP
            seen[y] = 1
        except TypeError as e:
            annotate_error(e, self, None, x)
            raise
        return x

    def update(self, x: Any, who: Stream | None = None, metadata: Metadata | None = None) -> Any:
        out = self._step(x)
        if out is SKIP:
            return None
        return self._emit(out, metadata=metadata)

    _fusion_update = update

    def _fusion_stage(self) -> Stage:
        return Stage("step", self._step, may_skip=True, user_func=self.key)

    def snapshot(self) -> dict[str, Any]:
        """``{'seen': [...]}``: ``[key, value]`` pairs, oldest first (``hashable=True``),
        or the keys, most recent first (``hashable=False``)."""
        seen = self.seen
        if isinstance(seen, list):
            return {"seen": list(seen)}
        if isinstance(seen, LRU):
            return {"seen": [[k, v] for k, v in seen._data.items()]}
        return {"seen": [[k, v] for k, v in seen.items()]}

    def restore(self, state: dict[str, Any]) -> None:
        items = expect_fields(self, state, {"seen": SEQUENCE})["seen"]
        if not self.hashable:
            self.seen = list(items)
            if self.maxsize:
                del self.seen[self.maxsize :]
            return
        seen = dict_of_pairs(self, state, "seen", distinct=False)
        self.seen = LRU(self.maxsize, seen.items()) if self.maxsize else seen


# -- collect -----------------------------------------------------------------------------
@Stream.register_api()
class collect(Stream):
    """Hold elements until :meth:`flush` emits them all as one tuple.

    Typical use: ``other.sink(collector.flush)`` emits what was collected whenever
    ``other`` produces something. Refs are held until the flushed tuple has been
    emitted and downstream is done with it.

    Parameters
    ----------
    cache : deque or list, optional
        Where elements are kept (default: a new deque).
    metadata_cache : deque or list, optional
        Where their metadata is kept.

    Examples
    --------
    >>> source, trigger = Stream(), Stream()
    >>> collector = source.collect()
    >>> L = collector.sink_to_list()
    >>> _ = trigger.sink(collector.flush)
    >>> source.emit(1); source.emit(2)
    >>> trigger.emit('now')
    >>> trigger.emit('again')
    >>> L
    [(1, 2), ()]
    """

    def __init__(
        self,
        upstream: Stream,
        cache: Any = None,
        metadata_cache: Any = None,
        **kwargs: Any,
    ):
        self.cache = deque() if cache is None else cache
        self.metadata_cache = deque() if metadata_cache is None else metadata_cache
        Stream.__init__(self, upstream, **kwargs)

    def update(self, x: Any, who: Stream | None = None, metadata: Metadata | None = None) -> Any:
        self.cache.append(x)
        if metadata:
            retain_refs(metadata)
            self.metadata_cache.extend(metadata)
        return None

    def flush(self, _: Any = None) -> Any:
        """Emit everything collected as a tuple (possibly empty) and start afresh.

        Returns ``None``, or, when downstream gave back awaitables and an event loop
        runs in this thread, a task finishing with them. Called from another thread
        than the graph's running loop, it runs on the loop and blocks until
        downstream is done (as ``emit`` does).
        """
        return push_from_outside(self.loop, self._flush)

    def _flush(self) -> list[Any]:
        values = tuple(self.cache)
        held = list(self.metadata_cache)
        self.cache.clear()
        self.metadata_cache.clear()
        return _emit_then_release(self, values, held or None, held or None)

    def extra_metrics(self) -> dict[str, Any]:
        """``backlog``: the elements collected, waiting for :meth:`flush`."""
        return {"backlog": len(self.cache)}

    def snapshot(self) -> dict[str, Any]:
        """``{'cache': [values...]}``."""
        return {"cache": list(self.cache)}

    def restore(self, state: dict[str, Any]) -> None:
        expect_fields(self, state, {"cache": SEQUENCE})
        if self.metadata_cache:
            _discard([list(self.metadata_cache)], self)
        self.metadata_cache.clear()
        self.cache.clear()
        self.cache.extend(state["cache"])
