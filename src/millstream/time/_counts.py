"""The windows of ``CountTumbling``, ``CountSliding`` and ``Global`` assigners.

These windows close on the number of elements of their key (or on ``Global``'s
trigger), never on the watermark, except that :meth:`window.flush` (watermark ``+inf``)
fires every open one. State: a dict ``key -> window`` (``CountTumbling``, ``Global``) or
``key -> [open windows, oldest first]`` (``CountSliding``), and per key the position of
its next element (``CountSliding``) or of its next window (``CountTumbling``, kept while
the key has no open window).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .._utils import annotate_error
from ..core.refs import release_refs, retain_refs
from ._results import Metadata, WindowResult
from .windows import GLOBAL_WINDOW, CountSliding, CountTumbling, Global, Window

if TYPE_CHECKING:
    from .operators import window

__all__ = ["CountWindows"]

_INF = math.inf


class _CountWindow:
    """One open count window (or the global window) of one key."""

    __slots__ = ("acc", "count", "held", "start")

    def __init__(self, start: int, acc: Any):
        self.start, self.acc, self.count = start, acc, 0
        self.held: Metadata | None = None


class CountWindows:
    """The open windows of one ``window`` node with a CountTumbling, CountSliding or
    Global assigner.

    ``update`` is the node's per-element method (one per assigner); :meth:`advance` fires
    every open window when the watermark reaches ``+inf`` (the end of the input).
    """

    #: Count windows close on counts; the watermark closes them only at +inf (flush).
    next_close = _INF
    next_purge = _INF

    def __init__(self, node: window):
        self._node = node
        self.open: dict[Any, Any] = {}  # key -> _CountWindow or list of them
        self.positions: dict[Any, int] = {}  # key -> next position
        assigner = node.assigner
        self.update: Callable[..., Any]
        self.n = self.slide = 0  # CountTumbling, CountSliding: elements per window, slide
        self.trigger: Any = None  # Global: fire every `trigger` elements, or trigger(n, acc)
        self.purge = True  # Global: forget the window when it fires
        if isinstance(assigner, CountTumbling):
            self.n = assigner.n
            self.update = self.update_tumbling
        elif isinstance(assigner, CountSliding):
            self.n, self.slide = assigner.n, assigner.slide
            self.update = self.update_sliding
        else:
            assert isinstance(assigner, Global)
            self.trigger, self.purge = assigner.trigger, assigner.purge
            self.update = self.update_global

    # -- elements ------------------------------------------------------------------------
    def _add_to(self, win: _CountWindow, v: Any, x: Any, metadata: Metadata | None) -> None:
        win.acc = self._node._fold(win.acc, v, x)
        win.count += 1
        if metadata:
            retain_refs(metadata)
            if win.held is None:
                win.held = list(metadata)
            else:
                win.held.extend(metadata)

    def update_tumbling(self, x: Any, who: Any = None, metadata: Metadata | None = None) -> Any:
        node = self._node
        key = node._key_of(x)
        v = node._value_of(x)
        windows = self.open
        win = windows.get(key)
        if win is None:
            start = self.positions.pop(key, 0)
            win = windows[key] = _CountWindow(start, node._create())
            node._open_key(key)
        self._add_to(win, v, x, metadata)
        n = self.n
        if win.count >= n:
            del windows[key]
            self.positions[key] = win.start + n
            node._close_key(key)
            result = WindowResult(
                key, Window(win.start, win.start + n), node._value_for(win.acc), "final"
            )
            return node._emit_final(result, win.held)
        early = node.early
        if early is not None and win.count % early == 0:
            return node._emit_early(key, Window(win.start, win.start + n), win.acc)
        return None

    def update_sliding(self, x: Any, who: Any = None, metadata: Metadata | None = None) -> Any:
        node = self._node
        key = node._key_of(x)
        v = node._value_of(x)
        n, slide = self.n, self.slide
        position = self.positions.get(key, 0)
        self.positions[key] = position + 1
        open_ = self.open.get(key)
        if position % slide == 0:
            if open_ is None:
                open_ = self.open[key] = []
                node._open_key(key)
            open_.append(_CountWindow(position, node._create()))
        if not open_:
            return None
        pending: list[Any] = []
        early = node.early
        for win in open_:
            self._add_to(win, v, x, metadata)
            if early is not None and win.count % early == 0 and win.count < n:
                pending += node._emit_early(key, Window(win.start, win.start + n), win.acc)
        first = open_[0]
        if first.count >= n:
            del open_[0]
            if not open_:
                del self.open[key]
                node._close_key(key)
            result = WindowResult(
                key, Window(first.start, first.start + n), node._value_for(first.acc), "final"
            )
            pending += node._emit_final(result, first.held)
        return pending

    def update_global(self, x: Any, who: Any = None, metadata: Metadata | None = None) -> Any:
        node = self._node
        key = node._key_of(x)
        v = node._value_of(x)
        windows = self.open
        win = windows.get(key)
        if win is None:
            win = windows[key] = _CountWindow(0, node._create())
            node._open_key(key)
        self._add_to(win, v, x, metadata)
        trigger = self.trigger
        if isinstance(trigger, int):
            fire = win.count % trigger == 0
        else:
            try:
                fire = trigger(win.count, win.acc)
            except Exception as e:
                annotate_error(e, node, trigger, x)
                raise
        early = node.early
        if fire and self.purge:
            del windows[key]
            node._close_key(key)
            result = WindowResult(key, GLOBAL_WINDOW, node._value_for(win.acc), "final")
            return node._emit_final(result, win.held)
        if fire or (early is not None and win.count % early == 0):
            return node._emit_early(key, GLOBAL_WINDOW, win.acc)
        return None

    # -- the watermark -------------------------------------------------------------------
    def advance(self, wm: float) -> list[Any]:
        """At watermark ``+inf`` (end of input) fire every open window."""
        return self._fire_all() if wm >= self.next_close else []

    def _fire_all(self) -> list[Any]:
        node = self._node
        due: list[tuple[Any, _CountWindow]] = []
        for key, entry in self.open.items():
            for win in entry if isinstance(entry, list) else [entry]:
                due.append((key, win))
        is_global = isinstance(node.assigner, Global)

        def window_of(win: _CountWindow) -> Window:
            return GLOBAL_WINDOW if is_global else Window(win.start, win.start + win.count)

        due.sort(key=lambda item: (window_of(item[1]).end, node._rank(item[0])))
        pending: list[Any] = []
        tumbling = isinstance(node.assigner, CountTumbling)
        for key, win in due:
            entry = self.open[key]
            if isinstance(entry, list):
                entry.remove(win)
            if not isinstance(entry, list) or not entry:
                del self.open[key]
                node._close_key(key)
            if tumbling:
                self.positions[key] = win.start + win.count
            result = WindowResult(key, window_of(win), node._value_for(win.acc), "final")
            pending += node._emit_final(result, win.held)
        return pending

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
        """Replace every window by those of a :meth:`snapshot` (the node's key ranks are
        already restored; each open window counts for its key)."""
        node = self._node
        self.open.clear()
        self.positions.clear()
        self.positions.update(positions)
        sliding = isinstance(node.assigner, CountSliding)
        for key, start, acc, count in open_:
            win = _CountWindow(start, acc)
            win.count = count
            if sliding:
                if key not in self.open:
                    self.open[key] = []
                    node._open_key(key)
                self.open[key].append(win)
            else:
                self.open[key] = win
                node._open_key(key)

    def release_held(self, error: BaseException) -> None:
        """Release the refs held for the elements of the open windows, marked failed."""
        for entry in self.open.values():
            for win in entry if isinstance(entry, list) else [entry]:
                release_refs(win.held, error=error)
