"""Groupby aggregations of streaming frames (Streamz's ``sdf.groupby(...)``), over all the
rows so far or over a window.

``sdf.groupby('k').x.sum()`` emits, per chunk, the full table of per-group sums so far
('updating'). The grouper is a column name, a list of names, an array or Index (used for
every chunk), or a streaming Series (zipped with the frame, chunk by chunk).

Each aggregation keeps per-group totals (sums, counts, sizes, sums of squares) in tables
indexed by the group keys, sorted as pandas sorts them. A chunk is grouped once (one
factorization and ``numpy.bincount`` for a single numeric key on pandas; the frame's own
``groupby`` otherwise) and its totals are added to the tables. Over a window
(:class:`WindowedGroupBy`) the totals of rows that leave are taken away, and groups with
no row left are dropped.

>>> import pandas as pd
>>> from millstream.dataframe import DataFrame
>>> sdf = DataFrame(example=pd.DataFrame({'k': ['a'], 'x': [0]}))
>>> L = sdf.groupby('k').x.sum().stream.sink_to_list()
>>> sdf.emit(pd.DataFrame({'k': ['a', 'b', 'a'], 'x': [1, 2, 3]}))
>>> sdf.emit(pd.DataFrame({'k': ['c', 'b'], 'x': [10, 20]}))
>>> L[-1].to_dict()
{'a': 4, 'b': 22, 'c': 10}
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..collection import Streaming, map_partitions
from .aggregations import Aggregation
from .grouptables import (
    add_to_known_groups,
    aligned_table,
    combine_tables,
    group_totals,
    ints_back,
    is_pandas,
)
from .summaries import merge_moments, remove_moments, variance
from .tables import from_plain_indexed, to_plain_indexed
from .windows import Window, WindowAggregation, aggregate_updating

__all__ = [
    "GroupBy",
    "GroupbyAggregation",
    "GroupbyCount",
    "GroupbyMean",
    "GroupbySize",
    "GroupbySum",
    "GroupbyValueCounts",
    "GroupbyVar",
    "WindowedGroupBy",
]


class GroupbyAggregation(Aggregation):
    """The base of groupby aggregations: per-group totals ``stats`` (see
    :func:`group_totals`) of the ``columns`` selected (all but the key columns by
    default), grouped by ``grouper`` (a column name, list of names, array or Index), or,
    when ``grouper`` is None, by the second item of each ``(chunk, grouper chunk)`` pair.
    With ``windowed=True`` groups whose rows all left the window are dropped.

    The state is a tuple of tables, one per total. ``on_new``/``on_old``/``initial`` take
    ``grouper=`` as Streamz's do.
    """

    stats: tuple[str, ...] = ()

    def __init__(
        self, columns: Any = None, grouper: Any = None, windowed: bool = False, **kwargs: Any
    ):
        self.columns = columns
        self.grouper = grouper
        self.windowed = windowed
        for name, value in kwargs.items():
            setattr(self, name, value)
        sized = windowed and "size" not in self.stats
        self.totals = (*self.stats, "size") if sized else self.stats

    def split(self, new: Any, grouper: Any = None) -> tuple[Any, Any]:
        """``(values, keys)`` of a chunk: the selected columns and the group keys."""
        if grouper is None:
            grouper = self.grouper
        if grouper is None and isinstance(new, tuple):
            new, grouper = new
        names = _column_names(new, grouper)
        if names is not None:
            keys: Any = new[names[0]] if len(names) == 1 else [new[n] for n in names]
        else:
            keys = grouper
        if self.columns is not None:
            values = new[self.columns]
        elif names is not None:
            values = new.drop(columns=names)
        else:
            values = new
        return values, keys

    def group(self, new: Any, grouper: Any = None) -> tuple[Any, ...]:
        values, keys = self.split(new, grouper)
        totals = group_totals(values, keys, self.totals)
        return tuple(totals[stat] for stat in self.totals)

    def initial(self, new: Any, grouper: Any = None) -> Any:
        if grouper is None:
            grouper = self.grouper
        if grouper is None and isinstance(new, tuple):
            new, grouper = new
        if not _is_names(new, grouper):  # an array or Series: its empty head
            grouper = grouper.iloc[:0] if hasattr(grouper, "iloc") else grouper[:0]
        return self.group(new.iloc[:0], grouper)

    def example_result(self, example: Any) -> Any:
        """The result for an empty chunk like ``example`` (a chunk, or a chunk and its
        grouper)."""
        grouper = self.grouper
        if grouper is None and isinstance(example, tuple):
            example, grouper = example
        if not _is_names(example, grouper):
            grouper = grouper.iloc[:0] if hasattr(grouper, "iloc") else grouper[:0]
        with np.errstate(divide="ignore", invalid="ignore"):
            state = self.initial(example, grouper)
            return self.on_new(state, example.iloc[:0], grouper)[1]

    def on_new(self, state: Any, new: Any, grouper: Any = None) -> tuple[Any, Any]:
        if not isinstance(state, tuple):  # a Streamz state of one table
            state = (state,)
        values, keys = self.split(new, grouper)
        updated = add_to_known_groups(state, self.totals, values, keys, 1)
        if updated is None:
            totals = group_totals(values, keys, self.totals)
            updated = tuple(
                combine_tables(t, totals[s]) for t, s in zip(state, self.totals, strict=True)
            )
        return updated, self.result(updated)

    def on_old(self, state: Any, old: Any, grouper: Any = None) -> tuple[Any, Any]:
        if not isinstance(state, tuple):
            state = (state,)
        values, keys = self.split(old, grouper)
        updated = add_to_known_groups(state, self.totals, values, keys, -1)
        if updated is None:
            totals = group_totals(values, keys, self.totals)
            updated = tuple(
                combine_tables(t, totals[s], subtract=True)
                for t, s in zip(state, self.totals, strict=True)
            )
        state = updated
        if self.windowed:
            present = state[self.totals.index("size")] != 0
            if not present.all():
                state = tuple(t[present] for t in state)
        return state, self.result(state)

    def table(self, state: Any, stat: str) -> Any:
        return state[self.totals.index(stat)]

    def result(self, state: Any) -> Any:
        raise NotImplementedError

    def snapshot(self, state: Any) -> Any:
        return to_plain_indexed(state)

    def restore(self, data: Any) -> Any:
        state = from_plain_indexed(data)
        if state is not None and (not isinstance(state, tuple) or len(state) != len(self.totals)):
            raise ValueError(f"{self!r}: expected {len(self.totals)} tables, got {data!r:.80}")
        return state

    def _described(self) -> list[str]:
        parts = [] if self.columns is None else [f"columns={self.columns!r}"]
        if self.grouper is not None and isinstance(self.grouper, (str, int, list, tuple)):
            parts.append(f"grouper={self.grouper!r}")
        if self.windowed:
            parts.append("windowed=True")
        return parts

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(self._described())})"


def _is_names(new: Any, grouper: Any) -> bool:
    return _column_names(new, grouper) is not None


def _column_names(new: Any, grouper: Any) -> list[Any] | None:
    """The grouper as a list of column names of ``new``, or None (an array, a Series)."""
    columns = getattr(new, "columns", None)
    if columns is None:
        return None
    if isinstance(grouper, list) and grouper and all(_in(g, columns) for g in grouper):
        return grouper
    single = not isinstance(grouper, (list, np.ndarray)) and not hasattr(grouper, "dtype")
    if single and _in(grouper, columns):
        return [grouper]
    return None


def _in(name: Any, columns: Any) -> bool:
    try:
        return name in columns
    except TypeError:  # unhashable
        return False


class GroupbySum(GroupbyAggregation):
    """The per-group sum."""

    stats = ("sum",)

    def result(self, state: Any) -> Any:
        return self.table(state, "sum")


class GroupbyCount(GroupbyAggregation):
    """The per-group count of non-missing values."""

    stats = ("count",)

    def result(self, state: Any) -> Any:
        return self.table(state, "count")


class GroupbySize(GroupbyAggregation):
    """The per-group number of rows."""

    stats = ("size",)

    def result(self, state: Any) -> Any:
        return self.table(state, "size")


class GroupbyMean(GroupbyAggregation):
    """The per-group mean."""

    stats = ("sum", "count")

    def result(self, state: Any) -> Any:
        return self.table(state, "sum") / self.table(state, "count")


class GroupbyVar(GroupbyAggregation):
    """The per-group variance with ``ddof`` (NaN where a group has ``ddof`` values or
    fewer, as pandas)."""

    stats = ("count", "mean", "m2")
    ddof = 1

    def on_new(self, state: Any, new: Any, grouper: Any = None) -> tuple[Any, Any]:
        return self._merged(state, new, grouper, merge_moments)

    def on_old(self, state: Any, old: Any, grouper: Any = None) -> tuple[Any, Any]:
        return self._merged(state, old, grouper, remove_moments)

    def _merged(self, state: Any, chunk: Any, grouper: Any, merge: Any) -> tuple[Any, Any]:
        """The state with the chunk's per-group moments merged in (or taken out)."""
        values, keys = self.split(chunk, grouper)
        totals = group_totals(values, keys, self.totals)
        if not len(state[0]):
            state = tuple(totals[s] for s in self.totals)
            return state, self.result(state)
        index = state[0].index
        if not index.equals(totals[self.totals[0]].index):
            index = index.union(totals[self.totals[0]].index)
        ours = tuple(aligned_table(t, index) for t in state)
        theirs = tuple(aligned_table(totals[s], index) for s in self.totals)
        leaving = merge is remove_moments
        if all(is_pandas(t) and t.ndim == 1 for t in ours):  # numpy, one Series at the end
            arrays = merge(*(tuple(t.to_numpy() for t in side[:3]) for side in (ours, theirs)))
            if len(ours) > 3:
                sizes = ours[3].to_numpy() + (-1 if leaving else 1) * theirs[3].to_numpy()
                arrays = (*arrays, sizes)
            updated = tuple(
                type(t)(a, index=index, name=t.name) for t, a in zip(state, arrays, strict=True)
            )
        else:
            sizes = tuple(
                combine_tables(a, b, leaving) for a, b in zip(ours[3:], theirs[3:], strict=True)
            )
            updated = (*merge(ours[:3], theirs[:3]), *sizes)
            updated = tuple(ints_back(t, s) for t, s in zip(updated, state, strict=True))
        if self.windowed:
            present = updated[self.totals.index("size")] != 0
            if not present.all():
                updated = tuple(t[present] for t in updated)
        return updated, self.result(updated)

    def result(self, state: Any) -> Any:
        return variance(state[:3], self.ddof)

    def _described(self) -> list[str]:
        return [*super()._described(), f"ddof={self.ddof}"]


class GroupbyValueCounts(GroupbyAggregation):
    """The count of each value of the selected column per group, indexed by group and
    value (sorted by both, where pandas sorts by count within a group)."""

    stats = ("size",)

    def split(self, new: Any, grouper: Any = None) -> tuple[Any, Any]:
        values, keys = GroupbyAggregation.split(self, new, grouper)
        if getattr(values, "ndim", 1) != 1:
            raise TypeError(
                f"{self!r}: value_counts needs one selected column (groupby(...)[column]), "
                f"got columns {list(values.columns)!r}"
            )
        keys = [*keys, values] if isinstance(keys, list) else [keys, values]
        return values, keys

    def result(self, state: Any) -> Any:
        return self.table(state, "size").rename("count")


class _PairWith:
    """``(chunk, grouper)``: a fixed array grouper travelling with each chunk (picklable)."""

    __slots__ = ("grouper",)

    def __init__(self, grouper: Any):
        self.grouper = grouper

    def __call__(self, chunk: Any) -> tuple[Any, Any]:
        return chunk, self.grouper


class GroupBy:
    """``sdf.groupby(grouper)``: groupby aggregations over every row so far.

    ``[col]`` / ``.col`` select the aggregated columns. Each aggregation emits the whole
    table per chunk ('updating').

    >>> import pandas as pd
    >>> from millstream.dataframe import DataFrame
    >>> sdf = DataFrame(example=pd.DataFrame({'k': [0], 'x': [0.0]}))
    >>> keys = sdf.k % 2
    >>> L = sdf.groupby(keys).x.mean().stream.sink_to_list()
    >>> sdf.emit(pd.DataFrame({'k': [1, 2, 3], 'x': [1.0, 2.0, 4.0]}))
    >>> L[-1].to_dict()
    {0: 2.0, 1: 2.5}
    """

    windowed = False

    def __init__(self, root: Any, grouper: Any, index: Any = None):
        self.root = root
        self.grouper = grouper.root if isinstance(grouper, Window) else grouper
        self.index = index
        names = grouper if isinstance(grouper, list) else [grouper]
        columns = getattr(root.example, "columns", None)
        for name in names:
            if isinstance(name, str) and (columns is None or name not in columns):
                raise KeyError(
                    f"groupby({grouper!r}) of {type(root).__name__} with columns "
                    f"{None if columns is None else list(columns)}: no column {name!r}"
                )

    def __getitem__(self, index: Any) -> GroupBy:
        return GroupBy(self.root, self.grouper, index)

    def __getattr__(self, key: str) -> GroupBy:
        if key.startswith("_") or key in ("root", "grouper", "index"):
            raise AttributeError(key)
        columns = getattr(self.root.example, "columns", ())
        if key in columns or not len(columns):
            return self[key]
        raise AttributeError(f"GroupBy has no attribute or column {key!r}")

    def _source(self) -> tuple[Any, Any, Any]:
        """``(stream, example item, grouper for the aggregation)``."""
        if isinstance(self.grouper, Streaming):
            stream = self.root.stream.zip(self.grouper.stream)
            return stream, (self.root.example, self.grouper.example), None
        return self.root.stream, self.root.example, self.grouper

    def _accumulate(
        self,
        agg_class: type[GroupbyAggregation],
        with_state: bool = False,
        start: Any = None,
        **kwargs: Any,
    ) -> Streaming:
        stream, example, grouper = self._source()
        aggregation = agg_class(self.index, grouper=grouper, **kwargs)
        return aggregate_updating(
            example, stream, aggregation, start, with_state, aggregation.example_result(example)
        )

    def count(self, start: Any = None) -> Streaming:
        """The per-group count of non-missing values."""
        return self._accumulate(GroupbyCount, start=start)

    def mean(self, with_state: bool = False, start: Any = None) -> Streaming:
        """The per-group mean."""
        return self._accumulate(GroupbyMean, with_state=with_state, start=start)

    def size(self) -> Streaming:
        """The per-group number of rows."""
        return self._accumulate(GroupbySize)

    def std(self, ddof: int = 1) -> Streaming:
        """The per-group standard deviation."""
        return self.var(ddof=ddof) ** 0.5

    def sum(self, start: Any = None) -> Streaming:
        """The per-group sum."""
        return self._accumulate(GroupbySum, start=start)

    def var(self, ddof: int = 1) -> Streaming:
        """The per-group variance."""
        return self._accumulate(GroupbyVar, ddof=ddof)

    def value_counts(self) -> Streaming:
        """The count of each value of the selected column per group (not in Streamz)."""
        return self._accumulate(GroupbyValueCounts)


class WindowedGroupBy(GroupBy):
    """Groupby aggregations over a window: ``sdf.window(n=...).groupby(grouper)``; groups
    with no row left in the window are dropped.

    >>> import pandas as pd
    >>> from millstream.dataframe import DataFrame
    >>> sdf = DataFrame(example=pd.DataFrame({'k': ['a'], 'x': [0]}))
    >>> L = sdf.window(n=2).groupby('k').x.sum().stream.sink_to_list()
    >>> sdf.emit(pd.DataFrame({'k': ['a', 'b', 'b'], 'x': [1, 2, 3]}))
    >>> L[-1].to_dict()
    {'b': 5}
    """

    def __init__(
        self,
        root: Any,
        grouper: Any,
        index: Any = None,
        n: Any = None,
        value: Any = None,
        with_state: bool = False,
        start: Any = None,
    ):
        GroupBy.__init__(self, root, grouper, index)
        self.window = Window(root, n=n, value=value, with_state=with_state, start=start)

    def __getitem__(self, index: Any) -> WindowedGroupBy:
        w = self.window
        return WindowedGroupBy(self.root, self.grouper, index, w.n, w.value, w.with_state, w.start)

    def _source(self) -> tuple[Any, Any, Any]:
        grouper = self.grouper
        fixed = (
            not isinstance(grouper, (Streaming, str))
            and hasattr(grouper, "__len__")
            and not _is_names(self.root.example, grouper)
        )
        if fixed:  # an array: it travels with each chunk, to be cut with it
            example = (self.root.example, grouper[:0])
            paired = map_partitions(
                _PairWith(grouper), self.root, example=example, stream_type="streaming"
            )
            return paired.stream, example, None
        return GroupBy._source(self)

    def _accumulate(
        self,
        agg_class: type[GroupbyAggregation],
        with_state: bool = False,
        start: Any = None,
        **kwargs: Any,
    ) -> Streaming:
        stream, example, grouper = self._source()
        inner = agg_class(self.index, grouper=grouper, windowed=True, **kwargs)
        w = self.window
        aggregation = WindowAggregation(inner, n=w.n, value=w.value)
        return aggregate_updating(
            example, stream, aggregation, w.start, w.with_state, inner.example_result(example)
        )
