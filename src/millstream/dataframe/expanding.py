"""Expanding aggregations of streaming frames (Streamz's ``sdf.expanding()``), with
bounded memory (the exponentially weighted ones, ``sdf.ewm(...)``, are in :mod:`.ewm`).

Each chunk emits the aggregate over every row so far ("updating"), but the state is the
aggregation's state only (sums, counts, weights: O(columns)); Streamz's ``Expanding``
keeps every chunk forever. So ``full()`` and ``apply(func)``, which need every row,
raise ``NotImplementedError``.

>>> import pandas as pd
>>> from millstream.dataframe import DataFrame
>>> sdf = DataFrame(example=pd.DataFrame({'x': [0.0]}))
>>> means = sdf.x.expanding().mean().stream.sink_to_list()
>>> sdf.emit(pd.DataFrame({'x': [1.0, 2.0]}))
>>> sdf.emit(pd.DataFrame({'x': [6.0]}, index=[2]))
>>> [float(m) for m in means]
[1.5, 3.0]
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from ..collection import Streaming, map_partitions
from .aggregations import Aggregation, Count, Mean, Size, Sum, Var
from .nodes import accumulate_chunks
from .rolling import is_numeric_pandas, wrap
from .views import FrameView

__all__ = ["Expanding", "ExpandingMoments", "ValueCountsSoFar"]


def _package(x: Any) -> Any:
    return sys.modules[type(x).__module__.split(".")[0]]


class ValueCountsSoFar(Aggregation):
    """The count of each value over every chunk so far (a Series' ``value_counts``).

    >>> import pandas as pd
    >>> agg = ValueCountsSoFar()
    >>> state = agg.initial(pd.Series([], dtype=int))
    >>> state, out = agg.on_new(state, pd.Series([1, 2, 1]))
    >>> state, out = agg.on_new(state, pd.Series([2, 3]))
    >>> out.sort_index().to_dict()
    {1: 2, 2: 2, 3: 1}
    """

    def initial(self, new: Any) -> Any:
        return new.iloc[:0].value_counts()

    def on_new(self, state: Any, new: Any) -> tuple[Any, Any]:
        result = state.add(new.value_counts(), fill_value=0).astype("int64")
        return result, result

    def on_old(self, state: Any, old: Any) -> tuple[Any, Any]:
        result = state.sub(old.value_counts(), fill_value=0).astype("int64")
        result = result[result > 0]
        return result, result


#: What an :class:`ExpandingMoments` emits.
MOMENT_STATISTICS = ("mean", "var", "std")


class ExpandingMoments(Aggregation):
    """The mean, variance or standard deviation of every value so far of pandas chunks
    of numbers, folded in with numpy: the state is per column the count, the mean and
    the sum of squared deviations (combined chunk by chunk as Chan et al.), so it is
    O(columns) and numerically stable. Results as pandas' ``mean()``/``var(ddof)``/
    ``std(ddof)`` of the rows so far: a Series per column, a number for a Series.

    >>> import pandas as pd
    >>> agg = ExpandingMoments('var')
    >>> state, _ = agg.on_new(None, pd.Series([1.0, 2.0]))
    >>> state, out = agg.on_new(state, pd.Series([6.0, None]))
    >>> float(out) == float(pd.Series([1.0, 2.0, 6.0]).var())
    True
    >>> [a.tolist() for a in agg.restore(agg.snapshot(state))]
    [[3], [3.0], [14.0]]
    """

    def __init__(self, statistic: str = "mean", ddof: int = 1):
        if statistic not in MOMENT_STATISTICS:
            raise ValueError(
                f"expanding: statistic must be one of {MOMENT_STATISTICS}, got {statistic!r}"
            )
        self.statistic = statistic
        self.ddof = ddof

    def initial(self, new: Any) -> Any:
        return None

    def on_new(self, state: Any, new: Any) -> tuple[Any, Any]:
        x = new.to_numpy(dtype="float64")
        if x.ndim == 1:
            x = x[:, None]
        if state is None:
            k = x.shape[1]
            state = (np.zeros(k, dtype="int64"), np.zeros(k), np.zeros(k))
        count, mean, m2 = state
        if len(x):
            observed = ~np.isnan(x)
            if observed.all():
                chunk_count = np.full(x.shape[1], len(x), dtype="int64")
                chunk_mean = x.mean(axis=0)
                deviations = x - chunk_mean
            else:
                chunk_count = observed.sum(axis=0)
                xz = np.where(observed, x, 0.0)
                with np.errstate(invalid="ignore", divide="ignore"):
                    chunk_mean = np.where(chunk_count > 0, xz.sum(axis=0) / chunk_count, 0.0)
                deviations = np.where(observed, x - chunk_mean, 0.0)
            total = count + chunk_count
            with np.errstate(invalid="ignore", divide="ignore"):
                share = np.where(total > 0, chunk_count / total, 0.0)
            delta = chunk_mean - mean
            m2 = m2 + (deviations * deviations).sum(axis=0) + delta * delta * count * share
            state = (total, mean + delta * share, m2)
            count, mean, m2 = state
        with np.errstate(invalid="ignore", divide="ignore"):
            if self.statistic == "mean":
                out = np.where(count > 0, mean, np.nan)
            else:
                out = np.where(count - self.ddof > 0, m2 / (count - self.ddof), np.nan)
                if self.statistic == "std":
                    out = np.sqrt(out)
        if getattr(new, "ndim", 1) == 2:
            return state, pd.Series(out, index=new.columns)
        return state, out[0]

    def on_old(self, state: Any, old: Any) -> tuple[Any, Any]:
        raise NotImplementedError("an expanding aggregation never forgets rows")

    def snapshot(self, state: Any) -> Any:
        """``{'count': [...], 'mean': [...], 'm2': [...]}``, one value per column."""
        if state is None:
            return None
        count, mean, m2 = state
        return {"count": count.tolist(), "mean": mean.tolist(), "m2": m2.tolist()}

    def restore(self, data: Any) -> Any:
        if data is None:
            return None
        if not isinstance(data, dict):
            raise TypeError(f"not an expanding state: {data!r:.80}")
        count = np.asarray(data["count"], dtype="int64")
        mean = np.asarray(data["mean"], dtype="float64")
        m2 = np.asarray(data["m2"], dtype="float64")
        if not count.shape == mean.shape == m2.shape:
            raise ValueError("one value per column expected in every field")
        return (count, mean, m2)

    def __repr__(self) -> str:
        return f"ExpandingMoments({self.statistic!r}, ddof={self.ddof})"


class Expanding(FrameView):
    """``sdf.expanding()``: aggregations over every row so far, one result per chunk.

    >>> import pandas as pd
    >>> from millstream.dataframe import DataFrame
    >>> sdf = DataFrame(example=pd.DataFrame({'x': [0], 'y': [0]}))
    >>> L = sdf.expanding().sum().stream.sink_to_list()
    >>> sdf.emit(pd.DataFrame({'x': [1, 2], 'y': [3, 4]}))
    >>> sdf.emit(pd.DataFrame({'x': [5], 'y': [6]}))
    >>> L[-1].to_dict()
    {'x': 8, 'y': 13}
    """

    _fields: tuple[str, ...] = ("root", "with_state", "start")

    def __init__(self, sdf: Any, with_state: bool = False, start: Any = None):
        self.root = sdf
        self.with_state = with_state
        self.start = start

    def _like(self, root: Any) -> Expanding:
        return Expanding(root, self.with_state, self.start)

    def map_partitions(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Expanding:
        """``func`` on each chunk first, then the expanding aggregation."""
        args = tuple(a.root if isinstance(a, Expanding) else a for a in args)
        return self._like(self.root.map_partitions(func, self.root, *args, **kwargs))

    def aggregate(self, agg: Aggregation) -> Streaming:
        """The running ``agg`` (an :class:`Aggregation`; only ``on_new`` is used) over
        every chunk so far."""
        example = self.root.example
        with np.errstate(divide="ignore", invalid="ignore"):  # 0 / 0 on the empty example
            example = agg.on_new(agg.initial(example), example)[1]
        node = accumulate_chunks(self.root.stream, agg, self.start, self.with_state)
        return wrap(node, example, "updating", self.with_state)

    def sum(self) -> Streaming:
        """The sum of every row so far."""
        return self.aggregate(Sum())

    def count(self) -> Streaming:
        """The count of non-missing values so far."""
        return self.aggregate(Count())

    def _numpy(self) -> bool:
        """Whether the chunks are pandas numbers (then :class:`ExpandingMoments`)."""
        return is_numeric_pandas(self.root.example)

    def mean(self) -> Streaming:
        """The mean of every row so far."""
        return self.aggregate(ExpandingMoments("mean") if self._numpy() else Mean())

    def var(self, ddof: int = 1) -> Streaming:
        """The variance of every row so far."""
        return self.aggregate(ExpandingMoments("var", ddof) if self._numpy() else Var(ddof))

    def std(self, ddof: int = 1) -> Streaming:
        """The standard deviation of every row so far."""
        if self._numpy():
            return self.aggregate(ExpandingMoments("std", ddof))
        return map_partitions(_sqrt, self.var(ddof))

    @property
    def size(self) -> Streaming:
        """The number of rows so far."""
        return self.aggregate(Size())

    def value_counts(self) -> Streaming:
        """The count of each value so far (a Series)."""
        return self.aggregate(ValueCountsSoFar())

    def full(self) -> Streaming:
        raise NotImplementedError(
            f"{type(self).__name__}.full() needs every row ever seen; millstream keeps only "
            "the aggregation state so memory stays bounded (Streamz keeps every chunk "
            "forever). Use sdf.window(n).full() for the last n rows, or aggregate(...)."
        )

    def apply(self, func: Callable[[Any], Any]) -> Streaming:
        raise NotImplementedError(
            f"{type(self).__name__}.apply({getattr(func, '__name__', func)!r}) needs every "
            "row ever seen; millstream keeps only the aggregation state so memory stays "
            "bounded (Streamz keeps every chunk forever). Use sdf.window(n).apply(func) "
            "or aggregate(...) with an Aggregation."
        )

    def groupby(self, other: Any) -> Any:
        raise NotImplementedError(
            f"{type(self).__name__}.groupby: use sdf.groupby(key).<aggregation>(), which "
            "is already over every row so far"
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({type(self.root).__name__})"


def _sqrt(x: Any) -> Any:
    return x**0.5
