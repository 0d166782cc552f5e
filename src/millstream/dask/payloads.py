"""Putting an element on the cluster so that losing a worker loses nothing.

``client.scatter`` stores data on a worker with no way to make it again: when that worker
dies, the scheduler forgets the key, and every task that needs it is cancelled
(``FutureCancelledError: ... cancelled for reason: already forgotten``). In a stream, the
elements whose scattered copy was on the dead worker are then lost.

:func:`submit_element` puts the element on the cluster as a task that loads it
(``client.submit(deserialize_bytes, serialize_bytes(x), key=..., pure=False)``). The
element travels the way ``client.scatter`` sends it by default (client -> scheduler -> a
worker) and is serialized the same way (dask's serializers), but the scheduler keeps the
bytes in the task's definition for as long as the future is held, so when a worker dies
the scheduler runs the task again on another worker, then the tasks that depend on it:
the stream's output stays complete, in order, with nothing to do in the graph.

Why bytes and not ``client.submit(identity, x)``: task arguments are unpickled by the
worker's connection to the scheduler, and an argument that fails to load there (its class
is not importable on the workers...) breaks that connection and closes the worker, then
the next one the task is retried on. Loading the bytes inside the task makes that an
ordinary task error, raised where the element is used; the scheduler never unpickles the
element either.

Costs: one copy of each element in flight on the scheduler (released with the future),
and distributed's "large graph" warning for an element over
``distributed.admin.large-graph-warning-threshold`` (10 MB by default). Futures inside an
element are stored as they are, not replaced by their values. The task's function is
distributed's own, so workers need nothing from millstream to hold elements.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import TYPE_CHECKING, Any

from ._bridge import gather_result

if TYPE_CHECKING:
    from distributed import Client, Future

__all__ = ["element_payload", "scatter_element", "submit_element", "submit_payload"]


def element_payload(x: Any) -> bytes:
    """``x`` serialized with dask's serializers, as :func:`submit_element` sends it.

    A ``TypeError`` (or the serializer's own error) if ``x`` cannot be serialized.

    >>> from distributed.protocol import deserialize_bytes
    >>> deserialize_bytes(element_payload([1, 'a']))
    [1, 'a']
    """
    from distributed.protocol import serialize_bytes

    # on_error="raise": not an error message for the worker to load as the element
    return serialize_bytes(x, on_error="raise")


def submit_payload(client: Client, payload: bytes, name: str, **submit_kwargs: Any) -> Future:
    """Put an element serialized by :func:`element_payload` on the cluster as a task.

    The key is ``'<name>-<uuid>'`` (``name``: the element's type name). Returns at once.
    """
    from distributed.protocol import deserialize_bytes

    return client.submit(
        deserialize_bytes,
        payload,
        key=f"{name}-{uuid.uuid4().hex}",
        pure=False,
        **submit_kwargs,
    )


def submit_element(client: Client, x: Any, **submit_kwargs: Any) -> Future:
    """Start putting ``x`` on the cluster as a recomputable task; return its future at once.

    The key is ``'<type name>-<uuid>'``, as ``client.scatter(..., hash=False)`` names it,
    so equal elements get distinct futures. ``x`` is serialized here (a ``TypeError`` if
    it cannot be) and loaded by the task; ``submit_kwargs`` go to ``client.submit``
    (``workers``, ``allow_other_workers``, ``priority``...). Nothing blocks: call it from
    any thread.

    Examples
    --------
    >>> future = submit_element(client, {'a': 1})
    >>> future.key.startswith('dict-'), future.result()
    (True, {'a': 1})
    """
    return submit_payload(client, element_payload(x), type(x).__name__, **submit_kwargs)


async def scatter_element(client: Client, x: Any, **submit_kwargs: Any) -> Future:
    """``submit_element(client, x)``, awaited until ``x`` is held by a worker.

    Awaitable from any event loop (the graph's or the client's). If the element could not
    be stored (it failed to load on the worker, the future was cancelled...), the error
    is raised here, as ``client.scatter`` would raise it.

    Examples
    --------
    >>> import asyncio
    >>> future = asyncio.run(scatter_element(client, [1, 2]))
    >>> future.status, future.result()
    ('finished', [1, 2])
    """
    future = submit_element(client, x, **submit_kwargs)
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not done.done():
            done.set_result(None)

    def finished(_: Any) -> None:  # on a thread of distributed's callback executor
        with contextlib.suppress(RuntimeError):  # the loop closed: nobody is waiting
            loop.call_soon_threadsafe(wake)

    future.add_done_callback(finished)
    await done
    if future.status != "finished":
        # raises the task's error (or FutureCancelledError) with its traceback
        await gather_result(client, future)
    return future
