"""``from_periodic`` and ``PeriodicCallback``."""

from __future__ import annotations

import functools
import inspect
import logging
import warnings
from collections.abc import Callable
from typing import Any

from .._utils import add_note, check_callable, convert_interval, func_repr
from ..core.stream import Stream
from .base import STOPPED, ManagedSource

__all__ = ["PeriodicCallback", "from_periodic"]

logger = logging.getLogger("millstream.sources")


@Stream.register_api(staticmethod)
class from_periodic(ManagedSource):
    """Emit ``callback()`` every ``poll_interval`` seconds.

    Each cycle calls ``callback()`` (awaiting the result if it is awaitable), emits it,
    waits until downstream has absorbed it, then sleeps ``poll_interval`` on the node's
    clock. As in Streamz the period is ``poll_interval`` plus the processing time.
    ``stop()`` interrupts the sleep at once. The source has no position to snapshot.

    Checkpoints: this source has no position to resume from (``snapshot()`` is the
    stateless default): after a restart it goes on with what arrives, at least once
    from where it reconnects at best; it calls its callback again from the restart.

    Parameters
    ----------
    callback : callable
        Called with no argument; its result is emitted.
    poll_interval : float or str
        Seconds between calls (or a duration such as ``'100ms'``).
    wait_first : bool
        Sleep ``poll_interval`` before the first call too (default: call at once).

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
        self,
        callback: Callable[[], Any],
        poll_interval: float | str = 0.1,
        *,
        wait_first: bool = False,
        **kwargs: Any,
    ):
        check_callable("from_periodic", "callback", callback)
        self._cb = callback
        self._poll = convert_interval(poll_interval)
        self.wait_first = wait_first
        super().__init__(**kwargs)

    @property
    def poll_interval(self) -> float:
        """Seconds slept between two calls."""
        return self._poll

    async def run(self) -> None:
        self._set_ready()
        if self.wait_first and await self._sleep(self._poll) is STOPPED:
            return
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
