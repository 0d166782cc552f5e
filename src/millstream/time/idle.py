"""The idle-partition timer of a node that keeps a :class:`~millstream.time.WatermarkTracker`.

A partition silent for ``idle_timeout`` seconds stops holding the watermark back, even
when no element arrives to notice it. :class:`IdleTimer` is the timer that notices: the
node arms it after each element, it fires on the node's loop when the next partition goes
idle (``tracker.idle_deadline()``, on the node's clock), calls the node's ``on_idle()``,
and arms itself again for the partition after that. ``with_timestamps`` (telling its
listeners) and the frames' event-time stage (passing rows on) use it.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import weakref
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from ..core import await_all, in_loop_thread, log_task_error, sync
from ..core.hold import Hold

__all__ = ["IdleTimer"]


class IdleTimer:
    """Fire ``on_idle()`` on ``node``'s loop whenever a partition of ``node.tracker`` may
    have gone idle.

    ``node`` is a ``Stream`` with a ``loop``, a ``clock``, a ``tracker`` (a
    :class:`~millstream.time.WatermarkTracker`, read anew each time) and a ``hold`` (the
    checkpoint hold or ``None``). The timer holds ``node`` weakly (and ``on_idle`` too when
    it is a method of an object): a waiting timer does not keep the node alive.

    ``on_idle()`` returns a list of awaitables (what downstream gave back). They are awaited
    in a background task; while they are, a checkpoint hold counts one element in hand
    (``hold.take()`` / ``hold.leave()``). While the hold is closed the timer waits until it
    opens before calling ``on_idle``. An error of ``on_idle`` is logged to ``logger`` as
    ``"<node>: <failure>"``; the timer re-arms either way.

    One timer is armed at a time: :meth:`arm` keeps a timer that fires before the new
    deadline (it re-arms for what is left when it fires). :meth:`cancel` makes any timer
    armed before it do nothing.

    Examples
    --------
    >>> import logging
    >>> from millstream import Stream
    >>> from millstream.core import ManualClock
    >>> from millstream.time import WatermarkTracker
    >>> clock = ManualClock()
    >>> node = Stream(clock=clock, ensure_io_loop=True)
    >>> node.tracker = WatermarkTracker(idle_timeout=5, clock=clock)
    >>> node.tracker.observe(10, 'a'); node.tracker.observe(3, 'b')
    >>> fired = []
    >>> def on_idle():
    ...     fired.append((clock.now(), node.tracker.watermark))
    ...     return []
    >>> timer = IdleTimer(node, on_idle, "idle failed", logging.getLogger("millstream.time"))
    >>> timer.arm()
    >>> clock.advance(5)   # both partitions silent for 5 s: idle
    >>> fired
    [(5.0, 10.0)]
    """

    def __init__(
        self,
        node: Any,
        on_idle: Callable[[], list[Any]],
        failure: str,
        logger: logging.Logger,
    ) -> None:
        self._node = weakref.ref(node)
        self._on_idle: Callable[[], Callable[[], list[Any]] | None]
        if inspect.ismethod(on_idle):
            self._on_idle = weakref.WeakMethod(on_idle)
        else:
            self._on_idle = lambda: on_idle
        self.failure = failure
        self.logger = logger
        self._handle: Any = None
        self._deadline: float | None = None
        self._token = 0
        self._background: set[asyncio.Future[Any]] = set()

    @property
    def deadline(self) -> float | None:
        """Clock time the armed timer fires at (``None``: none armed)."""
        return self._deadline

    def arm(self) -> None:
        """Arm the timer for the tracker's next idle deadline (on the loop's thread).

        Nothing to do when no partition will go idle, or when the armed timer fires
        first (it re-arms for what is left).
        """
        node = self._node()
        if node is None:
            return
        deadline = node.tracker.idle_deadline()
        if deadline is None:
            return
        if self._handle is not None and self._deadline is not None:
            if self._deadline <= deadline:
                return  # the timer fires first; it re-arms for what is left
            self.cancel()
        self._token += 1
        self._deadline = deadline
        clock = node.clock
        self._handle = clock.call_later(
            node.loop.asyncio_loop,
            deadline - clock.now(),
            _fired,
            weakref.ref(self),
            self._token,
        )

    def arm_from_any_thread(self) -> None:
        """:meth:`arm`, from any thread: blocks until the node's running loop did it."""
        node = self._node()
        if node is None:
            return
        loop = node.loop
        if in_loop_thread(loop) or not loop.asyncio_loop.is_running():
            self.arm()
            return

        async def arm() -> None:
            self.arm()

        sync(loop, arm)

    def cancel(self) -> None:
        """Cancel the armed timer: a timer armed before does nothing when it fires."""
        if self._handle is not None:
            self._handle.cancel()
        self._handle = None
        self._deadline = None
        self._token += 1

    def fire(self) -> None:
        """On the loop: call ``on_idle()`` now (or once the node's hold opens), then
        re-arm."""
        node = self._node()
        on_idle = self._on_idle()
        if node is None or on_idle is None:
            return
        hold = node.hold
        if hold is not None and hold.closed:
            self._in_background(self._fire_when_open(hold))
            return
        try:
            pending = on_idle()
            if pending:
                if hold is not None:
                    hold.take()
                self._in_background(_absorbed(pending, hold))
        except Exception as e:
            self.logger.error("%s: %s", node, self.failure, exc_info=e)
        finally:
            self.arm()

    def _in_background(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        task.add_done_callback(log_task_error)

    async def _fire_when_open(self, hold: Hold) -> None:
        await hold.wait_open()
        self.fire()


def _fired(ref: weakref.ReferenceType[IdleTimer], token: int) -> None:
    """The clock's callback: fire the timer unless it was cancelled or re-armed since."""
    timer = ref()
    if timer is not None and timer._token == token:
        timer._handle = None
        timer._deadline = None
        timer.fire()


async def _absorbed(pending: list[Awaitable[Any]], hold: Hold | None) -> None:
    """Await what ``on_idle`` returned; then one element less is in ``hold``'s hand."""
    try:
        await await_all(pending)
    finally:
        if hold is not None:
            hold.leave()
