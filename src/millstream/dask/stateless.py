"""Stateless Dask nodes: one task per unit (element future or batch), emitted at once.

``map``, ``starmap``, ``filter``, ``remove``, ``flatten``, ``pluck`` and ``map_async``.
On an element future ``map``, ``starmap`` and ``pluck`` emit an element future (Streamz's
model); ``flatten`` turns an element future into a :class:`~millstream.dask.Batch` of its
items (no task), ``filter`` into a batch of 0 or 1 element (the predicate runs on the
worker, nothing comes back to the client). On a batch each runs one task over the whole
batch (the functions of :mod:`millstream.dask._tasks`).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from .._utils import annotate_error, check_callable, check_positive_int
from ..core import Metadata, Stream
from ..operators.elementwise import ItemPicker
from ._bridge import get_client, record_origin
from ._flow import parts
from ._tasks import (
    Batch,
    apply_loaded,
    filter_items,
    flatten_items,
    items_of,
    map_async_items,
    map_async_one,
    map_items,
    pluck_items,
    pluck_one,
    star_apply_loaded,
    starmap_items,
)
from .stream import DaskStream, pop_stream_kwargs

__all__ = ["filter", "flatten", "map", "map_async", "pluck", "remove", "starmap"]

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


# -- one task per unit -----------------------------------------------------------------------
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
    >>> source = Stream()
    >>> node = source.scatter().map(pow, 2, stream_name='square')
    >>> L = node.gather().sink_to_list()
    >>> for i in range(3):
    ...     source.emit(i)
    >>> L, str(node)
    ([0, 1, 4], '<square; map: pow>')
    """

    def __init__(self, upstream: Stream, func: Callable[..., Any], *args: Any, **kwargs: Any):
        check_callable("map", "func", func)
        self.func = func
        self.args = args
        stream_kwargs = pop_stream_kwargs(kwargs)
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
    >>> source = Stream()
    >>> L = source.scatter().starmap(divmod).gather().sink_to_list()
    >>> source.emit((7, 2))
    >>> L
    [(3, 1)]
    """

    def __init__(self, upstream: Stream, func: Callable[..., Any], *args: Any, **kwargs: Any):
        check_callable("starmap", "func", func)
        self.func = func
        self.args = args
        stream_kwargs = pop_stream_kwargs(kwargs)
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
    >>> source = Stream()
    >>> L = source.scatter().filter(lambda x: x % 2 == 0).gather().sink_to_list()
    >>> for i in range(5):
    ...     source.emit(i)
    >>> L
    [0, 2, 4]
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
        stream_kwargs = pop_stream_kwargs(kwargs)
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
    >>> source = Stream()
    >>> L = source.scatter().remove(lambda x: x % 2 == 0).gather().sink_to_list()
    >>> for i in range(5):
    ...     source.emit(i)
    >>> L
    [1, 3]
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
    >>> source = Stream()
    >>> L = source.scatter().flatten().map(str.upper).gather().sink_to_list()
    >>> source.emit(['a', 'b']); source.emit([]); source.emit(['c'])
    >>> L
    ['A', 'B', 'C']
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
    >>> source = Stream()
    >>> L = source.scatter().pluck('name').gather().sink_to_list()
    >>> source.emit({'name': 'ada', 'age': 36})
    >>> L
    ['ada']
    """

    def __init__(self, upstream: Stream, pick: Any, **kwargs: Any):
        self.pick = pick
        self._picker = ItemPicker(pick)
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
    >>> async def double(x):
    ...     await asyncio.sleep(0)
    ...     return 2 * x
    >>> source = Stream()
    >>> L = source.scatter().map_async(double).gather().sink_to_list()
    >>> source.emit(21)
    >>> L
    [42]
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
