"""The future that ``Stream.emit`` returns in asynchronous mode.

Streamz returns a future from an asynchronous ``emit``: it can be awaited many times,
given to ``asyncio.wait_for``, ``asyncio.gather``, ``asyncio.shield`` or tornado's
``gen.with_timeout``, and the work downstream runs whether or not anybody awaits it.
:class:`EmitFuture` is an :class:`asyncio.Future` with those properties that stays
cheap for the common ``await source.emit(x)``:

* awaited directly before the loop's next step, it runs the pending work inline in
  the awaiting task (no extra task, no extra trip through the loop);
* otherwise (given to ``wait_for``/``gather``/``shield``/``with_timeout``, awaited
  later, or never awaited) one driver task started on the loop's next step runs it.

Either way the outcome is stored on the future: awaiting it again returns at once (or
raises the same error again). Cancelling the future cancels the work.
"""

from __future__ import annotations

import asyncio
from collections.abc import Generator
from typing import Any

from .awaitables import await_all

__all__ = ["EmitFuture"]


class EmitFuture(asyncio.Future[None]):
    """An asyncio future for the awaitables one ``emit`` left pending downstream.

    Errors raised downstream reach whoever awaits the future. A failed future that
    nobody ever awaits is reported once by asyncio ("Future exception was never
    retrieved", with the error and its millstream note), as for any asyncio future
    and as Streamz's tornado futures are; the driver task itself never logs.

    Examples
    --------
    >>> import asyncio
    >>> async def main():
    ...     log = []
    ...     async def later(x):
    ...         await asyncio.sleep(0.01)
    ...         log.append(x)
    ...     f = EmitFuture.for_pending([later(1)], asyncio.get_running_loop())
    ...     await asyncio.wait_for(f, 1)
    ...     await f  # again: already done
    ...     return log, f.done()
    >>> asyncio.run(main())
    ([1], True)
    """

    __slots__ = ("_driver", "_pending")

    _pending: list[Any] | None
    _driver: asyncio.Future[None] | None

    @classmethod
    def for_pending(cls, pending: list[Any], loop: asyncio.AbstractEventLoop) -> EmitFuture:
        """A future for ``pending`` (awaitables a push returned) on the running ``loop``."""
        future = cls(loop=loop)
        future._pending = pending
        future._driver = None
        batch = _unstarted.get(loop)
        if batch is None:  # one loop callback starts every future made in this step
            batch = _unstarted[loop] = []
            loop.call_soon(_start_unawaited, loop)
        batch.append(future)
        if len(batch) > 1000:  # many emits awaited inline without yielding to the loop
            batch[:] = [f for f in batch if f._pending is not None]
        return future

    def _take_pending(self) -> list[Any] | None:
        pending, self._pending = self._pending, None
        return pending

    def _start(self) -> None:
        """Run the work in a driver task unless an awaiter already runs it inline."""
        pending = self._take_pending()
        if pending is not None and not self.done():
            self._driver = self.get_loop().create_task(self._drive(pending))

    async def _drive(self, pending: list[Any]) -> None:
        try:
            await await_all(pending)
        except asyncio.CancelledError:
            asyncio.Future.cancel(self)
        except BaseException as e:  # stored on the future, raised to its awaiters
            if not self.done():
                self.set_exception(e)
        else:
            if not self.done():
                self.set_result(None)

    def __await__(self) -> Generator[Any, None, None]:
        pending = self._pending
        if pending is None:  # running in the driver or another awaiter, or done
            return (yield from asyncio.Future.__await__(self))
        self._pending = None
        try:
            if len(pending) == 1 and hasattr(pending[0], "__await__"):
                yield from pending[0].__await__()
            else:
                yield from await_all(pending).__await__()
        except asyncio.CancelledError:
            asyncio.Future.cancel(self)
            raise
        except BaseException as e:
            if not self.done():
                self.set_exception(e)
                self.exception()  # this awaiter gets it: not "never retrieved"
            raise
        if not self.done():
            self.set_result(None)

    __iter__ = __await__

    def cancel(self, msg: Any = None) -> bool:
        """Cancel the future and the work still running for it."""
        driver = self._driver
        if driver is not None:
            driver.cancel(msg)
        return super().cancel(msg)


#: Futures made during the current step of each loop, started on its next step.
_unstarted: dict[asyncio.AbstractEventLoop, list[EmitFuture]] = {}


def _start_unawaited(loop: asyncio.AbstractEventLoop) -> None:
    for future in _unstarted.pop(loop, ()):
        future._start()
