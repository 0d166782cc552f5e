"""Streamz's ``streamz.collection``: the base of streaming collections (``Batch``, frames).

A collection wraps a :class:`~millstream.core.Stream` whose elements are chunks (a list,
a DataFrame) together with an ``example`` chunk that tells what the chunks look like.
Operations run on the example first, so the result's type (and with it the result's
collection class) is known before any data arrives.

* :func:`map_partitions` applies a function to each chunk (several collections are
  zipped first); :meth:`Streaming.accumulate_partitions` carries state across chunks.
* :func:`register_stream_type` / :func:`get_stream_type`: which collection class wraps
  chunks of which type, for ``'streaming'`` collections (each element is a new chunk) and
  ``'updating'`` ones (each element replaces the previous result).
* Arithmetic and comparison operators map ``operator.X`` over the chunks.

>>> from millstream.collection import Streaming
>>> s = Streaming(example=0)
>>> out = (s * 10 + 1).stream.sink_to_list()
>>> s.emit(4)
>>> out
[41]
"""

from __future__ import annotations

import operator
import sys
from collections.abc import Callable
from typing import Any, ClassVar

from millstream._utils import no_default
from millstream.core import Stream
from millstream.core.display import mark_display_only, value_html

__all__ = [
    "OperatorMixin",
    "Streaming",
    "apply_args",
    "get_stream_type",
    "map_partitions",
    "partial_by_order",
    "register_stream_type",
]

STREAM_TYPES = ("streaming", "updating")

#: stream type -> [(chunk types, collection class)], searched in order
_registry: dict[str, list[tuple[Any, type[Streaming]]]] = {name: [] for name in STREAM_TYPES}


def register_stream_type(
    types: type | tuple[type, ...] | Callable[[Any], bool],
    cls: type[Streaming],
    stream_type: str = "streaming",
) -> None:
    """Wrap chunks of ``types`` (or chunks for which the predicate ``types(chunk)`` is
    true: duck typing, e.g. pandas and cudf frames) in ``cls``, a :class:`Streaming`
    subclass. The newest registration is tried first."""
    _registry[_checked(stream_type)].insert(0, (types, cls))


def get_stream_type(example: Any, stream_type: str = "streaming") -> type[Streaming] | None:
    """The collection class registered for chunks like ``example``, or None.

    >>> from millstream.batch import Batch
    >>> get_stream_type([1, 2]) is Batch, get_stream_type(3)
    (True, None)
    """
    for types, cls in _registry[_checked(stream_type)]:
        if isinstance(types, (type, tuple)):
            if isinstance(example, types):
                return cls
        elif types(example):
            return cls
    return None


def _checked(stream_type: str) -> str:
    if stream_type not in STREAM_TYPES:
        raise ValueError(f"stream_type must be 'streaming' or 'updating', got {stream_type!r}")
    return stream_type


def apply_args(args: tuple[Any, ...], func: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
    """``func(*args, **kwargs)``: the function that zipped collections are mapped with."""
    return func(*args, **kwargs)


def partial_by_order(*args: Any, **kwargs: Any) -> Any:
    """Call ``function`` with ``args`` and the fixed ``other`` values put at their positions.

    >>> partial_by_order(5, function=operator.sub, other=[(0, 10)])
    5
    """
    function = kwargs.pop("function")
    other = kwargs.pop("other")
    filled = list(args)
    for position, value in other:
        filled.insert(position, value)
    return function(*filled, **kwargs)


def _wrap(stream: Stream, example: Any, stream_type: str) -> Streaming:
    cls = get_stream_type(example, stream_type)
    if cls is not None:
        return cls(stream, example)
    return Streaming(stream, example, stream_type=stream_type)


def map_partitions(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Streaming:
    """Apply ``func`` to each chunk; arguments that are collections stand for their chunks.

    The result's example is ``func`` applied to the examples (unless ``example=`` is
    given); its class comes from :func:`get_stream_type`. The result is ``'streaming'``
    if any collection argument is, else ``'updating'`` (unless ``stream_type=`` is given).

    >>> a, b = Streaming(example=0), Streaming(example=0)
    >>> out = map_partitions(operator.sub, a, b).stream.sink_to_list()
    >>> a.emit(10); b.emit(3)
    >>> out
    [7]
    """
    example = kwargs.pop("example", None)
    stream_type = kwargs.pop("stream_type", None)
    if example is None:
        example = func(*[getattr(arg, "example", arg) for arg in args], **kwargs)
    collections = [arg for arg in args if isinstance(arg, Streaming)]
    if not collections:
        raise TypeError(f"map_partitions({func!r}, ...) needs at least one collection argument")
    if stream_type is not None:
        _checked(stream_type)
    elif any(c.stream_type == "streaming" for c in collections):
        stream_type = "streaming"
    else:
        stream_type = "updating"
    first = collections[0]
    if len(collections) > 1:
        upstreams = [arg.stream if isinstance(arg, Streaming) else arg for arg in args]
        stream = type(first.stream).zip(*upstreams).map(apply_args, func, kwargs)
    elif isinstance(args[0], Streaming):
        stream = first.stream.map(func, *args[1:], **kwargs)
    else:
        fixed = [(i, arg) for i, arg in enumerate(args) if not isinstance(arg, Streaming)]
        stream = first.stream.map(partial_by_order, function=func, other=fixed, **kwargs)
    return _wrap(stream, example, stream_type)


class WithExtraArgs:
    """``func(state, x, *args, **kwargs)`` as a step of ``accumulate`` (picklable for Dask)."""

    def __init__(self, func: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self.func = func
        self.args = args

    def __call__(self, state: Any, x: Any, **kwargs: Any) -> Any:
        return self.func(state, x, *self.args, **kwargs)


def _binary(op: Callable[[Any, Any], Any], reflected: bool = False) -> Any:
    if reflected:

        def method(self: Any, other: Any) -> Any:
            return map_partitions(op, other, self)

    else:

        def method(self: Any, other: Any) -> Any:
            return map_partitions(op, self, other)

    return method


def _unary(op: Callable[[Any], Any]) -> Any:
    def method(self: Any) -> Any:
        return map_partitions(op, self)

    return method


class OperatorMixin:
    """Arithmetic, comparison and bitwise operators applied chunk by chunk.

    As in Streamz, ``==`` builds a new collection, so collections are not hashable.
    """

    __add__ = _binary(operator.add)
    __radd__ = _binary(operator.add, reflected=True)
    __sub__ = _binary(operator.sub)
    __rsub__ = _binary(operator.sub, reflected=True)
    __mul__ = _binary(operator.mul)
    __rmul__ = _binary(operator.mul, reflected=True)
    __truediv__ = _binary(operator.truediv)
    __rtruediv__ = _binary(operator.truediv, reflected=True)
    __floordiv__ = _binary(operator.floordiv)
    __rfloordiv__ = _binary(operator.floordiv, reflected=True)
    __mod__ = _binary(operator.mod)
    __rmod__ = _binary(operator.mod, reflected=True)
    __pow__ = _binary(operator.pow)
    __rpow__ = _binary(operator.pow, reflected=True)
    __and__ = _binary(operator.and_)
    __rand__ = _binary(operator.and_, reflected=True)
    __or__ = _binary(operator.or_)
    __ror__ = _binary(operator.or_, reflected=True)
    __xor__ = _binary(operator.xor)
    __rxor__ = _binary(operator.xor, reflected=True)
    __lshift__ = _binary(operator.lshift)
    __rlshift__ = _binary(operator.lshift, reflected=True)
    __rshift__ = _binary(operator.rshift)
    __rrshift__ = _binary(operator.rshift, reflected=True)
    __eq__ = _binary(operator.eq)
    __ne__ = _binary(operator.ne)
    __lt__ = _binary(operator.lt)
    __le__ = _binary(operator.le)
    __gt__ = _binary(operator.gt)
    __ge__ = _binary(operator.ge)
    __neg__ = _unary(operator.neg)
    __invert__ = _unary(operator.invert)
    __inv__ = _unary(operator.inv)
    __abs__ = _unary(operator.abs)
    __hash__ = None  # type: ignore[assignment]


class Streaming(OperatorMixin):
    """A stream of chunks with an example chunk (Streamz's ``Streaming``).

    Subclasses set ``subtype`` (the chunk type; the example is converted to it) and
    ``default_stream_type``. ``stream`` defaults to a new :class:`Stream`.

    >>> s = Streaming(example=[0])
    >>> s
    Streaming - elements like:
    [0]
    >>> s.emit("not checked: any object is a chunk")
    """

    subtype: ClassVar[type] = object
    default_stream_type: ClassVar[str] = "streaming"
    map_partitions = staticmethod(map_partitions)

    def __init__(
        self, stream: Stream | None = None, example: Any = None, stream_type: str | None = None
    ) -> None:
        if example is None:
            raise TypeError(f"{type(self).__name__}() needs an example chunk (example=...)")
        if not isinstance(example, self.subtype):
            example = self.subtype(example)
        self.example = example
        # Any: the methods used on it (map, zip, accumulate) are registered by layers above
        self.stream: Any = stream if stream is not None else Stream()
        self.stream_type = _checked(stream_type or self.default_stream_type)

    # Streamz's private names, for code written against them
    @property
    def _subtype(self) -> type:
        return self.subtype

    @property
    def _stream_type(self) -> str:
        return self.stream_type

    @classmethod
    def register_api(
        cls, modifier: Callable[[Any], Any] = lambda f: f, attribute_name: str | None = None
    ) -> Callable[[Any], Any]:
        """Decorator: put a function on this class as a method (as ``Stream.register_api``)."""

        def register(func: Any) -> Any:
            setattr(cls, attribute_name or func.__name__, modifier(func))
            return func

        return register

    def accumulate_partitions(
        self,
        func: Callable[..., Any],
        *args: Any,
        start: Any = no_default,
        returns_state: bool = False,
        example: Any = None,
        stream_type: str | None = None,
        **kwargs: Any,
    ) -> Streaming:
        """Fold ``func(state, chunk, *args, **kwargs)`` over the chunks (``Stream.accumulate``).

        The example is ``func(start, self.example, ...)`` unless ``example=`` is given.
        Unlike Streamz, ``*args`` reach ``func`` (Streamz passes them on as ``start``).

        >>> s = Streaming(example=[0])
        >>> total = s.accumulate_partitions(lambda acc, c: acc + sum(c), start=0)
        >>> out = total.stream.sink_to_list()
        >>> s.emit([1, 2]); s.emit([3])
        >>> out
        [3, 6]
        """
        stream_type = stream_type or self.stream_type
        if example is None:
            example = func(start, self.example, *args, **kwargs)
            if returns_state:
                _, example = example
        step = WithExtraArgs(func, args) if args else func
        stream = self.stream.accumulate(step, start=start, returns_state=returns_state, **kwargs)
        return _wrap(stream, example, stream_type)

    def __repr__(self) -> str:
        example = self.example
        if hasattr(example, "head"):
            example = example.head(2)
        return f"{type(self).__name__} - elements like:\n{example!r}"

    def _repr_html_(self) -> str:
        example = self.example
        if hasattr(example, "head"):
            example = example.head(2)
        html = getattr(example, "_repr_html_", None)
        body = html() if html is not None else repr(example)
        return f"<h5>{type(self).__name__} - elements like<h5>\n{body}"

    def live_widget(self, interval: float = 0.5, metrics: bool = False) -> Any:
        """An ipywidgets widget showing the latest element, redrawn at most every
        ``interval`` seconds (frames as HTML tables); what ``_ipython_display_`` shows.
        ``metrics=True`` adds a table of the stream's metrics.

        As in Streamz it follows ``stream.latest().rate_limit(interval)`` (``.gather()``d
        for a Dask stream); closing the widget takes those nodes down again. Those nodes
        are left out of ``visualize()``.
        """
        from millstream.core.display import live_widget

        view, nodes = self._live_nodes(interval)
        return live_widget(
            view, value_html, type(self).__name__, _Destroy(nodes), metrics, self.stream
        )

    def _live_nodes(self, interval: float) -> tuple[Stream, list[Stream]]:
        nodes = [self.stream.latest()]
        nodes.append(nodes[-1].rate_limit(interval))
        dask = sys.modules.get("millstream.dask")
        if dask is not None and isinstance(self.stream, dask.DaskStream):
            nodes.append(nodes[-1].gather())
        mark_display_only(*nodes)
        return nodes[-1], nodes

    def display(self, metrics: bool = False, interval: float = 0.5) -> None:
        """Show the latest element live in a notebook (a frame as its table), redrawn at
        most every ``interval`` seconds; ``metrics=True`` adds the stream's metrics.
        Displaying the collection (a cell ending with it) is ``display()``."""
        from millstream.core.display import ipython_display

        view, nodes = self._live_nodes(interval)
        ipython_display(
            view, value_html, type(self).__name__, _Destroy(nodes), metrics, self.stream
        )

    def _ipython_display_(self, **kwargs: Any) -> None:
        """Show the latest element live in a notebook (a table for frames)."""
        self.display()

    @property
    def current_value(self) -> Any:
        """The stream's latest element (``Stream.current_value``)."""
        return self.stream.current_value

    def start(self) -> None:
        """Start the stream's sources."""
        self.stream.start()

    def stop(self) -> None:
        """Stop the stream's sources."""
        self.stream.stop()

    def emit(self, x: Any, asynchronous: bool = False) -> Any:
        """Check ``x`` with :meth:`verify`, then push it into the stream."""
        self.verify(x)
        return self.stream.emit(x, asynchronous=asynchronous)

    def verify(self, x: Any) -> None:
        """Raise ``TypeError`` unless ``x`` is a chunk of this collection's type."""
        if not isinstance(x, self.subtype):
            raise TypeError(
                f"{type(self).__name__}.emit: expected a chunk of type {self.subtype}, "
                f"got {type(x)}: {x!r:.80}"
            )


class _Destroy:
    """Take down the nodes a live display put below a collection's stream."""

    def __init__(self, nodes: list[Stream]):
        self.nodes = nodes

    def __call__(self) -> None:
        for node in reversed(self.nodes):
            node.destroy()
        self.nodes = []
