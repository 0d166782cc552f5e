"""``map_async``: call a coroutine function on each element, several at a time, and emit
the results in input order.

Like the nodes of :mod:`.timing`, it runs on the graph's event loop and takes part in
checkpoints (``emits_from_task``): while held it emits no finished call, and the result
it is emitting counts as in hand until downstream has absorbed it.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from typing import Any

from .._utils import annotate_error, check_callable, check_positive_int, short_repr
from ..core.loop import in_loop_thread, sync
from ..core.refs import Metadata, release_refs, retain_refs
from ..core.state import SEQUENCE, bad_state, expect_fields
from ..core.stream import Stream
from .timing import _deliver

__all__ = ["map_async"]

logger = logging.getLogger("millstream.operators")


def _resolve(future: asyncio.Future[Any] | None) -> None:
    if future is not None and not future.done():
        future.set_result(None)


class _Job:
    __slots__ = ("future", "metadata", "x")

    def __init__(self, x: Any, metadata: Metadata | None, future: asyncio.Future[Any]):
        self.x = x
        self.metadata = metadata
        self.future = future


@Stream.register_api()
class map_async(Stream):
    """Apply an async function to every element, ``parallelism`` at a time, in input order.

    ``func(x, *args, **kwargs)`` is called when a slot is free (at most ``parallelism``
    elements are between the call and the end of their emission downstream); results are
    emitted in input order. ``update`` returns an awaitable that completes when the
    element's call has started, so ``await source.emit(x)`` waits for a slot. Keyword
    arguments other than ``stream_name`` go to ``func``.

    If ``func`` raises (or downstream fails on the result), the error is logged and the
    element dropped, its refs released marked failed; with ``stop_on_exception=True`` the
    node then stops (and the sources feeding it): results of calls already started are
    kept until ``start()`` (or a new element) restarts it.

    Examples
    --------
    >>> import asyncio
    >>> async def mult(x, factor=1):
    ...     await asyncio.sleep(0)
    ...     return factor * x
    >>> async def run():
    ...     source = Stream(asynchronous=True)
    ...     L = source.map_async(mult, factor=2, parallelism=2).sink_to_list()
    ...     for i in range(5):
    ...         await source.emit(i)
    ...     while len(L) < 5:
    ...         await asyncio.sleep(0.001)
    ...     return L
    >>> asyncio.run(run())
    [0, 2, 4, 6, 8]
    """

    #: results are emitted by a task: a checkpoint holds it (pending inputs are in the snapshot)
    emits_from_task = True

    def __init__(
        self,
        upstream: Stream,
        func: Callable[..., Any],
        *args: Any,
        parallelism: int = 1,
        stop_on_exception: bool = False,
        **kwargs: Any,
    ):
        check_callable("map_async", "func", func)
        self.parallelism = check_positive_int("map_async", "parallelism", parallelism)
        self.func = func
        self.args = args
        self.stop_on_exception = stop_on_exception
        stream_name = kwargs.pop("stream_name", None)
        self.kwargs = kwargs
        self.stopped = False
        self.work_task: asyncio.Task[Any] | None = None
        self._jobs: deque[_Job] = deque()  # started, not yet emitted, in input order
        self._backlog: deque[tuple[Any, Metadata | None, asyncio.Future[Any]]] = deque()
        self._in_flight = 0  # started and not finished downstream
        self._generation = 0
        self._worker_running = False
        Stream.__init__(self, upstream, stream_name=stream_name, ensure_io_loop=True)

    def is_idle(self) -> bool:
        """True when no call is waiting, running, or being emitted."""
        return not self._in_flight and not self._backlog

    def extra_metrics(self) -> dict[str, Any]:
        """``backlog``: the calls running or being emitted and the elements waiting for a
        slot."""
        return {"backlog": self._in_flight + len(self._backlog)}

    async def until_idle(self) -> None:
        """Wait until :meth:`is_idle` (the end of input waits so: nothing is overtaken)."""
        while not self.is_idle():
            task = self.work_task
            if task is None or task.done():
                await asyncio.sleep(0.001)  # calls running, their emitter not started yet
            else:
                await asyncio.wait([task])

    def update(self, x: Any, who: Stream | None = None, metadata: Metadata | None = None) -> Any:
        retain_refs(metadata)
        self.stopped = False  # as in Streamz, a new element restarts a stopped node
        if self._in_flight < self.parallelism and not self._backlog:
            self._call(x, metadata)
            result = None
        else:
            result = self.loop.asyncio_loop.create_future()
            self._backlog.append((x, metadata, result))
            self._fill()
        self._ensure_worker()
        return result

    def _call(self, x: Any, metadata: Metadata | None) -> None:
        loop = self.loop.asyncio_loop
        try:
            result = self.func(x, *self.args, **self.kwargs)
            if hasattr(result, "__await__"):
                future: asyncio.Future[Any] = asyncio.ensure_future(result, loop=loop)
            else:
                future = loop.create_future()
                future.set_result(result)
        except Exception as e:
            future = loop.create_future()
            future.set_exception(e)
        self._in_flight += 1
        self._jobs.append(_Job(x, metadata, future))

    def _fill(self) -> None:
        """Start waiting elements while slots are free."""
        while self._backlog and self._in_flight < self.parallelism:
            x, metadata, started = self._backlog.popleft()
            self._call(x, metadata)
            _resolve(started)

    def _ensure_worker(self) -> None:
        if not self._worker_running and not self.stopped and self._jobs:
            self._worker_running = True
            self.loop.add_callback(self._work, self._generation)

    async def _work(self, generation: int) -> None:
        self.work_task = asyncio.current_task()
        try:
            while self._jobs and not self.stopped and generation == self._generation:
                job = self._jobs[0]
                try:
                    result = await job.future
                except asyncio.CancelledError:
                    if not job.future.cancelled():
                        raise  # this worker is being cancelled
                    error: BaseException | None = asyncio.CancelledError(
                        f"{self}: the call on {short_repr(job.x)} was cancelled"
                    )
                except Exception as e:
                    error = e
                else:
                    error = None
                if generation != self._generation:
                    return  # stopped (and maybe restarted) meanwhile: the new worker takes over
                hold = self.hold
                if hold is not None and hold.closed:  # a checkpoint: the job is in the snapshot
                    await hold.wait_open()
                    continue
                self._jobs.popleft()
                if error is not None:
                    if isinstance(error, Exception):
                        annotate_error(error, self, self.func, job.x)
                    logger.error(
                        "%s: %s raised on %s; element dropped",
                        self,
                        getattr(self.func, "__name__", "func"),
                        short_repr(job.x),
                        exc_info=error,
                    )
                    release_refs(job.metadata, error=error)
                else:
                    error = await _deliver(self, result, job.metadata, hold)
                self._in_flight -= 1
                if error is not None and self.stop_on_exception:
                    self.stop()  # waiting elements stay waiting until restarted
                    return
                self._fill()
        finally:
            if generation == self._generation:
                self._worker_running = False
                self.work_task = None

    def stop(self) -> None:
        """Stop emitting results (calls already started finish) and stop the sources upstream."""
        if not self.stopped:
            self.stopped = True
            self._generation += 1
            self._worker_running = False
            self.work_task = None
        super().stop()

    def start(self) -> None:
        """Resume emitting results after ``stop()``, and start the sources upstream."""
        self.stopped = False
        self.loop.add_callback(self._resume)
        super().start()

    def _resume(self) -> None:
        self._fill()
        self._ensure_worker()

    def snapshot(self) -> dict[str, Any]:
        """``{'pending': [inputs whose results have not been emitted]}`` in input order."""
        return {"pending": [j.x for j in self._jobs] + [x for x, _, _ in self._backlog]}

    def restore(self, state: dict[str, Any]) -> None:
        """Call ``func`` again on the pending inputs of a snapshot (on the loop), in a node
        with no call in progress."""
        pending = list(expect_fields(self, state, {"pending": SEQUENCE})["pending"])
        if self._jobs or self._backlog:
            raise bad_state(self, state, "restore() needs a node with no call in progress")

        async def resubmit() -> None:
            for x in pending:
                self.update(x)

        asyncio_loop = self.loop.asyncio_loop
        if in_loop_thread(self.loop) or not asyncio_loop.is_running():
            # now, so that the restored inputs come before any new element
            for x in pending:
                self.update(x)
        else:
            sync(self.loop, resubmit)
