"""A running aggregation of chunks folded on the cluster (the Dask side of frame state).

:class:`ClusterAggregation` folds each chunk into an aggregation object with Streamz's
``Aggregation`` protocol (``initial(chunk)``, ``on_new(state, chunk) -> (state, result)``,
``snapshot(state)``, ``restore(data)``; the frame layer's aggregations, windows, groupby…)
as a Dask ``accumulate``: each chunk is one task taking the previous state's future, so
the state stays on the cluster and only the results the graph gathers reach the client.
Its snapshot is the aggregation's plain form of the state, the same as the local fold's
(``millstream.dataframe.RunningAggregation``), so a checkpoint taken on Dask restores
locally and the other way round.
"""

from __future__ import annotations

from typing import Any

from ..core import Stream
from ..core.state import bad_state, expect_fields
from .stateful import accumulate

__all__ = ["ClusterAggregation", "FoldChunk"]


class FoldChunk:
    """``aggregation.on_new(state, chunk)``, with ``aggregation.initial(chunk)`` as the
    state when there is none yet (``None``): the step of the fold, picklable for the
    workers.

    >>> class Rows:
    ...     def initial(self, chunk): return 0
    ...     def on_new(self, state, chunk): return state + len(chunk), state + len(chunk)
    >>> FoldChunk(Rows())(None, [1, 2])
    (2, 2)
    """

    __slots__ = ("aggregation",)

    def __init__(self, aggregation: Any):
        self.aggregation = aggregation

    def __call__(self, state: Any, chunk: Any) -> tuple[Any, Any]:
        if state is None:
            state = self.aggregation.initial(chunk)
        return self.aggregation.on_new(state, chunk)

    def __repr__(self) -> str:
        return f"FoldChunk({self.aggregation!r})"


class ClusterAggregation(accumulate):
    """Fold chunks into ``aggregation`` on the cluster; emit each chunk's result (a future).

    ``start`` is the first state (default ``None``: ``aggregation.initial`` of the first
    chunk, computed on a worker). ``with_state=True`` emits ``(state, result)`` pairs of
    futures. :meth:`snapshot` fetches the state (blocking) and gives
    ``aggregation.snapshot(state)``; :meth:`restore` takes such plain data back.

    Examples
    --------
    >>> import pandas as pd
    >>> from millstream.dataframe import Sum
    >>> from millstream.testing import wait_for
    >>> source = Stream()
    >>> node = ClusterAggregation(source.scatter(), Sum())
    >>> L = node.gather().sink_to_list()
    >>> source.emit(pd.Series([1, 2])); source.emit(pd.Series([10]))
    >>> wait_for(lambda: len(L) == 2, 10)
    >>> [int(v) for v in L], type(node.state).__name__, node.snapshot()
    ([3, 13], 'Future', {'state': 13})
    """

    def __init__(
        self,
        upstream: Stream,
        aggregation: Any,
        start: Any = None,
        with_state: bool = False,
        **kwargs: Any,
    ):
        self.aggregation = aggregation
        super().__init__(
            upstream,
            FoldChunk(aggregation),
            start=start,
            returns_state=True,
            with_state=with_state,
            **kwargs,
        )

    def snapshot(self) -> dict[str, Any]:
        """``{'state': aggregation.snapshot(state)}``, the state fetched from the cluster
        (blocking: call it outside the event loops); ``None`` before any chunk."""
        state = super().snapshot()["state"]
        return {"state": self.aggregation.snapshot(state)}

    def restore(self, state: dict[str, Any]) -> None:
        """Take ``aggregation.restore(state['state'])`` as the state; the next chunk's task
        receives it."""
        data = expect_fields(self, state, {"state": None})["state"]
        try:
            value = self.aggregation.restore(data)
        except (TypeError, ValueError, KeyError) as e:
            raise bad_state(self, state, f"not a state of {self.aggregation!r}: {e}") from e
        super().restore({"state": value})

    def __str__(self) -> str:
        return f"<ClusterAggregation: {self.aggregation!r}>"
