"""Stateful Dask nodes over one input: the state stays on the cluster as a future.

One step task per unit, chained through the state (see ``_OnWorkers`` in
:mod:`millstream.dask._flow`): ``accumulate`` (on batches), ``frequencies`` (a partial
count per unit where the unit is, merged into the running table), ``unique``,
``partition_unique``, and, when their input may carry batches, ``partition``,
``sliding_window``, ``slice`` and ``collect``: the core node runs on a worker from its
snapshot. On a stream of element futures ``partition`` (without ``key``),
``sliding_window``, ``slice`` and ``collect`` keep Streamz's behaviour: the core node on the
client, over futures (tuples of futures, which ``gather`` turns into tuples of values);
``accumulate`` chains one task per element, its state a future. ``partition`` with a
``timeout`` runs on the client (the timer is there), its keys computed on the workers.
"""

from __future__ import annotations

import asyncio
import operator
from collections.abc import Callable
from typing import Any

from .._utils import annotate_error, check_callable, identity, no_default
from ..core import Metadata, Stream, await_all, in_loop_thread, sync
from ..core.state import detached, expect_fields
from ..operators import aggregate, counting
from ._bridge import get_client, record_origin
from ._detached import run_node
from ._flow import _Exploding, _OnWorkers, _RunsNode, _values, fetch, parts, wait_ready
from ._tasks import (
    Batch,
    accumulate_start,
    count_partial,
    first_output,
    fold,
    held_of,
    key_of,
    keys_of_items,
    merge_counts,
    nth,
    outputs_of,
    state_of,
)
from .stream import DaskStream, may_batch, pop_stream_kwargs

__all__ = [
    "accumulate",
    "collect",
    "frequencies",
    "partition",
    "partition_unique",
    "slice",
    "sliding_window",
    "unique",
]


@DaskStream.register_api()
class frequencies(_OnWorkers, aggregate.frequencies):
    """Count occurrences of each element on the cluster; emit the running counts (a dict).

    Each unit is first counted where it is (a partial count per element future or
    batch, in parallel), then merged into the running table, which stays on the
    cluster as a future. One table is emitted per unit: per element on a stream of
    element futures (as the local node), **once per batch** on batches (the counts
    after the batch; a batch of ``n`` words does not make ``n`` copies of the table).

    Examples
    --------
    >>> from millstream.testing import wait_for
    >>> source = Stream()
    >>> counts = source.scatter().flatten().frequencies()
    >>> L = counts.gather().sink_to_list()
    >>> source.emit(['the', 'cat', 'the'])
    >>> source.emit(['hat'])
    >>> wait_for(lambda: len(L) == 2, 10)
    >>> L
    [{'the': 2, 'cat': 1}, {'the': 2, 'cat': 1, 'hat': 1}]
    >>> counts.snapshot()
    {'counts': {'the': 2, 'cat': 1, 'hat': 1}}
    """

    _on_workers = True

    def _initial_state(self) -> Any:
        return {}

    def _emits_batches(self) -> bool:
        return False

    def update(self, x: Any, who: Stream | None = None, metadata: Metadata | None = None) -> Any:
        return self._worker_update(x, who, metadata)

    def _prepare(self, x: Any) -> Any:
        kind, value, source = parts(x)
        try:
            partial = get_client().submit(count_partial, kind, value, source, str(self), pure=False)
        except Exception as e:
            annotate_error(e, self, None, x)
            raise
        record_origin(partial, self, None)
        return partial

    def _submit(
        self, client: Any, state: Any, x: Any, position: int, tag: int | None, track: bool
    ) -> tuple[Any, Any, Any]:
        table = client.submit(merge_counts, state, x, pure=False)
        record_origin(table, self, None)
        return table, table, None

    def snapshot(self) -> dict[str, Any]:
        """``{'counts': {value: count}}``, fetched from the cluster (blocking)."""
        return {"counts": dict(self._fetch_state())}

    def restore(self, state: dict[str, Any]) -> None:
        """Take the counts of ``state`` (checked, copied) as the table on the cluster."""
        self._wstate = self.counts_of(self, state)


@DaskStream.register_api()
class accumulate(_OnWorkers, _Exploding):
    """Fold the stream on the cluster: the state is a future, each step a task.

    On element futures (Streamz's model) each element submits ``func(state, x,
    **kwargs)``; its future becomes the new state and is emitted. Without ``start`` the
    first element becomes the state and is emitted as is. With ``returns_state=True``
    ``func`` returns ``(state, result)``, split by two more tasks; ``result`` is emitted.
    ``with_state=True`` emits ``(state, result)`` pairs (of futures). ``scan`` is an alias.

    When the input may carry batches (after ``flatten`` or ``filter``), one task folds a
    whole unit and a :class:`Batch` of the per-element results is emitted; the state
    chain then skips a unit whose task failed, and a failing ``func`` raises at
    ``gather`` while the next unit continues from the state before the failing element.

    Examples
    --------
    >>> source = Stream()
    >>> node = source.scatter().accumulate(lambda acc, x: acc + x, start=100)
    >>> L = node.gather().sink_to_list()
    >>> for i in range(3):
    ...     source.emit(i)
    >>> L, node.snapshot()
    ([100, 101, 103], {'state': 103})
    """

    _graphviz_shape = "box"

    def __init__(
        self,
        upstream: Stream,
        func: Callable[..., Any],
        start: Any = no_default,
        returns_state: bool = False,
        **kwargs: Any,
    ):
        check_callable("accumulate", "func", func)
        self.func = func
        self.state = start
        self.returns_state = returns_state
        self.with_state = kwargs.pop("with_state", False)
        stream_kwargs = pop_stream_kwargs(kwargs)
        self.kwargs = kwargs
        self._on_workers = may_batch(upstream)
        super().__init__(upstream, **stream_kwargs)

    def _emits_batches(self) -> bool:
        return self._on_workers

    def update(self, x: Any, who: Stream | None = None, metadata: Metadata | None = None) -> Any:
        if self._on_workers:
            return self._worker_update(x, who, metadata)
        return self._explode_update(x, who, metadata)

    # -- element futures: Streamz's chain of tasks ----------------------------------------------
    def _core_update(self, x: Any, who: Any, metadata: Metadata | None) -> Any:
        if self.state is no_default:
            self.state = x
            return self._emit((x, x) if self.with_state else x, metadata=metadata)
        try:
            client = get_client()
            result = client.submit(self.func, self.state, x, **self.kwargs)
            if self.returns_state:
                record_origin(result, self, self.func)
                state = client.submit(operator.getitem, result, 0)
                result = client.submit(operator.getitem, result, 1)
            else:
                state = result
        except Exception as e:
            annotate_error(e, self, self.func, x)
            raise
        record_origin(state, self, self.func)
        record_origin(result, self, self.func)
        self.state = state
        return self._emit((state, result) if self.with_state else result, metadata=metadata)

    # -- batches: one fold task per unit --------------------------------------------------------
    def _initial_state(self) -> Any:
        return accumulate_start(self.state)

    def _submit(
        self, client: Any, state: Any, x: Any, position: int, tag: int | None, track: bool
    ) -> tuple[Any, Any, Any]:
        kind, value, source = parts(x)
        result = client.submit(
            fold,
            self.func,
            state,
            kind,
            value,
            source,
            self.returns_state,
            self.with_state,
            self.kwargs,
            str(self),
            pure=False,
        )
        record_origin(result, self, self.func)
        new_state = client.submit(state_of, result, pure=False)
        outputs = client.submit(outputs_of, result, pure=False)
        record_origin(outputs, self, self.func)
        return new_state, Batch(outputs), None

    def snapshot(self) -> dict[str, Any]:
        """``{'state': the state as a local value}``; a future state is fetched (blocking).

        Call it from outside the event loops (the client's and the graph's).
        """
        from distributed import Future

        if self._on_workers:
            has, value = self._fetch_state()
            return {"state": detached(value) if has else no_default}
        state = self.state
        if isinstance(state, Future):
            state = state.result()
        return {"state": detached(state)}

    def restore(self, state: dict[str, Any]) -> None:
        """Take ``state['state']`` (a local value, copied) as the state; the next task
        receives it."""
        value = detached(expect_fields(self, state, {"state": None})["state"])
        # str first: == on a frame is elementwise
        if isinstance(value, str) and value == no_default:
            value = no_default
        if self._on_workers:
            self._wstate = accumulate_start(value)
        else:
            self.state = value


@DaskStream.register_api()
class unique(_RunsNode, counting.unique):
    """Drop elements whose ``key(x)`` has been seen before; the history stays on the cluster.

    A :class:`Batch` of the new elements is emitted per unit. ``.seen`` may be primed
    by hand before the first element, as in Streamz.

    Examples
    --------
    >>> from millstream.testing import wait_for
    >>> source = Stream()
    >>> L = source.scatter().flatten().unique().gather().sink_to_list()
    >>> source.emit([1, 2, 1]); source.emit([3, 2])
    >>> wait_for(lambda: len(L) == 3, 10)
    >>> L
    [1, 2, 3]
    """

    _core_cls = counting.unique
    _on_workers = True

    def __init__(
        self,
        upstream: Stream,
        maxsize: int | None = None,
        key: Callable[[Any], Any] = identity,
        hashable: bool = True,
        **kwargs: Any,
    ):
        super().__init__(upstream, maxsize=maxsize, key=key, hashable=hashable, **kwargs)
        self._setup((), {"maxsize": maxsize, "key": key, "hashable": hashable})


@DaskStream.register_api()
class partition_unique(_RunsNode, counting.partition_unique):
    """Group elements with distinct keys into tuples of ``n``, on the cluster.

    Examples
    --------
    >>> from millstream.testing import wait_for
    >>> source = Stream()
    >>> L = source.scatter().partition_unique(2).gather().sink_to_list()
    >>> for x in [1, 1, 2, 3, 3, 4]:
    ...     source.emit(x)
    >>> wait_for(lambda: len(L) == 2, 10)
    >>> L
    [(1, 2), (3, 4)]
    """

    _core_cls = counting.partition_unique
    _holds_elements = True
    _on_workers = True

    def __init__(
        self,
        upstream: Stream,
        n: int,
        key: Any = identity,
        keep: str = "first",
        **kwargs: Any,
    ):
        super().__init__(upstream, n, key=key, keep=keep, **kwargs)
        self._setup((n,), {"key": key, "keep": keep}, key_arg="key")


@DaskStream.register_api()
class partition(_RunsNode, counting.partition):
    """Group elements into tuples of ``n`` (per ``key``), with an optional ``timeout``.

    On element futures without ``key`` (Streamz's case) tuples of futures are made on
    the client. With a ``key``, or when the input may carry batches, the grouping runs
    on the cluster and batches of tuples of values are emitted. With a ``timeout`` the
    grouping runs on the client (the timer is there): batches are split into element
    futures, and keys, if any, are computed on the workers.

    Examples
    --------
    >>> from millstream.testing import wait_for
    >>> source = Stream()
    >>> L = source.scatter().flatten().partition(2).gather().sink_to_list()
    >>> source.emit([1, 2, 3]); source.emit([4, 5])
    >>> wait_for(lambda: len(L) == 2, 10)
    >>> L
    [(1, 2), (3, 4)]
    """

    _core_cls = counting.partition
    _holds_elements = True

    def __init__(
        self,
        upstream: Stream,
        n: int,
        timeout: Any = None,
        key: Any = None,
        **kwargs: Any,
    ):
        self._on_workers = timeout is None and (key is not None or may_batch(upstream))
        self._always_queue = timeout is not None and key is not None
        super().__init__(upstream, n, timeout=timeout, key=key, **kwargs)
        self._setup((n,), {"key": key}, key_arg="key" if key is not None else None)

    # -- with a timeout and a key: keys computed on the workers ----------------------------------
    async def _elements(self, x: Any) -> list[Any]:
        if not self._always_queue:
            return await _Exploding._elements(self, x)
        client = get_client()
        if not await wait_ready(x):
            raise RuntimeError(f"{self}: the task of this element failed; element dropped")
        if type(x) is Batch:
            keys = await fetch(
                client.submit(keys_of_items, self.key, x.future, x.source, str(self), pure=False)
            )
            return [
                _Keyed(client.submit(nth, x.future, x.source, i, pure=False), k)
                for i, k in enumerate(keys)
            ]
        k = await fetch(client.submit(key_of, self.key, x, str(self), pure=False))
        return [_Keyed(x, k)]

    def group_key(self, x: Any) -> Any:
        if type(x) is _Keyed:
            return x.k
        return super().group_key(x)

    def take_group(self, key: Any) -> tuple[tuple[Any, ...], Metadata | None]:
        values, metadata = super().take_group(key)
        return tuple(v.x if type(v) is _Keyed else v for v in values), metadata

    def snapshot(self) -> Any:
        """The local node's snapshot with the elements' values (fetched, blocking: call it
        outside the event loops); restored, they are local values whose keys are computed
        here."""
        if not self._always_queue:
            return super().snapshot()
        state = counting.partition.snapshot(self)
        state["buffers"] = [
            [k, [v.x if type(v) is _Keyed else v for v in values]] for k, values in state["buffers"]
        ]
        return _values(state)


class _Keyed:
    """An element future with its key, computed on a worker."""

    __slots__ = ("k", "x")

    def __init__(self, x: Any, k: Any):
        self.x = x
        self.k = k


@DaskStream.register_api()
class sliding_window(_RunsNode, counting.sliding_window):
    """Emit the last ``n`` elements as a tuple, on every element.

    On element futures, tuples of futures made on the client (as in Streamz); when the
    input may carry batches, the window is kept on the cluster and batches of tuples of
    values are emitted.

    Examples
    --------
    >>> from millstream.testing import wait_for
    >>> source = Stream()
    >>> L = source.scatter().flatten().sliding_window(2).gather().sink_to_list()
    >>> source.emit([1, 2]); source.emit([3])
    >>> wait_for(lambda: len(L) == 3, 10)
    >>> L
    [(1,), (1, 2), (2, 3)]
    """

    _core_cls = counting.sliding_window
    _holds_elements = True

    def __init__(self, upstream: Stream, n: int, return_partial: bool = True, **kwargs: Any):
        self._on_workers = may_batch(upstream)
        super().__init__(upstream, n, return_partial=return_partial, **kwargs)
        self._setup((n,), {"return_partial": return_partial})


@DaskStream.register_api()
class slice(_RunsNode, counting.slice):
    """Pass on some elements by position (Streamz semantics, see the local ``slice``).

    On element futures the count is kept on the client; when the input may carry
    batches it is kept on the cluster and a :class:`Batch` is emitted per unit (the node
    then stays attached after ``end``, emitting empty batches).

    Examples
    --------
    >>> from millstream.testing import wait_for
    >>> source = Stream()
    >>> L = source.scatter().flatten().slice(1, None, 2).gather().sink_to_list()
    >>> source.emit([0, 1, 2, 3]); source.emit([4, 5, 6])
    >>> wait_for(lambda: len(L) == 3, 10)
    >>> L
    [2, 4, 6]
    """

    _core_cls = counting.slice

    def __init__(
        self,
        upstream: Stream,
        start: int | None = None,
        end: int | None = None,
        step: int | None = None,
        **kwargs: Any,
    ):
        self._on_workers = may_batch(upstream)
        super().__init__(upstream, start, end, step, **kwargs)
        self._setup((start, end, step))

    def detach_at_end(self) -> None:
        if not self._on_workers:
            super().detach_at_end()


@DaskStream.register_api()
class collect(_RunsNode, counting.collect):
    """Hold elements until :meth:`flush` emits them all as one tuple.

    On element futures the tuple is a tuple of futures made on the client; when the
    input may carry batches the elements are kept on the cluster and ``flush`` emits the
    future of the tuple. A ``cache`` passed in is only used on the client.

    Examples
    --------
    >>> from millstream.testing import wait_for
    >>> source = Stream()
    >>> collector = source.scatter().flatten().collect()
    >>> L = collector.gather().sink_to_list()
    >>> source.emit([1, 2]); source.emit([3])
    >>> collector.flush()
    >>> wait_for(lambda: len(L) == 1, 10)
    >>> L
    [(1, 2, 3)]
    """

    _core_cls = counting.collect
    _holds_elements = True
    _emits_on_push = False

    def __init__(
        self, upstream: Stream, cache: Any = None, metadata_cache: Any = None, **kwargs: Any
    ):
        self._on_workers = may_batch(upstream)
        super().__init__(upstream, cache=cache, metadata_cache=metadata_cache, **kwargs)
        self._setup()

    def flush(self, _: Any = None) -> Any:
        """Emit everything collected as a tuple (possibly empty) and start afresh.

        On the cluster the flush waits its turn behind the elements still arriving. Called
        on the graph's loop it returns an awaitable finishing once the tuple has been
        emitted and downstream is done; from another thread it blocks until then.
        """
        if not self._on_workers:
            return counting.collect.flush(self, _)
        if in_loop_thread(self.loop):
            done: asyncio.Future[None] = self.loop.asyncio_loop.create_future()
            self._enqueue(self._flush_job, (), None, done)
            return done

        async def flush_on_loop() -> None:
            done: asyncio.Future[None] = self.loop.asyncio_loop.create_future()
            self._enqueue(self._flush_job, (), None, done)
            await done

        sync(self.loop, flush_on_loop)
        return None

    async def _flush_job(self) -> None:
        if self._wstate is None:
            self._wstate = self._initial_state()
        if not hasattr(self, "_held_units"):
            self._held_units = {}
        track = bool(self._held_units)
        client = get_client()
        result = client.submit(
            run_node, self._spec, self._wstate, "one", None, None, 0, None, "flush", pure=False
        )
        self._wstate = client.submit(state_of, result, pure=False)
        out = client.submit(first_output, result, pure=False)
        record_origin(out, self, None)
        pending = self._emit(out, None)
        if track:
            report = client.submit(held_of, result, pure=False)
            pending = self._after_report(report, self._unit_count, pending)
        if pending:
            await await_all(pending)
