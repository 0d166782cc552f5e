"""Nodes of :class:`DaskStream`: every core node, working on futures and batches.

Where each node runs
    * ``scatter`` and ``gather`` are the border: local values go to the cluster as
      futures, futures (and batches) come back as local values, in order.
    * ``map``, ``starmap``, ``filter``, ``remove``, ``pluck``, ``flatten``, ``map_async``:
      one task per unit, submitted at once. On an element future ``map``, ``starmap`` and
      ``pluck`` emit an element future (Streamz's model); ``flatten`` turns an element
      future into a :class:`~millstream.dask.Batch` of its items (no task), ``filter`` into
      a batch of 0 or 1 element (the predicate runs on the worker, nothing comes back to
      the client). On a batch each runs one task over the whole batch.
    * Stateful nodes keep their state on the cluster (one step task per unit, the state a
      future that never comes to the client): ``accumulate`` (on batches), ``frequencies``
      (a partial count per unit where the unit is, merged into the running table),
      ``unique``, ``partition_unique``, and, when their input may carry batches,
      ``partition``, ``sliding_window``, ``slice``, ``zip``, ``combine_latest``,
      ``zip_latest`` and ``collect``: the core node runs on a worker from its snapshot.
    * On a stream of element futures only, ``partition`` (without ``key``),
      ``sliding_window``, ``slice``, ``zip``, ``combine_latest``, ``zip_latest`` and
      ``collect`` keep Streamz's behaviour: the core node on the client, over futures
      (tuples of futures, which ``gather`` turns into tuples of values).
    * Time and flow nodes run on the client over units: ``buffer``, ``delay``, ``union``
      pass units (a batch is one unit), ``timed_window`` and ``timed_window_unique`` make
      the window on a worker when it holds batches, ``rate_limit``, ``latest``, ``sink``
      and ``partition`` with a ``timeout`` split batches into element futures.
    * ``sink`` receives futures (as in Streamz); ``sink_to_textfile``, ``to_kafka``,
      ``to_mqtt`` and ``to_websocket`` write local values (a ``gather`` is put before them).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import operator
import uuid
from collections import deque
from collections.abc import Callable
from typing import Any

from .._utils import annotate_error, check_callable, identity, no_default, short_repr
from ..core.refs import release_refs, retain_refs
from ..core.stream import Stream, await_all
from ..operators import aggregate as _aggregate
from ..operators import combine as _combine
from ..operators import counting as _counting
from ..operators import elementwise as _elementwise
from ..operators import timing as _timing
from ..sinks import core as _sinks
from ._bridge import (
    annotate_task_error,
    gather_result,
    get_client,
    record_origin,
    start_task,
)
from ._flow import _Exploding, _OnWorkers, fetch, futures_in, parts, wait_ready
from ._tasks import (
    Batch,
    NodeSpec,
    accumulate_start,
    apply_loaded,
    concat_units,
    count_partial,
    filter_items,
    first_output,
    flatten_items,
    fold,
    held_of,
    items_of,
    key_of,
    keys_of_items,
    map_async_items,
    map_async_one,
    map_items,
    merge_counts,
    nth,
    outputs_of,
    pluck_items,
    pluck_one,
    run_node,
    star_apply_loaded,
    starmap_items,
    state_of,
    unique_window,
    untag,
)
from .recovery import element_payload, submit_payload
from .stream import DaskStream

__all__ = [
    "accumulate",
    "buffer",
    "collect",
    "combine_latest",
    "delay",
    "filter",
    "flatten",
    "frequencies",
    "gather",
    "latest",
    "map",
    "map_async",
    "partition",
    "partition_unique",
    "pluck",
    "rate_limit",
    "remove",
    "scatter",
    "sink",
    "slice",
    "sliding_window",
    "starmap",
    "timed_window",
    "timed_window_unique",
    "union",
    "unique",
    "zip",
    "zip_latest",
]

Metadata = list[dict[str, Any]]

logger = logging.getLogger("millstream")

_STREAM_KWARGS = ("stream_name", "loop", "asynchronous", "ensure_io_loop", "clock")

# Keywords of ``Client.submit`` (the others go to the user's function).
_SUBMIT_OPTIONS = frozenset(
    {
        "key",
        "workers",
        "resources",
        "retries",
        "priority",
        "fifo_timeout",
        "allow_other_workers",
        "actor",
        "actors",
        "pure",
    }
)


def _stream_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Pop the ``Stream`` keywords out of ``kwargs`` (the rest belongs to the function)."""
    return {k: kwargs.pop(k) for k in _STREAM_KWARGS if k in kwargs}


def _split_submit_options(kwargs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(options for Client.submit, keywords for the function)``; tasks are impure by default."""
    options = {k: v for k, v in kwargs.items() if k in _SUBMIT_OPTIONS}
    options.pop("key", None)  # one key for many batch tasks would collide
    options.setdefault("pure", False)
    return options, {k: v for k, v in kwargs.items() if k not in _SUBMIT_OPTIONS}


def _star_apply(func: Callable[..., Any], x: Any, args: tuple[Any, ...], kwargs: dict) -> Any:
    """``func(*x, *args, **kwargs)``, run on a worker."""
    return func(*x, *args, **kwargs)


def _apply(func: Callable[..., Any], x: Any, kwargs: dict) -> Any:
    """``func(*x, **kwargs)``, run on a worker."""
    return func(*x, **kwargs)


def _task_key(func: Any, options: dict[str, Any], *inputs: Any) -> str:
    """``'<func name>-<id>'``, as ``client.submit(func, ...)`` names a task (the dashboard
    groups tasks by that prefix): a token of the inputs if ``pure=True``, else unique."""
    from dask.base import tokenize
    from dask.utils import funcname

    token = tokenize(func, *inputs) if options.get("pure") else uuid.uuid4().hex
    return f"{funcname(func)}-{token}"


def _may_batch(*streams: Any) -> bool:
    return any(getattr(s, "_may_batch", False) for s in streams)


def _distinct(streams: list[Stream]) -> list[Stream]:
    seen: set[int] = set()
    out = []
    for s in streams:
        if id(s) not in seen:
            seen.add(id(s))
            out.append(s)
    return out


async def _wait_for(previous: asyncio.Future[Any] | None) -> None:
    """Wait until the previous element's task is over (its outcome is its caller's)."""
    if previous is not None and not previous.done():
        await asyncio.wait({previous})


# -- the border: scatter and gather ---------------------------------------------------------
@DaskStream.register_api()
class scatter(DaskStream):
    """Send each element to the Dask cluster and emit its future.

    Each element is serialized on its own (dask's serializers, the whole element as one
    message: a dict stays one element, and equal values get distinct futures) and put
    on the cluster as a task that loads it, so the scheduler can run it again if the
    worker holding it dies: a worker lost mid-stream loses no element. When this node's
    only downstream is a Dask ``map`` or ``starmap``, the element travels inside that
    node's task instead (one task per element, not two; the futures emitted are
    ``map``'s). Futures are emitted at once, in arrival order; an element that cannot
    be serialized raises here, with a note naming this node. Also reachable as
    ``Stream.scatter()``.

    Examples
    --------
    >>> from distributed import Client
    >>> client = Client(processes=False, n_workers=1, threads_per_worker=1,
    ...                 dashboard_address='127.0.0.1:0')
    >>> source = Stream()
    >>> futures = source.scatter().sink_to_list()
    >>> L = source.scatter().gather().sink_to_list()
    >>> source.emit({'a': 1})
    >>> type(futures[0]).__name__, futures[0].result(), L
    ('Future', {'a': 1}, [{'a': 1}])
    >>> client.close()
    """

    def update(self, x: Any, who: Stream | None = None, metadata: Metadata | None = None) -> Any:
        try:
            client = get_client()
            payload = element_payload(x)
        except Exception as e:
            annotate_error(e, self, None, x)
            raise
        downstreams = self.downstreams
        if len(downstreams) == 1:
            for target in downstreams:
                if type(target) is map or type(target) is starmap:
                    return target._take_payload(client, payload, self.label, x, metadata)
        future = submit_payload(client, payload, type(x).__name__)
        record_origin(future, self, None)
        return self._emit(future, metadata=metadata)


@DaskStream.register_api()
class gather(Stream):
    """Wait for each future and emit its result as a local value.

    A plain :class:`Stream`: nodes after it run locally. A :class:`Batch` is emitted
    element by element, each with the batch's metadata. Collections of futures (the
    tuples of ``zip`` or ``partition``) come back as collections of values; local values
    pass through unchanged. Results are fetched as they come but emitted in arrival
    order; put a ``buffer(n)`` before ``gather`` to keep ``n`` tasks running at once
    (behind a buffer, up to ``n`` results are fetched at once, still emitted in order).
    Results come straight from the workers when the scheduler is on this machine or
    the client says so (``Client(direct_to_workers=True)``), else through the scheduler.

    The element's refs are held until its value has been emitted and downstream has
    finished. If the task failed, its exception is raised here, with a note naming
    this node and the node and function that raised it on the worker; the refs are
    released as failed.

    Examples
    --------
    >>> from distributed import Client
    >>> client = Client(processes=False, n_workers=1, threads_per_worker=1,
    ...                 dashboard_address='127.0.0.1:0')
    >>> source = Stream()
    >>> L = source.scatter().map(str.upper).gather().map(len).sink_to_list()
    >>> source.emit('dask')
    >>> L
    [4]
    >>> client.close()
    """

    _last: asyncio.Future[Any] | None = None

    def __init__(self, upstream: Stream | None = None, **kwargs: Any):
        kwargs["ensure_io_loop"] = True
        super().__init__(upstream, **kwargs)

    _ahead: deque[asyncio.Future[Any]] | None = None

    def update(self, x: Any, who: Stream | None = None, metadata: Metadata | None = None) -> Any:
        retain_refs(metadata)
        task = start_task(self._gather(x, metadata, self._last))
        if not isinstance(task, asyncio.Future):
            return task
        self._last = task
        if isinstance(who, _timing.buffer):
            return self._run_ahead(task, x, who.n)
        return task

    def _run_ahead(self, task: asyncio.Future[Any], x: Any, n: int) -> Any:
        """Behind a ``buffer(n)``: let up to ``n`` results be fetched at once.

        The buffer has already decoupled its upstream (errors behind it are logged, not
        raised), so the buffer is told the element is done while fewer than ``n`` are
        being fetched; beyond that it waits for the oldest. Emission stays in order.
        """
        ahead = self._ahead
        if ahead is None:
            ahead = self._ahead = deque()
        task.add_done_callback(functools.partial(_log_dropped, self, x))
        ahead.append(task)
        while ahead and ahead[0].done():
            ahead.popleft()
        if len(ahead) < n:
            return None
        return _wait_for(ahead[0])

    async def _gather(
        self, x: Any, metadata: Metadata | None, previous: asyncio.Future[Any] | None
    ) -> None:
        try:
            batch = type(x) is Batch
            target = x.future if batch else x
            try:
                client = get_client()
                value = await gather_result(client, target)
                if batch:
                    value = items_of(value, x.source)
            except Exception as e:
                annotate_task_error(e, self, target)
                raise
            await _wait_for(previous)
            if not batch:
                pending = self._emit(value, metadata=metadata)
                if pending:
                    await await_all(pending)
            elif metadata is None:
                for pending in self._emit_batch(value):
                    await await_all(pending)
            else:
                for item in value:
                    pending = self._emit(item, metadata=metadata)
                    if pending:
                        await await_all(pending)
        except BaseException as e:
            release_refs(metadata, error=e)
            raise
        release_refs(metadata)


def _log_dropped(node: Stream, x: Any, task: asyncio.Future[Any]) -> None:
    """Log the error of a result fetched ahead, which nobody awaits (as ``buffer`` would)."""
    if task.cancelled() or task.exception() is None:
        return
    logger.error(
        "%s: failed on %s; element dropped", node, short_repr(x), exc_info=task.exception()
    )


# -- stateless tasks ---------------------------------------------------------------------------
class _TaskNode(DaskStream):
    """A node submitting one task per unit and emitting its result at once.

    Subclasses implement :meth:`_submit`; errors raised while submitting are annotated
    with the node and :meth:`_user_func`, and the task's origin is recorded for
    ``gather``'s notes.
    """

    def _user_func(self) -> Any:
        """The user's function named in errors (None for nodes without one)."""
        return getattr(self, "func", None)

    def _submit(self, client: Any, x: Any) -> tuple[Any, Any]:
        """Submit the task(s) for unit ``x``: (what to emit, the future to record or None)."""
        raise NotImplementedError

    def update(self, x: Any, who: Stream | None = None, metadata: Metadata | None = None) -> Any:
        try:
            out, future = self._submit(get_client(), x)
        except Exception as e:
            annotate_error(e, self, self._user_func(), x)
            raise
        if future is not None:
            record_origin(future, self, self._user_func())
        return self._emit(out, metadata=metadata)

    def _submit_loaded(self, client: Any, payload: bytes, scatter_label: str) -> Any:
        """Submit the task for an element ``scatter`` serialized into ``payload``."""
        raise NotImplementedError

    def _take_payload(
        self, client: Any, payload: bytes, scatter_label: str, x: Any, metadata: Metadata | None
    ) -> Any:
        """``update`` for an element that ``scatter`` hands over serialized (fused)."""
        try:
            future = self._submit_loaded(client, payload, scatter_label)
        except Exception as e:
            annotate_error(e, self, self._user_func(), x)
            raise
        record_origin(future, self, self._user_func())
        return self._emit(future, metadata=metadata)


@DaskStream.register_api()
class map(_TaskNode):
    """Run ``func(x, *args, **kwargs)`` as a Dask task for each element; emit its future.

    ``client.submit(func, x, *args, **kwargs)``: keywords that ``Client.submit`` knows
    (``pure``, ``retries``, ``priority``, ``workers``, ``resources``, ``key``…) go to
    ``submit``, as in Streamz; ``Stream`` keywords (``stream_name``, ``loop``,
    ``asynchronous``…) configure the node; the others go to ``func``. On a
    :class:`Batch` one task maps ``func`` over the batch and a batch is emitted. A task
    that raises surfaces at ``gather``, with a note naming this node and ``func``.

    Examples
    --------
    >>> from distributed import Client
    >>> client = Client(processes=False, n_workers=1, threads_per_worker=1,
    ...                 dashboard_address='127.0.0.1:0')
    >>> source = Stream()
    >>> node = source.scatter().map(pow, 2, stream_name='square')
    >>> L = node.gather().sink_to_list()
    >>> for i in range(3):
    ...     source.emit(i)
    >>> L, str(node)
    ([0, 1, 4], '<square; map: pow>')
    >>> client.close()
    """

    def __init__(self, upstream: Stream, func: Callable[..., Any], *args: Any, **kwargs: Any):
        check_callable("map", "func", func)
        self.func = func
        self.args = args
        stream_kwargs = _stream_kwargs(kwargs)
        self.kwargs = kwargs
        self._options, self._func_kwargs = _split_submit_options(kwargs)
        super().__init__(upstream, **stream_kwargs)

    def _submit(self, client: Any, x: Any) -> tuple[Any, Any]:
        if type(x) is Batch:
            future = client.submit(
                map_items,
                self.func,
                x.future,
                x.source,
                self.args,
                self._func_kwargs,
                self.label,
                **self._options,
            )
            return Batch(future), future
        future = client.submit(self.func, x, *self.args, **self.kwargs)
        return future, future

    def _submit_loaded(self, client: Any, payload: bytes, scatter_label: str) -> Any:
        options = dict(self._options)
        options["key"] = _task_key(self.func, options, payload, self.args, self._func_kwargs)
        return client.submit(
            apply_loaded,
            self.func,
            payload,
            scatter_label,
            self.args,
            self._func_kwargs,
            **options,
        )


@DaskStream.register_api()
class starmap(_TaskNode):
    """Run ``func(*x, *args, **kwargs)`` as a Dask task for each (tuple) element.

    Keywords go to ``func`` (``Stream`` keywords excepted). Streamz's Dask ``starmap``
    takes no ``*args``; here they are appended after the element's items, as in the
    local ``starmap``. On a :class:`Batch` one task runs over the batch.

    Examples
    --------
    >>> from distributed import Client
    >>> client = Client(processes=False, n_workers=1, threads_per_worker=1,
    ...                 dashboard_address='127.0.0.1:0')
    >>> source = Stream()
    >>> L = source.scatter().starmap(divmod).gather().sink_to_list()
    >>> source.emit((7, 2))
    >>> L
    [(3, 1)]
    >>> client.close()
    """

    def __init__(self, upstream: Stream, func: Callable[..., Any], *args: Any, **kwargs: Any):
        check_callable("starmap", "func", func)
        self.func = func
        self.args = args
        stream_kwargs = _stream_kwargs(kwargs)
        self.kwargs = kwargs
        super().__init__(upstream, **stream_kwargs)

    def _submit(self, client: Any, x: Any) -> tuple[Any, Any]:
        if type(x) is Batch:
            future = client.submit(
                starmap_items,
                self.func,
                x.future,
                x.source,
                self.args,
                self.kwargs,
                self.label,
                pure=False,
            )
            return Batch(future), future
        if self.args:
            future = client.submit(_star_apply, self.func, x, self.args, self.kwargs)
        else:
            future = client.submit(_apply, self.func, x, self.kwargs)
        return future, future

    def _submit_loaded(self, client: Any, payload: bytes, scatter_label: str) -> Any:
        key = _task_key(self.func, {}, payload, self.args, self.kwargs)
        return client.submit(
            star_apply_loaded, self.func, payload, scatter_label, self.args, self.kwargs, key=key
        )


@DaskStream.register_api()
class filter(_TaskNode):
    """Keep the elements for which ``predicate(x, *args, **kwargs)`` is true, on the workers.

    Emits a :class:`Batch`: of 0 or 1 element for an element future (no round trip
    to the client for the predicate), or the kept elements of a batch. ``predicate=None``
    keeps truthy elements.

    Examples
    --------
    >>> from distributed import Client
    >>> client = Client(processes=False, n_workers=1, threads_per_worker=1,
    ...                 dashboard_address='127.0.0.1:0')
    >>> source = Stream()
    >>> L = source.scatter().filter(lambda x: x % 2 == 0).gather().sink_to_list()
    >>> for i in range(5):
    ...     source.emit(i)
    >>> L
    [0, 2, 4]
    >>> client.close()
    """

    _negate = False

    def __init__(
        self, upstream: Stream, predicate: Callable[..., Any] | None, *args: Any, **kwargs: Any
    ):
        if predicate is None:
            predicate = bool
        check_callable(type(self).__name__, "predicate", predicate)
        self.predicate = predicate
        self.args = args
        stream_kwargs = _stream_kwargs(kwargs)
        self.kwargs = kwargs
        super().__init__(upstream, **stream_kwargs)

    def _emits_batches(self) -> bool:
        return True

    def _user_func(self) -> Any:
        return self.predicate

    def _submit(self, client: Any, x: Any) -> tuple[Any, Any]:
        kind, value, source = parts(x)
        future = client.submit(
            filter_items,
            self.predicate,
            kind,
            value,
            source,
            self.args,
            self.kwargs,
            self._negate,
            self.label,
            pure=False,
        )
        return Batch(future), future


@DaskStream.register_api()
class remove(filter):
    """Drop the elements for which ``predicate(x)`` is true, on the workers (see ``filter``).

    Examples
    --------
    >>> from distributed import Client
    >>> client = Client(processes=False, n_workers=1, threads_per_worker=1,
    ...                 dashboard_address='127.0.0.1:0')
    >>> source = Stream()
    >>> L = source.scatter().remove(lambda x: x % 2 == 0).gather().sink_to_list()
    >>> for i in range(5):
    ...     source.emit(i)
    >>> L
    [1, 3]
    >>> client.close()
    """

    _negate = True


@DaskStream.register_api()
class flatten(_TaskNode):
    """Emit the items of each element as a :class:`Batch`, without moving them.

    The future of an element whose value is a list (or any iterable) *is* the batch of
    its items: nothing is submitted. On a batch, one task concatenates the items of its
    elements. ``concat`` is an alias. An element that is not iterable raises a
    ``TypeError`` (at ``gather``, or in the next task) with a note naming this node.

    Examples
    --------
    >>> from distributed import Client
    >>> client = Client(processes=False, n_workers=1, threads_per_worker=1,
    ...                 dashboard_address='127.0.0.1:0')
    >>> source = Stream()
    >>> L = source.scatter().flatten().map(str.upper).gather().sink_to_list()
    >>> source.emit(['a', 'b']); source.emit([]); source.emit(['c'])
    >>> L
    ['A', 'B', 'C']
    >>> client.close()
    """

    def _emits_batches(self) -> bool:
        return True

    def _submit(self, client: Any, x: Any) -> tuple[Any, Any]:
        from distributed import Future

        if isinstance(x, Future):
            return Batch(x, self.label), None  # its value is the list: no task needed
        if type(x) is Batch:
            future = client.submit(flatten_items, x.future, x.source, self.label, pure=False)
        else:  # a local value (maybe holding futures): its items, as a list on the cluster
            future = client.submit(items_of, x, self.label, pure=False)
        return Batch(future), future


@DaskStream.register_api()
class pluck(_TaskNode):
    """Select an item (or, with a list, a tuple of items) from each element, on the workers.

    Examples
    --------
    >>> from distributed import Client
    >>> client = Client(processes=False, n_workers=1, threads_per_worker=1,
    ...                 dashboard_address='127.0.0.1:0')
    >>> source = Stream()
    >>> L = source.scatter().pluck('name').gather().sink_to_list()
    >>> source.emit({'name': 'ada', 'age': 36})
    >>> L
    ['ada']
    >>> client.close()
    """

    def __init__(self, upstream: Stream, pick: Any, **kwargs: Any):
        self.pick = pick
        self._picker = _elementwise._Pick(pick)
        super().__init__(upstream, **kwargs)

    def _submit(self, client: Any, x: Any) -> tuple[Any, Any]:
        if type(x) is Batch:
            future = client.submit(
                pluck_items, self._picker, x.future, x.source, self.label, pure=False
            )
            return Batch(future), future
        future = client.submit(pluck_one, self._picker, x, self.label, pure=False)
        return future, future


@DaskStream.register_api()
class map_async(_TaskNode):
    """Run the coroutine function ``func(x, *args, **kwargs)`` on the workers, in order.

    Each task runs the coroutine to completion on its worker (``asyncio.run``); on a
    :class:`Batch` up to ``parallelism`` calls of the batch run at once. Unlike the local
    ``map_async``, which logs and drops an element whose call raised, the error is
    raised by ``gather`` (like ``map``'s); ``stop_on_exception`` is accepted and ignored.

    Examples
    --------
    >>> import asyncio
    >>> from distributed import Client
    >>> client = Client(processes=False, n_workers=1, threads_per_worker=1,
    ...                 dashboard_address='127.0.0.1:0')
    >>> async def double(x):
    ...     await asyncio.sleep(0)
    ...     return 2 * x
    >>> source = Stream()
    >>> L = source.scatter().map_async(double).gather().sink_to_list()
    >>> source.emit(21)
    >>> L
    [42]
    >>> client.close()
    """

    def __init__(
        self,
        upstream: Stream,
        func: Callable[..., Any],
        *args: Any,
        parallelism: int = 1,
        stop_on_exception: bool = False,
        **kwargs: Any,
    ):
        from .._utils import check_positive_int

        check_callable("map_async", "func", func)
        self.func = func
        self.args = args
        self.parallelism = check_positive_int("map_async", "parallelism", parallelism)
        self.stop_on_exception = stop_on_exception
        stream_name = kwargs.pop("stream_name", None)
        self.kwargs = kwargs
        super().__init__(upstream, stream_name=stream_name)

    def _submit(self, client: Any, x: Any) -> tuple[Any, Any]:
        if type(x) is Batch:
            future = client.submit(
                map_async_items,
                self.func,
                x.future,
                x.source,
                self.args,
                self.kwargs,
                self.parallelism,
                self.label,
                pure=False,
            )
            return Batch(future), future
        future = client.submit(
            map_async_one, self.func, x, self.args, self.kwargs, self.label, pure=False
        )
        return future, future


# -- stateful nodes: state on the workers -------------------------------------------------------
class _RunsNode(_OnWorkers, _Exploding):
    """A core node run on the workers from its snapshot (or, on element futures, on the client).

    ``_on_workers`` is chosen at construction: on the workers when the node needs the
    elements' values (a ``key``…) or when its input may carry batches; otherwise the core
    node runs here over futures, as in Streamz (a batch arriving then is split).
    """

    _spec: NodeSpec
    _emits_on_push = True
    _core_cls: type[Stream] = Stream

    def _setup(
        self,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
        layout: list[tuple[str, Any]] | None = None,
        key_arg: str | None = None,
    ) -> None:
        node_kwargs = dict(kwargs or {})
        if self.name is not None:
            node_kwargs["stream_name"] = self.name
        self._spec = NodeSpec(
            uuid.uuid4().hex, self._core_cls, args, node_kwargs, str(self), layout, key_arg
        )

    def _emits_batches(self) -> bool:
        return self._on_workers and self._emits_on_push

    def _initial_state(self) -> Any:
        return (self._core_cls.snapshot(self), False)

    def update(self, x: Any, who: Stream | None = None, metadata: Metadata | None = None) -> Any:
        if self._on_workers:
            return self._worker_update(x, who, metadata)
        return self._explode_update(x, who, metadata)

    def _core_update(self, x: Any, who: Any, metadata: Metadata | None) -> Any:
        return self._core_cls.update(self, x, who, metadata)

    def _submit(
        self, client: Any, state: Any, x: Any, position: int, tag: int | None, track: bool
    ) -> tuple[Any, Any, Any]:
        kind, value, source = parts(x)
        result = client.submit(
            run_node, self._spec, state, kind, value, source, position, tag, pure=False
        )
        record_origin(result, self, None)
        new_state = client.submit(state_of, result, pure=False)
        out = None
        if self._emits_on_push:
            outputs = client.submit(outputs_of, result, pure=False)
            record_origin(outputs, self, None)
            out = Batch(outputs)
        report = client.submit(held_of, result, pure=False) if track else None
        return new_state, out, report

    def snapshot(self) -> Any:
        """The core node's snapshot; on the workers the state is fetched (blocking: call it
        outside the event loops). Futures held on the client are fetched as values."""
        if self._on_workers:
            return untag(self._fetch_state()[0])
        return _values(self._core_cls.snapshot(self))

    def restore(self, state: Any) -> None:
        if self._on_workers:
            self._discard_held()
            self._wstate = (state, False)
        else:
            self._core_cls.restore(self, state)


def _values(state: Any) -> Any:
    """A snapshot with the futures in it replaced by their values (blocking)."""
    from distributed import futures_of

    return get_client().gather(state) if futures_of(state) else state


@DaskStream.register_api()
class frequencies(_OnWorkers, _aggregate.frequencies):
    """Count occurrences of each element on the cluster; emit the running counts (a dict).

    Each unit is first counted where it is (a partial count per element future or
    batch, in parallel), then merged into the running table, which stays on the
    cluster as a future. One table is emitted per unit: per element on a stream of
    element futures (as the local node), **once per batch** on batches (the counts
    after the batch; a batch of ``n`` words does not make ``n`` copies of the table).

    Examples
    --------
    >>> from distributed import Client
    >>> from millstream.testing import wait_for
    >>> client = Client(processes=False, n_workers=1, threads_per_worker=1,
    ...                 dashboard_address='127.0.0.1:0')
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
    >>> client.close()
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
        self._wstate = dict(state["counts"])


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
    >>> from distributed import Client
    >>> client = Client(processes=False, n_workers=1, threads_per_worker=1,
    ...                 dashboard_address='127.0.0.1:0')
    >>> source = Stream()
    >>> node = source.scatter().accumulate(lambda acc, x: acc + x, start=100)
    >>> L = node.gather().sink_to_list()
    >>> for i in range(3):
    ...     source.emit(i)
    >>> L, node.snapshot()
    ([100, 101, 103], {'state': 103})
    >>> client.close()
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
        stream_kwargs = _stream_kwargs(kwargs)
        self.kwargs = kwargs
        self._on_workers = _may_batch(upstream)
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
            return {"state": value if has else no_default}
        state = self.state
        if isinstance(state, Future):
            state = state.result()
        return {"state": state}

    def restore(self, state: dict[str, Any]) -> None:
        """Take ``state['state']`` (a local value) as the state; the next task receives it."""
        value = state["state"]
        if value == no_default and isinstance(value, str):
            value = no_default
        if self._on_workers:
            self._wstate = accumulate_start(value)
        else:
            self.state = value


@DaskStream.register_api()
class unique(_RunsNode, _counting.unique):
    """Drop elements whose ``key(x)`` has been seen before; the history stays on the cluster.

    A :class:`Batch` of the new elements is emitted per unit. ``.seen`` may be primed
    by hand before the first element, as in Streamz.

    Examples
    --------
    >>> from distributed import Client
    >>> from millstream.testing import wait_for
    >>> client = Client(processes=False, n_workers=1, threads_per_worker=1,
    ...                 dashboard_address='127.0.0.1:0')
    >>> source = Stream()
    >>> L = source.scatter().flatten().unique().gather().sink_to_list()
    >>> source.emit([1, 2, 1]); source.emit([3, 2])
    >>> wait_for(lambda: len(L) == 3, 10)
    >>> L
    [1, 2, 3]
    >>> client.close()
    """

    _core_cls = _counting.unique
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
class partition_unique(_RunsNode, _counting.partition_unique):
    """Group elements with distinct keys into tuples of ``n``, on the cluster.

    Examples
    --------
    >>> from distributed import Client
    >>> from millstream.testing import wait_for
    >>> client = Client(processes=False, n_workers=1, threads_per_worker=1,
    ...                 dashboard_address='127.0.0.1:0')
    >>> source = Stream()
    >>> L = source.scatter().partition_unique(2).gather().sink_to_list()
    >>> for x in [1, 1, 2, 3, 3, 4]:
    ...     source.emit(x)
    >>> wait_for(lambda: len(L) == 2, 10)
    >>> L
    [(1, 2), (3, 4)]
    >>> client.close()
    """

    _core_cls = _counting.partition_unique
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
class partition(_RunsNode, _counting.partition):
    """Group elements into tuples of ``n`` (per ``key``), with an optional ``timeout``.

    On element futures without ``key`` (Streamz's case) tuples of futures are made on
    the client. With a ``key``, or when the input may carry batches, the grouping runs
    on the cluster and batches of tuples of values are emitted. With a ``timeout`` the
    grouping runs on the client (the timer is there): batches are split into element
    futures, and keys, if any, are computed on the workers.

    Examples
    --------
    >>> from distributed import Client
    >>> from millstream.testing import wait_for
    >>> client = Client(processes=False, n_workers=1, threads_per_worker=1,
    ...                 dashboard_address='127.0.0.1:0')
    >>> source = Stream()
    >>> L = source.scatter().flatten().partition(2).gather().sink_to_list()
    >>> source.emit([1, 2, 3]); source.emit([4, 5])
    >>> wait_for(lambda: len(L) == 2, 10)
    >>> L
    [(1, 2), (3, 4)]
    >>> client.close()
    """

    _core_cls = _counting.partition
    _holds_elements = True

    def __init__(
        self,
        upstream: Stream,
        n: int,
        timeout: Any = None,
        key: Any = None,
        **kwargs: Any,
    ):
        self._on_workers = timeout is None and (key is not None or _may_batch(upstream))
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
                client.submit(keys_of_items, self._key, x.future, x.source, str(self), pure=False)
            )
            return [
                _Keyed(client.submit(nth, x.future, x.source, i, pure=False), k)
                for i, k in enumerate(keys)
            ]
        k = await fetch(client.submit(key_of, self._key, x, str(self), pure=False))
        return [_Keyed(x, k)]

    def _get_key(self, x: Any) -> Any:
        if type(x) is _Keyed:
            return x.k
        return _counting.partition._get_key(self, x)

    def _take(self, key: Any) -> tuple[tuple[Any, ...], Metadata | None]:
        values, metadata = _counting.partition._take(self, key)
        return tuple(v.x if type(v) is _Keyed else v for v in values), metadata


class _Keyed:
    """An element future with its key, computed on a worker."""

    __slots__ = ("k", "x")

    def __init__(self, x: Any, k: Any):
        self.x = x
        self.k = k


@DaskStream.register_api()
class sliding_window(_RunsNode, _counting.sliding_window):
    """Emit the last ``n`` elements as a tuple, on every element.

    On element futures, tuples of futures made on the client (as in Streamz); when the
    input may carry batches, the window is kept on the cluster and batches of tuples of
    values are emitted.

    Examples
    --------
    >>> from distributed import Client
    >>> from millstream.testing import wait_for
    >>> client = Client(processes=False, n_workers=1, threads_per_worker=1,
    ...                 dashboard_address='127.0.0.1:0')
    >>> source = Stream()
    >>> L = source.scatter().flatten().sliding_window(2).gather().sink_to_list()
    >>> source.emit([1, 2]); source.emit([3])
    >>> wait_for(lambda: len(L) == 3, 10)
    >>> L
    [(1,), (1, 2), (2, 3)]
    >>> client.close()
    """

    _core_cls = _counting.sliding_window
    _holds_elements = True

    def __init__(self, upstream: Stream, n: int, return_partial: bool = True, **kwargs: Any):
        self._on_workers = _may_batch(upstream)
        super().__init__(upstream, n, return_partial=return_partial, **kwargs)
        self._setup((n,), {"return_partial": return_partial})


@DaskStream.register_api()
class slice(_RunsNode, _counting.slice):
    """Pass on some elements by position (Streamz semantics, see the local ``slice``).

    On element futures the count is kept on the client; when the input may carry
    batches it is kept on the cluster and a :class:`Batch` is emitted per unit (the node
    then stays attached after ``end``, emitting empty batches).

    Examples
    --------
    >>> from distributed import Client
    >>> from millstream.testing import wait_for
    >>> client = Client(processes=False, n_workers=1, threads_per_worker=1,
    ...                 dashboard_address='127.0.0.1:0')
    >>> source = Stream()
    >>> L = source.scatter().flatten().slice(1, None, 2).gather().sink_to_list()
    >>> source.emit([0, 1, 2, 3]); source.emit([4, 5, 6])
    >>> wait_for(lambda: len(L) == 3, 10)
    >>> L
    [2, 4, 6]
    >>> client.close()
    """

    _core_cls = _counting.slice

    def __init__(
        self,
        upstream: Stream,
        start: int | None = None,
        end: int | None = None,
        step: int | None = None,
        **kwargs: Any,
    ):
        self._on_workers = _may_batch(upstream)
        super().__init__(upstream, start, end, step, **kwargs)
        self._setup((start, end, step))

    def _check_end(self) -> None:
        if not self._on_workers:
            _counting.slice._check_end(self)


@DaskStream.register_api()
class collect(_RunsNode, _counting.collect):
    """Hold elements until :meth:`flush` emits them all as one tuple.

    On element futures the tuple is a tuple of futures made on the client; when the
    input may carry batches the elements are kept on the cluster and ``flush`` emits the
    future of the tuple. A ``cache`` passed in is only used on the client.

    Examples
    --------
    >>> from distributed import Client
    >>> from millstream.testing import wait_for
    >>> client = Client(processes=False, n_workers=1, threads_per_worker=1,
    ...                 dashboard_address='127.0.0.1:0')
    >>> source = Stream()
    >>> collector = source.scatter().flatten().collect()
    >>> L = collector.gather().sink_to_list()
    >>> source.emit([1, 2]); source.emit([3])
    >>> collector.flush()
    >>> wait_for(lambda: len(L) == 1, 10)
    >>> L
    [(1, 2, 3)]
    >>> client.close()
    """

    _core_cls = _counting.collect
    _holds_elements = True
    _emits_on_push = False

    def __init__(
        self, upstream: Stream, cache: Any = None, metadata_cache: Any = None, **kwargs: Any
    ):
        self._on_workers = _may_batch(upstream)
        super().__init__(upstream, cache=cache, metadata_cache=metadata_cache, **kwargs)
        self._setup()

    def flush(self, _: Any = None) -> Any:
        """Emit everything collected as a tuple (possibly empty) and start afresh.

        On the cluster the flush waits its turn behind the elements still arriving. Called
        on the graph's loop it returns an awaitable finishing once the tuple has been
        emitted and downstream is done; from another thread it blocks until then.
        """
        if not self._on_workers:
            return _counting.collect.flush(self, _)
        from ..core.loop import in_loop_thread, sync

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


# -- several inputs ---------------------------------------------------------------------------
class _MultiInput(_RunsNode):
    """Inputs are positions; on the workers each distinct input stream is one head."""

    _inputs: dict[int, int]

    def _index_inputs(self, streams: list[Stream]) -> None:
        self._inputs = {id(s): i for i, s in enumerate(_distinct(streams))}

    def _position(self, who: Any) -> int:
        return self._inputs[id(who)]

    def _add_upstream(self, upstream: Stream) -> None:
        if self._on_workers:
            raise NotImplementedError(
                f"{self}: its state is on the cluster; connect() cannot add an input to it "
                "(build a new node instead)"
            )
        self._core_cls._add_upstream(self, upstream)


@DaskStream.register_api()
class zip(_MultiInput, _combine.zip):
    """Emit a tuple once every input has produced a new element.

    On element futures, tuples of futures made on the client (as in Streamz). When an
    input may carry batches, the buffers are kept on the cluster and batches of tuples
    of values are emitted, in the order the inputs' units arrived (``maxsize`` then does
    not apply backpressure).

    Examples
    --------
    >>> from distributed import Client
    >>> from millstream.testing import wait_for
    >>> client = Client(processes=False, n_workers=1, threads_per_worker=1,
    ...                 dashboard_address='127.0.0.1:0')
    >>> a, b = Stream(), Stream()
    >>> L = a.scatter().flatten().zip(b.scatter().flatten()).gather().sink_to_list()
    >>> a.emit([1, 2, 3]); b.emit(['x', 'y'])
    >>> wait_for(lambda: len(L) == 2, 10)
    >>> L
    [(1, 'x'), (2, 'y')]
    >>> client.close()
    """

    _core_cls = _combine.zip
    _holds_elements = True

    def __init__(self, *upstreams: Any, maxsize: int = 10, **kwargs: Any):
        streams = [u for u in upstreams if isinstance(u, Stream)]
        self._on_workers = _may_batch(*streams)
        super().__init__(*upstreams, maxsize=maxsize, **kwargs)
        self._index_inputs(streams)
        layout = [
            ("s", self._inputs[id(u)]) if isinstance(u, Stream) else ("l", u) for u in upstreams
        ]
        self._setup((), {"maxsize": maxsize}, layout=layout)


@DaskStream.register_api()
class combine_latest(_MultiInput, _combine.combine_latest):
    """Emit a tuple of the latest value of every input whenever an input updates.

    On element futures, tuples of futures made on the client (as in Streamz); when an
    input may carry batches the latest values are kept on the cluster and batches of
    tuples of values are emitted.

    Examples
    --------
    >>> from distributed import Client
    >>> from millstream.testing import wait_for
    >>> client = Client(processes=False, n_workers=1, threads_per_worker=1,
    ...                 dashboard_address='127.0.0.1:0')
    >>> a, b = Stream(), Stream()
    >>> node = a.scatter().flatten().combine_latest(b.scatter().flatten())
    >>> L = node.gather().sink_to_list()
    >>> a.emit([1]); b.emit(['x']); a.emit([2, 3])
    >>> wait_for(lambda: len(L) == 3, 10)
    >>> L
    [(1, 'x'), (2, 'x'), (3, 'x')]
    >>> client.close()
    """

    _core_cls = _combine.combine_latest
    _holds_elements = True

    def __init__(self, *upstreams: Stream, emit_on: Any = None, **kwargs: Any):
        self._on_workers = _may_batch(*upstreams)
        super().__init__(*upstreams, emit_on=emit_on, **kwargs)
        streams = list(upstreams)
        self._index_inputs(streams)
        layout = [("s", self._inputs[id(u)]) for u in streams]
        positions = None
        if emit_on is not None:
            positions = [next(i for i, u in enumerate(streams) if u is s) for s in self.emit_on]
        self._setup((), {"emit_on": positions}, layout=layout)


@DaskStream.register_api()
class zip_latest(_MultiInput, _combine.zip_latest):
    """Pair every element of ``lossless`` with the latest value of each other input.

    On element futures, tuples of futures made on the client; when an input may carry
    batches the node runs on the cluster and batches of tuples of values are emitted.

    Examples
    --------
    >>> from distributed import Client
    >>> from millstream.testing import wait_for
    >>> client = Client(processes=False, n_workers=1, threads_per_worker=1,
    ...                 dashboard_address='127.0.0.1:0')
    >>> a, b = Stream(), Stream()
    >>> node = a.scatter().flatten().zip_latest(b.scatter().flatten())
    >>> L = node.gather().sink_to_list()
    >>> a.emit([1, 2]); b.emit(['x']); a.emit([3])
    >>> wait_for(lambda: len(L) == 3, 10)
    >>> L
    [(1, 'x'), (2, 'x'), (3, 'x')]
    >>> client.close()
    """

    _core_cls = _combine.zip_latest
    _holds_elements = True

    def __init__(self, lossless: Stream, *upstreams: Stream, **kwargs: Any):
        self._on_workers = _may_batch(lossless, *upstreams)
        super().__init__(lossless, *upstreams, **kwargs)
        streams = [lossless, *upstreams]
        self._index_inputs(streams)
        self._setup((), {}, layout=[("s", self._inputs[id(u)]) for u in streams])


# -- client-side nodes over units ---------------------------------------------------------------
@DaskStream.register_api()
class buffer(DaskStream, _timing.buffer):
    """``buffer(n)`` over futures: up to ``n`` units (element futures or batches) wait here
    while downstream (``gather``) is busy, so ``n`` tasks keep running."""


@DaskStream.register_api()
class delay(DaskStream, _timing.delay):
    """``delay`` over futures and batches (a batch is delayed as a whole)."""


@DaskStream.register_api()
class union(DaskStream, _combine.union):
    """``union`` of Dask streams: units pass as they arrive."""


@DaskStream.register_api()
class latest(_Exploding, _timing.latest):
    """``latest`` over futures: of a batch only its last element is taken."""

    def update(self, x: Any, who: Stream | None = None, metadata: Metadata | None = None) -> Any:
        return self._explode_update(x, who, metadata)

    def _core_update(self, x: Any, who: Any, metadata: Metadata | None) -> Any:
        return _timing.latest.update(self, x, who, metadata)

    def _positions(self, n: int) -> range:
        return range(n - 1, n) if n else range(0)

    def _emits_batches(self) -> bool:
        return False


@DaskStream.register_api()
class rate_limit(_Exploding, _timing.rate_limit):
    """``rate_limit`` over futures: the elements of a batch are spaced one by one."""

    def update(self, x: Any, who: Stream | None = None, metadata: Metadata | None = None) -> Any:
        return self._explode_update(x, who, metadata)

    def _core_update(self, x: Any, who: Any, metadata: Metadata | None) -> Any:
        return _timing.rate_limit.update(self, x, who, metadata)

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
class timed_window(DaskStream, _timing.timed_window):
    """``timed_window`` over futures: a list of the window's futures, or, when the window
    holds batches, the future of the list of its elements (made on a worker)."""

    def _take(self) -> tuple[Any, Metadata]:
        window, metadata = _timing.timed_window._take(self)
        return _window_of(window), metadata

    def _emits_batches(self) -> bool:
        return False


@DaskStream.register_api()
class timed_window_unique(DaskStream, _timing.timed_window_unique):
    """``timed_window_unique`` over futures: the keys are computed on a worker when the
    window closes, which emits the future of the tuple of kept elements (``()`` when
    empty). Every element's refs are held until its window has been emitted."""

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
        return self._after_add()

    def _has_data(self) -> bool:
        return bool(self._window_units)

    def _take(self) -> tuple[Any, Metadata]:
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
        """``{'buffer': [(key, element), ...]}`` of the open window (fetched, blocking)."""
        units = [u for u, _ in self._window_units]
        if not units:
            return {"buffer": []}
        elements = get_client().gather(_window_of(units))
        kept: dict[Any, Any] = {}
        for x in elements:
            k = key_of(self.key, x, str(self))
            if k in kept:
                if self.keep == "first":
                    continue
                del kept[k]
            kept[k] = x
        return {"buffer": list(kept.items())}

    def restore(self, state: dict[str, Any]) -> None:
        for _, md in self._window_units:
            release_refs(md)
        self._window_units = [(x, None) for _, x in state["buffer"]]


# -- sinks ----------------------------------------------------------------------------------------
@DaskStream.register_api()
class sink(_Exploding, _sinks.sink):
    """Call ``func(future, *args, **kwargs)`` on the client for each element; emit nothing.

    As in Streamz, ``func`` receives futures (``gather().sink(func)`` gives it values);
    a batch is split into element futures first. An element's refs are held until its
    task has finished (released as failed if it failed).

    Examples
    --------
    >>> from distributed import Client
    >>> client = Client(processes=False, n_workers=1, threads_per_worker=1,
    ...                 dashboard_address='127.0.0.1:0')
    >>> source = Stream()
    >>> futures = source.scatter().map(abs).sink_to_list()
    >>> source.emit(-3)
    >>> type(futures[0]).__name__, client.gather(futures)
    ('Future', [3])
    >>> client.close()
    """

    def update(self, x: Any, who: Stream | None = None, metadata: Metadata | None = None) -> Any:
        return self._explode_update(x, who, metadata)

    def _core_update(self, x: Any, who: Any, metadata: Metadata | None) -> Any:
        result = _sinks.sink.update(self, x, who, metadata)
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
    >>> from distributed import Client
    >>> client = Client(processes=False, n_workers=1, threads_per_worker=1,
    ...                 dashboard_address='127.0.0.1:0')
    >>> source = Stream()
    >>> L = source.scatter().map(str).sink_to_list()
    >>> source.emit(1)
    >>> client.gather(L)
    ['1']
    >>> client.close()
    """
    collected: list[Any] = []
    sink(upstream, collected.append)
    return collected


DaskStream.sink_to_list = sink_to_list  # type: ignore[attr-defined]


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
    "to_mqtt",
    "to_websocket",
    "with_timestamps",
    "window",
):
    DaskStream.register_api(attribute_name=_name)(_gathered(_name))
