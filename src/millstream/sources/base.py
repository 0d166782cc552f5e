"""The ``Source`` base class: a node with no upstream that produces elements on the loop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from ..core.stream import Stream

__all__ = ["Source"]

logger = logging.getLogger("millstream")


class Source(Stream):
    """Base class of sources.

    A source always has an event loop (the background thread loop unless
    ``asynchronous=True``). ``start()`` schedules :meth:`run` on it; ``stop()`` asks
    it to finish. Subclasses override :meth:`_run` (one polling cycle, called while
    not stopped) or :meth:`run` itself. An exception escaping ``run`` stops the
    source, is logged under ``millstream`` and is kept in :attr:`error`.

    Attributes
    ----------
    stopped, started : bool
    error : BaseException or None
    work_task : asyncio.Task or None
        The running ``run()`` task.
    """

    _graphviz_shape = "doubleoctagon"
    #: True while a caller (a blocking ``start()``) waits to receive an error of ``run``
    #: itself: that error is raised there, not also logged
    _error_has_caller = False

    #: True once a bounded source has emitted all of its input (``from_iterable`` at the
    #: end of its iterable); ``start()`` after that finds nothing more to emit
    exhausted = False
    _end_listeners: list[Callable[[], Any]] | None = None

    def __init__(self, start: bool = False, **kwargs: Any):
        self.stopped = True
        self.started = False
        self.error: BaseException | None = None
        self.work_task: asyncio.Task[Any] | None = None
        kwargs.setdefault("ensure_io_loop", True)
        super().__init__(**kwargs)
        if start:
            self.start()

    def start(self) -> None:
        """Start producing (no effect while running; restarts after ``stop()``)."""
        if self.stopped:
            self.stopped = False
            self.started = True
            self.error = None
            self.loop.add_callback(self._launch)

    def _launch(self) -> None:
        if self.work_task is not None and not self.work_task.done():
            return  # a run stopped while waiting on downstream is still there: it carries on
        self.work_task = asyncio.ensure_future(self._supervised_run())

    def add_end_listener(self, listener: Callable[[], Any]) -> None:
        """Call ``listener()`` on the loop once this source has emitted all of its input.

        Only bounded sources end (``exhausted`` becomes true); the listener may return
        awaitables (a list, or None), which the source awaits before its run is over.
        ``with_timestamps`` uses it to move the watermark to ``+inf`` at the end of input.
        """
        if self._end_listeners is None:
            self._end_listeners = []
        self._end_listeners.append(listener)

    async def _notify_end(self) -> None:
        for listener in list(self._end_listeners or ()):
            pending = listener()
            if pending:
                await asyncio.gather(*pending)

    async def _supervised_run(self) -> None:
        try:
            await self.run()
            if self.exhausted:
                await self._notify_end()
        except asyncio.CancelledError:
            raise
        except Exception as e:
            self.error = e
            self.stopped = True
            if not self._error_has_caller:
                logger.error("source %s stopped by an error", self, exc_info=e)

    def stop(self) -> None:
        """Ask the source to stop after the element in progress."""
        self.stopped = True

    async def run(self) -> None:
        """Produce elements until stopped; by default calls :meth:`_run` in a loop."""
        while not self.stopped:
            await self._run()

    async def _run(self) -> None:
        raise NotImplementedError(f"{type(self).__name__} must implement run() or _run()")

    async def _emit_and_wait(self, x: Any, metadata: list[dict] | None = None) -> None:
        """Emit ``x`` and wait until downstream has absorbed it (backpressure)."""
        pending = self._emit(x, metadata=metadata)
        if pending:
            await asyncio.gather(*pending)
