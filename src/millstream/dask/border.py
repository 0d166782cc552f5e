"""The border of a Dask graph: ``scatter`` sends elements to the cluster, ``gather`` brings
them back, and ``buffer`` in between lets several tasks run at once.

``scatter`` emits element futures (or, fused with a following ``map``/``starmap``, hands
the serialized element to that node, see :mod:`millstream.dask.payloads`); ``gather`` is a
plain :class:`~millstream.core.Stream` emitting local values in arrival order, fetching up
to ``n`` results at once behind a ``buffer(n)``.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import weakref
from collections import deque
from typing import Any

from .._utils import add_note, annotate_error, short_repr
from ..core import Metadata, Stream, await_all, release_refs, retain_refs
from ..core.hold import Hold
from ..operators.timing import buffer as core_buffer
from ..sources.base import on_end_of_input
from ._bridge import annotate_task_error, gather_result, get_client, record_origin, start_task
from ._state import element_values
from ._tasks import Batch, items_of
from .payloads import element_payload, submit_payload
from .stateless import map, starmap
from .stream import DaskStream

__all__ = ["buffer", "gather", "scatter"]

logger = logging.getLogger("millstream.dask")


async def _wait_for(previous: asyncio.Future[Any] | None) -> None:
    """Wait until the previous element's task is over (its outcome is its caller's)."""
    if previous is not None and not previous.done():
        await asyncio.wait({previous})


@DaskStream.register_api()
class scatter(DaskStream):
    """Send each element to the Dask cluster and emit its future.

    Each element is serialized on its own (dask's serializers, the whole element as one
    message: a dict stays one element, and equal values get distinct futures) and put
    on the cluster as a task that loads it, so the scheduler can run it again if the
    worker holding it dies: a worker lost mid-stream loses no element. When this node's
    only downstream is a Dask ``map`` or ``starmap``, the element travels inside that
    node's task instead (one task per element, not two; the futures emitted are
    ``map``'s). Futures are emitted at once, in arrival order; an element that cannot
    be serialized raises here, with a note naming this node. Also reachable as
    ``Stream.scatter()``.

    Examples
    --------
    >>> source = Stream()
    >>> futures = source.scatter().sink_to_list()
    >>> L = source.scatter().gather().sink_to_list()
    >>> source.emit({'a': 1})
    >>> type(futures[0]).__name__, futures[0].result(), L
    ('Future', {'a': 1}, [{'a': 1}])
    """

    def update(self, x: Any, who: Stream | None = None, metadata: Metadata | None = None) -> Any:
        try:
            client = get_client()
            payload = element_payload(x)
        except Exception as e:
            annotate_error(e, self, None, x)
            raise
        downstreams = self.downstreams
        if len(downstreams) == 1:
            for target in downstreams:
                if type(target) is map or type(target) is starmap:
                    return target._take_payload(client, payload, self.label, x, metadata)
        future = submit_payload(client, payload, type(x).__name__)
        record_origin(future, self, None)
        return self._emit(future, metadata=metadata)


@DaskStream.register_api()
class gather(Stream):
    """Wait for each future and emit its result as a local value.

    A plain :class:`Stream`: nodes after it run locally. A :class:`Batch` is emitted
    element by element, each with the batch's metadata. Collections of futures (the
    tuples of ``zip`` or ``partition``) come back as collections of values; local values
    pass through unchanged. Results are fetched as they come but emitted in arrival
    order; put a ``buffer(n)`` before ``gather`` to keep ``n`` tasks running at once
    (behind a buffer, up to ``n`` results are fetched at once, still emitted in order).
    Results come straight from the workers when the scheduler is on this machine or
    the client says so (``Client(direct_to_workers=True)``), else through the scheduler.

    The element's refs are held until its value has been emitted and downstream has
    finished. If the task failed, its exception is raised here, with a note naming
    this node and the node and function that raised it on the worker; the refs are
    released as failed.

    Examples
    --------
    >>> source = Stream()
    >>> L = source.scatter().map(str.upper).gather().map(len).sink_to_list()
    >>> source.emit('dask')
    >>> L
    [4]
    """

    _last: asyncio.Future[Any] | None = None
    #: results are fetched and emitted by tasks: a checkpoint waits until they are out
    emits_from_task = True

    def __init__(self, upstream: Stream | None = None, **kwargs: Any):
        kwargs["ensure_io_loop"] = True
        super().__init__(upstream, **kwargs)

    _ahead: deque[asyncio.Future[Any]] | None = None
    #: results being fetched or emitted (tasks of :meth:`_gather` not finished)
    _fetching = 0

    def extra_metrics(self) -> dict[str, Any]:
        """``backlog``: the futures whose results are being waited for, fetched or emitted."""
        return {"backlog": self._fetching}

    def update(self, x: Any, who: Stream | None = None, metadata: Metadata | None = None) -> Any:
        retain_refs(metadata)
        task = start_task(self._gather(x, metadata, self._last))
        if not isinstance(task, asyncio.Future):
            return task
        self._last = task
        hold = self.hold
        if hold is not None:  # in hand until its value is emitted and absorbed
            hold.take()
            task.add_done_callback(functools.partial(_leave, hold))
        if isinstance(who, core_buffer):
            return self._run_ahead(task, x, who)
        return task

    def _run_ahead(self, task: asyncio.Future[Any], x: Any, who: core_buffer) -> Any:
        """Behind a ``buffer(n)``: let up to ``n`` results be fetched at once.

        The buffer is told the element is done while fewer than ``n`` are being fetched;
        beyond that it waits for the oldest. Emission stays in order. The outcome of each
        fetch goes to the buffer (a Dask ``buffer`` hands an error to its caller, a local
        one logs it).
        """
        ahead = self._ahead
        if ahead is None:
            ahead = self._ahead = deque()
        n = who.n
        if isinstance(who, buffer):
            who.follow(task, x)
        else:
            task.add_done_callback(functools.partial(_log_dropped, self, x))
        ahead.append(task)
        while ahead and ahead[0].done():
            ahead.popleft()
        if len(ahead) < n:
            return None
        return _wait_for(ahead[0])

    async def _gather(
        self, x: Any, metadata: Metadata | None, previous: asyncio.Future[Any] | None
    ) -> None:
        self._fetching += 1
        try:
            batch = type(x) is Batch
            target = x.future if batch else x
            try:
                client = get_client()
                value = await gather_result(client, target)
                if batch:
                    value = items_of(value, x.source)
            except Exception as e:
                annotate_task_error(e, self, target)
                raise
            await _wait_for(previous)
            if not batch:
                pending = self._emit(value, metadata=metadata)
                if pending:
                    await await_all(pending)
            elif metadata is None:
                for pending in self._emit_batch(value):
                    await await_all(pending)
            else:
                for item in value:
                    pending = self._emit(item, metadata=metadata)
                    if pending:
                        await await_all(pending)
        except BaseException as e:
            release_refs(metadata, error=e)
            raise
        finally:
            self._fetching -= 1
        release_refs(metadata)


def _leave(hold: Hold, _: Any) -> None:
    hold.leave()


def _log_dropped(node: Stream, x: Any, task: asyncio.Future[Any]) -> None:
    """Log the error of a result fetched ahead, which nobody awaits (as ``buffer`` would)."""
    if task.cancelled() or task.exception() is None:
        return
    logger.error(
        "%s: failed on %s; element dropped", node, short_repr(x), exc_info=task.exception()
    )


@DaskStream.register_api()
class buffer(DaskStream, core_buffer):
    """``buffer(n)`` over futures: up to ``n`` units (element futures or batches) wait here
    while downstream (``gather``) is busy, so ``n`` tasks keep running.

    Errors follow the rule of local nodes: the task of an element that failed (a ``map``
    before the buffer that raised) raises to the caller, as the local ``map`` would. As
    the caller's ``emit`` of that element has returned by then, the error is raised by
    the emit waiting for room in the buffer, else by the next ``emit`` (whose element is
    taken first), else, for a bounded source (``from_iterable``), at the end of its
    input, once everything has been emitted: the source stops with the error. The
    element's refs are released as failed.

    ``snapshot()`` fetches the elements waiting (blocking: call it outside the event
    loops), the elements of a batch one by one; ``restore()`` queues them as local values.
    In a checkpoint the buffer empties before the snapshot (futures cannot be saved):
    the checkpoint waits until every queued unit has been handed downstream.

    Examples
    --------
    >>> from millstream.testing import run_pipeline, wait_for
    >>> source = Stream.from_iterable([1, 0, 2])
    >>> L = source.scatter().map(lambda x: 1 / x).buffer(4).gather().sink_to_list()
    >>> try:
    ...     run_pipeline(source)
    ... except ZeroDivisionError as e:
    ...     print('the source stopped:', e)
    the source stopped: division by zero
    >>> wait_for(lambda: len(L) == 2, 10)
    >>> L
    [1.0, 0.5]
    """

    drains_for_checkpoint = True

    def snapshot(self) -> dict[str, Any]:
        pending = core_buffer.snapshot(self)["pending"]
        return {"pending": [v for vs in element_values(pending) for v in vs]}

    def __init__(self, upstream: Stream, n: int, **kwargs: Any):
        self._failures: deque[BaseException] = deque()
        self._callers: deque[asyncio.Future[Any]] = deque()
        self._unfinished = Hold()  # a count of units taken and not yet out of gather
        super().__init__(upstream, n, **kwargs)
        on_end_of_input(self, functools.partial(_at_end_of_input, weakref.ref(self)))

    def update(self, x: Any, who: Stream | None = None, metadata: Metadata | None = None) -> Any:
        self._unfinished.take()
        room = core_buffer.update(self, x, who, metadata)
        if self._failures:
            raise self._failures.popleft()
        if room is None:
            return None
        caller = self.loop.asyncio_loop.create_future()
        room.add_done_callback(functools.partial(_resolve, caller))
        self._callers.append(caller)
        return caller

    def extra_metrics(self) -> dict[str, Any]:
        """``backlog``: the units taken and not yet out of ``gather`` (queued here, or
        being fetched by ``gather``)."""
        return {"backlog": self._unfinished.in_hand}

    def follow(self, task: asyncio.Future[Any], x: Any) -> None:
        """Called by ``gather``, fetching ``x`` ahead: its outcome is this element's."""
        self._unfinished.take()
        task.add_done_callback(functools.partial(self._fetched, x))

    def _fetched(self, x: Any, task: asyncio.Future[Any]) -> None:
        error = None if task.cancelled() else task.exception()
        self.element_done(x, error)

    def element_done(self, x: Any, error: BaseException | None) -> None:
        """``x`` has left the buffer (and, if ``gather`` fetched it ahead, ``gather``)."""
        if error is not None:
            self._failed(x, error)
        self._unfinished.leave()

    def _failed(self, x: Any, error: BaseException) -> None:
        """Hand ``error`` (of unit ``x``) to a caller waiting for room, else keep it for the
        next ``emit`` or the end of input."""
        add_note(
            error,
            f"millstream: {self.label} raised this to a later emit: an element it had "
            "taken failed after that element's emit returned",
        )
        callers = self._callers
        while callers:
            caller = callers.popleft()
            if not caller.done():
                caller.set_exception(error)
                return
        self._failures.append(error)

    async def _finished(self) -> None:
        """Wait until every unit taken is out of ``gather``; raise an error left for the
        caller."""
        await self._unfinished.quiet()
        if self._failures:
            raise self._failures.popleft()


def _at_end_of_input(ref: weakref.ReferenceType[buffer]) -> list[Any]:
    node = ref()
    return [] if node is None else [asyncio.ensure_future(node._finished())]


def _resolve(caller: asyncio.Future[Any], room: asyncio.Future[Any]) -> None:
    if not caller.done():
        caller.set_result(None)
