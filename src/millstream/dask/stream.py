"""``DaskStream``: the stream type of the Dask part of a graph, and how it picks its loop."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from ..core.stream import Stream
from ._bridge import client_asyncio_loop, get_client

__all__ = ["DaskStream", "may_batch", "pop_stream_kwargs"]

_STREAM_KWARGS = ("stream_name", "loop", "asynchronous", "ensure_io_loop", "clock")


def pop_stream_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Pop the ``Stream`` keywords out of ``kwargs`` (the rest belongs to the user's function).

    ``on_error`` other than ``'raise'`` is refused: Dask nodes have no error policy yet
    (the error arrives with the task's future, after the node has emitted it).

    >>> pop_stream_kwargs({'stream_name': 'a', 'on_error': 'skip'})
    Traceback (most recent call last):
    ...
    NotImplementedError: Dask nodes do not support on_error='skip' yet ...
    """
    on_error = kwargs.pop("on_error", "raise")
    if not (isinstance(on_error, str) and on_error == "raise"):
        raise NotImplementedError(
            f"Dask nodes do not support on_error={on_error!r} yet (only 'raise'): apply the "
            "policy after .gather() on a local node, or catch errors inside the function"
        )
    return {k: kwargs.pop(k) for k in _STREAM_KWARGS if k in kwargs}


def may_batch(*streams: Any) -> bool:
    """Whether any of ``streams`` may emit :class:`~millstream.dask.Batch` units."""
    return any(getattr(s, "_may_batch", False) for s in streams)


def _streams_in(args: Iterable[Any], kwargs: dict[str, Any]) -> list[Stream]:
    found = [a for a in args if isinstance(a, Stream)]
    if isinstance(kwargs.get("upstream"), Stream):
        found.append(kwargs["upstream"])
    found.extend(u for u in kwargs.get("upstreams") or () if isinstance(u, Stream))
    return found


def _async_client_here() -> bool:
    """True when the default client is asynchronous and lives on the running loop."""
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        return False
    try:
        client = get_client()
    except ValueError:
        return False
    return bool(client.asynchronous) and client_asyncio_loop(client) is running


class DaskStream(Stream):
    """A stream whose elements are Dask futures; its nodes run work on the cluster.

    ``stream.scatter()`` turns a local stream into a ``DaskStream``: every node called on
    it is a Dask node (through ``distributed.default_client()``, looked up for each
    element). ``map``, ``filter``, ``flatten``… run as tasks; ``frequencies``,
    ``unique``, ``partition``… keep their state on the cluster; ``buffer``,
    ``timed_window``, ``delay``… run on the client over futures; ``gather()`` brings the
    results back as local values. Elements are futures of one element or
    :class:`~millstream.dask.Batch` units of several (after ``flatten`` or ``filter``).

    A ``DaskStream`` always has an event loop: the one of its upstream if it has
    one, otherwise the caller's loop when the default client is a
    ``Client(asynchronous=True)`` running on it, otherwise millstream's background loop.

    Examples
    --------
    >>> source = Stream()
    >>> L = source.scatter().map(lambda x: 10 * x).buffer(4).gather().sink_to_list()
    >>> for i in range(4):
    ...     source.emit(i)
    >>> from millstream.testing import wait_for
    >>> wait_for(lambda: len(L) == 4, 10)
    >>> L
    [0, 10, 20, 30]
    """

    def __init__(self, *args: Any, **kwargs: Any):
        if (
            kwargs.get("loop") is None
            and kwargs.get("asynchronous") is None
            and not any(
                u.loop is not None or u.asynchronous is not None for u in _streams_in(args, kwargs)
            )
            and _async_client_here()
        ):
            kwargs["asynchronous"] = True
        kwargs["ensure_io_loop"] = True
        super().__init__(*args, **kwargs)
        self._may_batch = self._emits_batches()

    _may_batch = False
    """Whether this node may emit ``Batch`` units (decides how stateful nodes below it run)."""

    _label: str | None = None

    @property
    def label(self) -> str:
        """How notes on errors (raised here or in this node's tasks) name it: ``str(self)``,
        computed once."""
        if self._label is None:
            self._label = str(self)
        return self._label

    def _emits_batches(self) -> bool:
        """By default a node emits what it receives: batches if an upstream may emit them."""
        return any(getattr(u, "_may_batch", False) for u in self.upstreams)
