"""Expanding and exponentially weighted aggregations of streaming frames (Streamz's
``sdf.expanding()`` and ``sdf.ewm(...)``), with bounded memory.

Each chunk emits the aggregate over every row so far ("updating"), but the state is the
aggregation's state only (sums, counts, weights: O(columns)); Streamz's ``Expanding``
keeps every chunk forever. So ``full()`` and ``apply(func)``, which need every row,
raise ``NotImplementedError``.

>>> import pandas as pd
>>> from millstream.dataframe import DataFrame
>>> sdf = DataFrame(example=pd.DataFrame({'x': [0.0]}))
>>> means = sdf.x.expanding().mean().stream.sink_to_list()
>>> ewm = sdf.x.ewm(alpha=0.5).mean().stream.sink_to_list()
>>> sdf.emit(pd.DataFrame({'x': [1.0, 2.0]}))
>>> sdf.emit(pd.DataFrame({'x': [6.0]}, index=[2]))
>>> [float(m) for m in means]
[1.5, 3.0]
>>> [round(float(s.iloc[-1]), 4) for s in ewm]
[1.6667, 4.1429]
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from ..collection import Streaming, map_partitions
from .aggregations import Aggregation, Count, Mean, Size, Sum, Var
from .nodes import accumulate_chunks
from .plain import from_plain, to_plain
from .rolling import is_numeric_pandas, wrap

__all__ = [
    "EWM",
    "EWMAggregation",
    "Expanding",
    "ExpandingMoments",
    "ValueCountsSoFar",
    "ewm_alpha",
]


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


class Expanding:
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

    def __init__(self, sdf: Any, with_state: bool = False, start: Any = None):
        self.root = sdf
        self.with_state = with_state
        self.start = start

    def _like(self, root: Any) -> Expanding:
        return Expanding(root, self.with_state, self.start)

    def __getitem__(self, key: Any) -> Expanding:
        return self._like(self.root[key])

    def __getattr__(self, key: str) -> Expanding:
        if key.startswith("_") or key in ("root", "with_state", "start"):
            raise AttributeError(key)
        if key in getattr(self.root.example, "columns", ()):
            return self[key]
        raise AttributeError(f"{type(self).__name__} has no attribute or column {key!r}")

    @property
    def example(self) -> Any:
        return self.root.example

    @property
    def columns(self) -> Any:
        return self.root.columns

    @property
    def dtypes(self) -> Any:
        return self.root.dtypes

    @property
    def index(self) -> Expanding:
        return self._like(self.root.index)

    def map_partitions(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Expanding:
        """``func`` on each chunk first, then the expanding aggregation."""
        args = tuple(a.root if isinstance(a, Expanding) else a for a in args)
        return self._like(self.root.map_partitions(func, self.root, *args, **kwargs))

    def reset_index(self) -> Expanding:
        return self._like(self.root.reset_index())

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


def ewm_alpha(
    com: float | None = None,
    span: float | None = None,
    halflife: float | None = None,
    alpha: float | None = None,
) -> float:
    """The smoothing factor of exactly one of ``com``, ``span``, ``halflife``, ``alpha``,
    checked as pandas checks them (same messages).

    >>> ewm_alpha(com=1), ewm_alpha(span=3), ewm_alpha(halflife=1), ewm_alpha(alpha=0.2)
    (0.5, 0.5, 0.5, 0.2)
    >>> ewm_alpha(com=1, alpha=0.5)
    Traceback (most recent call last):
    ...
    ValueError: comass, span, halflife, and alpha are mutually exclusive
    """
    given = sum(v is not None for v in (com, span, halflife, alpha))
    if given > 1:
        raise ValueError("comass, span, halflife, and alpha are mutually exclusive")
    if com is not None:
        if com < 0:
            raise ValueError("comass must satisfy: comass >= 0")
        return 1.0 / (1.0 + com)
    if span is not None:
        if span < 1:
            raise ValueError("span must satisfy: span >= 1")
        return 2.0 / (span + 1.0)
    if halflife is not None:
        if isinstance(halflife, (str, pd.Timedelta)) or hasattr(halflife, "total_seconds"):
            raise NotImplementedError(
                "ewm: a time halflife needs pandas' times=, which streaming ewm does not take"
            )
        if halflife <= 0:
            raise ValueError("halflife must satisfy: halflife > 0")
        return 1.0 - math.exp(math.log(0.5) / halflife)
    if alpha is not None:
        if alpha <= 0 or alpha > 1:
            raise ValueError("alpha must satisfy: 0 < alpha <= 1")
        return float(alpha)
    raise ValueError("Must pass one of comass, span, halflife, or alpha")


#: What an :class:`EWMAggregation` emits.
EWM_STATISTICS = ("mean", "sum", "var", "std")


class EWMAggregation(Aggregation):
    """pandas' ``ewm(alpha=alpha).<statistic>()`` (``adjust=True``, ``ignore_na=False``)
    of the last row so far, per chunk, as a one-row frame labelled with that row.

    The state holds per column the weighted mean, the sum of weights, the number of
    values seen and, for ``var``/``std``, the weighted sum of squared deviations and the
    sum of squared weights, so it is O(columns). A chunk of ``n`` rows is folded in with
    numpy (weights ``(1 - alpha) ** (n - 1 - i)``, then the chunk's statistics combined
    with the decayed state), never row by row.

    >>> import pandas as pd
    >>> agg = EWMAggregation(0.5, 'var')
    >>> state, _ = agg.on_new(None, pd.Series([1.0, 2.0]))
    >>> state, out = agg.on_new(state, pd.Series([4.0, 3.0], index=[2, 3]))
    >>> expected = pd.Series([1.0, 2, 4, 3]).ewm(alpha=0.5).var().iloc[-1]
    >>> bool(abs(out.iloc[0] - expected) < 1e-12)
    True
    >>> agg.restore(agg.snapshot(state))[1].tolist() == state[1].tolist()
    True
    """

    def __init__(self, alpha: float, statistic: str = "mean", bias: bool = False):
        if statistic not in EWM_STATISTICS:
            raise ValueError(f"ewm: statistic must be one of {EWM_STATISTICS}, got {statistic!r}")
        if not 0 < alpha <= 1:
            raise ValueError("alpha must satisfy: 0 < alpha <= 1")
        self.alpha = float(alpha)
        self.statistic = statistic
        self.bias = bias

    @property
    def _moments(self) -> bool:
        return self.statistic in ("var", "std")

    def initial(self, new: Any) -> Any:
        return None

    def on_new(self, state: Any, new: Any) -> tuple[Any, Any]:
        x = new.to_numpy(dtype="float64")
        if x.ndim == 1:
            x = x[:, None]
        n = len(x)
        if state is None:
            k = x.shape[1]
            zeros = np.zeros(k)
            state = (zeros, zeros, zeros.astype("int64"), zeros, zeros, None)
        mean, weight, seen, m2, weight2, label = state
        if n:
            decay = 1.0 - self.alpha
            observed = ~np.isnan(x)
            if observed.all():
                wm = np.broadcast_to((decay ** np.arange(n - 1, -1, -1.0))[:, None], x.shape)
                xz = x
                old_decay: Any = decay**n
                trailing = None
            else:
                # weights relative to each column's last value, so they cannot all vanish
                seen_here = observed.any(axis=0)
                last = np.where(seen_here, n - 1 - np.argmax(observed[::-1], axis=0), -1)
                steps = np.maximum(last[None, :] - np.arange(n)[:, None], 0)
                wm = np.where(observed, decay ** steps.astype("float64"), 0.0)
                xz = np.where(observed, x, 0.0)
                old_decay = decay ** (last + 1.0)
                trailing = decay ** (n - 1.0 - last)
            chunk_weight = wm.sum(axis=0)
            with np.errstate(invalid="ignore", divide="ignore"):
                chunk_mean = np.where(chunk_weight > 0, (wm * xz).sum(axis=0) / chunk_weight, 0.0)
                old_weight = weight * old_decay
                total = old_weight + chunk_weight
                share = np.where(total > 0, chunk_weight / total, 0.0)
                delta = chunk_mean - mean
                new_mean = mean + delta * share
                if self._moments:
                    chunk_m2 = (wm * (xz - chunk_mean) ** 2).sum(axis=0)
                    m2 = m2 * old_decay + chunk_m2 + delta**2 * old_weight * share
                    weight2 = weight2 * old_decay**2 + (wm * wm).sum(axis=0)
                    if trailing is not None:
                        m2 = m2 * trailing
                        weight2 = weight2 * trailing**2
            if trailing is not None:
                total = total * trailing
            state = (
                new_mean,
                total,
                seen + observed.sum(axis=0),
                m2,
                weight2,
                new.index[-1:],
            )
            mean, weight, seen, m2, weight2, label = state
        if label is None:
            return state, new.iloc[:0].astype("float64")
        out = self._statistic(state)
        if getattr(new, "ndim", 1) == 2:
            return state, _package(new).DataFrame(out[None, :], index=label, columns=new.columns)
        return state, _package(new).Series(out, index=label, name=new.name)

    def _statistic(self, state: Any) -> Any:
        mean, weight, seen, m2, weight2, _label = state
        with np.errstate(invalid="ignore", divide="ignore"):
            if self.statistic == "mean":
                return np.where(seen > 0, mean, np.nan)
            if self.statistic == "sum":
                return np.where(seen > 0, mean * weight, np.nan)
            var = m2 / weight
            if not self.bias:
                square = weight * weight
                var = var * square / (square - weight2)
            var = np.where(seen > (0 if self.bias else 1), var, np.nan)
            return np.sqrt(var) if self.statistic == "std" else var

    def on_old(self, state: Any, old: Any) -> tuple[Any, Any]:
        raise NotImplementedError("an exponentially weighted aggregation never forgets rows")

    def snapshot(self, state: Any) -> Any:
        """The per-column arrays as lists, and the last row's label."""
        if state is None:
            return None
        mean, weight, seen, m2, weight2, label = state
        return {
            "mean": mean.tolist(),
            "weight": weight.tolist(),
            "seen": seen.tolist(),
            "m2": m2.tolist(),
            "weight2": weight2.tolist(),
            "label": None if label is None else to_plain(pd.Series(list(label))),
        }

    def restore(self, data: Any) -> Any:
        if data is None:
            return None
        if not isinstance(data, dict):
            raise TypeError(f"not an ewm state: {data!r:.80}")
        arrays = [np.asarray(data[f], dtype="float64") for f in ("mean", "weight", "m2", "weight2")]
        if len({a.shape for a in arrays}) != 1:
            raise ValueError("one value per column expected in every field")
        label = None if data["label"] is None else pd.Index(from_plain(data["label"]))
        mean, weight, m2, weight2 = arrays
        return (mean, weight, np.asarray(data["seen"], dtype="int64"), m2, weight2, label)

    def __repr__(self) -> str:
        return f"EWMAggregation({self.alpha!r}, {self.statistic!r})"


class EWM(Expanding):
    """``sdf.ewm(com=, span=, halflife=, alpha=)``: exponentially weighted ``mean()``
    (and ``sum()``, ``var()``, ``std()``, which Streamz lacks), each chunk emitting
    pandas' result for the last row so far as a one-row frame.

    >>> import pandas as pd
    >>> from millstream.dataframe import DataFrame
    >>> sdf = DataFrame(example=pd.DataFrame({'x': [0.0]}))
    >>> L = sdf.ewm(com=1).mean().stream.sink_to_list()
    >>> sdf.emit(pd.DataFrame({'x': [1.0, 3.0]}))
    >>> L[0]
         x
    1  2.333333
    """

    def __init__(
        self,
        sdf: Any,
        com: float | None = None,
        span: float | None = None,
        halflife: float | None = None,
        alpha: float | None = None,
        with_state: bool = False,
        start: Any = None,
    ):
        Expanding.__init__(self, sdf, with_state, start)
        self.alpha = alpha
        self.com = com
        self.span = span
        self.halflife = halflife
        self.smoothing = ewm_alpha(com, span, halflife, alpha)

    def _like(self, root: Any) -> EWM:
        return EWM(
            root, self.com, self.span, self.halflife, self.alpha, self.with_state, self.start
        )

    def __getattr__(self, key: str) -> Expanding:
        if key in ("com", "span", "halflife", "alpha", "smoothing"):
            raise AttributeError(key)
        return Expanding.__getattr__(self, key)

    def mean(self) -> Streaming:
        """The exponentially weighted mean (``adjust=True``), as pandas'."""
        return self.aggregate(EWMAggregation(self.smoothing, "mean"))

    def sum(self) -> Streaming:
        """The exponentially weighted sum, as pandas' ``ewm(...).sum()``."""
        return self.aggregate(EWMAggregation(self.smoothing, "sum"))

    def var(self, bias: bool = False) -> Streaming:  # type: ignore[override]
        """The exponentially weighted variance, as pandas' ``ewm(...).var(bias)``."""
        return self.aggregate(EWMAggregation(self.smoothing, "var", bias))

    def std(self, bias: bool = False) -> Streaming:  # type: ignore[override]
        """The exponentially weighted standard deviation, as pandas'."""
        return self.aggregate(EWMAggregation(self.smoothing, "std", bias))

    def _missing(self, name: str) -> NotImplementedError:
        return NotImplementedError(f"EWM.{name} is not defined (as in Streamz and pandas)")

    def count(self) -> Streaming:
        raise self._missing("count()")

    @property
    def size(self) -> Streaming:
        raise self._missing("size")

    def value_counts(self) -> Streaming:
        raise self._missing("value_counts()")

    def full(self) -> Streaming:
        raise self._missing("full()")

    def apply(self, func: Callable[[Any], Any]) -> Streaming:
        raise self._missing("apply()")
