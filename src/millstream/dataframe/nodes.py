"""The stateful node under streaming frames: a running :class:`~.aggregations.Aggregation`
(:func:`accumulate_chunks`, locally or on Dask), and the cumulative operations
(``cumsum``...) as an aggregation. The node keeps the checkpoint contract of
:mod:`millstream.core.state`, its snapshot holding plain data (:mod:`.plain`).

>>> import pandas as pd
>>> from millstream import Stream
>>> from millstream.dataframe.aggregations import Sum
>>> source = Stream()
>>> total = RunningAggregation(source, Sum())
>>> L = total.sink_to_list()
>>> source.emit(pd.Series([1, 2])); source.emit(pd.Series([3]))
>>> [int(v) for v in L]
[3, 6]
>>> total.snapshot()
{'state': 6}
"""

from __future__ import annotations

import sys
from typing import Any

from ..core.state import bad_state, expect_fields
from ..core.stream import Stream
from .aggregations import Aggregation
from .chunkops import carried_row, continue_cumulative
from .plain import from_plain

__all__ = ["CUMULATIVE", "Cumulative", "RunningAggregation", "accumulate_chunks"]

#: The cumulative operations of frames.
CUMULATIVE = ("cumsum", "cumprod", "cummin", "cummax")


class RunningAggregation(Stream):
    """Folds each chunk into ``aggregation`` and emits its result: the aggregate over every
    chunk so far. ``start`` is the first state (default: ``aggregation.initial`` of the
    first chunk).

    >>> import pandas as pd
    >>> from millstream.dataframe.aggregations import Sum
    >>> source = Stream()
    >>> totals = RunningAggregation(source, Sum()).sink_to_list()
    >>> source.emit(pd.Series([1, 2])); source.emit(pd.Series([10]))
    >>> [int(t) for t in totals]
    [3, 13]
    """

    _graphviz_shape = "box"

    def __init__(
        self,
        upstream: Stream,
        aggregation: Aggregation,
        start: Any = None,
        with_state: bool = False,
        **kwargs: Any,
    ):
        self.aggregation = aggregation
        self.state = start
        self.with_state = with_state
        Stream.__init__(self, upstream, **kwargs)

    def update(self, x: Any, who: Stream | None = None, metadata: list[dict] | None = None) -> Any:
        state = self.state
        if state is None:
            state = self.aggregation.initial(x)
        state, result = self.aggregation.on_new(state, x)
        self.state = state
        return self._emit((state, result) if self.with_state else result, metadata=metadata)

    def snapshot(self) -> dict[str, Any]:
        """``{'state': the aggregation's state as plain data}`` (``None`` before any chunk)."""
        return {"state": self.aggregation.snapshot(self.state)}

    def restore(self, state: dict[str, Any]) -> None:
        data = expect_fields(self, state, {"state": None})["state"]
        try:
            value = self.aggregation.restore(data)
        except (TypeError, ValueError, KeyError) as e:
            raise bad_state(self, state, f"not a state of {self.aggregation!r}: {e}") from e
        self.state = value

    def __str__(self) -> str:
        return f"<RunningAggregation: {self.aggregation!r}>"


class Cumulative(Aggregation):
    """``cumsum``, ``cumprod``, ``cummin`` or ``cummax`` across chunks, as an aggregation
    folded by :func:`accumulate_chunks`: each chunk's rows come out as in the pandas
    operation over every row so far. The state is the last cumulative row (``None``
    before any row).

    >>> import pandas as pd
    >>> source = Stream()
    >>> L = accumulate_chunks(source, Cumulative('cumsum')).sink_to_list()
    >>> source.emit(pd.Series([1, 2])); source.emit(pd.Series([3, 4], index=[2, 3]))
    >>> L[1].tolist()
    [6, 10]
    """

    def __init__(self, operation: str):
        if operation not in CUMULATIVE:
            raise ValueError(
                f"Cumulative: operation must be one of {CUMULATIVE}, got {operation!r}"
            )
        self.operation = operation

    def initial(self, new: Any) -> Any:
        return None

    def on_new(self, state: Any, new: Any) -> tuple[Any, Any]:
        if not len(new):
            return state, new
        if state is None:
            result = getattr(new, self.operation)()
        else:
            result = continue_cumulative(state, new, self.operation)
        return carried_row(state, result), result

    def restore(self, data: Any) -> Any:
        last = from_plain(data)
        if last is not None and not _is_row(last):
            raise TypeError(f"the state must be a row of a frame or None, got {data!r:.80}")
        return last

    def __repr__(self) -> str:
        return f"Cumulative({self.operation!r})"


def _is_row(x: Any) -> bool:
    """A one-row DataFrame or one-value Series (pandas or cudf)."""
    return hasattr(x, "iloc") and hasattr(x, "ffill") and len(x) == 1


def accumulate_chunks(
    stream: Stream, aggregation: Aggregation, start: Any = None, with_state: bool = False
) -> Stream:
    """The one way frame operations keep state across chunks: ``aggregation`` (an object
    with ``initial``/``on_new``/``snapshot``/``restore``, picklable) folded over the
    chunks of ``stream``, each chunk emitting ``on_new``'s result (``(state, result)``
    with ``with_state=True``). ``start`` is the first state (default: ``initial`` of the
    first chunk).

    A :class:`RunningAggregation` node; on a Dask stream (``scatter()``, ``DaskStream``)
    a :class:`millstream.dask.ClusterAggregation`: the fold runs on the cluster, its
    state a future, its results futures; both snapshot the same plain state.

    >>> import pandas as pd
    >>> from millstream.dataframe.aggregations import Size
    >>> source = Stream()
    >>> L = accumulate_chunks(source, Size()).sink_to_list()
    >>> source.emit(pd.Series([1, 2])); source.emit(pd.Series([3]))
    >>> L
    [2, 3]
    """
    if _is_dask_stream(stream):
        from ..dask.aggregation import ClusterAggregation

        return ClusterAggregation(stream, aggregation, start=start, with_state=with_state)
    return RunningAggregation(stream, aggregation, start=start, with_state=with_state)


def _is_dask_stream(stream: Stream) -> bool:
    """Whether ``stream`` is a ``DaskStream``, without importing Dask (a DaskStream exists
    only once :mod:`millstream.dask` has been imported)."""
    module = sys.modules.get("millstream.dask.stream")
    return module is not None and isinstance(stream, module.DaskStream)
