"""Streamz's ``streamz.batch``: a stream of lists (or tuples) of Python objects.

Batching many elements per push cuts Python's per-element overhead; a ``Batch``
typically sits at the start of ingestion, before streaming DataFrames.

>>> from millstream import Stream
>>> source = Stream()
>>> totals = source.to_batch().pluck("value").map(abs).sum().stream.sink_to_list()
>>> source.emit([{"value": 1}, {"value": -2}])
>>> source.emit([{"value": 3}])
>>> totals
[3, 6]
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from millstream.collection import Streaming, register_stream_type
from millstream.core import Stream

__all__ = ["Batch", "to_batch"]


def filter_batch(batch: Any, predicate: Callable[[Any], Any]) -> list[Any]:
    """The elements of ``batch`` for which ``predicate`` is true.

    >>> filter_batch([1, 0, 2], bool)
    [1, 2]
    """
    return [x for x in batch if predicate(x)]


def pluck_batch(batch: Any, index: Any) -> list[Any]:
    """``x[index]`` of every element (a key, a position or a list of them, as ``toolz.pluck``).

    >>> pluck_batch([{"a": 1, "b": 2}], ["b", "a"])
    [(2, 1)]
    """
    if isinstance(index, list):
        return [tuple(x[i] for i in index) for x in batch]
    return [x[index] for x in batch]


def map_batch(batch: Any, func: Callable[..., Any], **kwargs: Any) -> list[Any]:
    """``func`` of every element; keywords go to the builtin ``map`` (as Streamz).

    >>> map_batch((1, -2), abs)
    [1, 2]
    """
    return list(map(func, batch, **kwargs))


def add_batch_sum(total: Any, batch: Any) -> Any:
    """The running total plus the sum of ``batch``.

    >>> add_batch_sum(10, [1, 2])
    13
    """
    return total + sum(batch)


class Batch(Streaming):
    """A stream whose elements are lists or tuples (Streamz's ``Batch``); example ``[]``.

    >>> b = Batch()
    >>> out = b.filter(lambda x: x > 1).map(str).stream.sink_to_list()
    >>> b.emit([1, 2, 3])
    >>> out
    [['2', '3']]
    """

    def __init__(self, stream: Stream | None = None, example: Any = None) -> None:
        super().__init__(stream=stream, example=[] if example is None else example)

    def sum(self) -> Streaming:
        """The running total of all elements so far, one value per batch."""
        return self.accumulate_partitions(add_batch_sum, start=0)

    def filter(self, predicate: Callable[[Any], Any]) -> Streaming:
        """Keep the elements of each batch for which ``predicate`` is true."""
        return self.map_partitions(filter_batch, self, predicate)

    def pluck(self, ind: Any) -> Streaming:
        """Pick ``x[ind]`` out of every element.

        >>> b = Batch()
        >>> out = b.pluck("name").stream.sink_to_list()
        >>> b.emit([{"name": "Alice", "x": 123}])
        >>> out
        [['Alice']]
        """
        return self.map_partitions(pluck_batch, self, ind)

    def map(self, func: Callable[..., Any], **kwargs: Any) -> Streaming:
        """Apply ``func`` to every element of each batch."""
        return self.map_partitions(map_batch, self, func, **kwargs)

    def to_dataframe(self) -> Streaming:
        """A streaming DataFrame of ``pandas.DataFrame(batch)`` for each batch.

        Needs pandas and :mod:`millstream.dataframe` (imported on this call).
        """
        try:
            import pandas as pd

            import millstream.dataframe  # noqa: F401  (registers the DataFrame types)
        except ImportError as e:
            raise ImportError(
                "Batch.to_dataframe() needs pandas and the streaming DataFrame layer "
                f"(millstream.dataframe): {e}"
            ) from e
        return self.map_partitions(pd.DataFrame, self)

    def to_stream(self) -> Stream:
        """The elements one by one: ``self.stream.flatten()``.

        >>> b = Batch()
        >>> out = b.to_stream().sink_to_list()
        >>> b.emit([1, 2])
        >>> out
        [1, 2]
        """
        return self.stream.flatten()


register_stream_type((list, tuple, set), Batch)


def to_batch(upstream: Stream, **kwargs: Any) -> Batch:
    """``Stream.to_batch(example=...)``: view a stream of lists or tuples as a :class:`Batch`."""
    return Batch(stream=upstream, **kwargs)
