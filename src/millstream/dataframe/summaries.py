"""Aggregations made of per-chunk summaries, for windows: each chunk is reduced once.

A :class:`Summarized` aggregation splits ``on_new``/``on_old`` in two: ``summarize(chunk)``
reduces a chunk to a small summary (its sum and count, a groupby's per-group totals) and
``add``/``subtract`` fold a summary into the state. A window keeps each chunk's summary
next to the chunk, so when the chunk leaves its summary is subtracted without reducing
the chunk again.

The built-in ones (:class:`WindowedSum`, :class:`WindowedCount`, :class:`WindowedSize`,
:class:`WindowedMean`, :class:`WindowedVar`) give the results of
:mod:`.aggregations`' ``Sum``... and reduce pandas Series of int64/float64 with numpy.

>>> import pandas as pd
>>> agg = WindowedMean()
>>> state = agg.initial(pd.Series([], dtype=float))
>>> first = agg.summarize(pd.Series([1.0, 2.0, None]))
>>> state, mean = agg.add(state, first)
>>> float(mean)
1.5
>>> state, mean = agg.add(state, agg.summarize(pd.Series([6.0])))
>>> float(agg.subtract(state, first)[1])
6.0
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .aggregations import Aggregation, Count, Mean, Size, Sum, Var

__all__ = [
    "Summarized",
    "WindowedCount",
    "WindowedMean",
    "WindowedSize",
    "WindowedSum",
    "WindowedVar",
    "sum_and_count",
]

_NUMPY_KINDS = ("f", "i", "u")


def _numeric_pandas_series(x: Any) -> bool:
    if not type(x).__module__.startswith("pandas") or getattr(x, "ndim", 0) != 1:
        return False
    dtype = x.dtype
    return isinstance(dtype, np.dtype) and dtype.kind in _NUMPY_KINDS


def sum_and_count(x: Any, squares: bool = False) -> tuple[Any, ...]:
    """``(x.sum(), x.count())`` (and ``(x ** 2).sum()`` with ``squares``) of a chunk, with
    numpy for a numeric pandas Series (no NaN check when the sum is not NaN).

    >>> import pandas as pd
    >>> [float(v) for v in sum_and_count(pd.Series([1.0, None, 3.0]), squares=True)]
    [4.0, 2.0, 10.0]
    """
    if _numeric_pandas_series(x):
        values = x.to_numpy()
        total = values.sum()
        count = len(values)
        if values.dtype.kind == "f" and total != total:  # NaN: some values are missing
            present = ~np.isnan(values)
            values = values[present]
            total = values.sum()
            count = int(present.sum())
        if squares:
            return total, np.int64(count), (values.astype("float64") ** 2).sum()
        return total, np.int64(count)
    if squares:
        return x.sum(), x.count(), (x**2).sum()
    return x.sum(), x.count()


class Summarized(Aggregation):
    """An aggregation whose state is folded from per-chunk summaries: subclasses define
    ``summarize(chunk)``, ``add(state, summary)`` and ``subtract(state, summary)`` (both
    returning ``(state, result)``)."""

    def summarize(self, chunk: Any) -> Any:
        raise NotImplementedError

    def add(self, state: Any, summary: Any) -> tuple[Any, Any]:
        raise NotImplementedError

    def subtract(self, state: Any, summary: Any) -> tuple[Any, Any]:
        raise NotImplementedError

    def on_new(self, state: Any, new: Any) -> tuple[Any, Any]:
        return self.add(state, self.summarize(new))

    def on_old(self, state: Any, old: Any) -> tuple[Any, Any]:
        return self.subtract(state, self.summarize(old))


class _Added(Summarized):
    """A state that is the sum of the summaries, and is the result."""

    def add(self, state: Any, summary: Any) -> tuple[Any, Any]:
        state = state + summary
        return state, state

    def subtract(self, state: Any, summary: Any) -> tuple[Any, Any]:
        state = state - summary
        return state, state


class WindowedSum(_Added, Sum):
    """``Sum`` from summaries."""

    def summarize(self, chunk: Any) -> Any:
        return sum_and_count(chunk)[0]


class WindowedCount(_Added, Count):
    """``Count`` from summaries."""

    def summarize(self, chunk: Any) -> Any:
        return sum_and_count(chunk)[1] if _numeric_pandas_series(chunk) else chunk.count()


class WindowedSize(_Added, Size):
    """``Size`` from summaries."""

    def summarize(self, chunk: Any) -> Any:
        return chunk.size  # rows times columns for a DataFrame, as pandas


def _ratio(totals: Any, counts: Any) -> Any:
    if isinstance(counts, (int, np.integer)):
        return totals / counts if counts else np.float64("nan")
    return totals / counts


class WindowedMean(Summarized, Mean):
    """``Mean`` from summaries ``(sum, count)``."""

    def summarize(self, chunk: Any) -> Any:
        return sum_and_count(chunk)

    def add(self, state: Any, summary: Any) -> tuple[Any, Any]:
        state = (state[0] + summary[0], state[1] + summary[1])
        return state, _ratio(*state)

    def subtract(self, state: Any, summary: Any) -> tuple[Any, Any]:
        state = (state[0] - summary[0], state[1] - summary[1])
        return state, _ratio(*state)


class WindowedVar(Summarized, Var):
    """``Var(ddof)`` from summaries ``(sum, sum of squares, count)``."""

    def summarize(self, chunk: Any) -> Any:
        total, count, squares = sum_and_count(chunk, squares=True)
        return total, squares, count

    def add(self, state: Any, summary: Any) -> tuple[Any, Any]:
        state = tuple(s + t for s, t in zip(state, summary, strict=True))
        return state, self._variance(state)

    def subtract(self, state: Any, summary: Any) -> tuple[Any, Any]:
        state = tuple(s - t for s, t in zip(state, summary, strict=True))
        return state, self._variance(state)

    def _variance(self, state: Any) -> Any:
        x, x2, n = state
        if isinstance(n, (int, np.integer)):
            if n <= self.ddof:
                return np.float64("nan")
            return np.float64(max((x2 / n - (x / n) ** 2) * n / (n - self.ddof), 0.0))
        with np.errstate(divide="ignore", invalid="ignore"):
            var = (x2 / n - (x / n) ** 2) * n / (n - self.ddof)
        return var.clip(lower=0).where(n > self.ddof)
