"""Event loops: one asyncio loop per graph, behind a small IOLoop-like facade.

Streamz exposes ``node.loop`` as a tornado ``IOLoop``, and node authors call
``self.loop.add_callback(...)``. millstream uses asyncio only; :class:`EventLoop`
offers the same few methods (``add_callback``, ``call_later``, ``time``,
``run_sync``, ``asyncio_loop``) over an asyncio loop. Any object with those
methods (for instance a Dask client's tornado loop) can be used as ``loop=``.

Which loop a graph gets (:func:`get_io_loop`):

1. ``asynchronous=True``: the asyncio loop running in the calling thread;
2. otherwise one process-wide daemon thread running an asyncio loop, started lazily.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import threading
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = [
    "EventLoop",
    "get_io_loop",
    "in_loop_thread",
    "log_task_error",
    "sync",
    "thread_state",
]

#: Per-thread flags (``asynchronous``: we are inside a callback of a graph's loop).
thread_state = threading.local()

_wrappers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, EventLoop] = (
    weakref.WeakKeyDictionary()
)
_io_loops: list[EventLoop] = []
_io_loops_lock = threading.Lock()


def log_task_error(task: asyncio.Future[Any]) -> None:
    """Done-callback for a background task: log its exception to ``millstream.core``."""
    if task.cancelled():
        return
    error = task.exception()
    if error is not None:
        import logging

        logging.getLogger("millstream.core").error(
            "error in a background callback", exc_info=(type(error), error, error.__traceback__)
        )


class EventLoop:
    """A tornado-IOLoop-like facade over an asyncio event loop.

    Examples
    --------
    >>> import asyncio
    >>> loop = EventLoop.wrap(asyncio.new_event_loop())
    >>> loop.run_sync(lambda: asyncio.sleep(0, result=42))
    42
    >>> EventLoop.wrap(loop.asyncio_loop) is loop
    True
    >>> loop.close()
    """

    def __init__(self, asyncio_loop: asyncio.AbstractEventLoop):
        self.asyncio_loop = asyncio_loop
        self._thread: threading.Thread | None = None

    @classmethod
    def wrap(cls, asyncio_loop: asyncio.AbstractEventLoop) -> EventLoop:
        """The one facade for ``asyncio_loop`` (the same object on every call)."""
        wrapper = _wrappers.get(asyncio_loop)
        if wrapper is None:
            wrapper = _wrappers[asyncio_loop] = cls(asyncio_loop)
        return wrapper

    @classmethod
    def current(cls) -> EventLoop:
        """The facade of the loop running in this thread (or this thread's loop)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            with contextlib.suppress(RuntimeError):
                policy_loop = asyncio.get_event_loop_policy().get_event_loop()
                return cls.wrap(policy_loop)
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
        return cls.wrap(loop)

    # -- tornado IOLoop-compatible surface ---------------------------------------------
    def time(self) -> float:
        """The loop's clock (monotonic seconds)."""
        return self.asyncio_loop.time()

    def add_callback(self, callback: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Run ``callback(*args, **kwargs)`` soon on the loop; safe from any thread.

        A coroutine function, or a callback returning an awaitable, runs as a task.
        """

        def run() -> None:
            result = callback(*args, **kwargs)
            if inspect.isawaitable(result):
                task = asyncio.ensure_future(result)
                task.add_done_callback(log_task_error)

        if self.in_thread():
            self.asyncio_loop.call_soon(run)
        else:
            self.asyncio_loop.call_soon_threadsafe(run)

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> Any:
        """Run ``callback(*args)`` after ``delay`` seconds; returns a cancellable handle."""
        if self.in_thread():
            return self.asyncio_loop.call_later(delay, callback, *args)
        result: list[Any] = []
        done = threading.Event()

        def schedule() -> None:
            result.append(self.asyncio_loop.call_later(delay, callback, *args))
            done.set()

        self.asyncio_loop.call_soon_threadsafe(schedule)
        done.wait()
        return result[0]

    def remove_timeout(self, handle: Any) -> None:
        """Cancel a handle returned by :meth:`call_later`."""
        handle.cancel()

    def run_sync(self, func: Callable[[], Any], timeout: float | None = None) -> Any:
        """Run ``func()`` (a coroutine function) to completion and return its result.

        From another thread when the loop runs in a thread of its own, otherwise by
        running the loop in this thread.
        """
        if self.asyncio_loop.is_running():
            return sync(self, func, callback_timeout=timeout)

        async def bounded() -> Any:
            result = func()
            if inspect.isawaitable(result):
                result = await asyncio.wait_for(result, timeout) if timeout else await result
            return result

        return self.asyncio_loop.run_until_complete(bounded())

    def in_thread(self) -> bool:
        """True when called from the thread running this loop."""
        try:
            return asyncio.get_running_loop() is self.asyncio_loop
        except RuntimeError:
            return False

    def close(self) -> None:
        """Stop a background thread (if this facade owns one) and close the loop."""
        if self._thread is not None:
            self.asyncio_loop.call_soon_threadsafe(self.asyncio_loop.stop)
            self._thread.join(timeout=5)
            self._thread = None
        if not self.asyncio_loop.is_running():
            self.asyncio_loop.close()

    def __repr__(self) -> str:
        where = f" thread={self._thread.name}" if self._thread else ""
        return f"<EventLoop{where} running={self.asyncio_loop.is_running()}>"


def _start_background_loop() -> EventLoop:
    asyncio_loop = asyncio.new_event_loop()
    ready = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(asyncio_loop)
        asyncio_loop.call_soon(ready.set)
        asyncio_loop.run_forever()

    thread = threading.Thread(target=run, name="millstream-loop", daemon=True)
    loop = EventLoop.wrap(asyncio_loop)
    loop._thread = thread
    thread.start()
    ready.wait()
    return loop


def get_io_loop(asynchronous: bool | None = None) -> EventLoop:
    """The loop a graph uses: this thread's loop if ``asynchronous``, else the background one."""
    if asynchronous:
        return EventLoop.current()
    with _io_loops_lock:
        live = [lp for lp in _io_loops if lp._thread is not None and lp._thread.is_alive()]
        if live:
            return live[0]
        _io_loops.clear()
        loop = _start_background_loop()
        _io_loops.append(loop)
        return loop


def in_loop_thread(loop: Any) -> bool:
    """True when the caller runs inside ``loop``'s thread."""
    asyncio_loop = getattr(loop, "asyncio_loop", loop)
    try:
        return asyncio.get_running_loop() is asyncio_loop
    except RuntimeError:
        return False


def sync(
    loop: Any,
    func: Callable[..., Awaitable[Any]],
    *args: Any,
    callback_timeout: float | None = None,
    **kwargs: Any,
) -> Any:
    """Run coroutine function ``func`` on ``loop`` (in another thread) and block for its result.

    Raises ``RuntimeError`` instead of deadlocking when called from the loop's own thread.
    """
    if in_loop_thread(loop):
        raise RuntimeError(
            "sync() called from the event loop's own thread: await the coroutine instead"
        )
    asyncio_loop = getattr(loop, "asyncio_loop", loop)

    async def call() -> Any:
        thread_state.asynchronous = True
        try:
            return await func(*args, **kwargs)
        finally:
            thread_state.asynchronous = False

    future = asyncio.run_coroutine_threadsafe(call(), asyncio_loop)
    try:
        return future.result(callback_timeout)
    except TimeoutError:
        future.cancel()
        raise
