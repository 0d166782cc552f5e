"""Processing-time clocks for time-based nodes.

Every node that waits (``timed_window``, ``delay``, ``rate_limit``, ``partition``
timeouts, ``from_periodic``…) asks its clock for the time and for sleeps, never
``time`` or ``asyncio.sleep`` directly. :class:`SystemClock` is the default;
:class:`ManualClock` makes those nodes deterministic in tests: time moves only
when the test calls :meth:`ManualClock.advance`.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["Clock", "ManualClock", "SystemClock", "get_default_clock", "use_clock"]


class Clock:
    """The interface time-based nodes use."""

    def now(self) -> float:
        """Current time in seconds."""
        raise NotImplementedError

    async def sleep(self, delay: float) -> None:
        """Wait ``delay`` seconds of this clock's time."""
        raise NotImplementedError

    def call_later(
        self,
        loop: asyncio.AbstractEventLoop,
        delay: float,
        callback: Callable[..., Any],
        *args: Any,
    ) -> Any:
        """Run ``callback(*args)`` on ``loop`` after ``delay``; return a cancellable handle."""
        raise NotImplementedError


class SystemClock(Clock):
    """Wall-clock (monotonic) time and real sleeps.

    >>> import asyncio
    >>> clock = SystemClock()
    >>> t0 = clock.now(); asyncio.run(clock.sleep(0.01)); clock.now() - t0 >= 0.01
    True
    """

    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, delay: float) -> None:
        await asyncio.sleep(max(delay, 0))

    def call_later(
        self,
        loop: asyncio.AbstractEventLoop,
        delay: float,
        callback: Callable[..., Any],
        *args: Any,
    ) -> Any:
        return loop.call_later(max(delay, 0), callback, *args)


class _Timer:
    __slots__ = ("args", "callback", "cancelled", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop, callback: Callable[..., Any], args: tuple):
        self.loop, self.callback, self.args, self.cancelled = loop, callback, args, False

    def cancel(self) -> None:
        self.cancelled = True


async def _settle(loop: asyncio.AbstractEventLoop, rounds: int = 100_000) -> None:
    """Yield until nothing else is ready to run on ``loop``."""
    for _ in range(rounds):
        await asyncio.sleep(0)
        ready = getattr(loop, "_ready", None)
        if ready is not None and not ready:
            # one more round lets callbacks scheduled by the last step run
            await asyncio.sleep(0)
            if not loop._ready:  # type: ignore[attr-defined]
                return


class ManualClock(Clock):
    """A clock that moves only when told to: deterministic tests for time-based nodes.

    Use it as ``clock=`` on a node, or for every node built inside ``with use_clock(clock):``.
    :meth:`advance` (from a thread that is not the loop's) or :meth:`advance_async` (from a
    coroutine on the loop) moves time forward, firing due timers in order and letting the
    loop run until it is idle after each.

    Examples
    --------
    >>> import asyncio
    >>> clock = ManualClock()
    >>> woke = []
    >>> async def main():
    ...     async def sleeper():
    ...         await clock.sleep(5)
    ...         woke.append(clock.now())
    ...     task = asyncio.ensure_future(sleeper())
    ...     await clock.advance_async(4)
    ...     assert woke == []
    ...     await clock.advance_async(1)
    ...     await task
    >>> asyncio.run(main())
    >>> woke
    [5.0]
    """

    def __init__(self, start: float = 0.0):
        self._now = float(start)
        self._heap: list[tuple[float, int, _Timer]] = []
        self._seq = itertools.count()
        self._lock = threading.Lock()

    def now(self) -> float:
        return self._now

    def call_later(
        self,
        loop: asyncio.AbstractEventLoop,
        delay: float,
        callback: Callable[..., Any],
        *args: Any,
    ) -> _Timer:
        timer = _Timer(loop, callback, args)
        with self._lock:
            heapq.heappush(self._heap, (self._now + max(delay, 0.0), next(self._seq), timer))
        return timer

    async def sleep(self, delay: float) -> None:
        loop = asyncio.get_running_loop()
        if delay <= 0:
            await asyncio.sleep(0)
            return
        future = loop.create_future()

        def wake() -> None:
            if not future.done():
                future.set_result(None)

        timer = self.call_later(loop, delay, wake)
        try:
            await future
        finally:
            timer.cancel()

    @property
    def pending(self) -> int:
        """Number of timers not yet fired."""
        return sum(1 for _, _, t in self._heap if not t.cancelled)

    def _pop_due(self, target: float) -> _Timer | None:
        with self._lock:
            while self._heap and self._heap[0][0] <= target:
                deadline, _, timer = heapq.heappop(self._heap)
                if timer.cancelled:
                    continue
                self._now = max(self._now, deadline)
                return timer
            return None

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds`` from a thread other than the loop's, blocking until
        every loop touched is idle again."""
        target = self._now + seconds
        while (timer := self._pop_due(target)) is not None:
            timer.loop.call_soon_threadsafe(timer.callback, *timer.args)
            asyncio.run_coroutine_threadsafe(_settle(timer.loop), timer.loop).result(30)
        self._now = max(self._now, target)

    async def advance_async(self, seconds: float) -> None:
        """Move time forward by ``seconds`` from a coroutine running on the loop."""
        loop = asyncio.get_running_loop()
        target = self._now + seconds
        await _settle(loop)
        while (timer := self._pop_due(target)) is not None:
            if timer.loop is loop:
                timer.callback(*timer.args)
            else:
                timer.loop.call_soon_threadsafe(timer.callback, *timer.args)
            await _settle(loop)
        self._now = max(self._now, target)
        await _settle(loop)


_default_clock: Clock = SystemClock()


def get_default_clock() -> Clock:
    """The clock used by nodes built without ``clock=``."""
    return _default_clock


@contextlib.contextmanager
def use_clock(clock: Clock) -> Iterator[Clock]:
    """Make ``clock`` the default for nodes built inside the ``with`` block.

    >>> with use_clock(ManualClock(10)) as c:
    ...     get_default_clock().now()
    10.0
    """
    global _default_clock
    previous, _default_clock = _default_clock, clock
    try:
        yield clock
    finally:
        _default_clock = previous
