"""The windows of ``Tumbling`` and ``Sliding`` assigners, as numbered buckets.

Window ``k`` is ``[k * step + offset, k * step + offset + size)`` (``step`` is the size
for ``Tumbling``, the slide for ``Sliding``); it closes once the watermark reaches
``k * step + offset + size + allowed_lateness``. The open windows live in a dict
``bucket number -> {key: accumulator}`` with a heap of open bucket numbers, so an element
costs one floor division and two dict look-ups (``Tumbling`` without ``early=`` takes
the shortest path, :class:`TumblingBuckets`, for elements without metadata). The
metadata of held elements and the element counts used by ``early=`` are kept in separate
dicts, touched only when used. With ``late='update'``, fired buckets move to ``kept``
(with their own heap) until ``update_for`` has passed.

A store of the ``window`` node: see :mod:`millstream.time._store` for the contract.
"""

from __future__ import annotations

import heapq
import math
from typing import Any

from ..core.refs import Metadata, release_refs, retain_refs
from ._results import WindowResult
from ._store import StoreContext, WindowStore, checked_entries
from .windows import Sliding, Tumbling, Window

__all__ = ["TimeBuckets", "TumblingBuckets", "time_buckets"]

_MISSING: Any = object()
_INF = math.inf


def time_buckets(context: StoreContext) -> TimeBuckets:
    """The store for a Tumbling or Sliding assigner: the short path when it can take it."""
    if isinstance(context.assigner, Tumbling) and context.early is None:
        return TumblingBuckets(context)
    return TimeBuckets(context)


class TimeBuckets(WindowStore):
    """The open (and kept) windows of one ``window`` node with a Tumbling or Sliding assigner.

    :meth:`add` places an element in its buckets; :meth:`advance` fires the buckets the
    watermark closed and forgets the kept ones that expired.
    """

    def __init__(self, context: StoreContext):
        super().__init__(context)
        assigner = context.assigner
        if isinstance(assigner, Tumbling):
            self.step, self.size = assigner.size, assigner.size
        else:
            assert isinstance(assigner, Sliding)
            self.step, self.size = assigner.slide, assigner.size
        self.offset = assigner.offset
        # bucket k closes when k * step + close_base <= watermark
        self.close_base = assigner.offset + self.size + context.allowed_lateness
        self.open: dict[Any, dict[Any, Any]] = {}  # bucket -> {key: accumulator}
        self.heap: list[Any] = []  # the open buckets' numbers
        self.held: dict[Any, dict[Any, Metadata]] = {}  # bucket -> {key: metadata held}
        self.counts: dict[Any, dict[Any, int]] = {}  # bucket -> {key: elements} (early=)
        self.kept: dict[Any, dict[Any, Any]] = {}  # fired bucket -> {key: accumulator}
        self.kept_heap: list[Any] = []
        self.next_close = _INF  # watermark at which the next bucket closes
        self.next_purge = _INF  # watermark at which the next kept bucket expires
        # what the hot paths use, looked up once
        agg = context.agg
        self._keys = context.keys
        self._create = agg.create
        self._fold = agg.fold
        self._fast_add = agg.fast_add
        self._note_error = context.note_error
        self._out = context.out
        self._early = context.early
        self._update_for = context.update_for

    def window_of(self, k: Any) -> Window:
        start = k * self.step + self.offset
        return Window(start, start + self.size)

    # -- elements ------------------------------------------------------------------------
    def add(
        self, ts: Any, key: Any, v: Any, x: Any, metadata: Metadata | None, wm: float
    ) -> list[Any] | None:
        """Any Tumbling or Sliding window, with metadata or ``early=``."""
        step, offset, base = self.step, self.offset, self.close_base
        k = (ts - offset) // step
        if self.size == step:
            ks = [k]
        else:  # sliding: every window k' <= k whose end is after ts
            ks = []
            size = self.size
            while k * step + offset + size > ts:
                ks.append(k)
                k -= 1
            ks.reverse()
        pending: list[Any] = []
        early = self._early
        fold = self._fold
        for k in ks:
            if k * step + base <= wm:
                pending += self._late(k, key, v, x, metadata, wm)
                continue
            bucket = self.open.get(k)
            if bucket is None:
                bucket = self._new_bucket(k)
            acc = bucket.get(key, _MISSING)
            if acc is _MISSING:
                self._keys.opened(key)
                acc = self._create()
            bucket[key] = acc = fold(acc, v, x)
            if metadata:
                self._hold(k, key, metadata)
            if early is not None:
                counts = self.counts.get(k)
                if counts is None:
                    counts = self.counts[k] = {}
                n = counts[key] = counts.get(key, 0) + 1
                if n % early == 0:
                    value = self.context.agg.value(acc)
                    pending += self._out.result(
                        WindowResult(key, self.window_of(k), value, "early")
                    )
        return pending

    def _new_bucket(self, k: Any) -> dict[Any, Any]:
        if k != k or k in (_INF, -_INF):
            raise ValueError(f"window: timestamp must be a finite number, window number is {k}")
        bucket: dict[Any, Any] = {}
        self.open[k] = bucket
        heapq.heappush(self.heap, k)
        close = k * self.step + self.close_base
        if close < self.next_close:
            self.next_close = close
        return bucket

    def _hold(self, k: Any, key: Any, metadata: Metadata) -> None:
        retain_refs(metadata)
        per_window = self.held.get(k)
        if per_window is None:
            per_window = self.held[k] = {}
        held = per_window.get(key)
        if held is None:
            per_window[key] = list(metadata)
        else:
            held.extend(metadata)

    def _late(
        self, k: Any, key: Any, v: Any, x: Any, metadata: Metadata | None, wm: float
    ) -> list[Any]:
        out = self._out
        pending = out.late(self.window_of(k), x, metadata)
        if pending is not None:
            return pending
        close = k * self.step + self.close_base
        keep_for = self._update_for
        if close + keep_for <= wm and keep_for != _INF:
            out.dropped()
            return []
        kept = self.kept.get(k)
        if kept is None:
            kept = self.kept[k] = {}
            heapq.heappush(self.kept_heap, k)
            if close + keep_for < self.next_purge:
                self.next_purge = close + keep_for
        acc = kept.get(key, _MISSING)
        if acc is _MISSING:
            acc = self._create()
        kept[key] = acc = self._fold(acc, v, x)
        result = WindowResult(key, self.window_of(k), self.context.agg.value(acc), "update")
        return out.result(result, metadata)

    # -- the watermark -------------------------------------------------------------------
    def advance(self, wm: float) -> list[Any]:
        """Fire the buckets closed at watermark ``wm``; forget the kept ones expired."""
        pending = self._fire(wm) if wm >= self.next_close else []
        if wm >= self.next_purge:
            self._purge(wm)
        return pending

    def _fire(self, wm: float) -> list[Any]:
        heap, open_, step, base = self.heap, self.open, self.step, self.close_base
        pending: list[Any] = []
        keys_order = self._keys
        sort, closed = keys_order.sort, keys_order.closed
        final, result_out = self._out.final, self._out.result
        keep = self.context.keep_fired
        agg = self.context.agg
        result_of = None if agg.result_is_identity else agg.value
        try:
            while heap and heap[0] * step + base <= wm:
                k = heap[0]
                bucket = open_[k]
                w = self.window_of(k)
                keys = list(bucket)
                if len(keys) > 1:
                    sort(keys)
                held_bucket = self.held.get(k)
                if self._early is not None:
                    self.counts.pop(k, None)
                kept = None
                if keep:
                    kept = self.kept.get(k)
                    if kept is None:
                        kept = self.kept[k] = {}
                        heapq.heappush(self.kept_heap, k)
                        purge_at = k * step + base + self._update_for
                        if purge_at < self.next_purge:
                            self.next_purge = purge_at
                for key in keys:
                    acc = bucket.pop(key)
                    closed(key)
                    held = held_bucket.pop(key, None) if held_bucket else None
                    if kept is not None:
                        kept[key] = acc
                    value = acc if result_of is None else result_of(acc)
                    result = WindowResult(key, w, value, "final")
                    more = result_out(result) if held is None else final(result, held)
                    if more:
                        pending += more
                heapq.heappop(heap)
                del open_[k]
                if held_bucket is not None:
                    del self.held[k]
        finally:
            self.next_close = heap[0] * step + base if heap else _INF
        return pending

    def _purge(self, wm: float) -> None:
        kept_heap, step, base = self.kept_heap, self.step, self.close_base
        keep_for = self._update_for
        while kept_heap and kept_heap[0] * step + base + keep_for <= wm and keep_for != _INF:
            del self.kept[heapq.heappop(kept_heap)]
        self.next_purge = (
            kept_heap[0] * step + base + keep_for if kept_heap and keep_for != _INF else _INF
        )

    # -- state ---------------------------------------------------------------------------
    def snapshot(self) -> tuple[list[Any], list[Any], dict[Any, int]]:
        """``(open, kept, positions)`` of the node's snapshot (not copied).

        ``open``: ``(bucket, key, accumulator, elements counted for early=)``; ``kept``:
        ``(bucket, key, accumulator)``; ``positions``: empty.
        """
        open_: list[Any] = []
        kept: list[Any] = []
        for k, bucket in self.open.items():
            counts = self.counts.get(k, {})
            for key, acc in bucket.items():
                open_.append((k, key, acc, counts.get(key, 0)))
        for k, bucket in self.kept.items():
            for key, acc in bucket.items():
                kept.append((k, key, acc))
        return open_, kept, {}

    def restore(self, open_: list[Any], kept: list[Any], positions: dict[Any, int]) -> None:
        """Replace every window by those of a :meth:`snapshot` in a new store (the key
        ranks are already restored; each open window counts for its key). A
        ``ValueError`` or ``TypeError`` says what is wrong."""
        names = ("bucket", "key", "accumulator", "count")
        for k, key, acc, count in checked_entries(open_, "open", names, "bucket", "count"):
            bucket = self.open.get(k)
            if bucket is None:
                bucket = self._new_bucket(k)
            bucket[key] = acc
            self._keys.opened(key)
            if self._early is not None:
                self.counts.setdefault(k, {})[key] = count
        step, base, keep_for = self.step, self.close_base, self._update_for
        for k, key, acc in checked_entries(kept, "kept", names[:3], "bucket"):
            bucket = self.kept.get(k)
            if bucket is None:
                bucket = self.kept[k] = {}
                heapq.heappush(self.kept_heap, k)
                if keep_for != _INF:
                    self.next_purge = min(self.next_purge, k * step + base + keep_for)
            bucket[key] = acc

    def release_held(self, error: BaseException) -> None:
        """Release the refs held for the elements of the open windows, marked failed."""
        for per_window in self.held.values():
            for held in per_window.values():
                release_refs(held, error=error)


class TumblingBuckets(TimeBuckets):
    """Tumbling windows without ``early=``: elements without metadata take the short path
    (one bucket, no counts, nothing held)."""

    def add(
        self, ts: Any, key: Any, v: Any, x: Any, metadata: Metadata | None, wm: float
    ) -> list[Any] | None:
        if metadata:
            return TimeBuckets.add(self, ts, key, v, x, metadata, wm)
        step = self.step
        k = (ts - self.offset) // step
        if k * step + self.close_base <= wm:
            return self._late(k, key, v, x, metadata, wm)
        bucket = self.open.get(k)
        if bucket is None:
            bucket = self._new_bucket(k)
        acc = bucket.get(key, _MISSING)
        if acc is _MISSING:
            self._keys.opened(key)
            acc = self._create()
        add = self._fast_add
        if add is not None:
            try:
                bucket[key] = add(acc, v)
            except Exception as e:
                self._note_error(e, None, x, "element")
                raise
        else:
            bucket[key] = self._fold(acc, v, x)
        return None
