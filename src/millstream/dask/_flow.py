"""How Dask nodes wait for tasks without blocking, keep arrival order, and hold refs.

The building blocks shared by the Dask nodes (:mod:`millstream.dask.stateful`,
:mod:`millstream.dask.multi_input`, :mod:`millstream.dask.on_client`):

``_InOrder``
    A backlog of elements handled one at a time, in arrival order, by a task on the
    graph's loop. An element goes there when it cannot be handled at once (its task has
    not finished, or a ``Batch`` must first be split); the node holds its refs until it
    has been handled and downstream has finished with it. ``update`` then returns an
    awaitable that finishes when the element has been handled, with its error if it
    failed, as a local node that waits does: the caller of ``emit`` gets the error, and
    a ``buffer`` upstream lets elements wait side by side.

``_OnWorkers``
    A node whose state lives on the cluster as a future. Each unit (element future or
    ``Batch``) becomes one step task that takes the previous state and returns the next,
    so the state never travels to the client and the dependency chain orders the steps.
    A step is submitted only once its input has finished: an input whose task failed is
    passed downstream as it is (``gather`` raises its error) and the state chain goes on
    from the last good state, as the local node never sees an element whose upstream
    raised. Nodes that hold elements (``partition``, ``zip``…) tell the client, after
    each step whose elements carry refs, which units they still hold; the refs are
    released once a unit has left the node and downstream is done with the step's output.

``_Exploding``
    A client-side node that needs single elements (``rate_limit``, ``latest``,
    ``sink``…): a ``Batch`` is split into element futures (its length, a small result,
    comes to the client; the elements do not) and they go through the core node in order.

``_RunsNode``
    A core node (``unique``, ``partition``, ``zip``…) run on the workers from its
    snapshot: the step task (:func:`~millstream.dask._detached.run_node`) restores a detached
    copy of the node, pushes the unit and snapshots it again. On element futures it runs
    the core node on the client instead (an ``_Exploding`` node), as Streamz does.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from .._utils import annotate_error
from ..core import Metadata, Stream, await_all, release_refs, retain_refs
from ._bridge import gather_result, get_client, record_origin
from ._detached import NodeSpec, checked_state, run_node, untag
from ._tasks import Batch, held_of, length, nth, outputs_of, state_of
from .stream import DaskStream

__all__ = ["await_result", "fetch", "futures_in", "is_ready", "parts", "wait_ready"]


def parts(x: Any) -> tuple[str, Any, str | None]:
    """``(kind, value, source)`` of a unit: ``'many'`` for a ``Batch``, else ``'one'``."""
    if type(x) is Batch:
        return "many", x.future, x.source
    return "one", x, None


def futures_in(x: Any) -> list[Any]:
    """The Dask futures an element depends on."""
    from distributed import Future, futures_of

    if type(x) is Batch:
        return [x.future]
    if isinstance(x, Future):
        return [x]
    if isinstance(x, (list, tuple, dict, set)):
        return list(futures_of(x))
    return []


def is_ready(x: Any) -> bool:
    """True if every future in ``x`` has finished successfully (local values are ready)."""
    return all(f.status == "finished" for f in futures_in(x))


def _set_done(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


async def wait_ready(x: Any) -> bool:
    """Wait until every future in ``x`` is done; True if all of them succeeded.

    Uses ``Future.add_done_callback`` (no data moves): the callback thread hands the
    news to the running loop.
    """
    futures = futures_in(x)
    pending = [f for f in futures if f.status == "pending"]
    if pending:
        loop = asyncio.get_running_loop()
        waiters = []
        for f in pending:
            waiter: asyncio.Future[None] = loop.create_future()

            def done(_: Any, waiter: asyncio.Future[None] = waiter) -> None:
                try:
                    loop.call_soon_threadsafe(_set_done, waiter)
                except RuntimeError:  # the loop closed meanwhile
                    pass

            f.add_done_callback(done)
            waiters.append(waiter)
        await asyncio.gather(*waiters)
    return all(f.status == "finished" for f in futures)


async def fetch(future: Any) -> Any:
    """The value of a (small) future, fetched without blocking a loop."""
    return await gather_result(get_client(), future)


async def await_result(result: Any) -> None:
    """Wait for what an ``update`` returned (a list of awaitables, an awaitable, or None)."""
    if result is None:
        return
    if type(result) is list:
        if result:
            await await_all(result)
        return
    await result


#: ``(handler, args, metadata, done future, checkpoint hold that counts it or None)``
Job = tuple[Callable[..., Awaitable[None]], tuple[Any, ...], Metadata | None, Any, Any]


def _settle(done: asyncio.Future[None] | None, error: BaseException | None) -> None:
    if done is None or done.done():
        return
    if error is None:
        done.set_result(None)
    else:
        done.set_exception(error)


class _InOrder(DaskStream):
    """Elements that must wait are handled one at a time, in arrival order.

    In a checkpoint, an element waiting here counts as in hand until it has been handled
    (its futures cannot be saved): the backlog empties before the snapshot. Snapshots of
    these nodes may fetch state from the cluster, so they run in a thread.
    """

    emits_from_task = True
    snapshot_blocks = True
    _jobs: deque[Job] | None = None
    _jobs_running = False

    def _waiting(self) -> bool:
        return bool(self._jobs)

    def _enqueue(
        self,
        handler: Callable[..., Awaitable[None]],
        args: tuple[Any, ...],
        metadata: Metadata | None,
        done: asyncio.Future[None] | None = None,
    ) -> asyncio.Future[None]:
        """Queue ``handler(*args)``; return a future settled once it has run (its error
        set on the future; the element's refs are released as failed)."""
        if self._jobs is None:
            self._jobs = deque()
        if done is None:
            done = self.loop.asyncio_loop.create_future()
        retain_refs(metadata)
        hold = self.hold
        if hold is not None:
            hold.take()
        self._jobs.append((handler, args, metadata, done, hold))
        if not self._jobs_running:
            self._jobs_running = True
            self.loop.add_callback(self._run_backlog)
        return done

    async def _run_backlog(self) -> None:
        backlog = self._jobs
        assert backlog is not None
        try:
            while backlog:
                handler, args, metadata, done, hold = backlog[0]
                error: BaseException | None = None
                try:
                    await handler(*args)
                except Exception as e:
                    error = e
                    release_refs(metadata, error=e)
                else:
                    release_refs(metadata)
                finally:
                    backlog.popleft()
                    _settle(done, error)
                    if hold is not None:
                        hold.leave()
        finally:
            self._jobs_running = False


class _OnWorkers(_InOrder):
    """A node whose state is a future on the cluster, advanced by one task per unit."""

    _on_workers = False
    _holds_elements = False
    _wstate: Any = None
    _held_units: dict[int, Metadata]
    _unit_count = 0
    _reports: asyncio.Future[None] | None = None

    # -- to be provided by the node ------------------------------------------------------
    def _initial_state(self) -> Any:
        raise NotImplementedError

    def _prepare(self, x: Any) -> Any:
        """Work submitted as soon as ``x`` arrives (frequencies: the unit's partial count)."""
        return x

    def _position(self, who: Any) -> int:
        return 0

    def _submit(
        self, client: Any, state: Any, x: Any, position: int, tag: int | None, track: bool
    ) -> tuple[Any, Any, Any]:
        """Submit one step; return ``(new state, unit to emit or None, report or None)``."""
        raise NotImplementedError

    # -- the steps ---------------------------------------------------------------------------
    @property
    def cluster_state(self) -> Any:
        """The node's state: a future on the cluster once an element has been processed."""
        return self._wstate

    def _worker_update(self, x: Any, who: Any, metadata: Metadata | None) -> Any:
        pre = self._prepare(x)
        position = self._position(who)
        if not self._waiting() and is_ready(pre):
            return self._run_step(pre, position, metadata, True)
        return self._enqueue(self._worker_job, (pre, position, metadata), metadata)

    async def _worker_job(self, pre: Any, position: int, metadata: Metadata | None) -> None:
        ok = await wait_ready(pre)
        pending = self._run_step(pre, position, metadata, ok)
        if pending:
            await await_all(pending)

    def _run_step(self, x: Any, position: int, metadata: Metadata | None, ok: bool) -> list[Any]:
        if not ok:
            return self._emit(x, metadata)  # its task failed: gather raises the error
        if self._wstate is None:
            self._wstate = self._initial_state()
        if not hasattr(self, "_held_units"):
            self._held_units = {}
        track = self._holds_elements and (bool(metadata) or bool(self._held_units))
        tag: int | None = None
        if track:
            self._unit_count += 1
            if metadata:
                tag = self._unit_count
                retain_refs(metadata)
                self._held_units[tag] = metadata
        try:
            client = get_client()
            self._wstate, out, report = self._submit(client, self._wstate, x, position, tag, track)
        except Exception as e:
            if tag is not None:
                release_refs(self._held_units.pop(tag), error=e)
            annotate_error(e, self, None, x)
            raise
        pending = self._emit(out, metadata) if out is not None else []
        if report is not None:
            pending = self._after_report(report, self._unit_count, pending)
        return pending

    def _after_report(self, report: Any, upto: int, pending: list[Any]) -> list[Any]:
        loop = asyncio.get_running_loop()
        done = loop.create_task(await_all(pending)) if pending else None
        self._reports = loop.create_task(self._apply_report(self._reports, report, upto, done))
        return [done] if done is not None else []

    async def _apply_report(
        self,
        previous: asyncio.Future[None] | None,
        report: Any,
        upto: int,
        done: asyncio.Future[None] | None,
    ) -> None:
        """Release the refs of the units the step's report no longer lists as held."""
        error: BaseException | None = None
        held: list[int] = []
        try:
            held = await fetch(report) or []
        except Exception as e:
            error = e
        for waiting in (done, previous):
            if waiting is not None:
                await asyncio.wait({waiting})
        keep = set(held)
        for unit in [u for u in self._held_units if u <= upto and u not in keep]:
            release_refs(self._held_units.pop(unit), error=error)

    async def settle_for_checkpoint(self) -> None:
        """Wait (without blocking the loop) until the state's task has finished, so that
        the snapshot, taken in a thread, only fetches it."""
        state = self._wstate
        if state is not None:
            await wait_ready(state)

    def _fetch_state(self) -> Any:
        """The state as a local value (blocking: call it outside the event loops)."""
        from distributed import Future

        state = self._wstate
        if state is None:
            return self._initial_state()
        if isinstance(state, Future):
            state = state.result()
        return state

    def _discard_held(self) -> None:
        error = RuntimeError(f"{self}: element discarded by restore()")
        for metadata in getattr(self, "_held_units", {}).values():
            release_refs(metadata, error=error)
        self._held_units = {}


class _Exploding(_InOrder):
    """A client-side node fed single elements: batches are split into element futures."""

    _always_queue = False

    def _core_update(self, x: Any, who: Any, metadata: Metadata | None) -> Any:
        raise NotImplementedError

    def _explode_update(self, x: Any, who: Any, metadata: Metadata | None) -> Any:
        if type(x) is not Batch and not self._always_queue and not self._waiting():
            return self._core_update(x, who, metadata)
        return self._enqueue(self._explode_job, (x, who, metadata), metadata)

    async def _explode_job(self, x: Any, who: Any, metadata: Metadata | None) -> None:
        for element in await self._elements(x):
            await await_result(self._core_update(element, who, metadata))

    def _positions(self, n: int) -> range:
        """Which elements of a batch of ``n`` the node needs (``latest``: the last one)."""
        return range(n)

    async def _elements(self, x: Any) -> list[Any]:
        if type(x) is not Batch:
            return [x]
        if not await wait_ready(x):
            return [x.future]  # failed: the future carries the error on
        client = get_client()
        n = await fetch(client.submit(length, x.future, x.source, pure=False))
        return [client.submit(nth, x.future, x.source, i, pure=False) for i in self._positions(n)]


class _RunsNode(_OnWorkers, _Exploding):
    """A core node run on the workers from its snapshot (or, on element futures, on the client).

    ``_on_workers`` is chosen at construction: on the workers when the node needs the
    elements' values (a ``key``…) or when its input may carry batches; otherwise the core
    node runs here over futures, as in Streamz (a batch arriving then is split).
    """

    _spec: NodeSpec
    _emits_on_push = True
    _core_cls: type[Stream] = Stream

    def _setup(
        self,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
        layout: list[tuple[str, Any]] | None = None,
        key_arg: str | None = None,
    ) -> None:
        node_kwargs = dict(kwargs or {})
        if self.name is not None:
            node_kwargs["stream_name"] = self.name
        self._spec = NodeSpec(
            uuid.uuid4().hex, self._core_cls, args, node_kwargs, str(self), layout, key_arg
        )

    def _emits_batches(self) -> bool:
        return self._on_workers and self._emits_on_push

    def _initial_state(self) -> Any:
        return (self._core_cls.snapshot(self), False)

    def update(self, x: Any, who: Stream | None = None, metadata: Metadata | None = None) -> Any:
        if self._on_workers:
            return self._worker_update(x, who, metadata)
        return self._explode_update(x, who, metadata)

    def _core_update(self, x: Any, who: Any, metadata: Metadata | None) -> Any:
        return self._core_cls.update(self, x, who, metadata)

    def _submit(
        self, client: Any, state: Any, x: Any, position: int, tag: int | None, track: bool
    ) -> tuple[Any, Any, Any]:
        kind, value, source = parts(x)
        result = client.submit(
            run_node, self._spec, state, kind, value, source, position, tag, pure=False
        )
        record_origin(result, self, None)
        new_state = client.submit(state_of, result, pure=False)
        out = None
        if self._emits_on_push:
            outputs = client.submit(outputs_of, result, pure=False)
            record_origin(outputs, self, None)
            out = Batch(outputs)
        report = client.submit(held_of, result, pure=False) if track else None
        return new_state, out, report

    def snapshot(self) -> Any:
        """The core node's snapshot; on the workers the state is fetched (blocking: call it
        outside the event loops). Futures held on the client are fetched as values."""
        if self._on_workers:
            return untag(self._fetch_state()[0])
        return _values(self._core_cls.snapshot(self))

    def restore(self, state: Any) -> None:
        """The core node's :meth:`restore`; on the workers, ``state`` is checked here (by a
        copy of the core node) and becomes the state the next step receives."""
        if self._on_workers:
            checked = checked_state(self._spec, state)
            self._discard_held()
            self._wstate = (checked, False)
        else:
            self._core_cls.restore(self, state)


def _values(state: Any) -> Any:
    """A snapshot with the futures in it replaced by their values (blocking)."""
    from distributed import futures_of

    return get_client().gather(state) if futures_of(state) else state
