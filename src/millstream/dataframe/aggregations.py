"""Running aggregations of streaming frames (Streamz's ``Aggregation`` protocol).

An :class:`Aggregation` folds chunks into a state: ``initial(new)`` makes the state from
an empty chunk, ``on_new(state, new)`` adds a chunk and ``on_old(state, old)`` takes one
away (for windows), both returning ``(state, result)``. ``snapshot(state)`` and
``restore(data)`` turn a state into plain data and back (the checkpoint contract of
:mod:`millstream.core.state`).

>>> import pandas as pd
>>> agg = Mean()
>>> state = agg.initial(pd.Series([], dtype=float))
>>> state, result = agg.on_new(state, pd.Series([1.0, 2.0]))
>>> state, result = agg.on_new(state, pd.Series([6.0]))
>>> float(result)
3.0
>>> state, result = agg.on_old(state, pd.Series([1.0, 2.0]))
>>> float(result)
6.0
>>> agg.restore(agg.snapshot(state)) == state
True
"""

from __future__ import annotations

from typing import Any

from .chunkops import chunk_sum
from .plain import from_plain, to_plain

__all__ = ["Aggregation", "Count", "Mean", "Size", "Sum", "Var"]


class Aggregation:
    """The base of running aggregations: subclasses define ``initial``, ``on_new`` and
    ``on_old``; ``snapshot``/``restore`` work for states of numbers, pandas objects and
    tuples of them."""

    def initial(self, new: Any) -> Any:
        raise NotImplementedError

    def on_new(self, state: Any, new: Any) -> tuple[Any, Any]:
        raise NotImplementedError

    def on_old(self, state: Any, old: Any) -> tuple[Any, Any]:
        raise NotImplementedError

    def snapshot(self, state: Any) -> Any:
        """``state`` as plain data (``None`` before the first chunk)."""
        return to_plain(state)

    def restore(self, data: Any) -> Any:
        """The state ``data`` (from :meth:`snapshot`) stands for; raises ``TypeError`` or
        ``ValueError`` when it is not one."""
        return from_plain(data)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Sum(Aggregation):
    """The running sum (per column for a DataFrame).

    >>> import pandas as pd
    >>> [int(v) for v in Sum().on_new(0, pd.Series([1, 2]))]
    [3, 3]
    """

    def initial(self, new: Any) -> Any:
        return new.iloc[:0].sum()

    def on_new(self, state: Any, new: Any) -> tuple[Any, Any]:
        result = state + chunk_sum(new)
        return result, result

    def on_old(self, state: Any, old: Any) -> tuple[Any, Any]:
        result = state - old.sum()
        return result, result


class Count(Aggregation):
    """The running count of non-missing values.

    >>> import pandas as pd
    >>> [int(v) for v in Count().on_new(0, pd.Series([1, None]))]
    [1, 1]
    """

    def initial(self, new: Any) -> Any:
        return new.iloc[:0].count()

    def on_new(self, state: Any, new: Any) -> tuple[Any, Any]:
        result = state + new.count()
        return result, result

    def on_old(self, state: Any, old: Any) -> tuple[Any, Any]:
        result = state - old.count()
        return result, result


class Size(Aggregation):
    """The running number of values (``x.size`` as pandas counts it: rows times columns for
    a DataFrame, rows for a Series).

    >>> import pandas as pd
    >>> Size().on_new(2, pd.Series([1, None]))
    (4, 4)
    """

    def initial(self, new: Any) -> Any:
        return 0

    def on_new(self, state: Any, new: Any) -> tuple[Any, Any]:
        result = state + new.size
        return result, result

    def on_old(self, state: Any, old: Any) -> tuple[Any, Any]:
        result = state - old.size
        return result, result


class Mean(Aggregation):
    """The running mean; the state is ``(sums, counts)``."""

    def initial(self, new: Any) -> Any:
        empty = new.iloc[:0]
        return (empty.sum(), empty.count())

    def on_new(self, state: Any, new: Any) -> tuple[Any, Any]:
        totals, counts = state
        state = (totals + new.sum(), counts + new.count())
        return state, state[0] / state[1]

    def on_old(self, state: Any, old: Any) -> tuple[Any, Any]:
        totals, counts = state
        state = (totals - old.sum(), counts - old.count())
        return state, state[0] / state[1]


class Var(Aggregation):
    """The running variance with ``ddof`` (1: the sample variance, as pandas); the state
    is ``(sums, sums of squares, counts)``.

    >>> import pandas as pd
    >>> agg = Var()
    >>> state, result = agg.on_new(agg.initial(pd.Series([], dtype=float)), pd.Series([1.0, 3.0]))
    >>> float(result)
    2.0
    """

    def __init__(self, ddof: int = 1):
        self.ddof = ddof

    def initial(self, new: Any) -> Any:
        empty = new.iloc[:0]
        return (empty.sum(), (empty**2).sum(), empty.count())

    def _result(self, state: Any) -> Any:
        x, x2, n = state
        return (x2 / n - (x / n) ** 2) * n / (n - self.ddof)

    def on_new(self, state: Any, new: Any) -> tuple[Any, Any]:
        x, x2, n = state
        state = (x + new.sum(), x2 + (new**2).sum(), n + new.count())
        return state, self._result(state)

    def on_old(self, state: Any, old: Any) -> tuple[Any, Any]:
        x, x2, n = state
        state = (x - old.sum(), x2 - (old**2).sum(), n - old.count())
        return state, self._result(state)

    def __repr__(self) -> str:
        return f"Var(ddof={self.ddof})"
