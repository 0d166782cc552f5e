"""The source base classes.

:class:`Source` is a node with no upstream that produces elements on the loop.
:class:`ManagedSource` is the base of every source that owns resources (files, sockets,
child processes, threads, Kafka consumers): it adds to ``Source`` what Streamz lacks:

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
import time
from collections.abc import Awaitable, Callable
from typing import Any

from ..core.awaitables import await_all
from ..core.loop import in_loop_thread
from ..core.sampling import start_sampling
from ..core.stream import Stream

__all__ = ["STOPPED", "ManagedSource", "Source", "on_end_of_input"]

logger = logging.getLogger("millstream.sources")


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

    #: Besides :attr:`Stream.extension_points`, what a source in another package may use:
    #: ``_run`` (one polling cycle, to override), ``_emit_and_wait`` (emit with
    #: backpressure), and for sources that emit through ``_emit``/``_emit_batch`` and
    #: await what it returned themselves: ``_absorb(pending)`` (await it, counting the
    #: element as in hand for a checkpoint) and ``_wait_if_held()`` (call before taking
    #: new input; returns at once unless a checkpoint holds the source).
    extension_points = (
        *Stream.extension_points,
        "_run",
        "_emit_and_wait",
        "_absorb",
        "_wait_if_held",
    )
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
            start_sampling()  # processing time per node (millstream.core.sampling)
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
                await await_all(pending)

    async def _supervised_run(self) -> None:
        try:
            await self.run()
            if self.exhausted:
                await self._notify_end()
                # a bounded source with end listeners is stopped only now, so that whoever
                # waits for ``stopped`` sees what the end of input set off (the last windows)
                self.stopped = True
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
        """Emit ``x`` and wait until downstream has absorbed it (backpressure); while a
        checkpoint holds the source, wait for it first."""
        hold = self.hold
        if hold is None:
            pending = self._emit(x, metadata=metadata)
            if pending:
                await await_all(pending)
            return
        if hold.closed:
            await hold.wait_open()
        hold.count()
        pending = self._emit(x, metadata=metadata)
        if pending:
            await hold.carry(pending)

    async def _absorb(self, pending: list[Any]) -> None:
        """Await what an emit returned (the element counts as in hand for a checkpoint)."""
        hold = self.hold
        if hold is None:
            await await_all(pending)
        else:
            await hold.carry(pending)

    async def _wait_if_held(self) -> None:
        """Return once no checkpoint holds this source (at once when none does)."""
        hold = self.hold
        if hold is not None and hold.closed:
            await hold.wait_open()


def on_end_of_input(node: Stream, listener: Callable[[], Any]) -> bool:
    """Call ``listener()`` on the loop once every source feeding ``node`` has emitted all
    of its input (bounded sources such as ``from_iterable``; see
    :meth:`Source.add_end_listener`: the awaitables it returns are awaited by the last
    source to end), and the nodes on the way that hold elements in a task of their own
    (``buffer``, ``delay``, ``map_async``: those with ``until_idle()``) have passed them
    all on.

    Returns False, registering nothing, when something else than a :class:`Source` feeds
    ``node`` (a plain ``Stream()``: more may be emitted at any time).

    >>> a, b = Stream.from_iterable([1]), Stream.from_iterable([2])
    >>> ended = []
    >>> on_end_of_input(a.union(b), lambda: ended.append(True))
    True
    >>> on_end_of_input(Stream().map(str), lambda: ended.append(True))
    False
    """
    roots: list[Stream] = []
    seen: set[int] = set()
    todo = list(node.upstreams)
    while todo:
        n = todo.pop()
        if n is None or id(n) in seen:
            continue
        seen.add(id(n))
        ups = [u for u in n.upstreams if u is not None]
        if ups:
            todo.extend(ups)
        else:
            roots.append(n)
    if not roots or not all(isinstance(r, Source) for r in roots):
        return False
    waiting = {id(r) for r in roots}
    # nodes on the way that hold elements in a task of their own (buffer, delay,
    # map_async): the end of input waits until they are idle, so it overtakes nothing
    queues = [n for n in _between(node, roots) if callable(getattr(n, "until_idle", None))]

    def ended(source_id: int) -> Any:
        waiting.discard(source_id)
        if waiting:
            return None
        if not queues:
            return listener()
        return [asyncio.ensure_future(_when_idle(queues, listener))]

    for root in roots:
        root.add_end_listener(functools.partial(ended, id(root)))  # type: ignore[attr-defined]
    return True


#: Returned by :meth:`ManagedSource._interruptible` when ``stop()`` cut the wait short.
STOPPED: Any = type("_Stopped", (), {"__repr__": lambda self: "STOPPED"})()


class ManagedSource(Source):
    """A source whose ``run()`` owns resources that ``stop()`` must release.

    Subclasses implement ``run()`` as ``setup; self._set_ready(); loop; finally release``
    and wrap every open-ended wait in ``await self._interruptible(...)``, which returns
    :data:`STOPPED` when ``stop()`` interrupts it. Waits that must not be cut (an emit,
    a read in a thread whose data would be lost) are simply awaited: ``stop()`` then takes
    effect after them.
    """

    #: ``start()`` from another thread waits for ``ready`` (sources with a setup step).
    _wait_ready_on_start = False
    #: How long ``start()`` waits for ``ready``.
    _start_timeout = 10.0
    #: How long ``stop()`` waits for ``run()`` to release what it holds, after the drain
    #: (see :meth:`_drain_bound`).
    _close_timeout = 10.0

    def __init__(self, **kwargs: Any):
        self.ready = threading.Event()
        self._waiting: asyncio.Task[Any] | None = None
        self._interrupted = False
        #: when (``time.monotonic()``) the drain asked for by the first ``stop()`` of a run
        #: runs out (sources with a :meth:`_drain_bound`)
        self._stop_deadline: float | None = None
        self._cut_timer: asyncio.TimerHandle | None = None
        self._cut = False  # the end of the drain cancelled the run (_arm_drain_cut)
        self._was_ready = False  # the run of the last start() got ready
        super().__init__(**kwargs)

    @property
    def _stop_timeout(self) -> float:
        """How long ``stop()`` waits for ``run()`` to end: the drain bound, then the close."""
        return self._drain_bound() + self._close_timeout

    def _drain_bound(self) -> float:
        """Seconds ``run()`` may spend, after ``stop()``, finishing the work in hand (a Kafka
        source's ``drain_timeout``); ``stop()`` never gives up before it. 0 by default."""
        return 0.0

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> None:
        """Start; from outside the loop, wait until ready and raise a setup error."""
        if not self.stopped:
            return
        self.ready.clear()
        self._stop_deadline, self._cut = None, False
        self._was_ready = False
        waits = self._wait_ready_on_start and self._can_block()
        self._error_has_caller = waits
        super().start()
        if not waits:
            return
        if not self.ready.wait(self._start_timeout):
            self._error_has_caller = False
            logger.warning("%s is not ready after %s s; still trying", self, self._start_timeout)
            return
        if self.error is not None and not self._was_ready:
            raise self.error  # a setup error (one after ready is logged: the run had begun)

    def stop(self) -> None:
        """Stop the source and release what it holds (from outside the loop: before returning)."""
        if not self.stopped:  # a drain is counted from the first stop() of a run
            self._stop_deadline = time.monotonic() + self._drain_bound()
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
            self._stop_timed_out()

    def _stop_timed_out(self) -> None:
        """``stop()`` from outside the loop waited ``_stop_timeout`` and ``run()`` has not
        ended (the loop is blocked, or a release hangs): say so. Sources that can release
        what they hold from the caller's thread do it here."""
        logger.warning(
            "%s did not stop within %s s (is the event loop blocked by a slow synchronous "
            "node?); it stops after the work in progress",
            self,
            self._stop_timeout,
        )

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
        self._was_ready = True
        self.ready.set()

    async def _supervised_run(self) -> None:
        try:
            await super()._supervised_run()
        except asyncio.CancelledError:
            # cancelled by the end of the drain alone (not also from elsewhere): the run
            # ended as a stop() ends it
            task = asyncio.current_task()
            if not self._cut or getattr(task, "cancelling", lambda: 1)() > 1:
                raise
            getattr(task, "uncancel", lambda: 0)()  # Python 3.11+
        finally:
            self.stopped = True
            self.ready.set()  # wakes a start() waiting for a source that failed or ended

    # -- a drain bounded in time, cut where the graph holds the run up ------------------
    def _arm_drain_cut(self) -> None:
        """On the loop (a source's ``_request_stop`` calls it): when the drain runs out
        (:meth:`_drain_bound` seconds after the first ``stop()``) and an element still
        holds the run up in the graph (an awaited slow sink; :meth:`_held_up`), cancel the
        run there: it drains no more, releases what it holds and ends as ``stop()`` ends it
        (what was in flight is not acknowledged, so it comes again)."""
        if self._stop_deadline is None:
            self._stop_deadline = time.monotonic() + self._drain_bound()
        task = self.work_task
        if self._cut_timer is None and task is not None and not task.done():
            self._cut_timer = asyncio.get_running_loop().call_later(
                max(0.0, self._stop_deadline - time.monotonic()), self._cut_if_held_up, task
            )

    def _drain_deadline(self) -> float:
        """When (``time.monotonic()``) the drain of the ending run runs out: the one the
        first ``stop()`` set, else (the run ended by itself, an error) the same bound
        from now."""
        if self._stop_deadline is not None:
            return self._stop_deadline
        return time.monotonic() + self._drain_bound()

    def _held_up(self) -> bool:
        """At the end of the drain: whether the run is still in its loop, held up in the
        graph (not yet draining or closing, nor still connecting: those are bounded by
        the deadline themselves). Sources that :meth:`_arm_drain_cut` say."""
        return True

    def _cut_if_held_up(self, task: asyncio.Task[Any]) -> None:
        self._cut_timer = None
        if task is not self.work_task or task.done() or not self.stopped:
            return  # ended, or started again meanwhile
        if not self._held_up():
            return
        logger.warning(
            "%s: stop(): the graph still holds up the source after drain_timeout=%g s; "
            "cancelling the element in progress (its input is not acknowledged)",
            self,
            self._drain_bound(),
        )
        self._cut = True
        task.cancel()

    def _disarm_drain_cut(self) -> None:
        """At the end of a run: drop the timer of :meth:`_arm_drain_cut`."""
        timer, self._cut_timer = self._cut_timer, None
        if timer is not None:
            timer.cancel()

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


def _between(node: Stream, roots: list[Stream]) -> list[Stream]:
    """The nodes upstream of ``node`` (excluding it and the roots)."""
    found: dict[int, Stream] = {}
    todo = [u for u in node.upstreams if u is not None]
    while todo:
        n = todo.pop()
        if id(n) in found:
            continue
        found[id(n)] = n
        todo.extend(u for u in n.upstreams if u is not None)
    root_ids = {id(r) for r in roots}
    return [n for key, n in found.items() if key not in root_ids]


async def _when_idle(queues: list[Any], listener: Callable[[], Any]) -> None:
    """Wait until every node of ``queues`` is idle at once, then call ``listener()`` and
    await what it returns."""
    while True:
        busy = [q for q in queues if not q.is_idle()]
        if not busy:
            break
        for q in busy:
            await q.until_idle()
    pending = listener()
    if pending:
        await await_all(pending)
