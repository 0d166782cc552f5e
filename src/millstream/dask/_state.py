"""Snapshots of Dask nodes that hold units on the client: the elements as local values.

A node on the client (``buffer``, ``delay``, ``latest``, ``timed_window``…) holds units:
element futures, :class:`~millstream.dask._tasks.Batch` es, or local values. Its snapshot
must be plain data, so :func:`element_values` fetches them: each unit becomes the list of
the elements it holds (one for an element future, all of them for a batch). A restored
node holds these elements as local values, which every Dask node takes as elements (a
task receives them as arguments; ``gather`` passes them on), so the stream of elements
after a restore is the one the units would have given.
"""

from __future__ import annotations

from typing import Any

from ._bridge import get_client
from ._tasks import Batch, items_of

__all__ = ["element_values"]


def element_values(units: list[Any]) -> list[list[Any]]:
    """The elements of each unit as local values (fetched from the cluster, blocking: call
    it outside the event loops). Futures inside a local value (a tuple of futures made by
    ``zip``) are fetched too; a unit whose task failed raises its error."""
    from distributed import futures_of

    targets = [u.future if type(u) is Batch else u for u in units]
    values = get_client().gather(targets) if futures_of(targets) else targets
    out: list[list[Any]] = []
    for unit, value in zip(units, values, strict=True):
        out.append(list(items_of(value, unit.source)) if type(unit) is Batch else [value])
    return out
