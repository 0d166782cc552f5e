"""``from_periodic``, and the lifecycle shared by the local sources.

:class:`_ManagedSource` is the base of every source in ``files``, ``network`` and
``process`` (it lives here because ``from_periodic`` is the simplest of them). It adds
to :class:`~millstream.sources.base.Source` what Streamz lacks:

* ``stop()`` releases what the source holds (files, sockets, children, threads) before
  it returns when called from outside the loop thread: it wakes the running ``run()``
  out of any wait it is in (a sleep, an idle server, a blocked read) and waits for it to
  finish, so its ``finally`` cleanup has run. Called on the loop thread, it cannot block:
  the cleanup then runs as soon as the caller yields (``await source.work_task``).
* ``start()`` from outside the loop thread of a source that must set something up (bind a
  port, spawn a child, subscribe) waits until it is ready, and raises the setup error
  (``OSError`` for a port in use, ``FileNotFoundError`` for a missing command) instead of
  only logging it. ``ready`` is a ``threading.Event`` set once the source accepts input.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import threading
import warnings
from collections.abc import Awaitable, Callable
from typing import Any

from .._utils import add_note, check_callable, convert_interval, func_repr
from ..core.loop import in_loop_thread
from ..core.stream import Stream
from .base import Source

__all__ = ["PeriodicCallback", "from_periodic"]

logger = logging.getLogger("millstream")

#: Returned by :meth:`_ManagedSource._interruptible` when ``stop()`` cut the wait short.
STOPPED: Any = type("_Stopped", (), {"__repr__": lambda self: "STOPPED"})()


class _ManagedSource(Source):
    """A source whose ``run()`` owns resources that ``stop()`` must release.

    Subclasses implement ``run()`` as ``setup; self._set_ready(); loop; finally release``
    and wrap every open-ended wait in ``await self._interruptible(...)``, which returns
    :data:`STOPPED` when ``stop()`` interrupts it. Waits that must not be cut (an emit,
    a read in a thread whose data would be lost) are simply awaited: ``stop()`` then takes
    effect after them.
    """

    #: ``start()`` from another thread waits for ``ready`` (sources with a setup step).
    _wait_ready_on_start = False
    #: How long ``start()`` waits for ``ready`` and ``stop()`` waits for ``run()`` to end.
    _start_timeout = 10.0
    _stop_timeout = 10.0

    def __init__(self, **kwargs: Any):
        self.ready = threading.Event()
        self._waiting: asyncio.Task[Any] | None = None
        self._interrupted = False
        super().__init__(**kwargs)

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> None:
        """Start; from outside the loop, wait until ready and raise a setup error."""
        if not self.stopped:
            return
        self.ready.clear()
        waits = self._wait_ready_on_start and self._can_block()
        self._error_has_caller = waits
        super().start()
        if not waits:
            return
        if not self.ready.wait(self._start_timeout):
            self._error_has_caller = False
            logger.warning("%s is not ready after %s s; still trying", self, self._start_timeout)
            return
        if self.error is not None:
            raise self.error

    def stop(self) -> None:
        """Stop the source and release what it holds (from outside the loop: before returning)."""
        self.stopped = True
        loop = self.loop
        if loop is None:
            return
        if in_loop_thread(loop):
            self._request_stop()
            return
        if not self._can_block():
            return
        future = asyncio.run_coroutine_threadsafe(self._stop_and_wait(), loop.asyncio_loop)
        try:
            future.result(self._stop_timeout + 1)
        except TimeoutError:
            logger.warning("%s did not stop within %s s", self, self._stop_timeout)

    def _can_block(self) -> bool:
        loop = self.loop
        if loop is None or in_loop_thread(loop):
            return False
        asyncio_loop = loop.asyncio_loop
        return bool(asyncio_loop.is_running() and not asyncio_loop.is_closed())

    async def _stop_and_wait(self) -> None:
        self._request_stop()
        task = self.work_task
        if task is not None and not task.done():
            await asyncio.wait([task], timeout=self._stop_timeout)

    def _request_stop(self) -> None:
        """On the loop: interrupt the wait ``run()`` is in, if it is interruptible."""
        waiting = self._waiting
        if waiting is not None and not waiting.done():
            self._interrupted = True
            waiting.cancel()

    def _set_ready(self) -> None:
        self._error_has_caller = False  # from now on errors have no caller: they are logged
        self.ready.set()

    async def _supervised_run(self) -> None:
        try:
            await super()._supervised_run()
        finally:
            self.stopped = True
            self.ready.set()  # wakes a start() waiting for a source that failed or ended

    async def _interruptible(self, awaitable: Awaitable[Any]) -> Any:
        """Await ``awaitable`` unless ``stop()`` comes first; then return :data:`STOPPED`."""
        if self.stopped:
            if inspect.iscoroutine(awaitable):
                awaitable.close()
            return STOPPED
        task = asyncio.ensure_future(awaitable)
        self._waiting = task
        self._interrupted = False
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            if not self._interrupted:
                task.cancel()
                raise
            if not task.done():
                task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            return STOPPED
        finally:
            self._waiting = None

    async def _sleep(self, seconds: float) -> Any:
        """Sleep on ``self.clock``; return :data:`STOPPED` if ``stop()`` interrupted it."""
        return await self._interruptible(self.clock.sleep(seconds))


@Stream.register_api(staticmethod)
class from_periodic(_ManagedSource):
    """Emit ``callback()`` every ``poll_interval`` seconds.

    Each cycle calls ``callback()`` (awaiting the result if it is awaitable), emits it,
    waits until downstream has absorbed it, then sleeps ``poll_interval`` on the node's
    clock. As in Streamz the period is ``poll_interval`` plus the processing time.
    ``stop()`` interrupts the sleep at once. The source has no position to snapshot.

    Parameters
    ----------
    callback : callable
        Called with no argument; its result is emitted.
    poll_interval : float or str
        Seconds between calls (or a duration such as ``'100ms'``).

    Examples
    --------
    >>> from millstream import ManualClock
    >>> from millstream.testing import wait_for
    >>> clock = ManualClock()
    >>> source = Stream.from_periodic(lambda: clock.now(), poll_interval=2, clock=clock)
    >>> L = source.sink_to_list()
    >>> source.start()
    >>> wait_for(lambda: len(L) == 1, 5)
    >>> clock.advance(5)
    >>> source.stop()
    >>> L
    [0.0, 2.0, 4.0]
    """

    def __init__(
        self, callback: Callable[[], Any], poll_interval: float | str = 0.1, **kwargs: Any
    ):
        check_callable("from_periodic", "callback", callback)
        self._cb = callback
        self._poll = convert_interval(poll_interval)
        super().__init__(**kwargs)

    @property
    def poll_interval(self) -> float:
        """Seconds slept between two calls."""
        return self._poll

    async def run(self) -> None:
        self._set_ready()
        while not self.stopped:
            try:
                x = self._cb()
                if inspect.isawaitable(x):
                    x = await x
            except Exception as e:
                add_note(
                    e,
                    f"millstream: {self} failed calling {func_repr(self._cb)}",
                    unless="millstream:",
                )
                raise
            await self._emit_and_wait(x)
            if await self._sleep(self._poll) is STOPPED:
                break


def PeriodicCallback(
    callback: Callable[..., Any],
    callback_time: float | str,
    asynchronous: bool = False,
    **kwargs: Any,
) -> from_periodic:
    """Deprecated: use ``Stream.from_periodic(callback, poll_interval)``.

    ``callback_time`` is in seconds, as in Streamz (not milliseconds as in tornado).
    Extra keyword arguments are passed to ``callback`` on each call (Streamz's version of
    this recursed forever when given any).

    Examples
    --------
    >>> import warnings
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter('ignore', DeprecationWarning)
    ...     source = PeriodicCallback(lambda n: n * 2, 1.0, n=21)
    >>> source.poll_interval, source._cb()
    (1.0, 42)
    """
    warnings.warn(
        "PeriodicCallback is deprecated: use Stream.from_periodic(callback, poll_interval)",
        DeprecationWarning,
        stacklevel=2,
    )
    if kwargs:
        callback = functools.partial(callback, **kwargs)
    return from_periodic(callback, callback_time, asynchronous=asynchronous)
