"""Waiting for what a push returned.

``upstream._emit(x)`` returns the awaitables its downstream nodes gave back (an async
sink's write, a buffer that is full...): the backpressure signal. The helpers here are
how every package waits for them: :func:`await_all` (the awaitables of one push),
:func:`release_refs_after` (wait, then let go of an element's refs), and, for pushes
made from outside the graph, :func:`run_awaitables`, :func:`run_on_graph_loop` and
:func:`push_from_outside`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

from .._utils import annotate_error
from .loop import get_io_loop, in_loop_thread, log_task_error, sync
from .refs import Metadata, release_refs

__all__ = [
    "DONE",
    "await_all",
    "push_from_outside",
    "release_refs_after",
    "run_awaitables",
    "run_on_graph_loop",
]


class _Done:
    """An already-finished awaitable (what ``emit`` returns when nothing is pending).

    It can be awaited any number of times and given to ``asyncio.wait_for``,
    ``gather``, ``shield`` and tornado's ``gen.with_timeout`` (which wrap it in a task).
    """

    __slots__ = ()

    def __await__(self) -> Iterator[None]:
        return iter(())


DONE = _Done()
"""What ``emit`` returns when nothing is pending: already finished, awaitable any number
of times."""


async def await_all(awaitables: list[Any]) -> None:
    """Wait for every awaitable a push returned (what ``_emit`` gives back).

    >>> import asyncio
    >>> asyncio.run(await_all([asyncio.sleep(0), asyncio.sleep(0)]))
    """
    if len(awaitables) == 1:
        await awaitables[0]
    else:
        await asyncio.gather(*awaitables)


_NO_NODE: Any = object()


async def release_refs_after(
    pending: Any, metadata: Metadata | None, node: Any = None, func: Any = _NO_NODE, x: Any = None
) -> Any:
    """Await ``pending`` (an awaitable, or a list of them as ``_emit`` returns), then release
    the refs in ``metadata`` once; return what the awaitable gave.

    This is how a node holds an element until the work it started on it is done (an async
    sink's write, downstream's backpressure). If the wait raises, the refs are released
    marked failed and the error is raised again, annotated with ``node``, ``func`` (by
    default ``node.func``) and ``x`` when a node is given.

    >>> import asyncio
    >>> from millstream.core.refs import RefCounter
    >>> ref = RefCounter(initial=1, cb=lambda: print('released'))
    >>> asyncio.run(release_refs_after([asyncio.sleep(0)], [{'ref': ref}]))
    released
    """
    try:
        result = await (await_all(pending) if type(pending) is list else pending)
    except BaseException as e:
        if node is not None and isinstance(e, Exception):
            annotate_error(e, node, getattr(node, "func", None) if func is _NO_NODE else func, x)
        release_refs(metadata, error=e)
        raise
    release_refs(metadata)
    return result


_background_tasks: set[asyncio.Future[Any]] = set()


def run_on_graph_loop(loop: Any, push: Callable[[], list[Any] | None]) -> bool:
    """From another thread than the graph's running ``loop``: run ``push()`` (a node's own
    emissions) on that loop, wait for the awaitables it returns, and return True.
    Return False, without calling ``push``, when the caller must run it itself (it is on
    the loop's thread, or no loop is running)."""
    if loop is None or in_loop_thread(loop):
        return False
    asyncio_loop = getattr(loop, "asyncio_loop", None)
    if asyncio_loop is None or not asyncio_loop.is_running():
        return False

    async def push_on_loop() -> None:
        pending = push()
        if pending:
            await await_all(pending)

    sync(loop, push_on_loop)
    return True


def push_from_outside(loop: Any, push: Callable[[], list[Any] | None]) -> Any:
    """Run ``push()`` (a node's own emissions, e.g. ``flush()``) for a call from outside
    the graph, and take care of the awaitables it returns.

    Called from another thread than the graph's running loop, ``push`` runs on that
    loop and this blocks until downstream is done (returns ``None``). Otherwise ``push``
    runs here: on a thread with a running event loop its awaitables become one task,
    returned for the caller to await; elsewhere they run to completion first.
    """
    if run_on_graph_loop(loop, push):
        return None
    pending = push()
    if not pending:
        return None
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        run_awaitables(pending)
        return None
    return asyncio.ensure_future(await_all(pending))


def run_awaitables(awaitables: list[Any]) -> None:
    """Make awaitables returned by a loop-less graph run (Streamz silently drops them).

    On a thread with a running asyncio loop they are scheduled as tasks; otherwise they
    run to completion on the background loop before this returns.
    """
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is not None:
        for a in awaitables:
            task = asyncio.ensure_future(a)
            _background_tasks.add(task)
            task.add_done_callback(_background_tasks.discard)
            task.add_done_callback(log_task_error)
        return

    async def run() -> None:
        await await_all(awaitables)

    sync(get_io_loop(False), run)
