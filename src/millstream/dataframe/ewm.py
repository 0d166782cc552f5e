"""Exponentially weighted aggregations of streaming frames (Streamz's ``sdf.ewm(...)``):
each chunk emits pandas' ``ewm(...).<statistic>()`` of the last row so far, computed
from an O(columns) state with numpy, never row by row.

>>> import pandas as pd
>>> from millstream.dataframe import DataFrame
>>> sdf = DataFrame(example=pd.DataFrame({'x': [0.0]}))
>>> ewm = sdf.x.ewm(alpha=0.5).mean().stream.sink_to_list()
>>> sdf.emit(pd.DataFrame({'x': [1.0, 2.0]}))
>>> sdf.emit(pd.DataFrame({'x': [6.0]}, index=[2]))
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

from ..collection import Streaming
from .aggregations import Aggregation
from .expanding import Expanding
from .plain import from_plain, to_plain

__all__ = ["EWM", "EWMAggregation", "ewm_alpha"]


def _package(x: Any) -> Any:
    return sys.modules[type(x).__module__.split(".")[0]]


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
    sum of the products of the weights of every two values (the unbiased variance's
    ``(sum w) ** 2 - sum w ** 2``, kept as a sum of positive terms so that it does not
    cancel when the weights are uneven), so it is O(columns). A chunk of ``n`` rows is
    folded in with numpy (weights ``(1 - alpha) ** (n - 1 - i)``, then the chunk's
    statistics combined with the decayed state), never row by row.

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
        mean, weight, seen, m2, cross, label = state
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
                    before = np.zeros_like(wm)  # the sum of the weights of earlier rows
                    np.cumsum(wm[:-1], axis=0, out=before[1:])
                    chunk_cross = 2.0 * (wm * before).sum(axis=0)
                    cross = cross * old_decay**2 + chunk_cross + 2.0 * old_weight * chunk_weight
                    if trailing is not None:
                        m2 = m2 * trailing
                        cross = cross * trailing**2
            if trailing is not None:
                total = total * trailing
            state = (
                new_mean,
                total,
                seen + observed.sum(axis=0),
                m2,
                cross,
                new.index[-1:],
            )
            mean, weight, seen, m2, cross, label = state
        if label is None:
            return state, new.iloc[:0].astype("float64")
        out = self._statistic(state)
        if getattr(new, "ndim", 1) == 2:
            return state, _package(new).DataFrame(out[None, :], index=label, columns=new.columns)
        return state, _package(new).Series(out, index=label, name=new.name)

    def _statistic(self, state: Any) -> Any:
        mean, weight, seen, m2, cross, _label = state
        with np.errstate(invalid="ignore", divide="ignore"):
            if self.statistic == "mean":
                return np.where(seen > 0, mean, np.nan)
            if self.statistic == "sum":
                return np.where(seen > 0, mean * weight, np.nan)
            var = m2 / weight
            if not self.bias:
                var = np.where(cross > 0, m2 * weight / cross, np.nan)
            var = np.where(seen > (0 if self.bias else 1), var, np.nan)
            return np.sqrt(var) if self.statistic == "std" else var

    def on_old(self, state: Any, old: Any) -> tuple[Any, Any]:
        raise NotImplementedError("an exponentially weighted aggregation never forgets rows")

    def snapshot(self, state: Any) -> Any:
        """The per-column arrays as lists, and the last row's label."""
        if state is None:
            return None
        mean, weight, seen, m2, cross, label = state
        return {
            "mean": mean.tolist(),
            "weight": weight.tolist(),
            "seen": seen.tolist(),
            "m2": m2.tolist(),
            "cross": cross.tolist(),
            "label": None if label is None else to_plain(pd.Series(list(label))),
        }

    def restore(self, data: Any) -> Any:
        if data is None:
            return None
        if not isinstance(data, dict):
            raise TypeError(f"not an ewm state: {data!r:.80}")
        arrays = [np.asarray(data[f], dtype="float64") for f in ("mean", "weight", "m2", "cross")]
        if len({a.shape for a in arrays}) != 1:
            raise ValueError("one value per column expected in every field")
        label = None if data["label"] is None else pd.Index(from_plain(data["label"]))
        mean, weight, m2, cross = arrays
        return (mean, weight, np.asarray(data["seen"], dtype="int64"), m2, cross, label)

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

    _fields = (*Expanding._fields, "com", "span", "halflife", "alpha", "smoothing")

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
