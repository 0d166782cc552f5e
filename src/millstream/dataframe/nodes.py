"""The stateful nodes under streaming frames: a running :class:`~.aggregations.Aggregation`
and the cumulative operations (``cumsum``...). Both keep the checkpoint contract of
:mod:`millstream.core.state`, their snapshots holding plain data (:mod:`.plain`).

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

from typing import Any

import pandas as pd

from ..core.state import bad_state, expect_fields
from ..core.stream import Stream
from .aggregations import Aggregation
from .chunkops import continue_cumulative
from .plain import from_plain, to_plain

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


class Cumulative(Stream):
    """``cumsum``, ``cumprod``, ``cummin`` or ``cummax`` across chunks: each chunk's rows
    come out as in the pandas operation over every row so far. The state is the last row
    emitted.

    >>> import pandas as pd
    >>> source = Stream()
    >>> L = Cumulative(source, 'cumsum').sink_to_list()
    >>> source.emit(pd.Series([1, 2])); source.emit(pd.Series([3, 4], index=[2, 3]))
    >>> L[1].tolist()
    [6, 10]
    """

    _graphviz_shape = "box"

    def __init__(self, upstream: Stream, operation: str, **kwargs: Any):
        if operation not in CUMULATIVE:
            raise ValueError(
                f"Cumulative: operation must be one of {CUMULATIVE}, got {operation!r}"
            )
        self.operation = operation
        self.last: Any = None
        Stream.__init__(self, upstream, **kwargs)

    def update(self, x: Any, who: Stream | None = None, metadata: list[dict] | None = None) -> Any:
        if not len(x):
            return self._emit(x, metadata=metadata)
        if self.last is None:
            result = getattr(x, self.operation)()
        else:
            result = continue_cumulative(self.last, x, self.operation)
        self.last = result.iloc[-1:]
        return self._emit(result, metadata=metadata)

    def snapshot(self) -> dict[str, Any]:
        """``{'last': the last row emitted, as plain data}`` (``None`` before any row)."""
        return {"last": to_plain(self.last)}

    def restore(self, state: dict[str, Any]) -> None:
        data = expect_fields(self, state, {"last": None})["last"]
        try:
            last = from_plain(data)
        except (TypeError, ValueError, KeyError) as e:
            raise bad_state(self, state, f"field 'last' must be a row of a frame: {e}") from e
        if last is not None and not isinstance(last, (pd.DataFrame, pd.Series)):
            raise bad_state(self, state, "field 'last' must be a row of a frame or None")
        self.last = last

    def __str__(self) -> str:
        return f"<Cumulative: {self.operation}>"


def accumulate_chunks(
    stream: Stream, aggregation: Aggregation, start: Any = None, with_state: bool = False
) -> Stream:
    """The one way frame operations keep state across chunks: ``aggregation`` (an object
    with ``initial``/``on_new``/``snapshot``/``restore``, picklable) folded over the
    chunks of ``stream``, each chunk emitting ``on_new``'s result (``(state, result)``
    with ``with_state=True``). Today a :class:`RunningAggregation` node; on a Dask stream
    the fold is meant to run on the cluster, its state a future.

    >>> import pandas as pd
    >>> from millstream.dataframe.aggregations import Size
    >>> source = Stream()
    >>> L = accumulate_chunks(source, Size()).sink_to_list()
    >>> source.emit(pd.Series([1, 2])); source.emit(pd.Series([3]))
    >>> L
    [2, 3]
    """
    return RunningAggregation(stream, aggregation, start=start, with_state=with_state)
