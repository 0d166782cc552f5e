"""``from_iterable``: emit the items of an iterable."""

from __future__ import annotations

import asyncio
import itertools
import operator
from collections.abc import Iterable
from typing import Any

from ..core.stream import Stream
from ..exceptions import StateError
from .base import Source

__all__ = ["from_iterable"]


@Stream.register_api(staticmethod)
class from_iterable(Source):
    """Emit each item of ``iterable``, then stop (``exhausted`` becomes true).

    Items are taken from the iterable in chunks of ``chunk_size`` and each chunk is
    pushed through the graph item by item (through fused code where the graph allows),
    waiting on downstream backpressure after any item that returns some. ``stop()``
    takes effect after the item in progress, as in Streamz; items already read from
    the iterable but not yet emitted are kept and come first after ``start()``. The
    source yields to the event loop between chunks.

    Examples
    --------
    >>> from millstream.testing import wait_for
    >>> source = Stream.from_iterable(range(5))
    >>> L = source.map(lambda x: x * 10).sink_to_list()
    >>> source.start()
    >>> wait_for(lambda: len(L) == 5, 5)
    >>> L
    [0, 10, 20, 30, 40]
    """

    def __init__(self, iterable: Iterable[Any], chunk_size: int = 1024, **kwargs: Any):
        self._iterable = iterable
        self._iterator: Any = None
        self._unsent: list[Any] = []
        self.chunk_size = chunk_size
        #: items emitted before the chunk in progress
        self._emitted = 0
        #: the chunk in progress and its iterator (the items taken from it are emitted)
        self._chunk: list[Any] | None = None
        self._items: Any = None
        super().__init__(**kwargs)

    async def run(self) -> None:
        if self._iterator is None:
            self._iterator = iter(self._iterable)
            if self._emitted:  # restored: skip what was emitted before
                skipped = sum(1 for _ in itertools.islice(self._iterator, self._emitted))
                if skipped < self._emitted:
                    self.exhausted = True
        iterator = self._iterator
        while not self.stopped:
            await self._wait_if_held()
            if self._unsent:
                chunk, self._unsent = self._unsent, []
            else:
                chunk = list(itertools.islice(iterator, self.chunk_size))
            if not chunk:
                self.exhausted = True
                break
            items = self._items = iter(chunk)
            self._chunk = chunk
            for pending in self._emit_batch(items, until=self):
                await self._absorb(pending)
            taken = len(chunk) - operator.length_hint(items)
            self._emitted += taken
            if self.hold is not None:
                self.hold.count(taken)
            self._chunk = self._items = None
            self._unsent = list(items)
            await asyncio.sleep(0)
        if not self._unsent and not (self.exhausted and self._end_listeners):
            self.stopped = True  # with end listeners: once they ran (Source._supervised_run)

    def snapshot(self) -> int:
        """The number of items emitted."""
        chunk = self._chunk
        if chunk is None:
            return self._emitted
        return self._emitted + len(chunk) - operator.length_hint(self._items)

    def extra_metrics(self) -> dict[str, Any]:
        """``position``: the number of items emitted."""
        return {"position": self.snapshot()}

    def restore(self, state: int) -> None:
        """Start again from the beginning of the iterable, skipping ``state`` items
        (call while the source is stopped)."""
        if type(state) is not int or state < 0:
            raise StateError(
                f"{self} cannot restore state {state!r}: expected the number of items "
                "emitted (an int >= 0)"
            )
        if not self.stopped:
            raise StateError(f"{self}: restore() needs a stopped source")
        self._iterator = None
        self._unsent = []
        self._chunk = self._items = None
        self._emitted = state
        self.exhausted = False
