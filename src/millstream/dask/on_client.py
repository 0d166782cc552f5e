"""Dask nodes that run on the client, over units (element futures and batches).

Time and flow nodes: ``delay`` and ``union`` pass units (a batch is one unit);
``timed_window`` and ``timed_window_unique`` make the window on a worker when it holds
batches; ``rate_limit``, ``latest`` and ``sink`` split batches into element futures (see
``_Exploding`` in :mod:`millstream.dask._flow`). ``sink`` receives futures (as in
Streamz); ``sink_to_textfile``, ``to_kafka``, ``to_mqtt``, ``to_postgres``, ``to_websocket``,
the connectors' sinks (``to_parquet``, ``to_pulsar``, ``to_rabbitmq``, ``to_redis_stream``),
``with_timestamps`` and ``window`` work on local values (a ``gather`` is put before them).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .._utils import identity
from ..core import Metadata, Stream, release_refs, retain_refs
from ..core.state import SEQUENCE, dict_of_pairs, expect_fields
from ..operators import combine, timing
from ..sinks.core import sink as core_sink
from ._bridge import get_client, record_origin
from ._flow import _Exploding, futures_in, parts
from ._state import element_values
from ._tasks import Batch, concat_units, key_of, unique_window
from .border import gather
from .stream import DaskStream

__all__ = [
    "delay",
    "latest",
    "rate_limit",
    "sink",
    "sink_to_list",
    "timed_window",
    "timed_window_unique",
    "union",
]


@DaskStream.register_api()
class delay(DaskStream, timing.delay):
    """``delay`` over futures and batches (a batch is delayed as a whole).

    ``snapshot()`` fetches the elements waiting (blocking: call it outside the event
    loops): ``{'pending': [(seconds to wait, element), ...]}``, each element of a batch
    with the batch's wait; ``restore()`` queues them as local values. A checkpoint
    waits until the queue is empty (futures cannot be saved).
    """

    drains_for_checkpoint = True

    def snapshot(self) -> dict[str, Any]:
        pending = timing.delay.snapshot(self)["pending"]
        values = element_values([x for _, x in pending])
        return {
            "pending": [
                (wait, v) for (wait, _), vs in zip(pending, values, strict=True) for v in vs
            ]
        }


@DaskStream.register_api()
class union(DaskStream, combine.union):
    """``union`` of Dask streams: units pass as they arrive."""


@DaskStream.register_api()
class latest(_Exploding, timing.latest):
    """``latest`` over futures: of a batch only its last element is taken. A checkpoint
    waits until the pending element is out (futures cannot be saved)."""

    drains_for_checkpoint = True

    def update(self, x: Any, who: Stream | None = None, metadata: Metadata | None = None) -> Any:
        return self._explode_update(x, who, metadata)

    def _core_update(self, x: Any, who: Any, metadata: Metadata | None) -> Any:
        return timing.latest.update(self, x, who, metadata)

    def _positions(self, n: int) -> range:
        return range(n - 1, n) if n else range(0)

    def _emits_batches(self) -> bool:
        return False

    def snapshot(self) -> dict[str, Any]:
        """``{'pending': [element]}`` (fetched, blocking) or ``{'pending': []}``."""
        pending = timing.latest.snapshot(self)["pending"]
        return {"pending": [v for vs in element_values(pending) for v in vs][-1:]}


@DaskStream.register_api()
class rate_limit(_Exploding, timing.rate_limit):
    """``rate_limit`` over futures: the elements of a batch are spaced one by one."""

    def update(self, x: Any, who: Stream | None = None, metadata: Metadata | None = None) -> Any:
        return self._explode_update(x, who, metadata)

    def _core_update(self, x: Any, who: Any, metadata: Metadata | None) -> Any:
        return timing.rate_limit.update(self, x, who, metadata)

    def _emits_batches(self) -> bool:
        return False


def _window_of(units: list[Any]) -> Any:
    """A window's list: the units themselves if all are single elements, else the future of
    the list of their elements, built on a worker."""
    if not any(type(u) is Batch for u in units):
        return units
    kinds, values, sources = [], [], []
    for u in units:
        kind, value, source = parts(u)
        kinds.append(kind)
        values.append(value)
        sources.append(source)
    return get_client().submit(concat_units, kinds, values, sources, pure=False)


@DaskStream.register_api()
class timed_window(DaskStream, timing.timed_window):
    """``timed_window`` over futures: a list of the window's futures, or, when the window
    holds batches, the future of the list of its elements (made on a worker)."""

    def take_window(self) -> tuple[Any, Metadata]:
        window, metadata = super().take_window()
        return _window_of(window), metadata

    def _emits_batches(self) -> bool:
        return False

    def snapshot(self) -> dict[str, Any]:
        """As the local node's, the elements of the open window fetched (blocking: call it
        outside the event loops); ``restore()`` holds them as local values."""
        state = timing.timed_window.snapshot(self)
        state["buffer"] = [v for vs in element_values(state["buffer"]) for v in vs]
        return state


@DaskStream.register_api()
class timed_window_unique(DaskStream, timing.timed_window_unique):
    """``timed_window_unique`` over futures: the keys are computed on a worker when the
    window closes, which emits the future of the tuple of kept elements (``()`` when
    empty). Every element's refs are held until its window has been emitted."""

    snapshot_blocks = True  # snapshot() fetches the window's elements from the cluster

    def __init__(
        self,
        upstream: Stream,
        interval: Any,
        key: Any = identity,
        keep: str = "first",
        emit_empty: bool = True,
        **kwargs: Any,
    ):
        self._window_units: list[tuple[Any, Metadata | None]] = []
        super().__init__(upstream, interval, key=key, keep=keep, emit_empty=emit_empty, **kwargs)

    def _emits_batches(self) -> bool:
        return False

    def update(self, x: Any, who: Stream | None = None, metadata: Metadata | None = None) -> Any:
        retain_refs(metadata)
        self._window_units.append((x, metadata))
        return self.backpressure()

    def has_elements(self) -> bool:
        return bool(self._window_units)

    def take_window(self) -> tuple[Any, Metadata]:
        units, self._window_units = self._window_units, []
        metadata = [m for _, md in units if md for m in md]
        if not units:
            return (), metadata
        kinds, values, sources = [], [], []
        for u, _ in units:
            kind, value, source = parts(u)
            kinds.append(kind)
            values.append(value)
            sources.append(source)
        window = get_client().submit(
            unique_window, self.key, self.keep, kinds, values, sources, str(self), pure=False
        )
        record_origin(window, self, self.key if callable(self.key) else None)
        return window, metadata

    def snapshot(self) -> dict[str, Any]:
        """``{'buffer': [(key, element), ...], 'closes_in': seconds}`` of the open window
        (fetched, blocking: call it outside the event loops)."""
        closes_in = timing.timed_window_unique.snapshot(self)["closes_in"]
        units = [u for u, _ in self._window_units]
        if not units:
            return {"buffer": [], "closes_in": closes_in}
        elements = [v for vs in element_values(units) for v in vs]
        kept: dict[Any, Any] = {}
        for x in elements:
            k = key_of(self.key, x, str(self))
            if k in kept:
                if self.keep == "first":
                    continue
                del kept[k]
            kept[k] = x
        return {"buffer": list(kept.items()), "closes_in": closes_in}

    def restore(self, state: dict[str, Any]) -> None:
        """Hold the elements of ``state['buffer']`` as local values (checked first, as
        the local node does)."""
        expect_fields(self, state, {"buffer": SEQUENCE})
        buffer = dict_of_pairs(self, state, "buffer")
        # checks 'closes_in' and moves the timer (the window itself is held here)
        timing.timed_window_unique.restore(
            self, {"buffer": [], "closes_in": state.get("closes_in")}
        )
        error = RuntimeError(f"{self}: element discarded by restore()")
        for _, md in self._window_units:
            release_refs(md, error=error)
        self._window_units = [(x, None) for x in buffer.values()]


# -- sinks ----------------------------------------------------------------------------------------
@DaskStream.register_api()
class sink(_Exploding, core_sink):
    """Call ``func(future, *args, **kwargs)`` on the client for each element; emit nothing.

    As in Streamz, ``func`` receives futures (``gather().sink(func)`` gives it values);
    a batch is split into element futures first. An element's refs are held until its
    task has finished (released as failed if it failed).

    Examples
    --------
    >>> source = Stream()
    >>> futures = source.scatter().map(abs).sink_to_list()
    >>> source.emit(-3)
    >>> type(futures[0]).__name__, client.gather(futures)
    ('Future', [3])
    """

    def update(self, x: Any, who: Stream | None = None, metadata: Metadata | None = None) -> Any:
        return self._explode_update(x, who, metadata)

    def _core_update(self, x: Any, who: Any, metadata: Metadata | None) -> Any:
        result = core_sink.update(self, x, who, metadata)
        if metadata:
            self._hold_until_done(x, metadata)
        return result

    def _emits_batches(self) -> bool:
        return False

    def _hold_until_done(self, x: Any, metadata: Metadata) -> None:
        futures = [f for f in futures_in(x) if f.status == "pending"]
        failed = [f for f in futures_in(x) if f.status not in ("pending", "finished")]
        if failed:  # mark the refs failed (the caller's _emit still holds them)
            retain_refs(metadata)
            release_refs(metadata, error=RuntimeError(f"Dask task {failed[0].key!r} failed"))
            return
        if not futures:
            return
        retain_refs(metadata)
        left = [len(futures)]
        loop = self.loop

        def release() -> None:
            bad = [f for f in futures if f.status != "finished"]
            error = RuntimeError(f"Dask task {bad[0].key!r} failed") if bad else None
            release_refs(metadata, error=error)

        def done(_: Any) -> None:
            left[0] -= 1
            if left[0] == 0:
                loop.add_callback(release)

        for f in futures:
            f.add_done_callback(done)


def sink_to_list(upstream: Stream) -> list[Any]:
    """Append every element (futures, as in Streamz) to a new list and return the list.

    Examples
    --------
    >>> source = Stream()
    >>> L = source.scatter().map(str).sink_to_list()
    >>> source.emit(1)
    >>> client.gather(L)
    ['1']
    """
    collected: list[Any] = []
    sink(upstream, collected.append)
    return collected


DaskStream.register_api()(sink_to_list)


def _gathered(name: str) -> Callable[..., Stream]:
    def node(upstream: Stream, *args: Any, **kwargs: Any) -> Stream:
        return getattr(Stream, name)(gather(upstream), *args, **kwargs)

    node.__name__ = node.__qualname__ = name
    node.__doc__ = (
        f"``gather().{name}(...)``: the local ``{name}`` runs over the elements' values "
        "(Streamz would hand it futures)."
    )
    return node


# sinks writing elsewhere, and event-time nodes (which read the elements' timestamps)
for _name in (
    "sink_to_textfile",
    "to_kafka",
    "to_kafka_dead_letters",
    "to_mqtt",
    "to_parquet",
    "to_postgres",
    "to_pulsar",
    "to_rabbitmq",
    "to_redis_stream",
    "to_websocket",
    "with_timestamps",
    "window",
):
    DaskStream.register_api(attribute_name=_name)(_gathered(_name))
