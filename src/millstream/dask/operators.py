"""Nodes of :class:`DaskStream`: the border (``scatter``, ``gather``), tasks on the cluster
(``map``, ``starmap``, ``accumulate``) and the local nodes that keep a chain Dask-typed
(``buffer``, ``zip``, ``partition``…).

``map``, ``starmap`` and ``accumulate`` submit one task per element with
``client.submit`` and emit its future at once, without waiting for the result (a later
``gather`` waits). The other nodes here are the core nodes, unchanged, applied to
futures: ``partition`` emits tuples of futures, ``buffer`` holds futures, and so on;
they exist so that ``scatter().buffer(8).map(f)`` stays a ``DaskStream``.
"""

from __future__ import annotations

import asyncio
import operator
from collections.abc import Callable
from typing import Any

from .._utils import annotate_error, check_callable, no_default
from ..core.refs import release_refs, retain_refs
from ..core.stream import Stream
from ..operators import combine as _combine
from ..operators import counting as _counting
from ..operators import timing as _timing
from ._bridge import (
    annotate_task_error,
    get_client,
    on_client_loop,
    record_origin,
    start_task,
)
from .stream import DaskStream

__all__ = [
    "accumulate",
    "buffer",
    "combine_latest",
    "delay",
    "gather",
    "latest",
    "map",
    "partition",
    "rate_limit",
    "scatter",
    "sliding_window",
    "starmap",
    "timed_window",
    "union",
    "zip",
]

Metadata = list[dict[str, Any]]

_STREAM_KWARGS = ("stream_name", "loop", "asynchronous", "ensure_io_loop", "clock")


def _stream_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Pop the ``Stream`` keywords out of ``kwargs`` (the rest belongs to the function)."""
    return {k: kwargs.pop(k) for k in _STREAM_KWARGS if k in kwargs}


async def _await_all(awaitables: list[Any]) -> None:
    if len(awaitables) == 1:
        await awaitables[0]
    else:
        await asyncio.gather(*awaitables)


def _star_apply(func: Callable[..., Any], x: Any, args: tuple[Any, ...], kwargs: dict) -> Any:
    """``func(*x, *args, **kwargs)``, run on a worker."""
    return func(*x, *args, **kwargs)


def _apply(func: Callable[..., Any], x: Any, kwargs: dict) -> Any:
    """``func(*x, **kwargs)``, run on a worker."""
    return func(*x, **kwargs)


# -- the border: scatter and gather ---------------------------------------------------------
@DaskStream.register_api()
class scatter(DaskStream):
    """Send each element to the Dask cluster and emit its future.

    Each element is scattered on its own (``client.scatter([x], hash=False)``): a dict
    stays one element, and equal values get distinct futures. ``update`` returns an
    awaitable that completes once the element is on the cluster and downstream has
    finished with its future; the element's refs are held until then (released as
    failed if scattering or downstream raised). Also reachable as ``Stream.scatter()``.

    Examples
    --------
    >>> from distributed import Client
    >>> client = Client(processes=False, n_workers=1, threads_per_worker=1,
    ...                 dashboard_address='127.0.0.1:0')
    >>> source = Stream()
    >>> futures = source.scatter().sink_to_list()
    >>> L = source.scatter().gather().sink_to_list()
    >>> source.emit({'a': 1})
    >>> type(futures[0]).__name__, L
    ('Future', [{'a': 1}])
    >>> client.close()
    """

    def update(self, x: Any, who: Stream | None = None, metadata: Metadata | None = None) -> Any:
        retain_refs(metadata)
        return start_task(self._scatter(x, metadata))

    async def _scatter(self, x: Any, metadata: Metadata | None) -> None:
        try:
            try:
                client = get_client()
                futures = await on_client_loop(
                    client, lambda: client.scatter([x], asynchronous=True, hash=False)
                )
            except Exception as e:
                annotate_error(e, self, None, x)
                raise
            pending = self._emit(futures[0], metadata=metadata)
            if pending:
                await _await_all(pending)
        except BaseException as e:
            release_refs(metadata, error=e)
            raise
        release_refs(metadata)


@DaskStream.register_api()
class gather(Stream):
    """Wait for each future and emit its result as a local value.

    A plain :class:`Stream`: nodes after it run locally. Collections of futures (the
    tuples of ``zip`` or ``partition``) come back as collections of values; local
    values pass through unchanged. Each element is awaited before the next is taken,
    so put a ``buffer(n)`` before ``gather`` to keep ``n`` tasks running at once.

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

    def __init__(self, upstream: Stream | None = None, **kwargs: Any):
        kwargs["ensure_io_loop"] = True
        super().__init__(upstream, **kwargs)

    def update(self, x: Any, who: Stream | None = None, metadata: Metadata | None = None) -> Any:
        retain_refs(metadata)
        return start_task(self._gather(x, metadata))

    async def _gather(self, x: Any, metadata: Metadata | None) -> None:
        try:
            try:
                client = get_client()
                value = await on_client_loop(client, lambda: client.gather(x, asynchronous=True))
            except Exception as e:
                annotate_task_error(e, self, x)
                raise
            pending = self._emit(value, metadata=metadata)
            if pending:
                await _await_all(pending)
        except BaseException as e:
            release_refs(metadata, error=e)
            raise
        release_refs(metadata)


# -- tasks on the cluster --------------------------------------------------------------------
@DaskStream.register_api()
class map(DaskStream):
    """Run ``func(x, *args, **kwargs)`` as a Dask task for each element; emit its future.

    ``client.submit(func, x, *args, **kwargs)``: keywords that ``Client.submit`` knows
    (``pure``, ``retries``, ``priority``, ``workers``, ``resources``, ``key``…) go to
    ``submit``, as in Streamz; ``Stream`` keywords (``stream_name``, ``loop``,
    ``asynchronous``…) configure the node; the others go to ``func``. A task that
    raises surfaces at ``gather``, with a note naming this node and ``func``.

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
        super().__init__(upstream, **stream_kwargs)

    def update(self, x: Any, who: Stream | None = None, metadata: Metadata | None = None) -> Any:
        try:
            future = get_client().submit(self.func, x, *self.args, **self.kwargs)
        except Exception as e:
            annotate_error(e, self, self.func, x)
            raise
        record_origin(future, self, self.func)
        return self._emit(future, metadata=metadata)


@DaskStream.register_api()
class starmap(DaskStream):
    """Run ``func(*x, *args, **kwargs)`` as a Dask task for each (tuple) element.

    Keywords go to ``func`` (``Stream`` keywords excepted). Streamz's Dask ``starmap``
    takes no ``*args``; here they are appended after the element's items, as in the
    local ``starmap``.

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

    def update(self, x: Any, who: Stream | None = None, metadata: Metadata | None = None) -> Any:
        try:
            client = get_client()
            if self.args:
                future = client.submit(_star_apply, self.func, x, self.args, self.kwargs)
            else:
                future = client.submit(_apply, self.func, x, self.kwargs)
        except Exception as e:
            annotate_error(e, self, self.func, x)
            raise
        record_origin(future, self, self.func)
        return self._emit(future, metadata=metadata)


@DaskStream.register_api()
class accumulate(DaskStream):
    """Fold the stream on the cluster: the state is a future, each step a task.

    Each element submits ``func(state, x, **kwargs)``; its future becomes the new state
    and is emitted. Without ``start`` the first element becomes the state and is emitted
    as is. With ``returns_state=True`` ``func`` returns ``(state, result)``, split by two
    more tasks; ``result`` is emitted. ``with_state=True`` emits ``(state, result)``
    pairs (of futures). ``scan`` is an alias.

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
        super().__init__(upstream, **stream_kwargs)

    def update(self, x: Any, who: Stream | None = None, metadata: Metadata | None = None) -> Any:
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

    def snapshot(self) -> dict[str, Any]:
        """``{'state': the state as a local value}``; a future state is fetched (blocking).

        Call it from outside the event loops (the client's and the graph's).
        """
        from distributed import Future

        state = self.state
        if isinstance(state, Future):
            state = state.result()
        return {"state": state}

    def restore(self, state: dict[str, Any]) -> None:
        """Take ``state['state']`` (a local value) as the state; the next task receives it."""
        self.state = state["state"]


# -- local nodes over futures, kept Dask-typed ------------------------------------------------
@DaskStream.register_api()
class buffer(DaskStream, _timing.buffer):
    """``buffer(n)`` over futures: up to ``n`` tasks keep running while ``gather`` waits."""


@DaskStream.register_api()
class combine_latest(DaskStream, _combine.combine_latest):
    """``combine_latest`` over futures: tuples of the latest future of each input."""


@DaskStream.register_api()
class delay(DaskStream, _timing.delay):
    """``delay`` over futures."""


@DaskStream.register_api()
class latest(DaskStream, _timing.latest):
    """``latest`` over futures."""


@DaskStream.register_api()
class partition(DaskStream, _counting.partition):
    """``partition(n)`` over futures: tuples of ``n`` futures (gathered: tuples of values)."""


@DaskStream.register_api()
class rate_limit(DaskStream, _timing.rate_limit):
    """``rate_limit`` over futures."""


@DaskStream.register_api()
class sliding_window(DaskStream, _counting.sliding_window):
    """``sliding_window(n)`` over futures: tuples of the last ``n`` futures."""


@DaskStream.register_api()
class timed_window(DaskStream, _timing.timed_window):
    """``timed_window`` over futures: lists of the futures of each window."""


@DaskStream.register_api()
class union(DaskStream, _combine.union):
    """``union`` of Dask streams."""


@DaskStream.register_api()
class zip(DaskStream, _combine.zip):
    """``zip`` over futures: tuples of futures, one from each input."""
