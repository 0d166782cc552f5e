"""The checkpoint coordinator: consistent snapshots of a running graph, and recovery.

:func:`enable` turns checkpoints on for a graph before it starts. It restores every
node and source from the newest complete checkpoint at the location (if there is one),
then, while the graph runs, takes a checkpoint every ``interval`` and/or every ``every``
elements, and a last one when the input ends:

1. hold: each source stops before its next element and waits until the elements it
   emitted are absorbed; then each node that emits from a task of its own (a buffer,
   a Dask gather) stops likewise, in graph order;
2. snapshot: every node with ``snapshot()`` and every source's position, taken in one
   go on the event loop, so that the positions are exactly those of the elements whose
   effects the state holds (:mod:`millstream.core.state` is the contract);
3. release: the graph goes on while the snapshot is pickled and written in a worker
   thread, atomically (:mod:`.store`);
4. commit: transactional sinks (:mod:`.transactional`) commit the output of the
   checkpoint with its record, in one transaction (PostgreSQL); on a restart the
   checkpoint they hold is the one restored;
5. complete: sources are told (``checkpoint_complete``), so Kafka commits the group's
   offsets of the checkpoint; checkpoints beyond the ``keep`` newest are removed.

Each step is a fail-point (:data:`FAILPOINTS`, see :mod:`millstream.core.failpoints`).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import pickle
import time
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .._utils import convert_interval, short_repr
from ..core.failpoints import failpoint
from ..core.hold import Hold
from ..core.loop import in_loop_thread, log_task_error, sync
from ..core.state import restore_atomically, snapshot_version_of
from ..core.stream import Stream
from ..exceptions import CheckpointError, KafkaFencedError, StateError
from ..kafka.transactions import RECORD_TOPIC
from ..sources.base import Source
from .ids import GraphMismatchError, graph_nodes, node_ids
from .kafka_output import KafkaOutput, kafka_writers
from .store import CheckpointStore
from .transactional import is_transactional

__all__ = ["FAILPOINTS", "CheckpointInfo", "Checkpoints", "enable"]

logger = logging.getLogger("millstream.checkpoint")

#: The fail-points of the checkpoint protocol, in the order a checkpoint reaches them.
FAILPOINTS = (
    "before_hold",
    "after_snapshot",
    "during_checkpoint_write",
    "before_checkpoint_rename",
    "after_snapshot_write",
    "after_commit",
)

#: The format of a checkpoint's body (the dict pickled in each file).
FORMAT = 1


@dataclass(frozen=True)
class CheckpointInfo:
    """What one checkpoint took: its id, when it completed (``time.time()``), how long
    sources were held and the whole checkpoint lasted (seconds), and its size in bytes."""

    id: int
    completed_at: float
    held_s: float
    duration_s: float
    size: int


def _has_state(node: Stream) -> bool:
    """Whether ``node``'s class keeps state (overrides the stateless ``Stream.snapshot``)."""
    return getattr(type(node), "snapshot", Stream.snapshot) is not Stream.snapshot


def _depths(nodes: list[Stream]) -> dict[int, int]:
    """Longest distance from a source, per node (by ``id``): the order holds close in."""
    depth: dict[int, int] = {}
    members = {id(n) for n in nodes}

    def visit(node: Stream, seen: frozenset[int]) -> int:
        key = id(node)
        if key in depth:
            return depth[key]
        ups = [
            u for u in node.upstreams if u is not None and id(u) in members and id(u) not in seen
        ]
        d = 0 if not ups else 1 + max(visit(u, seen | {key}) for u in ups)
        depth[key] = d
        return d

    for node in nodes:
        visit(node, frozenset())
    return depth


class Checkpoints:
    """Checkpoints of one graph at one location; made by :func:`enable`.

    Attributes
    ----------
    ids : dict
        The node id of each node with state (``{node: id}``).
    restored : int or None
        The id of the checkpoint the graph was restored from at :func:`enable`.
    last : CheckpointInfo or None
        The newest checkpoint taken by this process.
    history : collections.deque of CheckpointInfo
        The last 100 checkpoints taken by this process, oldest first.
    """

    def __init__(
        self,
        graph: Stream,
        location: str | os.PathLike[str],
        interval: float | str | None,
        every: int | None,
        keep: int,
        rename: Mapping[str, str] | None,
        drop: Iterable[str],
        fresh: Iterable[str],
        storage_options: Mapping[str, Any] | None,
        exactly_once: bool = False,
        record_topic: str = RECORD_TOPIC,
    ):
        if keep < 1:
            raise ValueError(f"checkpoints: keep must be >= 1, got {keep!r}")
        if every is not None and (type(every) is not int or every < 1):
            raise ValueError(f"checkpoints: every must be a number of elements >= 1, got {every!r}")
        self.interval = None if interval is None else convert_interval(interval)
        self.every = every
        self.keep = keep
        self.store = CheckpointStore(location, **dict(storage_options or {}))
        nodes = graph_nodes(graph)
        all_ids = node_ids(graph)
        self.sources: list[Source] = [n for n in nodes if isinstance(n, Source)]
        if not self.sources:
            raise ValueError(f"checkpoints: the graph of {graph} has no source to resume")
        running = [s for s in self.sources if not s.stopped]
        if running:
            raise RuntimeError(
                f"checkpoints: enable() before start(): {short_repr(running)} already running"
            )
        self.ids: dict[Stream, str] = {n: all_ids[n] for n in nodes if _has_state(n)}
        #: every node of the graph (what :func:`checkpoints_of` looks in)
        self.nodes: frozenset[int] = frozenset(id(n) for n in nodes)
        #: transactional sinks: their output commits with each checkpoint
        self.transactional: list[Any] = [n for n in nodes if is_transactional(n)]
        self.exactly_once = bool(exactly_once)
        #: exactly-once: the graph's Kafka writers, one transaction per checkpoint
        self.kafka_output: KafkaOutput | None = None
        writers = kafka_writers(nodes) if exactly_once else []
        if writers:
            output = KafkaOutput(writers, {}, self._checkpoint_before_rebalance, record_topic)
            output.sources = {
                s: all_ids[s]
                for s in self.sources
                if callable(getattr(s, "commit_offsets_in_transaction", None))
                and _bootstrap(s) == output.servers
            }
            self.kafka_output = output
            self.transactional.append(output)
        if self.transactional:
            self.keep = max(keep, 2)
        self.loop = self.sources[0].loop
        self.restored: int | None = None
        self.last: CheckpointInfo | None = None
        self.history: collections.deque[CheckpointInfo] = collections.deque(maxlen=100)
        self.error: BaseException | None = None
        self._next_id = 1
        self._positions: dict[str, Any] = {}
        self._lock: asyncio.Lock | None = None
        self._task: asyncio.Task[Any] | None = None
        self._closed = False
        self.created = time.monotonic()
        _live.add(self)
        self._wake = asyncio.Event()
        self._passed_at: dict[int, int] = {}
        self._install_holds(nodes)
        for sink in self.transactional:
            node_id = "kafka-output" if sink is self.kafka_output else all_ids[sink]
            sink.checkpoint_mode(True, identity=f"{self.store.location}#{node_id}")
        # restored nodes that emit from a task of their own (a delay with elements due, a
        # map_async calling again) may start on the loop at once: held until every node
        # is restored, they cannot emit into a node not restored yet (opened on the loop,
        # after the tasks the restores scheduled)
        holds = [hold for level in self._levels for hold in level]
        for hold in holds:
            hold.close()
        try:
            self._restore(dict(rename or {}), set(drop), set(fresh))
        finally:
            self.loop.add_callback(_open_all, holds)
        for node, node_id in self.ids.items():
            mode = getattr(node, "checkpoint_mode", None)
            if callable(mode):
                mode(True, identity=f"{self.store.location}#{node_id}")
        if self.interval is not None or self.every is not None:
            self.loop.add_callback(self._launch)

    # -- restoring ----------------------------------------------------------------------
    def _restore(self, rename: dict[str, str], drop: set[str], fresh: set[str]) -> None:
        self.store.clean_temporary()
        found = self._restore_point()
        if found is None:
            return
        checkpoint_id, body = found
        try:
            record = pickle.loads(body)
            if record.get("format") != FORMAT:
                raise CheckpointError(f"format {record.get('format')!r}, expected {FORMAT}")
        except Exception as e:
            raise CheckpointError(
                f"checkpoint {checkpoint_id} in {self.store.location} cannot be read: {e}"
            ) from e
        saved: dict[str, Any] = {rename.get(k, k): v for k, v in record["nodes"].items()}
        for key in drop:
            saved.pop(key, None)
        by_id = {node_id: node for node, node_id in self.ids.items()}
        unknown = sorted(set(saved) - set(by_id))
        missing = sorted(set(by_id) - set(saved) - fresh)
        if unknown or missing:
            raise GraphMismatchError(
                f"the checkpoint {checkpoint_id} in {self.store.location} was taken from another "
                f"graph: state of {unknown} has no node here, and {missing} have no state in "
                "it. Give nodes names (stream_name=...) to keep ids stable; to go on anyway, "
                "pass rename={old id: new id}, drop=[ids of state to discard] or "
                "fresh=[ids of nodes that start empty] to enable()"
            )
        done: list[tuple[Stream, Any]] = []
        try:
            for node_id, entry in saved.items():
                node = by_id[node_id]
                state = self._upgraded(node, node_id, entry)
                before = node.snapshot()
                restore_atomically(node, node.restore, state)
                done.append((node, before))
        except BaseException:
            for node, before in reversed(done):  # all or nothing
                node.restore(before)
            raise
        self._positions = {
            self.ids[s]: saved[self.ids[s]]["state"]
            for s in self.sources
            if s in self.ids and self.ids[s] in saved
        }
        self.restored = checkpoint_id
        self._next_id = max(self._next_id, checkpoint_id + 1)
        logger.info(
            "restored %d node(s) from checkpoint %d in %s",
            len(saved),
            checkpoint_id,
            self.store.location,
        )

    def _restore_point(self) -> tuple[int, bytes] | None:
        """The checkpoint to restore: the newest, or the one the transactional sinks hold."""
        if not self.transactional:
            return self.store.latest()
        files = self.store.ids()
        self._next_id = max(files, default=0) + 1  # an id never names two checkpoints
        held = [sink.committed_checkpoint() for sink in self.transactional]
        if len(set(held)) > 1:
            logger.warning(
                "transactional sinks hold different checkpoints %s: restoring the oldest; "
                "the sinks ahead write the output after it again",
                dict(zip(map(str, self.transactional), held, strict=True)),
            )
        if None in held:
            if files:
                logger.warning(
                    "%s holds no committed checkpoint: starting from the beginning, not from "
                    "the checkpoint files in %s",
                    self.transactional[held.index(None)],
                    self.store.location,
                )
            return None
        checkpoint_id = min(h for h in held if h is not None)
        try:
            return checkpoint_id, self.store.read(checkpoint_id)
        except (CheckpointError, OSError, ValueError) as e:
            raise CheckpointError(
                f"the transactional sinks hold checkpoint {checkpoint_id}, but its file in "
                f"{self.store.location} cannot be read: {e}"
            ) from e

    @staticmethod
    def _upgraded(node: Stream, node_id: str, entry: Any) -> Any:
        version, state = entry["version"], entry["state"]
        current = snapshot_version_of(node)
        if version == current:
            return state
        upgrade = getattr(type(node), "upgrade_state", None)
        if version < current and callable(upgrade):
            return upgrade(version, state)
        raise StateError(
            f"{node} ({node_id!r}) cannot restore state of format version {version}: "
            f"it reads version {current}"
        )

    # -- holds --------------------------------------------------------------------------
    def _install_holds(self, nodes: list[Stream]) -> None:
        held = [n for n in nodes if isinstance(n, Source) or getattr(n, "emits_from_task", False)]
        depth = _depths(nodes)
        levels: dict[int, list[Hold]] = {}
        for node in held:
            if node.hold is None:
                node.hold = Hold()
            levels.setdefault(depth.get(id(node), 0), []).append(node.hold)
        self._levels = [levels[d] for d in sorted(levels)]
        self._source_holds = [s.hold for s in self.sources if s.hold is not None]

    # -- taking checkpoints -------------------------------------------------------------
    def _launch(self) -> None:
        self._task = asyncio.ensure_future(self._periodic())
        self._task.add_done_callback(log_task_error)

    async def _periodic(self) -> None:
        wake = self._wake = asyncio.Event()
        self._arm_counts()
        due = time.monotonic() + (self.interval or float("inf"))
        end_seen = False  # the end of input got its checkpoint
        while not self._closed:
            wait = min(due - time.monotonic(), 0.05)
            if wait > 0:
                try:
                    await asyncio.wait_for(wake.wait(), wait)
                except asyncio.TimeoutError:
                    pass
            if self._closed:
                break
            ended = all(s.stopped for s in self.sources)
            at_end = ended and not end_seen
            end_seen = ended
            if not (wake.is_set() or time.monotonic() >= due or at_end):
                continue
            wake.clear()
            due = time.monotonic() + (self.interval or float("inf"))  # start to start
            try:
                await self.checkpoint_async(only_if_changed=True)
            except KafkaFencedError as e:
                self.error = e
                logger.error("exactly-once output fenced: stopping the sources: %s", e)
                for source in self.sources:
                    source.stop()
                break
            except Exception as e:
                self.error = e
                logger.error("checkpoint failed; retried at the next interval", exc_info=e)
            self._arm_counts()

    def _arm_counts(self) -> None:
        """With ``every``: wake the periodic task once a source has emitted that many more
        than at the last snapshot (at once if it already has)."""
        if self.every is None:
            return
        for hold in self._source_holds:
            due = self._passed_at.get(id(hold), 0) + self.every
            hold.on_due = self._wake.set
            if hold.passed >= due:
                self._wake.set()
            else:
                hold.due_at = due

    async def checkpoint_async(self, only_if_changed: bool = False) -> CheckpointInfo | None:
        """Take a checkpoint now (on the graph's loop); returns what it took, or None when
        ``only_if_changed`` and no source moved since the last one."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            return await self._take(only_if_changed)

    def checkpoint(self, timeout: float | None = 60) -> CheckpointInfo | None:
        """Take a checkpoint now, from any thread but the loop's; returns what it took."""
        return sync(self.loop, self.checkpoint_async, callback_timeout=timeout)

    async def _take(self, only_if_changed: bool) -> CheckpointInfo | None:
        failpoint("before_hold")
        started = time.monotonic()
        try:
            for level in self._levels:
                for hold in level:
                    hold.close()
                for hold in level:
                    await hold.quiet()
            for node in self.ids:  # a node that keeps work elsewhere (Dask) settles it
                settle = getattr(node, "settle_for_checkpoint", None)
                if callable(settle):
                    await settle()
            positions = {self.ids[s]: s.snapshot() for s in self.sources if s in self.ids}
            self._passed_at = {id(h): h.passed for h in self._source_holds}
            if (
                only_if_changed
                and positions == self._positions
                and not any(sink.has_uncommitted() for sink in self.transactional)
            ):
                return None
            checkpoint_id = self._next_id
            for sink in self.transactional:
                sink.prepare_checkpoint(checkpoint_id)
            states: dict[str, Any] = {}
            for node, node_id in self.ids.items():
                if getattr(node, "snapshot_blocks", False):
                    state = await asyncio.to_thread(node.snapshot)
                else:
                    state = positions[node_id] if node_id in positions else node.snapshot()
                states[node_id] = {"version": snapshot_version_of(node), "state": state}
        finally:
            for level in self._levels:
                for hold in level:
                    hold.open()
        held = time.monotonic() - started
        failpoint("after_snapshot")
        record = {
            "format": FORMAT,
            "id": checkpoint_id,
            "created": time.time(),
            "nodes": states,
        }
        size = await asyncio.to_thread(self._write, checkpoint_id, record)
        self._next_id = checkpoint_id + 1
        failpoint("after_snapshot_write")
        for sink in self.transactional:
            await _maybe_await(sink.commit_checkpoint(checkpoint_id, positions))
        for source in self.sources:
            complete = getattr(source, "checkpoint_complete", None)
            if callable(complete) and source in self.ids:
                await _maybe_await(complete(positions[self.ids[source]]))
        failpoint("after_commit")
        self._positions = positions
        await asyncio.to_thread(self._prune)
        info = CheckpointInfo(checkpoint_id, time.time(), held, time.monotonic() - started, size)
        self.last = info
        self.history.append(info)
        logger.debug("checkpoint %s", info)
        return info

    def _write(self, checkpoint_id: int, record: dict[str, Any]) -> int:
        body = pickle.dumps(record, protocol=pickle.HIGHEST_PROTOCOL)
        return self.store.write(checkpoint_id, body)

    def _prune(self) -> None:
        for old in self.store.ids()[self.keep :]:
            self.store.delete(old)

    def _checkpoint_before_rebalance(self) -> None:
        """From a Kafka consumer thread, before partitions are revoked (exactly-once)."""
        if not self._closed:
            self.checkpoint(timeout=None)

    # -- the end ------------------------------------------------------------------------
    def close(self, final: bool = True, timeout: float | None = 60) -> CheckpointInfo | None:
        """Stop taking checkpoints; with ``final``, take a last one if a source moved.

        A checkpoint in progress is finished first (never cut in the middle of its write).
        """
        if in_loop_thread(self.loop):
            raise RuntimeError("Checkpoints.close() from the loop's thread: await aclose()")
        return sync(self.loop, self.aclose, final, callback_timeout=timeout)

    async def aclose(self, final: bool = True) -> CheckpointInfo | None:
        """:meth:`close` for code running on the graph's loop."""
        self._closed = True
        self._wake.set()
        task = self._task
        if task is not None and not task.done() and task is not asyncio.current_task():
            await asyncio.wait([task])  # it leaves its loop once a checkpoint in progress ends
        try:
            return await self.checkpoint_async(only_if_changed=True) if final else None
        finally:
            if self.kafka_output is not None:  # what no checkpoint committed is aborted
                await asyncio.to_thread(self.kafka_output.close)

    def __repr__(self) -> str:
        return (
            f"<Checkpoints at {self.store.location!r}: {len(self.ids)} node(s) with state, "
            f"restored from {self.restored}, last {self.last.id if self.last else None}>"
        )


_live: weakref.WeakSet[Checkpoints] = weakref.WeakSet()


def checkpoints_of(node: Stream) -> Checkpoints | None:
    """The checkpoints of ``node``'s graph (the newest :func:`enable` that covered it and
    is not closed), or None.

    >>> from millstream import Stream
    >>> checkpoints_of(Stream()) is None
    True
    """
    found = [c for c in list(_live) if id(node) in c.nodes and not c._closed]
    return max(found, key=lambda c: c.created) if found else None


def _bootstrap(source: Any) -> str:
    params = getattr(source, "consumer_params", None) or {}
    return str(params.get("bootstrap.servers") or params.get("metadata.broker.list") or "")


def _open_all(holds: list[Hold]) -> None:
    for hold in holds:
        hold.open()


async def _maybe_await(value: Any) -> None:
    if asyncio.isfuture(value) or asyncio.iscoroutine(value):
        await value


def enable(
    graph: Stream,
    location: str | os.PathLike[str],
    interval: float | str | None = "10s",
    every: int | None = None,
    keep: int = 3,
    rename: Mapping[str, str] | None = None,
    drop: Iterable[str] = (),
    fresh: Iterable[str] = (),
    storage_options: Mapping[str, Any] | None = None,
    exactly_once: bool = False,
    record_topic: str = RECORD_TOPIC,
) -> Checkpoints:
    """Turn checkpoints on for the graph of ``graph`` (any node of it), before it starts.

    Restores every node and source from the newest complete checkpoint in ``location``,
    then checkpoints every ``interval`` (seconds or a duration such as ``'1s'``; None:
    only on request) and/or every ``every`` elements emitted by the sources, and once
    more when the input ends; the ``keep`` newest are kept.

    Parameters
    ----------
    graph : Stream
        Any node of the graph; every node connected to it is covered.
    location : str or path
        A local directory or an fsspec URL (``s3://bucket/path``, ``memory://x``).
    rename, drop, fresh
        For a graph that changed since the checkpoint: ``rename`` maps old node ids to
        new ones, ``drop`` lists ids whose saved state is discarded, ``fresh`` lists ids
        of new nodes that start without state. Anything else that does not match raises
        :class:`~millstream.checkpoint.GraphMismatchError`.
    storage_options : dict, optional
        Passed to fsspec for a URL.
    exactly_once : bool
        Every Kafka writer of the graph (``to_kafka``, ``to_kafka_dead_letters``) writes
        inside one Kafka transaction per checkpoint, committed with the group offsets of
        the ``from_kafka`` sources reading the same cluster and a checkpoint record in
        ``record_topic``: a ``read_committed`` reader sees each output record once, at
        the checkpoint's commit, however the process dies (docs/exactly-once.md).
        ``to_postgres`` is exactly-once with checkpoints in either mode.
    record_topic : str
        The topic of checkpoint records (``'millstream.checkpoints'``; made compacted).

    Examples
    --------
    >>> import tempfile
    >>> from millstream import Stream
    >>> from millstream.testing import run_pipeline
    >>> where = tempfile.mkdtemp()
    >>> def build():
    ...     source = Stream.from_iterable(['a b', 'b c', 'c d'], stream_name='lines')
    ...     counts = source.map(str.split).flatten().frequencies()
    ...     return source, counts.sink_to_list()
    >>> source, out = build()
    >>> checkpoints = enable(source, where, interval=None)
    >>> run_pipeline(source)
    >>> checkpoints.close().id                 # the state after all three lines
    1
    >>> source, out = build()                  # a new process would build it again
    >>> checkpoints = enable(source, where)
    >>> checkpoints.restored, source.snapshot()
    (1, 3)
    >>> run_pipeline(source)
    >>> out                                    # nothing left to read: nothing emitted
    []
    >>> checkpoints.close()
    """
    return Checkpoints(
        graph,
        location,
        interval,
        every,
        keep,
        rename,
        drop,
        fresh,
        storage_options,
        exactly_once,
        record_topic,
    )
