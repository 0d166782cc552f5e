"""How Dask nodes talk to a ``distributed.Client`` from millstream's event loop.

The client
    Every call uses :func:`get_client`, which is ``distributed.default_client()`` at call
    time (the most recently created client that is still open), as in Streamz.

Two loops
    A graph runs on a millstream loop (the background loop thread, or the caller's
    asyncio loop for ``asynchronous=True``). A synchronous ``Client`` runs its own loop in
    a thread of its own. :func:`on_client_loop` runs a client coroutine (``client.scatter(...,
    asynchronous=True)``, ``client.gather(..., asynchronous=True)``) on the client's loop
    and lets the graph's loop await it without blocking: directly when both are the same
    loop (``Client(asynchronous=True)`` inside the graph's loop, or ``loop=client.loop``),
    otherwise through ``asyncio.run_coroutine_threadsafe`` and ``asyncio.wrap_future``.
    ``client.submit`` is non-blocking and thread-safe, so it is called inline.

Where a failed task came from
    A node that submits a task records ``future -> (node, func)`` (:func:`record_origin`);
    when ``gather`` receives the task's exception, :func:`annotate_task_error` names the
    gather node, the node and the function that raised on the worker, and the task key.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

from .._utils import add_note, annotate_error, func_repr

if TYPE_CHECKING:
    from distributed import Client

__all__ = [
    "annotate_task_error",
    "client_asyncio_loop",
    "gather_result",
    "gathers_directly",
    "get_client",
    "on_client_loop",
    "record_origin",
    "start_task",
]

T = TypeVar("T")
"""Result type of a client coroutine."""

_origins: weakref.WeakKeyDictionary[Any, tuple[Any, Any]] = weakref.WeakKeyDictionary()


def get_client() -> Client:
    """The Dask client to use now: ``distributed.default_client()``."""
    from distributed import default_client

    return default_client()


_LOOPBACK = ("inproc://", "tcp://127.", "tcp://localhost:", "tcp://[::1]", "tls://127.")


def gathers_directly(client: Client) -> bool:
    """Whether results are fetched from the workers directly rather than through the scheduler.

    The client's ``direct_to_workers`` when it was set (``Client(direct_to_workers=...)``);
    otherwise True when the scheduler listens on this machine's loopback (a
    ``LocalCluster``, or ``dask scheduler`` + workers on this machine), whose workers the
    client can reach. Fetching directly saves the scheduler a hop and the CPU it costs.
    """
    direct = getattr(client, "direct_to_workers", None)
    if direct is not None:
        return bool(direct)
    address = getattr(getattr(client, "scheduler", None), "address", None) or ""
    return address.startswith(_LOOPBACK)


async def gather_result(client: Client, x: Any) -> Any:
    """``client.gather(x)``, awaited from the running loop (see :func:`gathers_directly`)."""
    direct = gathers_directly(client)
    return await on_client_loop(client, lambda: client.gather(x, asynchronous=True, direct=direct))


def client_asyncio_loop(client: Client) -> asyncio.AbstractEventLoop:
    """The asyncio loop under the client's (tornado) loop."""
    loop: asyncio.AbstractEventLoop = getattr(client.loop, "asyncio_loop")  # noqa: B009
    return loop


async def on_client_loop(client: Client, make: Callable[[], Awaitable[T]]) -> T:
    """Await ``make()`` (a client coroutine) on the client's loop, from the running loop."""
    client_loop = client_asyncio_loop(client)
    if client_loop is asyncio.get_running_loop():
        return await make()

    async def call() -> T:
        return await make()

    future = asyncio.run_coroutine_threadsafe(call(), client_loop)
    return await asyncio.wrap_future(future)


def start_task(coro: Coroutine[Any, Any, T]) -> Any:
    """Start ``coro`` as a task on the running loop (so it runs even if nobody awaits it).

    Outside a running loop the coroutine itself is returned, for the caller to await.
    """
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return coro
    return loop.create_task(coro)


def record_origin(future: Any, node: Any, func: Any) -> None:
    """Remember that ``node`` submitted ``future`` to run ``func`` (for error messages)."""
    try:
        _origins[future] = (node, func)
    except TypeError:  # not weak-referenceable: no origin in error notes
        pass


def annotate_task_error(error: BaseException, node: Any, x: Any) -> None:
    """Attach a note to an error raised while ``node`` gathered ``x``.

    If a failed future in ``x`` was submitted by a millstream node, the note names that
    node, its function and the task key; otherwise it is the usual note naming ``node``.
    """
    from distributed import futures_of

    failed = None
    try:
        for f in futures_of(x):
            if f.status == "error":
                failed = f
                break
    except Exception:  # a broken element must not hide the real error
        failed = None
    origin = _origins.get(failed) if failed is not None else None
    if origin is None:
        annotate_error(error, node, None, x)
        return
    source, func = origin
    calling = f" calling {func_repr(func)}" if func is not None else ""
    add_note(
        error,
        f"millstream: {node} received the error of Dask task {failed.key!r} "  # type: ignore[union-attr]
        f"submitted by {source}{calling}",
        unless="millstream:",
    )
