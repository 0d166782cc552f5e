"""``Hold``: how a checkpoint stops a running graph at a point where nothing is in hand.

A checkpoint needs a moment at which every element a source emitted has reached node
state (a count, an open window, a buffer's queue) and none is half-way through the graph.
On one event loop, synchronous pushes are atomic, so only the places where a node awaits
in the middle of an element matter: a source awaiting downstream backpressure, a buffer's
worker awaiting its downstream, a Dask node waiting for its futures. Each such node gets
a ``Hold`` from the coordinator (``node.hold``; ``None`` otherwise, at no cost):

* around an element it awaits, the node calls ``await hold.carry(pending)``: the element
  counts as *in hand* until ``pending`` is done;
* before it takes a new element (a source before it reads or emits, a worker before it
  takes from its queue), it calls ``await hold.wait_open()``, which returns at once
  unless the hold is closed;
* work already accepted (a future a Dask node submitted) is counted with ``take()`` and
  ``leave()`` and finishes even while the hold is closed.

The coordinator closes the holds in graph order (sources first, then the nodes below
them), each time waiting for ``quiet()``: no element in hand. Then it snapshots every
node, and ``open()`` lets them go on.

Examples
--------
>>> import asyncio
>>> async def demo():
...     hold = Hold()
...     hold.close()
...     await hold.quiet()          # nothing in hand: quiet at once
...     waiter = asyncio.ensure_future(hold.wait_open())
...     await asyncio.sleep(0)
...     held = not waiter.done()
...     hold.open()
...     await waiter
...     return held, hold.closed
>>> asyncio.run(demo())
(True, False)
"""

from __future__ import annotations

import asyncio
from typing import Any

from .awaitables import await_all

__all__ = ["Hold", "RoomWait"]


class RoomWait(asyncio.Future[None]):
    """The future a node returns when it has taken an element into its state and only
    asks the sender to wait for room (``zip``'s ``maxsize``): while it waits, the element is
    not in the sender's hand, so a checkpoint does not wait for it (it may need another
    source, held by the same checkpoint, to go on)."""


class Hold:
    """A gate one node passes before each new element, with a count of elements in hand."""

    __slots__ = ("_opened", "_quiet", "closed", "due_at", "in_hand", "on_due", "passed")

    def __init__(self) -> None:
        self.closed = False
        #: elements this node has started and not finished
        self.in_hand = 0
        #: elements counted through :meth:`count` (checkpoints every N elements use it)
        self.passed = 0
        #: when ``passed`` reaches ``due_at``, ``on_due()`` is called (checkpoints every N)
        self.due_at: float = float("inf")
        self.on_due: Any = None
        self._opened: asyncio.Event | None = None
        self._quiet: asyncio.Event | None = None

    # -- the node's side ----------------------------------------------------------------
    async def wait_open(self) -> None:
        """Return once the hold is open (at once when it is)."""
        while self.closed:
            opened = self._opened
            if opened is None:
                opened = self._opened = asyncio.Event()
            await opened.wait()

    async def carry(self, pending: list[Any]) -> None:
        """Await ``pending`` (what an emit returned) with the element in hand, then wait
        until the hold is open. Waits for room (:class:`RoomWait`) come last and do not
        count as in hand: the element is already in a node's state."""
        rooms = [p for p in pending if type(p) is RoomWait]
        if rooms:
            pending = [p for p in pending if type(p) is not RoomWait]
        if pending:
            self.in_hand += 1
            try:
                await await_all(pending)
            finally:
                self.leave()
        if rooms:
            await await_all(rooms)
        if self.closed:
            await self.wait_open()

    def take(self, n: int = 1) -> None:
        """Count ``n`` more elements in hand (work accepted that will finish by itself)."""
        self.in_hand += n

    def leave(self, n: int = 1) -> None:
        """``n`` elements in hand are done."""
        self.in_hand -= n
        if self.in_hand <= 0 and self._quiet is not None:
            self._quiet.set()

    def count(self, n: int = 1) -> None:
        """Count ``n`` elements emitted (for checkpoints every N elements)."""
        self.passed += n
        if self.passed >= self.due_at and self.on_due is not None:
            self.due_at = float("inf")
            self.on_due()

    # -- the coordinator's side ---------------------------------------------------------
    def close(self) -> None:
        """Stop the node before its next element (the one in hand goes on)."""
        self.closed = True
        if self._opened is not None:
            self._opened.clear()

    async def quiet(self) -> None:
        """Wait until no element is in hand."""
        while self.in_hand > 0:
            quiet = self._quiet = asyncio.Event()
            await quiet.wait()
        self._quiet = None

    def open(self) -> None:
        """Let the node go on."""
        self.closed = False
        if self._opened is not None:
            self._opened.set()
            self._opened = None

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<Hold {state}, {self.in_hand} in hand>"
