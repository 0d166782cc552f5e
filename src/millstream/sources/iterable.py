"""``from_iterable``: emit the items of an iterable."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterable
from typing import Any

from ..core.awaitables import await_all
from ..core.stream import Stream
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
        super().__init__(**kwargs)

    async def run(self) -> None:
        if self._iterator is None:
            self._iterator = iter(self._iterable)
        iterator = self._iterator
        while not self.stopped:
            if self._unsent:
                chunk, self._unsent = self._unsent, []
            else:
                chunk = list(itertools.islice(iterator, self.chunk_size))
            if not chunk:
                self.exhausted = True
                break
            items = iter(chunk)
            for pending in self._emit_batch(items, until=self):
                await await_all(pending)
            self._unsent = list(items)
            await asyncio.sleep(0)
        if not self._unsent:
            self.stopped = True
