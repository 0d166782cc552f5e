"""Distribution on Dask: ``scatter`` elements to a cluster, work on futures, ``gather`` back.

This is the Streamz Dask layer (``streamz.dask``) on millstream's asyncio core; code written
for Streamz runs with only the import changed::

    source = Stream()
    source.scatter().map(inc).buffer(8).gather().sink(print)

Policy
    * **Which client.** ``distributed.default_client()``, looked up for each element (the
      most recently created client that is still open), as in Streamz. Create the client
      before emitting; it may be created after the graph is built.
    * **Which loop.** Nodes run on the graph's millstream loop (the background loop thread,
      or the caller's loop for ``asynchronous=True``; a ``DaskStream`` built in a coroutine
      while the default client is a ``Client(asynchronous=True)`` on that loop takes that
      loop). Client coroutines run on the client's own loop, awaited across threads when it
      is another loop (see :mod:`millstream.dask._bridge`), so no call blocks a loop.
    * **What flows.** A ``DaskStream`` carries element futures (one element each: what
      ``scatter``, ``map``, ``starmap`` and ``accumulate`` emit, as in Streamz) and
      :class:`Batch` units (a future whose value is a list of elements: what ``flatten``
      and ``filter`` emit). Per-element nodes run one task per batch; ``gather`` emits a
      batch's elements one by one.
    * **Every node works on it.** ``map``, ``starmap``, ``filter``, ``remove``, ``pluck``,
      ``flatten`` and ``map_async`` run on the workers. Stateful nodes keep their state on
      the cluster as a future (``accumulate`` on batches, ``frequencies``, ``unique``,
      ``partition``, ``sliding_window``, ``zip``…): one step task per unit, chained, so the
      state never comes to the client. ``frequencies`` counts each unit where it is and
      merges the partial counts into the running table. On a stream of element futures
      ``partition``, ``sliding_window``, ``zip``, ``combine_latest``… keep Streamz's
      tuples of futures. Time nodes (``buffer``, ``delay``, ``timed_window``,
      ``rate_limit``, ``latest``…) run on the client over futures; ``sink`` receives
      futures; ``sink_to_textfile`` and ``to_kafka`` write gathered values.

Modules
    :mod:`~millstream.dask.border` (``scatter``, ``gather``, ``buffer``),
    :mod:`~millstream.dask.stateless` (one task per unit: ``map``, ``filter``…),
    :mod:`~millstream.dask.stateful` and :mod:`~millstream.dask.multi_input` (state on
    the cluster: ``accumulate``, ``partition``, ``zip``…), :mod:`~millstream.dask.on_client`
    (time nodes and sinks over futures), :mod:`~millstream.dask.payloads` (elements sent as
    tasks the scheduler can run again when a worker is lost),
    :mod:`~millstream.dask.aggregation` (``ClusterAggregation``: a frame aggregation
    folded on the cluster, the Dask side of ``millstream.dataframe``).

Invariants
    * ``scatter`` sends each element alone and unhashed (``client.scatter([x],
      hash=False)``): a dict is one element, equal elements get distinct futures.
    * ``scatter`` and ``gather`` hold the element's refs until downstream has finished with
      it; an error releases them marked failed. A node that keeps elements on the cluster
      (``partition``, ``zip``…) holds their refs until they have left it; a ``sink`` of
      futures holds them until the task has finished.
    * A stateful node's step is submitted once its input has finished: a unit whose task
      failed is passed on (``gather`` raises its error) and the state goes on from the last
      good one.
    * A task that raised is re-raised by ``gather`` with its original type and a note naming
      the ``gather`` node and the node and function that submitted the task; a task over a
      batch names the node, the function and the failing element (its position in the batch).
    * ``import millstream`` never imports dask or distributed; this package does.

Example
    The examples of this package use ``client``, an open ``distributed.Client`` (when
    pytest runs them, one in-process ``Client(processes=False)`` for the session, from
    the ``doctest_namespace`` fixture of the repository's ``conftest.py``). Create yours
    before emitting::

        from distributed import Client
        client = Client()

    >>> from millstream import Stream
    >>> from millstream.testing import wait_for
    >>> source = Stream.from_iterable(range(5))
    >>> L = source.scatter().map(lambda x: x * x).gather().sink_to_list()
    >>> source.start()
    >>> wait_for(lambda: len(L) == 5, 10)
    >>> L
    [0, 1, 4, 9, 16]
"""

from __future__ import annotations

try:
    import distributed  # noqa: F401
except ImportError as e:  # pragma: no cover - exercised in a subprocess test
    raise ImportError(
        "millstream's Dask layer (scatter, gather, DaskStream) needs dask and distributed: "
        "pip install 'millstream[dask]'"
    ) from e

from ._tasks import Batch
from .aggregation import ClusterAggregation
from .border import buffer, gather, scatter
from .multi_input import combine_latest, zip, zip_latest
from .on_client import delay, latest, rate_limit, sink, timed_window, timed_window_unique, union
from .stateful import (
    accumulate,
    collect,
    frequencies,
    partition,
    partition_unique,
    slice,
    sliding_window,
    unique,
)
from .stateless import filter, flatten, map, map_async, pluck, remove, starmap
from .stream import DaskStream

__all__ = [
    "Batch",
    "ClusterAggregation",
    "DaskStream",
    "accumulate",
    "buffer",
    "collect",
    "combine_latest",
    "delay",
    "filter",
    "flatten",
    "frequencies",
    "gather",
    "latest",
    "map",
    "map_async",
    "partition",
    "partition_unique",
    "pluck",
    "rate_limit",
    "remove",
    "scatter",
    "sink",
    "slice",
    "sliding_window",
    "starmap",
    "timed_window",
    "timed_window_unique",
    "union",
    "unique",
    "zip",
    "zip_latest",
]
