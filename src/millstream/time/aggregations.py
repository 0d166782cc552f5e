"""Aggregations of the elements of a window.

An aggregation is four functions on an accumulator: ``create() -> acc`` (the empty
window), ``add(acc, value) -> acc``, ``merge(a, b) -> acc`` (two windows becoming one, as
sessions do) and ``result(acc) -> value`` (what the window emits). ``add`` may update
``acc`` in place and return it; ``result`` must not hand out an object that a later
``add`` changes (``Collect`` returns a copy), because a window can emit early results and
go on.

Built-ins: :class:`Sum`, :class:`Count`, :class:`Min`, :class:`Max`, :class:`Mean`,
:class:`Collect`, :class:`Reduce` and :class:`Fold`. Operators also accept the names
``'sum'``, ``'count'``, ``'min'``, ``'max'``, ``'mean'`` and ``'collect'``, and any object
with ``create``, ``add`` and ``result`` methods (``merge`` too, for sessions).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from .._utils import check_callable, short_repr

__all__ = [
    "AGGREGATIONS",
    "Aggregation",
    "Collect",
    "Count",
    "Fold",
    "Max",
    "Mean",
    "Min",
    "Reduce",
    "Sum",
    "as_aggregation",
]


class _Empty:
    """The accumulator of ``Min``, ``Max`` and ``Reduce`` before any value (one object,
    kept identical by copy, deepcopy and pickle)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "EMPTY"

    def __copy__(self) -> _Empty:
        return self

    def __deepcopy__(self, memo: Any) -> _Empty:
        return self

    def __reduce__(self) -> str:
        return "EMPTY"


EMPTY: Any = _Empty()


class Aggregation:
    """Base class of aggregations (see the module docstring for the protocol).

    ``mergeable`` tells whether :meth:`merge` works (sessions need it); ``func`` is the
    user function to name in errors, or ``None``.

    Examples
    --------
    >>> class Product(Aggregation):
    ...     def create(self): return 1
    ...     def add(self, acc, value): return acc * value
    ...     def merge(self, a, b): return a * b
    ...     def result(self, acc): return acc
    >>> p = Product()
    >>> p.result(p.add(p.add(p.create(), 3), 4))
    12
    """

    mergeable = True
    func: Any = None

    def create(self) -> Any:
        """The accumulator of an empty window."""
        raise NotImplementedError

    def add(self, acc: Any, value: Any) -> Any:
        """``acc`` with ``value`` added (may be ``acc`` itself, updated)."""
        raise NotImplementedError

    def merge(self, a: Any, b: Any) -> Any:
        """One accumulator for the elements of ``a`` then those of ``b``."""
        raise NotImplementedError

    def result(self, acc: Any) -> Any:
        """The value a window with accumulator ``acc`` emits."""
        return acc

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and vars(self) == vars(other)

    def __hash__(self) -> int:
        return hash(type(self).__name__)


class Sum(Aggregation):
    """The sum of the values (``0 + v1 + v2 + ...``).

    Examples
    --------
    >>> s = Sum()
    >>> s.result(s.add(s.add(s.create(), 2), 3)), s.merge(5, 7)
    (5, 12)
    """

    def create(self) -> Any:
        return 0

    def add(self, acc: Any, value: Any) -> Any:
        return acc + value

    def merge(self, a: Any, b: Any) -> Any:
        return a + b


class Count(Aggregation):
    """The number of elements (values are ignored).

    Examples
    --------
    >>> c = Count()
    >>> c.result(c.add(c.add(c.create(), 'x'), 'y'))
    2
    """

    def create(self) -> int:
        return 0

    def add(self, acc: int, value: Any) -> int:
        return acc + 1

    def merge(self, a: int, b: int) -> int:
        return a + b


class Min(Aggregation):
    """The smallest value (the first of equal ones); ``None`` for an empty window.

    Examples
    --------
    >>> m = Min()
    >>> acc = m.create()
    >>> for v in [4, 2, 7]:
    ...     acc = m.add(acc, v)
    >>> m.result(acc), m.result(m.create())
    (2, None)
    """

    def create(self) -> Any:
        return EMPTY

    def add(self, acc: Any, value: Any) -> Any:
        return value if acc is EMPTY or value < acc else acc

    def merge(self, a: Any, b: Any) -> Any:
        if a is EMPTY:
            return b
        if b is EMPTY:
            return a
        return b if b < a else a

    def result(self, acc: Any) -> Any:
        return None if acc is EMPTY else acc


class Max(Aggregation):
    """The largest value (the first of equal ones); ``None`` for an empty window.

    Examples
    --------
    >>> m = Max()
    >>> acc = m.create()
    >>> for v in [4, 2, 7]:
    ...     acc = m.add(acc, v)
    >>> m.result(acc)
    7
    """

    def create(self) -> Any:
        return EMPTY

    def add(self, acc: Any, value: Any) -> Any:
        return value if acc is EMPTY or value > acc else acc

    def merge(self, a: Any, b: Any) -> Any:
        if a is EMPTY:
            return b
        if b is EMPTY:
            return a
        return b if b > a else a

    def result(self, acc: Any) -> Any:
        return None if acc is EMPTY else acc


class Mean(Aggregation):
    """The arithmetic mean; ``None`` for an empty window. The accumulator is ``[sum, count]``.

    Examples
    --------
    >>> m = Mean()
    >>> acc = m.create()
    >>> for v in [1, 2, 6]:
    ...     acc = m.add(acc, v)
    >>> m.result(acc), acc
    (3.0, [9, 3])
    """

    def create(self) -> list[Any]:
        return [0, 0]

    def add(self, acc: list[Any], value: Any) -> list[Any]:
        acc[0] += value
        acc[1] += 1
        return acc

    def merge(self, a: list[Any], b: list[Any]) -> list[Any]:
        return [a[0] + b[0], a[1] + b[1]]

    def result(self, acc: list[Any]) -> Any:
        return acc[0] / acc[1] if acc[1] else None


class Collect(Aggregation):
    """A list of the values, in the order they reached the window.

    Examples
    --------
    >>> c = Collect()
    >>> acc = c.add(c.add(c.create(), 'a'), 'b')
    >>> out = c.result(acc); out
    ['a', 'b']
    >>> out is acc, c.merge(['a'], ['b', 'c'])
    (False, ['a', 'b', 'c'])
    """

    def create(self) -> list[Any]:
        return []

    def add(self, acc: list[Any], value: Any) -> list[Any]:
        acc.append(value)
        return acc

    def merge(self, a: list[Any], b: list[Any]) -> list[Any]:
        return a + b

    def result(self, acc: list[Any]) -> list[Any]:
        return list(acc)


class Reduce(Aggregation):
    """Combine the values pairwise with ``func(a, b)``; ``None`` for an empty window.

    The first value of a window is its starting accumulator. Sessions merge two
    accumulators with ``func`` too, so for sessions ``func`` should be associative.

    Examples
    --------
    >>> r = Reduce(lambda a, b: a * b)
    >>> acc = r.create()
    >>> for v in [2, 3, 4]:
    ...     acc = r.add(acc, v)
    >>> r.result(acc)
    24
    """

    def __init__(self, func: Callable[[Any, Any], Any]):
        check_callable("Reduce", "func", func)
        self.func = func

    def create(self) -> Any:
        return EMPTY

    def add(self, acc: Any, value: Any) -> Any:
        return value if acc is EMPTY else self.func(acc, value)

    def merge(self, a: Any, b: Any) -> Any:
        if a is EMPTY:
            return b
        if b is EMPTY:
            return a
        return self.func(a, b)

    def result(self, acc: Any) -> Any:
        return None if acc is EMPTY else acc

    def __repr__(self) -> str:
        return f"Reduce({getattr(self.func, '__name__', 'func')})"


_IMMUTABLE = (int, float, complex, str, bytes, bool, tuple, frozenset, type(None))


class Fold(Aggregation):
    """Fold the values into ``start`` with ``func(acc, value)``.

    Each window starts from its own copy of ``start`` (a deep copy when ``start`` is
    mutable), so ``func`` may update the accumulator in place. Sessions need
    ``merge(a, b)`` to combine two accumulators; without it ``Fold`` is refused for
    sessions.

    Examples
    --------
    >>> f = Fold(set(), lambda acc, v: acc | {v}, merge=lambda a, b: a | b)
    >>> acc = f.create()
    >>> for v in 'abca':
    ...     acc = f.add(acc, v)
    >>> sorted(f.result(acc)), f.create()
    (['a', 'b', 'c'], set())
    """

    def __init__(
        self,
        start: Any,
        func: Callable[[Any, Any], Any],
        merge: Callable[[Any, Any], Any] | None = None,
    ):
        check_callable("Fold", "func", func)
        if merge is not None:
            check_callable("Fold", "merge", merge)
        self.start = start
        self.func = func
        self.merge_func = merge
        self.mergeable = merge is not None
        self._copy_start = not isinstance(start, _IMMUTABLE)

    def create(self) -> Any:
        return copy.deepcopy(self.start) if self._copy_start else self.start

    def add(self, acc: Any, value: Any) -> Any:
        return self.func(acc, value)

    def merge(self, a: Any, b: Any) -> Any:
        if self.merge_func is None:
            raise TypeError("Fold without merge= cannot merge accumulators")
        return self.merge_func(a, b)

    def __repr__(self) -> str:
        return f"Fold({short_repr(self.start, 40)}, {getattr(self.func, '__name__', 'func')})"


#: The aggregations operators accept by name.
AGGREGATIONS: dict[str, type[Aggregation]] = {
    "sum": Sum,
    "count": Count,
    "min": Min,
    "max": Max,
    "mean": Mean,
    "collect": Collect,
}


def as_aggregation(agg: Any, node_name: str = "window") -> Any:
    """The aggregation ``agg`` names: a name from :data:`AGGREGATIONS`, or an object with
    ``create``, ``add`` and ``result`` methods (returned as is).

    >>> as_aggregation('sum')
    Sum()
    >>> as_aggregation('median')
    Traceback (most recent call last):
    ...
    ValueError: window: agg must be one of 'collect', 'count', ... got 'median'
    """
    if isinstance(agg, str):
        cls = AGGREGATIONS.get(agg)
        if cls is None:
            names = ", ".join(repr(n) for n in sorted(AGGREGATIONS))
            raise ValueError(
                f"{node_name}: agg must be one of {names} or an Aggregation "
                f"(Reduce(func), Fold(start, func)...), got {short_repr(agg)}"
            )
        return cls()
    if isinstance(agg, type) and issubclass(agg, Aggregation):
        raise TypeError(
            f"{node_name}: agg must be an Aggregation instance, got the class "
            f"{agg.__name__}; write {agg.__name__}(...)"
        )
    if all(callable(getattr(agg, name, None)) for name in ("create", "add", "result")):
        return agg
    hint = "; to combine values with a function use Reduce(func)" if callable(agg) else ""
    raise TypeError(
        f"{node_name}: agg must be an aggregation name ('sum', 'count', 'min', 'max', "
        f"'mean', 'collect') or an object with create/add/result methods, got "
        f"{short_repr(agg)}{hint}"
    )
