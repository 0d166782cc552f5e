"""``Streaming``: a stream of chunks plus an ``example`` of what a chunk looks like, the
base of streaming frames (Streamz's ``streamz.collection``).

Every operation maps a pandas function over the chunks (:func:`map_partitions`) or folds
them (:meth:`Streaming.accumulate_partitions`); the class of the result comes from the
example it would produce (:func:`stream_type_for`).

>>> from millstream import Stream
>>> s = Streaming(Stream(), example=0)
>>> doubled = s * 2
>>> L = doubled.stream.sink_to_list()
>>> s.emit(3)
>>> L, doubled.example
([6], 0)
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

from .._utils import no_default
from ..core.stream import Stream

__all__ = ["ApplyWith", "Streaming", "map_partitions", "register_stream_type", "stream_type_for"]

#: ``(is_like, class)`` per stream type, most specific first (filled by the frame module).
_STREAM_TYPES: dict[str, list[tuple[Callable[[Any], bool], type]]] = {
    "streaming": [],
    "updating": [],
}


def register_stream_type(stream_type: str, is_like: Callable[[Any], bool], cls: type) -> None:
    """Make ``cls`` the class of ``stream_type`` collections whose example passes ``is_like``."""
    _STREAM_TYPES[stream_type].insert(0, (is_like, cls))


def stream_type_for(example: Any, stream_type: str = "streaming") -> type:
    """The collection class for ``example``: the registered one, else :class:`Streaming`."""
    for is_like, cls in _STREAM_TYPES[stream_type]:
        if is_like(example):
            return cls
    return Streaming


class ApplyWith:
    """``func`` called with ``args``, the streaming ones (at ``positions``) replaced by the
    elements that arrive (one, or a tuple from ``zip``); picklable for Dask."""

    __slots__ = ("args", "func", "kwargs", "positions")

    def __init__(self, func: Callable[..., Any], args: tuple, positions: list[int], kwargs: dict):
        self.func = func
        self.args = args
        self.positions = positions
        self.kwargs = kwargs

    def __call__(self, x: Any) -> Any:
        args = list(self.args)
        values = x if len(self.positions) > 1 else (x,)
        for i, value in zip(self.positions, values, strict=True):
            args[i] = value
        return self.func(*args, **self.kwargs)


def map_partitions(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Streaming:
    """Apply ``func`` to each chunk of the streaming arguments (zipped when several).

    ``example=`` gives the result's example (default: ``func`` over the examples) and
    ``stream_type=`` its kind (default: that of the first streaming argument).
    """
    example = kwargs.pop("example", None)
    stream_type = kwargs.pop("stream_type", None)
    positions = [i for i, a in enumerate(args) if isinstance(a, Streaming)]
    if not positions:
        raise TypeError("map_partitions needs at least one streaming argument")
    collections = [args[i] for i in positions]
    if example is None:
        examples = [a.example if isinstance(a, Streaming) else a for a in args]
        example = func(*examples, **kwargs)
    stream_type = stream_type or collections[0].stream_type
    if len(collections) > 1:
        head = collections[0].stream.zip(*[c.stream for c in collections[1:]])
    else:
        head = collections[0].stream
    stream = head.map(ApplyWith(func, args, positions, kwargs))
    cls = stream_type_for(example, stream_type)
    if cls is Streaming:
        return Streaming(stream, example=example, stream_type=stream_type)
    return cls(stream, example=example)


class Streaming:
    """A stream of chunks like ``example``. ``stream_type`` is ``'streaming'`` (each element
    is new rows) or ``'updating'`` (each element replaces the one before)."""

    _subtype: type | tuple[type, ...] = object
    _stream_type = "streaming"

    def __init__(
        self, stream: Stream | None = None, example: Any = None, stream_type: str | None = None
    ):
        if example is None:
            raise TypeError("Missing required argument:'example'")
        if stream_type is not None and stream_type not in _STREAM_TYPES:
            raise ValueError(f"stream_type must be 'streaming' or 'updating', got {stream_type!r}")
        self.example = example
        self.stream = stream if stream is not None else Stream()
        self.stream_type = stream_type or self._stream_type

    map_partitions = staticmethod(map_partitions)

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
        """Fold the chunks with ``func(state, chunk, *args, **kwargs)`` (``accumulate``)."""
        stream_type = stream_type or self.stream_type
        if example is None:
            first = self.example if start is no_default else start
            result = func(first, self.example, *args, **kwargs)
            example = result[1] if returns_state else result
        call = _Fold(func, args) if args else func
        stream = self.stream.accumulate(  # type: ignore[attr-defined]
            call, start=start, returns_state=returns_state, **kwargs
        )
        cls = stream_type_for(example, stream_type)
        if cls is Streaming:
            return Streaming(stream, example=example, stream_type=stream_type)
        return cls(stream, example=example)

    def verify(self, x: Any) -> None:
        """Raise ``TypeError`` when ``x`` is not a chunk of this collection's type."""
        if not isinstance(x, self._subtype):
            raise TypeError(f"Expected type {self._subtype}, got type {type(x)}")

    def emit(self, x: Any) -> Any:
        """Check ``x`` (:meth:`verify`) and push it into the stream."""
        self.verify(x)
        return self.stream.emit(x)

    def start(self) -> None:
        self.stream.start()

    def stop(self) -> None:
        self.stream.stop()

    @property
    def current_value(self) -> Any:
        return self.stream.current_value

    def __repr__(self) -> str:
        example = self.example.head(2) if hasattr(self.example, "head") else self.example
        return f"{type(self).__name__} - elements like:\n{example!r}"


class _Fold:
    """``func(state, x, *args)``: the extra positional arguments of accumulate_partitions
    (Streamz passes them on as ``start``, a bug not kept)."""

    __slots__ = ("args", "func")

    def __init__(self, func: Callable[..., Any], args: tuple):
        self.func = func
        self.args = args

    def __call__(self, state: Any, x: Any, **kwargs: Any) -> Any:
        return self.func(state, x, *self.args, **kwargs)


def _binary(op: Callable[[Any, Any], Any], reflected: bool = False) -> Any:
    if reflected:

        def method(self: Streaming, other: Any) -> Streaming:
            return (
                map_partitions(op, other, self)
                if isinstance(other, Streaming)
                else (map_partitions(_Swapped(op), self, other))
            )
    else:

        def method(self: Streaming, other: Any) -> Streaming:
            return map_partitions(op, self, other)

    return method


class _Swapped:
    """``op(b, a)`` for the reflected operators (``2 - s``)."""

    __slots__ = ("op",)

    def __init__(self, op: Callable[[Any, Any], Any]):
        self.op = op

    def __call__(self, a: Any, b: Any) -> Any:
        return self.op(b, a)


def _unary(op: Callable[[Any], Any]) -> Any:
    def method(self: Streaming) -> Streaming:
        return map_partitions(op, self)

    return method


_BINARY = {
    "add": operator.add, "sub": operator.sub, "mul": operator.mul,
    "truediv": operator.truediv, "floordiv": operator.floordiv, "mod": operator.mod,
    "pow": operator.pow, "and": operator.and_, "or": operator.or_, "xor": operator.xor,
}  # fmt: skip
_COMPARISONS = {
    "eq": operator.eq, "ne": operator.ne, "lt": operator.lt,
    "le": operator.le, "gt": operator.gt, "ge": operator.ge,
}  # fmt: skip
for _name, _op in _BINARY.items():
    setattr(Streaming, f"__{_name}__", _binary(_op))
    setattr(Streaming, f"__r{_name}__", _binary(_op, reflected=True))
for _name, _op in _COMPARISONS.items():
    setattr(Streaming, f"__{_name}__", _binary(_op))
_UNARY: dict[str, Callable[[Any], Any]] = {
    "neg": operator.neg,
    "invert": operator.invert,
    "abs": abs,
}
for _name, _un in _UNARY.items():
    setattr(Streaming, f"__{_name}__", _unary(_un))
Streaming.__hash__ = None  # type: ignore[assignment]  # == is elementwise
