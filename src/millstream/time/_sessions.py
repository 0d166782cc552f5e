"""The windows of a ``Session`` assigner: per key, sessions that merge when they meet.

An element at ``ts`` makes the window ``[ts, ts + gap)``; every open session of its key
that overlaps it merges into one (accumulators merged by the aggregation's ``merge``). A
session closes once the watermark reaches ``end + allowed_lateness``. Open sessions live
in a dict ``key -> [sessions]`` with a heap of ``(closing time, seq, session)``; a
session that grew is pushed again and the stale entry is skipped when popped (its
``end`` no longer matches). With ``late='update'``, fired sessions move to ``kept``
(with their own heap of expiry times) until ``update_for`` has passed.

A store of the ``window`` node: see :mod:`millstream.time._store` for the contract.
"""

from __future__ import annotations

import heapq
import math
from typing import Any

from ..core.refs import Metadata, release_refs, retain_refs
from ._results import WindowResult
from ._store import StoreContext, WindowStore, checked_entries
from .windows import Session, Window

__all__ = ["SessionWindows"]

_INF = math.inf


class _Session:
    """One open (or kept) session window of one key."""

    __slots__ = ("acc", "alive", "count", "end", "held", "key", "next_early", "start")

    def __init__(self, key: Any, start: float, end: float, acc: Any):
        self.key, self.start, self.end, self.acc = key, start, end, acc
        self.count = 0
        self.held: Metadata | None = None
        self.alive = True
        self.next_early = 0


class SessionWindows(WindowStore):
    """The open (and kept) sessions of one ``window`` node with a Session assigner.

    :meth:`add` places an element in its key's sessions; :meth:`advance` fires the
    sessions the watermark closed and forgets the kept ones that expired.
    """

    accumulator_index = 3

    def __init__(self, context: StoreContext):
        super().__init__(context)
        assigner = context.assigner
        assert isinstance(assigner, Session)
        self.gap = assigner.gap
        self.open: dict[Any, list[_Session]] = {}  # key -> open sessions
        self.heap: list[tuple[float, int, _Session]] = []  # (closes at, seq, session)
        self.kept: dict[Any, list[_Session]] = {}  # key -> fired sessions kept for updates
        self.kept_heap: list[tuple[float, int, _Session]] = []  # (expires at, seq, session)
        self._seq = 0
        self.next_close = _INF  # watermark at which the next session closes
        self.next_purge = _INF  # watermark at which the next kept session expires
        self._keep = context.keep_fired
        self._lateness = context.allowed_lateness
        self._keys = context.keys
        self._agg = context.agg
        self._out = context.out

    # -- elements ------------------------------------------------------------------------
    def add(
        self, ts: Any, key: Any, v: Any, x: Any, metadata: Metadata | None, wm: float
    ) -> list[Any] | None:
        agg = self._agg
        gap, lateness = self.gap, self._lateness
        end = ts + gap
        sessions = self.open.get(key)
        overlapping = (
            [s for s in sessions if s.start < end and ts < s.end] if sessions is not None else []
        )
        pending: list[Any] = []
        if not overlapping and end + lateness <= wm:
            pending += self._late(key, ts, end, v, x, metadata, wm)
        else:
            if not overlapping:
                session = _Session(key, ts, end, agg.create())
                if sessions is None:
                    sessions = self.open[key] = []
                sessions.append(session)
                self._keys.opened(key)
                self._schedule(session)
            else:
                overlapping.sort(key=lambda s: s.start)
                session = overlapping[0]
                old_end = session.end
                for other in overlapping[1:]:
                    session.acc = agg.merge(session.acc, other.acc, x)
                    session.count += other.count
                    if other.held:
                        if session.held is None:
                            session.held = []
                        session.held.extend(other.held)
                    session.end = max(session.end, other.end)
                    other.alive = False
                    assert sessions is not None
                    sessions.remove(other)
                    self._keys.closed(key)
                session.start = min(session.start, ts)
                session.end = max(session.end, end)
                if session.end != old_end:
                    self._schedule(session)
            session.acc = agg.fold(session.acc, v, x)
            session.count += 1
            if metadata:
                retain_refs(metadata)
                if session.held is None:
                    session.held = list(metadata)
                else:
                    session.held.extend(metadata)
            early = self.context.early
            if early is not None and session.count >= session.next_early:
                session.next_early = (session.count // early + 1) * early
                if session.count >= early:
                    w = Window(session.start, session.end)
                    value = self._agg.value(session.acc)
                    pending += self._out.result(WindowResult(key, w, value, "early"))
        return pending

    def _schedule(self, session: _Session) -> None:
        close = session.end + self._lateness
        self._seq += 1
        heapq.heappush(self.heap, (close, self._seq, session))
        if close < self.next_close:
            self.next_close = close

    def _late(
        self, key: Any, ts: Any, end: Any, v: Any, x: Any, metadata: Metadata | None, wm: float
    ) -> list[Any]:
        out, agg = self._out, self._agg
        pending = out.late(Window(ts, end), x, metadata)
        if pending is not None:
            return pending
        kept_list = self.kept.get(key)
        overlapping = [s for s in kept_list if s.start < end and ts < s.end] if kept_list else []
        keep_for = self.context.update_for
        if not overlapping:
            if end + self._lateness + keep_for <= wm and keep_for != _INF:
                out.dropped()
                return []
            session = _Session(key, ts, end, agg.create())
            if kept_list is None:
                kept_list = self.kept[key] = []
            kept_list.append(session)
        else:
            overlapping.sort(key=lambda s: s.start)
            session = overlapping[0]
            for other in overlapping[1:]:
                session.acc = agg.merge(session.acc, other.acc, x)
                session.end = max(session.end, other.end)
                other.alive = False
                assert kept_list is not None
                kept_list.remove(other)
            session.start = min(session.start, ts)
            session.end = max(session.end, end)
        session.acc = agg.fold(session.acc, v, x)
        self._keep_session(session)
        value = agg.value(session.acc)
        return out.result(
            WindowResult(key, Window(session.start, session.end), value, "update"), metadata
        )

    def _keep_session(self, session: _Session) -> None:
        keep_for = self.context.update_for
        if keep_for == _INF:
            return
        expires = session.end + self._lateness + keep_for
        self._seq += 1
        heapq.heappush(self.kept_heap, (expires, self._seq, session))
        if expires < self.next_purge:
            self.next_purge = expires

    # -- the watermark -------------------------------------------------------------------
    def advance(self, wm: float) -> list[Any]:
        """Fire the sessions closed at watermark ``wm``; forget the kept ones expired."""
        pending = self._fire(wm) if wm >= self.next_close else []
        if wm >= self.next_purge:
            self._purge(wm)
        return pending

    def _fire(self, wm: float) -> list[Any]:
        heap = self.heap
        lateness = self._lateness
        keys, agg, final = self._keys, self._agg, self._out.final
        due: list[_Session] = []
        while heap and heap[0][0] <= wm:
            close, _, session = heapq.heappop(heap)
            if session.alive and session.end + lateness == close:
                session.alive = False
                due.append(session)
        self.next_close = heap[0][0] if heap else _INF
        if len(due) > 1:
            due.sort(key=lambda s: (s.end, keys.rank(s.key)))
        pending: list[Any] = []
        for i, session in enumerate(due):
            key = session.key
            sessions = self.open[key]
            sessions.remove(session)
            if not sessions:
                del self.open[key]
            keys.closed(key)
            held, session.held = session.held, None
            if self._keep:
                session.alive = True
                self.kept.setdefault(key, []).append(session)
                self._keep_session(session)
            result = WindowResult(
                key, Window(session.start, session.end), agg.value(session.acc), "final"
            )
            try:
                pending += final(result, held)
            except BaseException as e:
                for rest in due[i + 1 :]:  # give the others back their places
                    rest.alive = True
                    self._schedule(rest)
                raise e
        return pending

    def _purge(self, wm: float) -> None:
        heap = self.kept_heap
        keep_for = self.context.update_for
        while heap and heap[0][0] <= wm:
            expires, _, session = heapq.heappop(heap)
            if not session.alive:
                continue
            if session.end + self._lateness + keep_for != expires:
                continue  # extended since: a later entry stands for it
            session.alive = False
            kept = self.kept.get(session.key)
            if kept is not None:
                kept.remove(session)
                if not kept:
                    del self.kept[session.key]
        self.next_purge = heap[0][0] if heap else _INF

    # -- state ---------------------------------------------------------------------------
    def snapshot(self) -> tuple[list[Any], list[Any], dict[Any, int]]:
        """``(open, kept, positions)`` of the node's snapshot (not copied).

        ``open``: ``(key, start, end, accumulator, elements, next early count)``;
        ``kept``: ``(key, start, end, accumulator)``; ``positions``: empty.
        """
        open_: list[Any] = []
        kept: list[Any] = []
        for key, sessions in self.open.items():
            for s in sessions:
                open_.append((key, s.start, s.end, s.acc, s.count, s.next_early))
        for key, sessions in self.kept.items():
            for s in sessions:
                kept.append((key, s.start, s.end, s.acc))
        return open_, kept, {}

    def restore(self, open_: list[Any], kept: list[Any], positions: dict[Any, int]) -> None:
        """Replace every session by those of a :meth:`snapshot` in a new store (the key
        ranks are already restored; each open session counts for its key). A
        ``ValueError`` or ``TypeError`` says what is wrong."""
        names = ("key", "start", "end", "accumulator", "count", "next early count")
        entries = checked_entries(open_, "open", names, "start end", "count")
        for key, start, end, acc, count, next_early in entries:
            if type(next_early) is not int:
                raise ValueError(
                    f"field 'open': next early count must be an int, got {next_early!r}"
                )
            s = _Session(key, start, end, acc)
            s.count, s.next_early = count, next_early
            self.open.setdefault(key, []).append(s)
            self._keys.opened(key)
            self._schedule(s)
        for key, start, end, acc in checked_entries(kept, "kept", names[:4], "start end"):
            s = _Session(key, start, end, acc)
            self.kept.setdefault(key, []).append(s)
            self._keep_session(s)

    def release_held(self, error: BaseException) -> None:
        """Release the refs held for the elements of the open sessions, marked failed."""
        for sessions in self.open.values():
            for s in sessions:
                release_refs(s.held, error=error)
