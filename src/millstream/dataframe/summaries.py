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
    "chunk_moments",
    "merge_moments",
    "remove_moments",
    "sum_and_count",
    "variance",
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


def _choose(condition: Any, then: Any, otherwise: Any) -> Any:
    """``then`` where ``condition`` holds, else ``otherwise`` (numbers, arrays or pandas
    objects alike)."""
    if isinstance(condition, (bool, np.bool_)):
        return then if condition else otherwise
    if hasattr(otherwise, "where"):
        return otherwise.where(~condition, then)
    return np.where(condition, then, otherwise)


def merge_moments(a: tuple[Any, Any, Any], b: tuple[Any, Any, Any]) -> tuple[Any, Any, Any]:
    """Moments ``(count, mean, sum of squared deviations)`` of two parts together
    (Chan et al.'s update: stable where sums of squares are not).

    >>> merge_moments((2, 1.5, 0.5), (1, 6.0, 0.0))
    (3, 3.0, 14.0)
    """
    na, ma, m2a = a
    nb, mb, m2b = b
    n = na + nb
    with np.errstate(divide="ignore", invalid="ignore"):
        delta = mb - ma
        mean = ma + delta * (nb / n)
        m2 = m2a + m2b + delta * delta * (na * nb / n)
    mean = _choose(nb == 0, ma, _choose(na == 0, mb, mean))
    m2 = _choose(nb == 0, m2a, _choose(na == 0, m2b, m2))
    return n, mean, m2


def remove_moments(a: tuple[Any, Any, Any], b: tuple[Any, Any, Any]) -> tuple[Any, Any, Any]:
    """The moments of what is left of ``a`` once its part ``b`` is taken out (the inverse
    of :func:`merge_moments`).

    >>> remove_moments((3, 3.0, 14.0), (1, 6.0, 0.0))
    (2, 1.5, 0.5)
    """
    na, ma, m2a = a
    nb, mb, m2b = b
    n = na - nb
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = (na * ma - nb * mb) / n
        delta = mb - mean
        m2 = m2a - m2b - delta * delta * (n * nb / na)
    mean = _choose(nb == 0, ma, _choose(n == 0, 0.0 * ma, mean))
    m2 = _choose(nb == 0, m2a, _choose(n == 0, 0.0 * m2a, m2))
    return n, mean, m2


def variance(moments: tuple[Any, Any, Any], ddof: int) -> Any:
    """The variance from moments: NaN where there are ``ddof`` values or fewer."""
    n, _mean, m2 = moments
    if isinstance(n, (int, np.integer)):
        return np.float64(max(m2 / (n - ddof), 0.0)) if n > ddof else np.float64("nan")
    with np.errstate(divide="ignore", invalid="ignore"):
        var = m2 / (n - ddof)
    return var.clip(lower=0).where(n > ddof)


def chunk_moments(chunk: Any) -> tuple[Any, Any, Any]:
    """``(count, mean, sum of squared deviations)`` of a chunk (per column of a
    DataFrame), numpy for a numeric pandas Series."""
    if _numeric_pandas_series(chunk):
        values = chunk.to_numpy()
        if values.dtype.kind == "f":
            values = values[~np.isnan(values)]
        if not len(values):
            return np.int64(0), np.float64(0.0), np.float64(0.0)
        mean = values.mean()
        deviations = values - mean
        return np.int64(len(values)), mean, np.dot(deviations, deviations)
    n = chunk.count()
    mean = chunk.mean()
    m2 = (chunk.var(ddof=0) * n).fillna(0.0)
    return n, mean.fillna(0.0), m2


class WindowedVar(Summarized, Var):
    """``Var(ddof)`` from summaries ``(count, mean, sum of squared deviations)``, merged
    and taken out with :func:`merge_moments` / :func:`remove_moments`."""

    def initial(self, new: Any) -> Any:
        empty = new.iloc[:0]
        n = empty.count()
        return n, n * 0.0, n * 0.0

    def summarize(self, chunk: Any) -> Any:
        return chunk_moments(chunk)

    def add(self, state: Any, summary: Any) -> tuple[Any, Any]:
        state = merge_moments(state, summary)
        return state, variance(state, self.ddof)

    def subtract(self, state: Any, summary: Any) -> tuple[Any, Any]:
        state = remove_moments(state, summary)
        return state, variance(state, self.ddof)
