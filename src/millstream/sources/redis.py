"""``from_redis_stream``: one element per entry of Redis streams, read in a consumer group.

How it works:

* ``run()`` connects (redis-py's asyncio client, :mod:`millstream.connectors.redis`),
  makes sure the consumer group exists on every stream, then reads this consumer's own
  pending entries (``XREADGROUP ... 0``: what it read before a crash and never
  acknowledged), claims the entries other consumers left pending longer than
  ``claim_min_idle`` (``XAUTOCLAIM``, at the start and every ``claim_interval``), and reads
  new entries with ``XREADGROUP ... >`` (``COUNT count``, ``BLOCK block``: the block bounds
  how long ``stop()`` waits for a read).
* Each entry is emitted with a :class:`~millstream.core.refs.RefCounter` in its metadata
  (``{'ref', 'stream', 'id'}``); once every node holding it let go, a task of the source
  acknowledges it (``XACK``, the entries done meanwhile in one pipeline). An entry whose
  processing raised is not acknowledged (``on_failure``).
* At most ``max_in_flight`` entries are emitted and not yet acknowledged: a slow pipeline
  slows the reading down (backpressure).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

from .._utils import add_note, check_positive_int
from ..connectors.redis import connect, ensure_group, is_connection_error, node_of
from ..core.refs import RefCounter
from ..core.state import expect_fields
from ..core.stream import Stream
from ..exceptions import RedisConnectError, StateError
from .base import STOPPED, ManagedSource

__all__ = ["from_redis_stream"]

logger = logging.getLogger("millstream.sources")

#: seconds between two readings of the group's lag (``XINFO GROUPS``)
LAG_REFRESH = 1.0
_FAILURE_MODES = ("stop", "leave", "dead_letter")


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@Stream.register_api(staticmethod)
class from_redis_stream(ManagedSource):
    """Emit the entries of Redis ``stream`` (one or several keys), read as ``consumer`` of
    consumer group ``group``; acknowledge each (``XACK``) once it is fully processed.

    Each element is the entry's fields (a dict; ``str`` keys and values with ``decode=True``,
    ``bytes`` otherwise), or ``(id, fields)`` with ``with_id=True``. Consumers of one group
    share the entries; several pipelines with the same group and different consumer names
    share the work. The group is created when missing (``create_group``), reading from
    ``start_id`` (``'0'``: the whole stream; ``'$'``: only new entries).

    At least once: an entry is acknowledged only after every node holding it let go
    (a buffer, a window, an asynchronous sink...). What was read and not acknowledged
    stays in the group's pending entries list: this consumer reads its own again when it
    starts (a restart after a crash under the same name), and any consumer of the group
    claims entries idle longer than ``claim_min_idle`` seconds (``XAUTOCLAIM``, at the start
    and every ``claim_interval`` seconds; ``None`` turns claiming off).

    An entry whose processing raised is never acknowledged as done; ``on_failure`` says
    what follows: ``'stop'`` (the error stops the source; the entry stays pending and is
    read again), ``'leave'`` (logged; the entry stays pending, and a claim after
    ``claim_min_idle`` delivers it again) or ``'dead_letter'`` (the entry's fields, with
    ``error``, ``stream`` and ``id`` fields added, go to ``dead_letter_stream``, default
    ``'<stream>:dead'``, then the entry is acknowledged).

    Positions: Redis keeps the group's position (its last delivered id) and its pending
    entries, so a checkpoint records nothing more than a counter. With checkpoints
    (:func:`millstream.checkpoint.enable`) the entries done are acknowledged only once a
    checkpoint taken after them is complete, so a pipeline restored from the last
    checkpoint receives again all that came after it.

    Metrics (``node.metrics``): ``position`` (``{stream: last id emitted}``), ``backlog``
    (entries emitted and not acknowledged), ``lag`` (entries of the streams not yet
    delivered to the group, ``XINFO GROUPS``, read at most once a second; ``None`` when
    Redis cannot tell) and ``lag_by_stream``.

    Parameters
    ----------
    url : str
        ``redis://host:port/db`` (``rediss://`` for TLS, ``unix://`` for a socket).
    stream : str or sequence of str
        The stream key(s).
    group, consumer : str
        The consumer group and this consumer's name in it.
    start_id : str
        Where a group created here starts.
    create_group : bool
        Create a missing group (and stream); if False a missing group is an error.
    count : int
        Entries per ``XREADGROUP`` (``COUNT``).
    block : float
        Seconds an ``XREADGROUP`` waits for new entries (``BLOCK``).
    max_in_flight : int
        Entries emitted and not yet acknowledged, at most.
    with_id : bool
        Emit ``(id, fields)`` instead of ``fields``.
    decode : bool
        Decode ids, keys and values to ``str`` (``decode_responses``).
    claim_min_idle, claim_interval : float or None
        Seconds an entry must be pending before it is claimed, and between claims.
    on_failure : {'stop', 'leave', 'dead_letter'}
    dead_letter_stream : str, optional
    drain_timeout : float
        Seconds ``stop()`` waits for the entries in flight before acknowledging what is done.
    client_kwargs : dict, optional
        Passed to ``redis.asyncio.from_url``.

    Examples
    --------
    Not run here (it needs a server; docs/connectors/redis.md has a tested example)::

        source = Stream.from_redis_stream('redis://127.0.0.1:6379', 'events', 'g', 'c1')
        source.map(lambda fields: fields['user']).sink(print)
        source.start()
    """

    _wait_ready_on_start = True
    _start_timeout = 30.0
    drain_timeout = 10.0
    #: the format of :meth:`snapshot`: ``{'acks': checkpoint counter}``
    snapshot_version = 1

    def __init__(
        self,
        url: str,
        stream: str | Sequence[str],
        group: str,
        consumer: str,
        *,
        start_id: str = "0",
        create_group: bool = True,
        count: int = 100,
        block: float = 0.5,
        max_in_flight: int = 1000,
        with_id: bool = False,
        decode: bool = True,
        claim_min_idle: float | None = 60.0,
        claim_interval: float = 10.0,
        on_failure: str = "stop",
        dead_letter_stream: str | None = None,
        drain_timeout: float | None = None,
        client_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ):
        name = "from_redis_stream"
        streams = [stream] if isinstance(stream, (str, bytes)) else list(stream)
        if not streams or not all(isinstance(s, str) and s for s in streams):
            raise TypeError(f"{name}: stream must be a key or a list of keys, got {stream!r}")
        check_positive_int(name, "count", count)
        check_positive_int(name, "max_in_flight", max_in_flight)
        if on_failure not in _FAILURE_MODES:
            raise ValueError(
                f"{name}: on_failure must be one of {_FAILURE_MODES}, got {on_failure!r}"
            )
        if not isinstance(block, (int, float)) or block <= 0:
            raise ValueError(f"{name}: block must be a number of seconds > 0, got {block!r}")
        if claim_min_idle is not None and claim_min_idle < 0:
            raise ValueError(f"{name}: claim_min_idle must be >= 0 or None, got {claim_min_idle!r}")
        if drain_timeout is not None:
            self.drain_timeout = float(drain_timeout)
        self.url = url
        self.streams = streams
        self.group = group
        self.consumer = consumer
        self.start_id = start_id
        self.create_group = create_group
        self.count = count
        self.block = float(block)
        self.max_in_flight = max_in_flight
        self.with_id = with_id
        self.decode = decode
        self.claim_min_idle = claim_min_idle
        self.claim_interval = float(claim_interval)
        self.on_failure = on_failure
        self.dead_letter_stream = dead_letter_stream or f"{streams[0]}:dead"
        self.client_kwargs = dict(client_kwargs or {})
        self.client: Any = None
        #: entries acknowledged, claimed from other consumers, dead-lettered, left pending
        self.acked = 0
        self.claimed = 0
        self.dead_lettered = 0
        self.left_pending = 0
        self._key_of = {s: s for s in streams} | {s.encode(): s for s in streams}
        self._in_flight = 0  # emitted, not done (or done, acknowledgement not sent yet)
        self._held: set[tuple[str, Any]] = set()  # (stream, id) emitted and not acknowledged
        self._done: list[tuple[str, Any, Any, BaseException | None]] = []
        self._failure: BaseException | None = None
        self._last_id: dict[str, str] = {}
        self._lag: dict[str, int | None] = {}
        self._wake_acks: asyncio.Event | None = None
        self._room: asyncio.Event | None = None
        self._loop_ident: int | None = None
        self._asyncio_loop: asyncio.AbstractEventLoop | None = None
        # -- checkpoints --
        self._checkpointing = False
        self._uncovered: list[tuple[str, Any]] = []  # done since the last snapshot
        self._covered: list[tuple[int, list[tuple[str, Any]]]] = []  # (counter, entries)
        self._counter = 0
        self._complete = 0  # the counter of the last completed checkpoint
        super().__init__(**kwargs)

    # -- the run ------------------------------------------------------------------------
    async def run(self) -> None:
        self._asyncio_loop = asyncio.get_running_loop()
        self._loop_ident = threading.get_ident()
        self._wake_acks, self._room = asyncio.Event(), asyncio.Event()
        self._failure, self._in_flight, self._held, self._done = None, 0, set(), []
        who = "from_redis_stream"
        client = self.client = await connect(who, self.url, self.decode, **self.client_kwargs)
        acks: asyncio.Task[None] | None = None
        watch: asyncio.Task[None] | None = None
        try:
            for key in self.streams:
                await ensure_group(who, client, key, self.group, self.start_id, self.create_group)
            self._set_ready()
            acks = asyncio.ensure_future(self._ack_loop(client))
            watch = asyncio.ensure_future(self._watch_lag(client))
            await self._ack_covered(client)
            await self._read_own_pending(client)
            next_claim = time.monotonic()
            streams = dict.fromkeys(self.streams, ">")
            block_ms = max(1, int(self.block * 1000))
            while not self.stopped:
                self._raise_if_failed()
                if self.claim_min_idle is not None and time.monotonic() >= next_claim:
                    await self._claim(client)
                    next_claim = time.monotonic() + self.claim_interval
                room = await self._wait_for_room()
                if room is STOPPED or self.stopped:
                    break
                reply = await client.xreadgroup(
                    self.group, self.consumer, streams, count=min(self.count, room), block=block_ms
                )
                for key, entries in _by_stream(reply):
                    await self._emit_entries(self._key_of[key], entries)
        except Exception as e:
            if is_connection_error(e) and not isinstance(e, RedisConnectError):
                raise RedisConnectError(
                    f"{who}: lost the connection to Redis at {node_of(self.url)}: {e}"
                ) from e
            raise
        finally:
            if watch is not None:
                watch.cancel()
            try:
                await self._drain()
                if acks is not None:
                    acks.cancel()
                    await asyncio.gather(acks, return_exceptions=True)
                try:
                    await self._flush(client)
                except Exception as e:  # never hides the error that ended the run
                    logger.warning(
                        "%s: the last acknowledgements failed (the entries stay pending and "
                        "are delivered again): %r",
                        self,
                        e,
                    )
            finally:
                self.client = None
                await client.aclose()
        self._raise_if_failed()

    async def _read_own_pending(self, client: Any) -> None:
        """Emit this consumer's pending entries (read before and never acknowledged)."""
        for key in self.streams:
            last: Any = "0"
            while not self.stopped:
                room = await self._wait_for_room()
                if room is STOPPED:
                    return
                reply = await client.xreadgroup(
                    self.group, self.consumer, {key: last}, count=min(self.count, room)
                )
                entries = [e for _, found in _by_stream(reply) for e in found]
                if not entries:
                    break
                await self._emit_entries(key, entries)
                last = entries[-1][0]

    async def _claim(self, client: Any) -> None:
        """Claim the entries of the group idle longer than ``claim_min_idle`` (``XAUTOCLAIM``)."""
        assert self.claim_min_idle is not None
        idle_ms = int(self.claim_min_idle * 1000)
        for key in self.streams:
            start: Any = "0-0"
            while not self.stopped:
                room = await self._wait_for_room()
                if room is STOPPED:
                    return
                reply = await client.xautoclaim(
                    key,
                    self.group,
                    self.consumer,
                    idle_ms,
                    start_id=start,
                    count=min(self.count, room),
                )
                start, entries = reply[0], reply[1]
                fresh = [e for e in entries if (key, e[0]) not in self._held]
                if fresh:
                    self.claimed += len(fresh)
                    logger.info("%s: claimed %d pending entries of %r", self, len(fresh), key)
                    await self._emit_entries(key, fresh)
                if _text(start) == "0-0":
                    break

    async def _wait_for_room(self) -> Any:
        """The number of entries that may be emitted now (waits for one), or STOPPED."""
        room = self._room
        assert room is not None
        while self._in_flight >= self.max_in_flight:
            room.clear()
            if self._failure is not None or self.stopped:
                return STOPPED
            if await self._interruptible(room.wait()) is STOPPED:
                return STOPPED
        return self.max_in_flight - self._in_flight

    # -- emitting -------------------------------------------------------------------------
    async def _emit_entries(self, key: str, entries: list[Any]) -> None:
        needs_refs = not self._downstream_fully_fused()
        held = self._held
        for entry_id, fields in entries:
            if fields is None:  # deleted from the stream while pending: nothing to process
                self._finished(key, entry_id, None, None, counted=False)
                continue
            if (key, entry_id) in held:
                continue
            held.add((key, entry_id))
            self._in_flight += 1
            self._last_id[key] = entry_id
            x = (entry_id, fields) if self.with_id else fields
            if not needs_refs:
                try:
                    await self._emit_and_wait(x)
                except Exception as e:
                    self._finished(key, entry_id, fields, e)
                    self._on_emit_error(e, key, entry_id)
                    continue
                self._finished(key, entry_id, fields, None)
                continue
            ref = RefCounter(initial=1)
            ref.cb = _when_released(self, ref, key, entry_id, fields)
            try:
                await self._emit_and_wait(x, [{"ref": ref, "stream": key, "id": entry_id}])
            except Exception as e:
                ref.fail(e)
                ref.release()
                self._on_emit_error(e, key, entry_id)
                continue
            ref.release()

    def _on_emit_error(self, error: Exception, key: str, entry_id: Any) -> None:
        note = f"redis: while processing stream {key!r} entry {_text(entry_id)}"
        add_note(error, note, unless="redis: while processing")
        if self.on_failure == "stop":
            raise error

    def _finished(
        self,
        key: str,
        entry_id: Any,
        fields: Any,
        error: BaseException | None,
        counted: bool = True,
    ) -> None:
        """An entry is done (or failed): queue its acknowledgement (from any thread)."""
        self._done.append((key, entry_id, fields if error is not None else counted, error))
        event = self._wake_acks
        if event is None:
            return
        if threading.get_ident() == self._loop_ident:
            event.set()
        elif self._asyncio_loop is not None:
            self._asyncio_loop.call_soon_threadsafe(event.set)

    # -- acknowledging --------------------------------------------------------------------
    async def _ack_loop(self, client: Any) -> None:
        event = self._wake_acks
        assert event is not None
        while True:
            await event.wait()
            event.clear()
            try:
                await self._flush(client)
            except Exception as e:  # retried; until then the entries stay pending
                logger.warning("%s: acknowledging entries failed (retried): %r", self, e)
                await asyncio.sleep(0.5)
                event.set()

    async def _flush(self, client: Any) -> None:
        """Acknowledge the entries done (in checkpoint mode: those a completed checkpoint
        covers), dead-letter or leave the failed ones, and make room."""
        done, self._done = self._done, []
        if not done:
            return
        ok: dict[str, list[Any]] = {}
        finished = 0
        for key, entry_id, extra, error in done:
            if error is None:
                finished += 1 if extra else 0
                if self._checkpointing and extra:
                    self._uncovered.append((key, entry_id))
                else:
                    ok.setdefault(key, []).append(entry_id)
                continue
            finished += 1
            await self._failed(client, key, entry_id, extra, error, ok)
        if ok:
            try:
                await self._ack(client, ok)
            except Exception:
                self._done[:0] = [(k, i, False, None) for k, ids in ok.items() for i in ids]
                self._in_flight -= finished
                self._wake_room()
                raise
        self._in_flight -= finished
        self._wake_room()

    def _wake_room(self) -> None:
        if self._room is not None:
            self._room.set()

    async def _ack(self, client: Any, ids_by_key: dict[str, list[Any]]) -> None:
        async with client.pipeline(transaction=False) as pipe:
            for key, ids in ids_by_key.items():
                pipe.xack(key, self.group, *ids)
            await pipe.execute()
        for key, ids in ids_by_key.items():
            self.acked += len(ids)
            for entry_id in ids:
                self._held.discard((key, entry_id))

    async def _failed(
        self,
        client: Any,
        key: str,
        entry_id: Any,
        fields: Any,
        error: BaseException,
        ok: dict[str, list[Any]],
    ) -> None:
        where = f"stream {key!r} entry {_text(entry_id)}"
        if self.on_failure == "dead_letter":
            record = {**fields, "error": repr(error)[:1000], "stream": key, "id": _text(entry_id)}
            await client.xadd(self.dead_letter_stream, record)
            self.dead_lettered += 1
            logger.warning(
                "%s: %s failed (%r); sent to %r", self, where, error, self.dead_letter_stream
            )
            ok.setdefault(key, []).append(entry_id)
            return
        self._held.discard((key, entry_id))  # pending: a later claim may deliver it again
        self.left_pending += 1
        if self.on_failure == "stop":
            if self._failure is None:
                add_note(
                    error, f"redis: while processing {where}", unless="redis: while processing"
                )
                self._failure = error
                self._wake_room()
            return
        logger.warning("%s: %s failed (%r); left pending", self, where, error)

    def _raise_if_failed(self) -> None:
        if self._failure is not None:
            raise self._failure

    # -- stop -----------------------------------------------------------------------------
    def _drain_bound(self) -> float:
        return self.drain_timeout

    async def _drain(self) -> None:
        """Wait (at most ``drain_timeout``) until every entry emitted is done."""
        deadline = time.monotonic() + self.drain_timeout
        room = self._room
        while self._in_flight > len(self._done) and room is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                logger.warning(
                    "%s: %d entries still in flight after drain_timeout=%g s; they stay "
                    "pending (delivered again)",
                    self,
                    self._in_flight - len(self._done),
                    self.drain_timeout,
                )
                return
            room.clear()
            try:
                await asyncio.wait_for(room.wait(), min(left, 0.1))
            except asyncio.TimeoutError:
                pass

    # -- metrics ----------------------------------------------------------------------------
    async def _watch_lag(self, client: Any) -> None:
        while True:
            for key in self.streams:
                try:
                    groups = await client.xinfo_groups(key)
                except Exception as e:
                    logger.debug("%s: XINFO GROUPS %s failed: %r", self, key, e)
                    continue
                for info in groups:
                    if _text(info.get("name")) == self.group:
                        lag = info.get("lag")
                        self._lag[key] = None if lag is None else int(lag)
            await asyncio.sleep(LAG_REFRESH)

    def extra_metrics(self) -> dict[str, Any]:
        """``position`` (``{stream: last id emitted}``), ``backlog`` (entries not
        acknowledged), ``lag`` and ``lag_by_stream`` (see the class)."""
        lags = dict(self._lag)
        total = None if not lags or None in lags.values() else sum(lags.values())  # type: ignore[arg-type]
        return {
            "position": {k: _text(v) for k, v in self._last_id.items()},
            "backlog": self._in_flight,
            "lag": total,
            "lag_by_stream": lags,
        }

    # -- checkpoints ------------------------------------------------------------------------
    def checkpoint_mode(self, on: bool, identity: str | None = None) -> None:
        """Acknowledge only the entries a completed checkpoint covers."""
        self._checkpointing = bool(on)

    def snapshot(self) -> dict[str, int]:
        """``{'acks': n}``: a counter naming the entries done so far, acknowledged once the
        checkpoint holding it is complete (Redis itself keeps the group's position)."""
        done, self._done = self._done, []
        for key, entry_id, extra, error in done:
            if error is None and extra:
                self._uncovered.append((key, entry_id))
                self._in_flight -= 1
            elif error is None:
                self._done.append((key, entry_id, extra, error))  # deleted entry: acked
            else:
                self._done.append((key, entry_id, extra, error))
        if self._uncovered:
            self._counter += 1
            self._covered.append((self._counter, self._uncovered))
            self._uncovered = []
            self._wake_room()
        return {"acks": self._counter}

    def restore(self, position: dict[str, int]) -> None:
        """Nothing to resume: what was not acknowledged is pending in Redis and delivered
        again. Call while stopped; :class:`StateError` on a bad value."""
        if not self.stopped:
            raise StateError(f"{self}: restore() needs a stopped source")
        state = expect_fields(self, position, {"acks": int})
        self._counter = self._complete = max(self._counter, state["acks"])
        self._covered, self._uncovered = [], []

    async def checkpoint_complete(self, position: dict[str, int]) -> None:
        """A checkpoint is durable: acknowledge the entries done before it."""
        self._complete = max(self._complete, int(position.get("acks", 0)))
        client = self.client
        if client is not None:
            try:
                await self._ack_covered(client)
            except Exception as e:  # acknowledged after the next checkpoint
                logger.warning("%s: acknowledging the checkpoint's entries failed: %r", self, e)

    async def _ack_covered(self, client: Any) -> None:
        due = [(n, entries) for n, entries in self._covered if n <= self._complete]
        if not due:
            return
        self._covered = [(n, e) for n, e in self._covered if n > self._complete]
        ids: dict[str, list[Any]] = {}
        for _, entries in due:
            for key, entry_id in entries:
                ids.setdefault(key, []).append(entry_id)
        try:
            await self._ack(client, ids)
        except Exception:
            self._covered[:0] = due
            raise


def _by_stream(reply: Any) -> Any:
    """``[(key, entries)]`` of an ``XREADGROUP`` reply (RESP2: a list of pairs; RESP3: a
    dict of ``[entries]``)."""
    if not reply:
        return ()
    if isinstance(reply, dict):
        return [(key, found[0] if found else []) for key, found in reply.items()]
    return reply


def _when_released(
    source: from_redis_stream, ref: RefCounter, key: str, entry_id: Any, fields: Any
) -> Any:
    def released() -> None:  # in whichever thread let go last
        ref.cb = None
        source._finished(key, entry_id, fields, ref.errors[0] if ref.errors else None)

    return released
