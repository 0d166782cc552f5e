"""Per-element operators: map, starmap, filter, remove, pluck, flatten.

Each is stateless and declares a fusion stage (see :mod:`millstream.core.fusion`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .._utils import annotate_error, check_callable, short_repr
from ..core.errors import ErrorCounts, error_policy
from ..core.fusion import Stage
from ..core.stream import Stream, fused_attribute

__all__ = ["ItemPicker", "filter", "flatten", "map", "pluck", "remove", "starmap"]


class _FuncNode(Stream):
    """A node applying ``func(x, *args, **kwargs)``; ``stream_name`` and ``on_error`` are
    kept for the node (see :mod:`millstream.core.errors`)."""

    func = fused_attribute()

    def __init__(self, upstream: Stream, func: Callable[..., Any], *args: Any, **kwargs: Any):
        check_callable(type(self).__name__, "func", func)
        self._func = func
        self.error_policy = error_policy(type(self).__name__, kwargs.pop("on_error", "raise"))
        #: the elements this node gave up on (``on_error='skip'`` or a dead-letter stream)
        self.errors = self.error_policy.counts if self.error_policy else ErrorCounts()
        stream_name = kwargs.pop("stream_name", None)
        self.args = args
        self.kwargs = kwargs
        Stream.__init__(self, upstream, stream_name=stream_name)


@Stream.register_api()
class map(_FuncNode):
    """Apply ``func`` to each element and emit the result.

    Extra positional and keyword arguments are passed to ``func`` after the element
    (only ``stream_name`` is kept for the node).

    Examples
    --------
    >>> source = Stream()
    >>> L = source.map(lambda x, y: x * y, 10).sink_to_list()
    >>> for i in range(3):
    ...     source.emit(i)
    >>> L
    [0, 10, 20]
    """

    def update(self, x: Any, who: Stream | None = None, metadata: list[dict] | None = None) -> Any:
        try:
            result = self._func(x, *self.args, **self.kwargs)
        except Exception as e:
            annotate_error(e, self, self._func, x)
            if self.error_policy is not None:
                return self.error_policy.handle(self, e, x, metadata, self._func)
            raise
        return self._emit(result, metadata=metadata)

    _fusion_update = update

    def _fusion_stage(self) -> Stage | None:
        if self.error_policy is not None:
            return None  # the policy runs on the per-element path
        return Stage("call", self._func, self.args, self.kwargs)


@Stream.register_api()
class starmap(_FuncNode):
    """Apply ``func`` to each element unpacked as arguments: ``func(*(x + args), **kwargs)``.

    Examples
    --------
    >>> source = Stream()
    >>> L = source.starmap(lambda a, b: a + b).sink_to_list()
    >>> source.emit((1, 2)); source.emit((10, 20))
    >>> L
    [3, 30]
    """

    def update(self, x: Any, who: Stream | None = None, metadata: list[dict] | None = None) -> Any:
        try:
            result = self._func(*(x + self.args), **self.kwargs)
        except Exception as e:
            annotate_error(e, self, self._func, x)
            if self.error_policy is not None:
                return self.error_policy.handle(self, e, x, metadata, self._func)
            raise
        return self._emit(result, metadata=metadata)

    _fusion_update = update

    def _fusion_stage(self) -> Stage | None:
        if self.error_policy is not None:
            return None
        return Stage("starcall", self._func, self.args, self.kwargs)


def _truthy(x: Any) -> bool:
    return bool(x)


@Stream.register_api()
class filter(Stream):
    """Pass on only the elements for which ``predicate(x, *args, **kwargs)`` is true.

    ``predicate=None`` keeps truthy elements.

    Examples
    --------
    >>> source = Stream()
    >>> L = source.filter(lambda x: x % 2 == 0).sink_to_list()
    >>> for i in range(5):
    ...     source.emit(i)
    >>> L
    [0, 2, 4]
    """

    predicate = fused_attribute()

    def __init__(
        self, upstream: Stream, predicate: Callable[..., Any] | None, *args: Any, **kwargs: Any
    ):
        if predicate is None:
            predicate = _truthy
        check_callable("filter", "predicate", predicate)
        self._predicate = predicate
        self.error_policy = error_policy(type(self).__name__, kwargs.pop("on_error", "raise"))
        self.errors = self.error_policy.counts if self.error_policy else ErrorCounts()
        stream_name = kwargs.pop("stream_name", None)
        self.args = args
        self.kwargs = kwargs
        Stream.__init__(self, upstream, stream_name=stream_name)

    def update(self, x: Any, who: Stream | None = None, metadata: list[dict] | None = None) -> Any:
        try:
            keep = self._predicate(x, *self.args, **self.kwargs)
        except Exception as e:
            annotate_error(e, self, self._predicate, x)
            if self.error_policy is not None:
                return self.error_policy.handle(self, e, x, metadata, self._predicate)
            raise
        if keep:
            return self._emit(x, metadata=metadata)
        return None

    _fusion_update = update

    def _fusion_stage(self) -> Stage | None:
        if self.error_policy is not None:
            return None
        return Stage("filter", self._predicate, self.args, self.kwargs)


@Stream.register_api()
class remove(filter):
    """Drop the elements for which ``predicate(x)`` is true (the opposite of ``filter``).

    Examples
    --------
    >>> source = Stream()
    >>> L = source.remove(lambda x: x % 2 == 0).sink_to_list()
    >>> for i in range(5):
    ...     source.emit(i)
    >>> L
    [1, 3]
    """

    def update(self, x: Any, who: Stream | None = None, metadata: list[dict] | None = None) -> Any:
        try:
            drop = self._predicate(x, *self.args, **self.kwargs)
        except Exception as e:
            annotate_error(e, self, self._predicate, x)
            if self.error_policy is not None:
                return self.error_policy.handle(self, e, x, metadata, self._predicate)
            raise
        if not drop:
            return self._emit(x, metadata=metadata)
        return None

    _fusion_update = update

    def _fusion_stage(self) -> Stage | None:
        if self.error_policy is not None:
            return None
        return Stage("filter", self._predicate, self.args, self.kwargs, negate=True)


class ItemPicker:
    """``x[pick]``, or a tuple of items when ``pick`` is a list: what ``pluck`` selects.

    A picklable callable, so that nodes running elsewhere (the Dask ``pluck``, on the
    workers) select exactly as the local ``pluck`` does.

    >>> ItemPicker([0, 2])(('a', 'b', 'c'))
    ('a', 'c')
    """

    __slots__ = ("pick",)

    def __init__(self, pick: Any):
        self.pick = pick

    def __call__(self, x: Any) -> Any:
        pick = self.pick
        if isinstance(pick, list):
            return tuple(x[p] for p in pick)
        return x[pick]


@Stream.register_api()
class pluck(Stream):
    """Select an item (or, with a list, several items as a tuple) from each element.

    The selection is an :class:`ItemPicker` (reused by the Dask ``pluck``).

    Examples
    --------
    >>> source = Stream()
    >>> L = source.pluck([0, 2]).sink_to_list()
    >>> source.emit((1, 2, 3))
    >>> L
    [(1, 3)]
    >>> source = Stream()
    >>> L = source.pluck('name').sink_to_list()
    >>> source.emit({'name': 'ada', 'age': 36})
    >>> L
    ['ada']
    """

    def __init__(self, upstream: Stream, pick: Any, **kwargs: Any):
        self.pick = pick
        self._picker = ItemPicker(pick)
        Stream.__init__(self, upstream, **kwargs)

    def update(self, x: Any, who: Stream | None = None, metadata: list[dict] | None = None) -> Any:
        try:
            picked = self._picker(x)
        except Exception as e:
            annotate_error(e, self, None, x)
            raise
        return self._emit(picked, metadata=metadata)

    _fusion_update = update

    def _fusion_stage(self) -> Stage:
        return Stage("step", self._picker, user_func=None)

    def __str__(self) -> str:
        return f"<pluck: {short_repr(self.pick, 40)}>" if not self.name else super().__str__()


@Stream.register_api()
class flatten(Stream):
    """Emit each item of each (iterable) element; ``concat`` is an alias.

    Every item carries the element's metadata, so an acknowledgement waits for all
    of them (Streamz attaches it to the last item only).

    Examples
    --------
    >>> source = Stream()
    >>> L = source.flatten().sink_to_list()
    >>> source.emit([1, 2, 3]); source.emit([]); source.emit([4])
    >>> L
    [1, 2, 3, 4]
    """

    def __init__(self, upstream: Stream, on_error: Any = "raise", **kwargs: Any):
        #: what to do with an element that is not iterable (see :mod:`millstream.core.errors`)
        self.error_policy = error_policy("flatten", on_error)
        self.errors = self.error_policy.counts if self.error_policy else ErrorCounts()
        Stream.__init__(self, upstream, **kwargs)

    def update(self, x: Any, who: Stream | None = None, metadata: list[dict] | None = None) -> Any:
        try:
            items = _iter_or_raise(self, x)
        except TypeError as e:
            if self.error_policy is not None:
                return self.error_policy.handle(self, e, x, metadata, None)
            raise
        if metadata is None:
            pending = [p for ps in self._emit_batch(items) for p in ps]
            return pending
        result: list[Any] = []
        for item in items:
            r = self._emit(item, metadata=metadata)
            if r:
                result.extend(r)
        return result

    _fusion_update = update

    def _fusion_stage(self) -> Stage | None:
        if self.error_policy is not None:
            return None
        return Stage("flatten")


def _iter_or_raise(node: Stream, x: Any) -> Any:
    try:
        return iter(x)
    except TypeError as e:
        annotate_error(e, node, None, x)
        raise
