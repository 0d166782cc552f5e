"""The windows of ``CountTumbling``, ``CountSliding`` and ``Global`` assigners.

These windows close on the number of elements of their key (or on ``Global``'s
trigger), never on the watermark, except that :meth:`window.flush` (watermark ``+inf``)
fires every open one. State: a dict ``key -> window`` (``CountTumbling``, ``Global``) or
``key -> [open windows, oldest first]`` (``CountSliding``), and per key the position of
its next element (``CountSliding``) or of its next window (``CountTumbling``, kept while
the key has no open window).

A store of the ``window`` node: see :mod:`millstream.time._store` for the contract.
"""

from __future__ import annotations

import math
from typing import Any

from ..core.refs import Metadata, release_refs, retain_refs
from ..core.state import COUNT
from ._results import WindowResult
from ._store import StoreContext, WindowStore, checked_entries
from .windows import GLOBAL_WINDOW, CountSliding, CountTumbling, Global, Window

__all__ = ["CountSlidingWindows", "CountTumblingWindows", "CountWindows", "GlobalWindows",
           "count_windows"]  # fmt: skip

_INF = math.inf


def count_windows(context: StoreContext) -> CountWindows:
    """The store for a CountTumbling, CountSliding or Global assigner."""
    assigner = context.assigner
    if isinstance(assigner, CountTumbling):
        return CountTumblingWindows(context)
    if isinstance(assigner, CountSliding):
        return CountSlidingWindows(context)
    assert isinstance(assigner, Global)
    return GlobalWindows(context)


class _CountWindow:
    """One open count window (or the global window) of one key."""

    __slots__ = ("acc", "count", "held", "start")

    def __init__(self, start: int, acc: Any):
        self.start, self.acc, self.count = start, acc, 0
        self.held: Metadata | None = None


class CountWindows(WindowStore):
    """The open windows of one ``window`` node with a CountTumbling, CountSliding or
    Global assigner (one subclass each, whose :meth:`add` places an element);
    :meth:`advance` fires every open window when the watermark reaches ``+inf`` (the
    end of the input).
    """

    #: Count windows close on counts; the watermark closes them only at +inf (flush).
    next_close = _INF
    next_purge = _INF
    #: ``key -> [windows]`` rather than ``key -> window`` (CountSliding).
    _many_per_key = False

    def __init__(self, context: StoreContext):
        super().__init__(context)
        self.open: dict[Any, Any] = {}  # key -> _CountWindow or list of them
        self.positions: dict[Any, int] = {}  # key -> next position
        self._keys = context.keys
        self._agg = context.agg
        self._out = context.out
        self._early = context.early

    def window_of(self, win: _CountWindow) -> Window:
        """The window ``win`` covers so far (fired before it is full: at the end of input)."""
        return Window(win.start, win.start + win.count)

    # -- elements ------------------------------------------------------------------------
    def _add_to(self, win: _CountWindow, v: Any, x: Any, metadata: Metadata | None) -> None:
        win.acc = self._agg.fold(win.acc, v, x)
        win.count += 1
        if metadata:
            retain_refs(metadata)
            if win.held is None:
                win.held = list(metadata)
            else:
                win.held.extend(metadata)

    # -- the watermark -------------------------------------------------------------------
    def advance(self, wm: float) -> list[Any]:
        """At watermark ``+inf`` (end of input) fire every open window."""
        return self._fire_all() if wm >= self.next_close else []

    def _fire_all(self) -> list[Any]:
        keys, agg, final = self._keys, self._agg, self._out.final
        due: list[tuple[Any, _CountWindow]] = []
        for key, entry in self.open.items():
            for win in entry if isinstance(entry, list) else [entry]:
                due.append((key, win))
        window_of = self.window_of
        due.sort(key=lambda item: (window_of(item[1]).end, keys.rank(item[0])))
        pending: list[Any] = []
        for key, win in due:
            entry = self.open[key]
            if isinstance(entry, list):
                entry.remove(win)
            if not isinstance(entry, list) or not entry:
                del self.open[key]
                keys.closed(key)
            self._fired_at_end(key, win)
            result = WindowResult(key, window_of(win), agg.value(win.acc), "final")
            pending += final(result, win.held)
        return pending

    def _fired_at_end(self, key: Any, win: _CountWindow) -> None:
        """``win`` of ``key`` fired before it was full (end of input)."""

    # -- state ---------------------------------------------------------------------------
    def snapshot(self) -> tuple[list[Any], list[Any], dict[Any, int]]:
        """``(open, kept, positions)`` of the node's snapshot (not copied).

        ``open``: ``(key, start, accumulator, elements)``; ``kept``: empty;
        ``positions``: key -> next position (a copy).
        """
        open_: list[Any] = []
        for key, entry in self.open.items():
            for win in entry if isinstance(entry, list) else [entry]:
                open_.append((key, win.start, win.acc, win.count))
        return open_, [], dict(self.positions)

    def restore(self, open_: list[Any], kept: list[Any], positions: dict[Any, int]) -> None:
        """Replace every window by those of a :meth:`snapshot` in a new store (the key
        ranks are already restored; each open window counts for its key). A
        ``ValueError`` or ``TypeError`` says what is wrong."""
        if kept:
            raise ValueError(f"field 'kept' must be empty for count windows, got {kept!r}")
        if not isinstance(positions, dict) or not all(COUNT(p) for p in positions.values()):
            raise ValueError(f"field 'positions' must map keys to ints >= 0, got {positions!r}")
        self.positions.update(positions)
        names = ("key", "start", "accumulator", "count")
        for key, start, acc, count in checked_entries(open_, "open", names, "", "start count"):
            win = _CountWindow(start, acc)
            win.count = count
            if self._many_per_key:
                if key not in self.open:
                    self.open[key] = []
                    self._keys.opened(key)
                self.open[key].append(win)
            elif key in self.open:
                raise ValueError(f"field 'open': two windows of the key {key!r}")
            else:
                self.open[key] = win
                self._keys.opened(key)

    def release_held(self, error: BaseException) -> None:
        """Release the refs held for the elements of the open windows, marked failed."""
        for entry in self.open.values():
            for win in entry if isinstance(entry, list) else [entry]:
                release_refs(win.held, error=error)


class CountTumblingWindows(CountWindows):
    """``CountTumbling(n)``: one window per key, firing when it holds ``n`` elements."""

    def __init__(self, context: StoreContext):
        super().__init__(context)
        assigner = context.assigner
        assert isinstance(assigner, CountTumbling)
        self.n = assigner.n

    def add(
        self, ts: Any, key: Any, v: Any, x: Any, metadata: Metadata | None, wm: float
    ) -> list[Any] | None:
        windows = self.open
        win = windows.get(key)
        if win is None:
            start = self.positions.pop(key, 0)
            win = windows[key] = _CountWindow(start, self._agg.create())
            self._keys.opened(key)
        self._add_to(win, v, x, metadata)
        n = self.n
        if win.count >= n:
            del windows[key]
            self.positions[key] = win.start + n
            self._keys.closed(key)
            result = WindowResult(
                key, Window(win.start, win.start + n), self._agg.value(win.acc), "final"
            )
            return self._out.final(result, win.held)
        early = self._early
        if early is not None and win.count % early == 0:
            value = self._agg.value(win.acc)
            w = Window(win.start, win.start + n)
            return self._out.result(WindowResult(key, w, value, "early"))
        return None

    def _fired_at_end(self, key: Any, win: _CountWindow) -> None:
        self.positions[key] = win.start + win.count


class CountSlidingWindows(CountWindows):
    """``CountSliding(n, slide)``: per key, a window starts every ``slide`` elements and
    fires when it holds ``n``."""

    _many_per_key = True

    def __init__(self, context: StoreContext):
        super().__init__(context)
        assigner = context.assigner
        assert isinstance(assigner, CountSliding)
        self.n, self.slide = assigner.n, assigner.slide

    def add(
        self, ts: Any, key: Any, v: Any, x: Any, metadata: Metadata | None, wm: float
    ) -> list[Any] | None:
        agg, out = self._agg, self._out
        n, slide = self.n, self.slide
        position = self.positions.get(key, 0)
        self.positions[key] = position + 1
        open_ = self.open.get(key)
        if position % slide == 0:
            if open_ is None:
                open_ = self.open[key] = []
                self._keys.opened(key)
            open_.append(_CountWindow(position, agg.create()))
        if not open_:
            return None
        pending: list[Any] = []
        early = self._early
        for win in open_:
            self._add_to(win, v, x, metadata)
            if early is not None and win.count % early == 0 and win.count < n:
                w = Window(win.start, win.start + n)
                pending += out.result(WindowResult(key, w, agg.value(win.acc), "early"))
        first = open_[0]
        if first.count >= n:
            del open_[0]
            if not open_:
                del self.open[key]
                self._keys.closed(key)
            result = WindowResult(
                key, Window(first.start, first.start + n), agg.value(first.acc), "final"
            )
            pending += out.final(result, first.held)
        return pending


class GlobalWindows(CountWindows):
    """``Global(trigger)``: one window per key, firing when its trigger says so."""

    def __init__(self, context: StoreContext):
        super().__init__(context)
        assigner = context.assigner
        assert isinstance(assigner, Global)
        # fire every `trigger` elements, or when trigger(n, acc) is true
        self.trigger: Any = assigner.trigger
        self.purge = assigner.purge  # forget the window when it fires

    def window_of(self, win: _CountWindow) -> Window:
        return GLOBAL_WINDOW

    def add(
        self, ts: Any, key: Any, v: Any, x: Any, metadata: Metadata | None, wm: float
    ) -> list[Any] | None:
        windows = self.open
        win = windows.get(key)
        if win is None:
            win = windows[key] = _CountWindow(0, self._agg.create())
            self._keys.opened(key)
        self._add_to(win, v, x, metadata)
        trigger = self.trigger
        if isinstance(trigger, int):
            fire = win.count % trigger == 0
        else:
            try:
                fire = trigger(win.count, win.acc)
            except Exception as e:
                self.context.note_error(e, trigger, x, "element")
                raise
        early = self._early
        if fire and self.purge:
            del windows[key]
            self._keys.closed(key)
            result = WindowResult(key, GLOBAL_WINDOW, self._agg.value(win.acc), "final")
            return self._out.final(result, win.held)
        if fire or (early is not None and win.count % early == 0):
            value = self._agg.value(win.acc)
            return self._out.result(WindowResult(key, GLOBAL_WINDOW, value, "early"))
        return None
