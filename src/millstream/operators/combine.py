"""Nodes with several inputs: ``zip``, ``combine_latest``, ``zip_latest``, ``union``.

Inputs are *positions*: ``zip(a, b, a)`` has three positions fed by two streams.
A stream listed several times is wired to the node by one edge, so it delivers
each element once and the node writes that element into every position the
stream holds (``zip(a, a)`` emits ``(x, x)``), as in Streamz, whose downstream
sets hold a node once. ``connect``/``disconnect`` add and remove positions through
``_add_upstream``/``_remove_upstream``.

Metadata and refs (streamz-api.md §1.4):

* ``zip`` holds each buffered element's refs until its tuple is emitted and
  downstream has returned; the tuple carries all members' metadata, in order.
* ``combine_latest`` holds the refs of each position's latest value until that
  position receives a new value; a tuple carries every position's metadata.
* ``zip_latest`` holds each lossless element until it is emitted and the latest
  value of each other input until it is replaced.
* ``union`` passes metadata through unchanged and holds nothing.

A node that emits a tuple without any metadata emits ``metadata=None`` (so the
fused fast path below it stays available).
"""

from __future__ import annotations

import asyncio
import builtins
from collections import deque
from collections.abc import Iterable
from typing import Any

from .._utils import check_positive_int, identity, short_repr
from ..core.fusion import Stage
from ..core.hold import RoomWait
from ..core.refs import release_refs, retain_refs
from ..core.state import SEQUENCE, bad_state, expect_fields
from ..core.stream import Stream, graph_changed

__all__ = ["combine_latest", "union", "zip", "zip_latest"]

_END: Any = object()


# -- helpers shared by the multi-input nodes ----------------------------------------------
def distinct_streams(streams: Iterable[Stream]) -> list[Stream]:
    """``streams`` without repeats (by identity), in first-seen order: the upstreams of a
    multi-input node (``zip(a, a)`` has one), also for the Dask versions."""
    seen: set[int] = set()
    out = []
    for s in streams:
        if id(s) not in seen:
            seen.add(id(s))
            out.append(s)
    return out


def _index(upstreams: list[Stream]) -> dict[int, list[int]]:
    """Map ``id(stream)`` to the positions it feeds."""
    index: dict[int, list[int]] = {}
    for i, u in enumerate(upstreams):
        index.setdefault(id(u), []).append(i)
    return index


def _count_edges(upstream: Stream, node: Stream) -> int:
    return sum(1 for d in upstream.downstreams if d is node)


def _drop_extra_edge(upstream: Stream, node: Stream) -> None:
    """After ``connect`` of a stream already feeding ``node``: keep a single edge."""
    ds = upstream.downstreams
    if _count_edges(upstream, node) > 1:
        for j in range(len(ds) - 1, -1, -1):
            if ds[j] is node:
                del ds[j]
                graph_changed()
                return


def _keep_edge(upstream: Stream, node: Stream) -> None:
    """After removing one position of a stream that still feeds ``node``: keep its edge."""
    if _count_edges(upstream, node) == 0:
        upstream.downstreams.append(node)
        graph_changed()


def _hold_latest(
    node: Any, who: Stream | None, positions: list[int], x: Any, metadata: list[dict] | None
) -> bool:
    """Make ``x`` the latest value at each of ``positions`` (holding its refs, releasing those
    of the value it replaces); return True once every input has produced a value."""
    last, held = node.last, node.metadata
    if metadata and positions:
        retain_refs(metadata, len(positions))
    for i in positions:
        old = held[i]
        last[i] = x
        held[i] = metadata
        if old:
            release_refs(old)
    missing = node.missing
    if missing:
        missing.discard(who)
        return not missing
    return True


def _latest_snapshot(node: Any) -> dict[str, Any]:
    """The latest value per position and which inputs have arrived (values only, no refs)."""
    return {
        "last": list(node.last),
        "arrived": [u not in node.missing for u in node.upstreams],
    }


def _check_latest(node: Any, state: Any, fields: dict[str, Any]) -> None:
    """Check a ``_latest_snapshot`` (with ``fields`` more) against the node's positions."""
    expect_fields(node, state, {"last": SEQUENCE, "arrived": SEQUENCE, **fields})
    last, arrived = state["last"], state["arrived"]
    n = len(node.upstreams)
    if len(last) != n or len(arrived) != n:
        raise bad_state(node, state, f"it has {len(last)} positions but the node has {n} upstreams")
    if not all(type(seen) is bool for seen in arrived):
        raise bad_state(node, state, "field 'arrived' must hold a bool per position")


def _restore_latest(node: Any, state: dict[str, Any]) -> None:
    """Load a ``_latest_snapshot`` checked by ``_check_latest``: release the refs held, set
    the values."""
    last, arrived = list(state["last"]), list(state["arrived"])
    for md in node.metadata:
        release_refs(md)
    node.last = last
    node.metadata = [None] * len(last)
    node.missing = {u for u, seen in builtins.zip(node.upstreams, arrived, strict=True) if not seen}


def _concat(metadatas: Iterable[list[dict] | None]) -> list[dict] | None:
    out = [m for md in metadatas if md for m in md]
    return out or None


def _not_upstream(node: Stream, who: Any) -> ValueError:
    return ValueError(
        f"{node}: received an element from {who!r}, which is not one of its upstreams"
    )


def _resolve(fut: asyncio.Future[None]) -> None:
    """Complete a backpressure waiter, from any thread."""
    if fut.done():
        return
    loop = fut.get_loop()
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        fut.set_result(None)
    else:
        loop.call_soon_threadsafe(lambda: None if fut.done() else fut.set_result(None))


# -- zip -------------------------------------------------------------------------------------
@Stream.register_api()
class zip(Stream):
    """Emit a tuple once every input has produced a new element.

    Each input position has its own buffer; when all are non-empty, one element
    is taken from each and the tuple is emitted, in position order. Positional
    arguments that are not streams are literals placed at their position in
    every tuple (``zip(a, 123, b)`` emits ``(x_a, 123, x_b)``).

    Parameters
    ----------
    *upstreams : Stream or literal
        The inputs; at least one must be a stream. A stream may appear twice.
    maxsize : int
        Buffer length beyond which ``update`` returns an awaitable that completes
        once that buffer has room again (backpressure). Without an event loop
        (a plain synchronous graph) nothing can wait, and the buffer simply grows,
        as in Streamz.

    Examples
    --------
    >>> a, b = Stream(), Stream()
    >>> L = a.zip(b, 'lit').sink_to_list()
    >>> a.emit(1); a.emit(2); b.emit('x')
    >>> L
    [(1, 'x', 'lit')]
    >>> b.emit('y')
    >>> L
    [(1, 'x', 'lit'), (2, 'y', 'lit')]
    """

    _graphviz_shape = "triangle"
    _graphviz_orientation = 270

    def __init__(self, *upstreams: Any, maxsize: int = 10, **kwargs: Any):
        self.maxsize = check_positive_int("zip", "maxsize", maxsize)
        self.literals: list[tuple[int, Any]] = [
            (i, v) for i, v in enumerate(upstreams) if not isinstance(v, Stream)
        ]
        streams = [u for u in upstreams if isinstance(u, Stream)]
        if not streams:
            raise ValueError("zip: needs at least one upstream stream, got none")
        self._buffers: list[deque[tuple[Any, list[dict] | None]]] = [deque() for _ in streams]
        self._waiters: list[deque[asyncio.Future[None]]] = [deque() for _ in streams]
        self._n_waiters = 0
        Stream.__init__(self, upstreams=distinct_streams(streams), **kwargs)
        self.upstreams = streams
        self._reindex()

    def _reindex(self) -> None:
        self._index = _index(self.upstreams)
        self._empty = sum(1 for b in self._buffers if not b)

    @property
    def buffers(self) -> dict[Stream, deque[tuple[Any, list[dict] | None]]]:
        """The buffer of each input stream (first position of a repeated stream)."""
        out: dict[Stream, deque[tuple[Any, list[dict] | None]]] = {}
        for u, b in builtins.zip(self.upstreams, self._buffers, strict=True):
            out.setdefault(u, b)
        return out

    def extra_metrics(self) -> dict[str, Any]:
        """``backlog``: the elements waiting in the buffers for a partner."""
        return {"backlog": sum(len(b) for b in list(self._buffers))}

    # -- topology ------------------------------------------------------------------------
    def _add_upstream(self, upstream: Stream) -> None:
        _drop_extra_edge(upstream, self)
        self._buffers.append(deque())
        self._waiters.append(deque())
        Stream._add_upstream(self, upstream)
        self._reindex()

    def _remove_upstream(self, upstream: Stream) -> None:
        i = next(j for j, u in enumerate(self.upstreams) if u is upstream)
        buf = self._buffers.pop(i)
        for waiter in self._waiters.pop(i):
            self._n_waiters -= 1
            _resolve(waiter)
        for _, md in buf:
            release_refs(md)
        del self.upstreams[i]
        graph_changed()
        if any(u is upstream for u in self.upstreams):
            _keep_edge(upstream, self)
        self._reindex()

    # -- data ----------------------------------------------------------------------------
    def update(self, x: Any, who: Stream | None = None, metadata: list[dict] | None = None) -> Any:
        positions = self._index.get(id(who))
        if positions is None:
            raise _not_upstream(self, who)
        entry = (x, metadata)
        buffers = self._buffers
        for i in positions:
            buf = buffers[i]
            if not buf:
                self._empty -= 1
            buf.append(entry)
        if metadata:
            retain_refs(metadata, len(positions))
        result: list[Any] = []
        if self._empty == 0:
            result = self._flush()
        for i in positions:
            if len(buffers[i]) > self.maxsize:
                waiter = self._wait(i)
                if waiter is not None:
                    result.append(waiter)
                break
        return result

    def _flush(self) -> list[Any]:
        """Emit tuples while every buffer holds an element."""
        result: list[Any] = []
        while self._empty == 0 and self._buffers:
            buffers = self._buffers
            entries = [b.popleft() for b in buffers]
            self._empty = sum(1 for b in buffers if not b)
            if self._n_waiters:
                self._wake()
            values = [e[0] for e in entries]
            tup = self._pack(values) if self.literals else tuple(values)
            md = _concat(e[1] for e in entries)
            try:
                r = self._emit(tup, md)
            except BaseException as e:
                release_refs(md, error=e)
                raise
            release_refs(md)
            if r:
                result.extend(r)
        return result

    def _pack(self, values: list[Any]) -> tuple[Any, ...]:
        out: list[Any] = []
        it = iter(values)
        for i, literal in self.literals:
            while len(out) < i:
                v = next(it, _END)
                if v is _END:
                    break
                out.append(v)
            out.append(literal)
        out.extend(it)
        return tuple(out)

    def _wait(self, i: int) -> asyncio.Future[None] | None:
        """A waiter completing when buffer ``i`` is back within ``maxsize`` (None: no loop)."""
        if self.loop is None:
            return None  # a loop-less graph: nothing can wait, the buffer grows (as in Streamz)
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            return None
        fut: asyncio.Future[None] = RoomWait(loop=running)  # the element is in the buffer
        self._waiters[i].append(fut)
        self._n_waiters += 1
        return fut

    def _wake(self) -> None:
        """Complete the oldest waiters of every buffer that is back within ``maxsize``."""
        total = 0
        for buf, waiters in builtins.zip(self._buffers, self._waiters, strict=True):
            if not waiters:
                continue
            live = deque(w for w in waiters if not w.done())
            over = max(len(buf) - self.maxsize, 0)
            while len(live) > over:
                _resolve(live.popleft())
            waiters.clear()
            waiters.extend(live)
            total += len(live)
        self._n_waiters = total

    # -- state ---------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """``{'buffers': [[value, ...] per input position], 'literals': [(index, value)]}``.

        Values only: the refs of buffered elements belong to the running pipeline.
        """
        return {
            "buffers": [[x for x, _ in buf] for buf in self._buffers],
            "literals": [tuple(lit) for lit in self.literals],
        }

    def restore(self, state: dict[str, Any]) -> None:
        buffers = expect_fields(self, state, {"buffers": SEQUENCE, "literals": SEQUENCE})["buffers"]
        if len(buffers) != len(self.upstreams) or not all(type(b) in SEQUENCE for b in buffers):
            raise bad_state(
                self,
                state,
                f"field 'buffers' must hold one list per input position, and the node has "
                f"{len(self.upstreams)} input positions",
            )
        literals = state["literals"]
        if not all(
            type(lit) in SEQUENCE and len(lit) == 2 and type(lit[0]) is int for lit in literals
        ):
            raise bad_state(self, state, "field 'literals' must hold [index, value] pairs")
        for buf in self._buffers:
            for _, md in buf:
                release_refs(md)
        self._buffers = [deque((x, None) for x in values) for values in buffers]
        for waiters in self._waiters:
            for waiter in waiters:
                _resolve(waiter)
        self._waiters = [deque() for _ in buffers]
        self._n_waiters = 0
        self.literals = [(i, v) for i, v in literals]
        self._reindex()


# -- combine_latest --------------------------------------------------------------------------
def _emit_on_streams(upstreams: list[Stream], emit_on: Any) -> tuple[Stream, ...]:
    items = [emit_on] if isinstance(emit_on, (Stream, int)) else emit_on
    if isinstance(items, (str, bytes)) or not isinstance(items, Iterable):
        raise TypeError(
            "combine_latest: emit_on must be a stream, an int index or a list of them, "
            f"got {short_repr(emit_on)}"
        )
    out: list[Stream] = []
    for item in items:
        if isinstance(item, bool) or not isinstance(item, (Stream, int)):
            raise TypeError(
                "combine_latest: emit_on must be a stream, an int index or a list of them, "
                f"got {short_repr(item)}"
            )
        if isinstance(item, int):
            if not -len(upstreams) <= item < len(upstreams):
                raise ValueError(
                    f"combine_latest: emit_on index {item} is out of range for "
                    f"{len(upstreams)} upstreams"
                )
            out.append(upstreams[item])
        elif any(u is item for u in upstreams):
            out.append(item)
        else:
            raise ValueError(f"combine_latest: emit_on stream {item} is not one of the upstreams")
    if not out:
        raise ValueError("combine_latest: emit_on is empty, the node would never emit")
    return tuple(out)


@Stream.register_api()
class combine_latest(Stream):
    """Emit a tuple of the latest value of every input whenever an input updates.

    Nothing is emitted until every input has produced a value. With ``emit_on``,
    only updates of the listed inputs emit; the others just refresh their value.

    Parameters
    ----------
    *upstreams : Stream
        The inputs.
    emit_on : Stream, int, or list of them, optional
        The inputs (streams or positions) whose updates emit a tuple; default: all.

    Notes
    -----
    Each input's latest value keeps its refs until the input receives a new
    value, so an input that goes quiet holds back the commit of its last record.

    Examples
    --------
    >>> a, b = Stream(), Stream()
    >>> L = a.combine_latest(b).sink_to_list()
    >>> a.emit(1); b.emit('x'); a.emit(2); b.emit('y')
    >>> L
    [(1, 'x'), (2, 'x'), (2, 'y')]
    >>> a, b = Stream(), Stream()
    >>> L = a.combine_latest(b, emit_on=a).sink_to_list()
    >>> a.emit(1); b.emit('x'); a.emit(2); b.emit('y')
    >>> L
    [(2, 'x')]
    """

    _graphviz_shape = "triangle"
    _graphviz_orientation = 270

    def __init__(self, *upstreams: Stream, emit_on: Any = None, **kwargs: Any):
        streams = list(upstreams)
        for u in streams:
            if not isinstance(u, Stream):
                raise TypeError(f"combine_latest: upstreams must be streams, got {short_repr(u)}")
        if not streams:
            raise ValueError("combine_latest: needs at least one upstream stream, got none")
        self._initial_emit_on = emit_on
        self.last: list[Any] = [None] * len(streams)
        self.metadata: list[list[dict] | None] = [None] * len(streams)
        self.missing: set[Stream] = set(streams)
        self.emit_on = streams if emit_on is None else _emit_on_streams(streams, emit_on)
        Stream.__init__(self, upstreams=distinct_streams(streams), **kwargs)
        self.upstreams = streams
        self._index = _index(streams)

    @property
    def emit_on(self) -> tuple[Stream, ...]:
        """The streams whose updates emit (settable, as in Streamz)."""
        return self._emit_on

    @emit_on.setter
    def emit_on(self, streams: Iterable[Stream]) -> None:
        self._emit_on = tuple(streams)
        self._emit_on_ids = {id(s) for s in self._emit_on}

    # -- topology ------------------------------------------------------------------------
    def _add_upstream(self, upstream: Stream) -> None:
        _drop_extra_edge(upstream, self)
        self.last.append(None)
        self.metadata.append(None)
        self.missing.add(upstream)
        Stream._add_upstream(self, upstream)
        self._index = _index(self.upstreams)
        if self._initial_emit_on is None:
            self.emit_on = self.upstreams

    def _remove_upstream(self, upstream: Stream) -> None:
        i = next(j for j, u in enumerate(self.upstreams) if u is upstream)
        rest = self.upstreams[:i] + self.upstreams[i + 1 :]
        if (
            self._initial_emit_on is not None
            and rest
            and not getattr(self, "_destroying", False)
            and not any(id(u) in self._emit_on_ids for u in rest)
        ):
            _keep_edge(upstream, self)  # disconnect already removed the edge: put it back
            raise RuntimeError(
                f"{self}: can't remove {upstream}, the last emit_on stream: the node would "
                "never emit again. Set node.emit_on to other upstreams first (for instance "
                "node.emit_on = tuple(node.upstreams) to emit on every input)."
            )
        del self.last[i]
        release_refs(self.metadata.pop(i))
        del self.upstreams[i]
        graph_changed()
        if any(u is upstream for u in self.upstreams):
            _keep_edge(upstream, self)
        else:
            self.missing.discard(upstream)
        self._index = _index(self.upstreams)
        if self._initial_emit_on is None:
            self.emit_on = self.upstreams

    def destroy(self, streams: Iterable[Stream] | None = None) -> None:
        """Detach from all (or the given) upstreams; detaching from all skips the emit_on check."""
        targets = list(self.upstreams if streams is None else streams)
        everything = all(any(t is u for t in targets) for u in self.upstreams)
        self._destroying = everything
        try:
            Stream.destroy(self, targets)
        finally:
            self._destroying = False

    # -- data ----------------------------------------------------------------------------
    def update(self, x: Any, who: Stream | None = None, metadata: list[dict] | None = None) -> Any:
        positions = self._index.get(id(who))
        if positions is None:
            raise _not_upstream(self, who)
        if not _hold_latest(self, who, positions, x, metadata):
            return None
        if id(who) in self._emit_on_ids:
            return self._emit(tuple(self.last), _concat(self.metadata))
        return None

    # -- state ---------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """``{'last': [value per position], 'arrived': [bool per position]}`` (values only)."""
        return _latest_snapshot(self)

    def restore(self, state: dict[str, Any]) -> None:
        _check_latest(self, state, {})
        _restore_latest(self, state)


# -- zip_latest ------------------------------------------------------------------------------
@Stream.register_api()
class zip_latest(Stream):
    """Pair every element of ``lossless`` with the latest value of each other input.

    Elements of ``lossless`` are buffered until every other input has produced a
    value, then each is emitted as ``(x, latest_b, latest_c, ...)``; updates of the
    other inputs alone emit nothing (except to flush that buffer). Only one input
    is lossless.

    Examples
    --------
    >>> a, b = Stream(), Stream()
    >>> L = a.zip_latest(b).sink_to_list()
    >>> a.emit(1); a.emit(2); b.emit('x'); a.emit(3); b.emit('y'); b.emit('z'); a.emit(4)
    >>> L
    [(1, 'x'), (2, 'x'), (3, 'x'), (4, 'z')]
    """

    def __init__(self, lossless: Stream, *upstreams: Stream, **kwargs: Any):
        streams = [lossless, *upstreams]
        for u in streams:
            if not isinstance(u, Stream):
                raise TypeError(f"zip_latest: upstreams must be streams, got {short_repr(u)}")
        self.lossless = lossless
        self.lossless_buffer: deque[tuple[Any, list[dict] | None]] = deque()
        self.last: list[Any] = [None] * len(streams)
        self.metadata: list[list[dict] | None] = [None] * len(streams)
        self.missing: set[Stream] = set(streams)
        Stream.__init__(self, upstreams=distinct_streams(streams), **kwargs)
        self.upstreams = streams
        self._index = _index(streams)

    # -- topology ------------------------------------------------------------------------
    def _add_upstream(self, upstream: Stream) -> None:
        _drop_extra_edge(upstream, self)
        self.last.append(None)
        self.metadata.append(None)
        self.missing.add(upstream)
        Stream._add_upstream(self, upstream)
        self._index = _index(self.upstreams)

    def _remove_upstream(self, upstream: Stream) -> None:
        i = next(j for j, u in enumerate(self.upstreams) if u is upstream)
        del self.last[i]
        release_refs(self.metadata.pop(i))
        del self.upstreams[i]
        graph_changed()
        if any(u is upstream for u in self.upstreams):
            _keep_edge(upstream, self)
        else:
            self.missing.discard(upstream)
            if upstream is self.lossless:  # its pending elements can never be emitted now
                for _, md in self.lossless_buffer:
                    release_refs(md)
                self.lossless_buffer.clear()
        self._index = _index(self.upstreams)

    # -- data ----------------------------------------------------------------------------
    def update(self, x: Any, who: Stream | None = None, metadata: list[dict] | None = None) -> Any:
        positions = self._index.get(id(who))
        if positions is None:
            raise _not_upstream(self, who)
        if who is self.lossless:
            if metadata:
                retain_refs(metadata)
            self.lossless_buffer.append((x, metadata))
            positions = []
        if not _hold_latest(self, who, positions, x, metadata):
            return None
        return self._flush()

    def _flush(self) -> list[Any]:
        result: list[Any] = []
        buffer = self.lossless_buffer
        lossless = self.lossless
        while buffer:
            x, md = buffer.popleft()
            values = [
                x if u is lossless else v
                for u, v in builtins.zip(self.upstreams, self.last, strict=True)
            ]
            out_md = _concat(
                md if u is lossless else m
                for u, m in builtins.zip(self.upstreams, self.metadata, strict=True)
            )
            try:
                r = self._emit(tuple(values), out_md)
            except BaseException as e:
                release_refs(md, error=e)
                raise
            release_refs(md)
            if r:
                result.extend(r)
        return result

    # -- state ---------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """``{'buffer': [lossless values], 'last': [...], 'arrived': [...]}`` (values only)."""
        return {"buffer": [x for x, _ in self.lossless_buffer], **_latest_snapshot(self)}

    def restore(self, state: dict[str, Any]) -> None:
        _check_latest(self, state, {"buffer": SEQUENCE})
        _restore_latest(self, state)
        for _, md in self.lossless_buffer:
            release_refs(md)
        self.lossless_buffer = deque((x, None) for x in state["buffer"])


# -- union -----------------------------------------------------------------------------------
@Stream.register_api()
class union(Stream):
    """Pass on every element of every input, as it arrives.

    Examples
    --------
    >>> a, b = Stream(), Stream()
    >>> L = a.union(b).map(str).sink_to_list()
    >>> a.emit(1); b.emit(2); a.emit(3)
    >>> L
    ['1', '2', '3']
    """

    def __init__(self, *upstreams: Stream, **kwargs: Any):
        for u in upstreams:
            if not isinstance(u, Stream):
                raise TypeError(f"union: upstreams must be streams, got {short_repr(u)}")
        Stream.__init__(self, upstreams=distinct_streams(upstreams), **kwargs)
        self.upstreams = list(upstreams)

    def _add_upstream(self, upstream: Stream) -> None:
        _drop_extra_edge(upstream, self)
        Stream._add_upstream(self, upstream)

    def _remove_upstream(self, upstream: Stream) -> None:
        Stream._remove_upstream(self, upstream)
        if any(u is upstream for u in self.upstreams):
            _keep_edge(upstream, self)

    def update(self, x: Any, who: Stream | None = None, metadata: list[dict] | None = None) -> Any:
        return self._emit(x, metadata=metadata)

    _fusion_update = update

    def _fusion_stage(self) -> Stage:
        return Stage("step", identity)
