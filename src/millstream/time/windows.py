"""Window assigners: which windows an element belongs to.

A :class:`Window` is a half-open interval ``[start, end)``. Time assigners
(:class:`Tumbling`, :class:`Sliding`, :class:`Session`) work on event timestamps (numbers,
in one unit chosen by the user; seconds in these docs). Count assigners
(:class:`CountTumbling`, :class:`CountSliding`) work on the position of an element among
the elements of its key, counting from 0, so their windows are ``Window(first_index,
last_index + 1)``. :class:`Global` puts every element of a key in one window that only a
trigger (or the end of the input) fires.

Assigners only say where elements go; the ``window`` node (:mod:`millstream.time.operators`)
keeps the window state, merges sessions, closes windows on the watermark and handles late
data.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

from .._utils import check_positive_int, convert_interval, short_repr

__all__ = [
    "GLOBAL_WINDOW",
    "CountSliding",
    "CountTumbling",
    "Global",
    "Session",
    "Sliding",
    "Tumbling",
    "Window",
    "WindowAssigner",
]


class Window(NamedTuple):
    """A half-open interval ``[start, end)`` of event time (or of element positions).

    Examples
    --------
    >>> w = Window(0, 10)
    >>> w.start, w.end, w.start <= 9.5 < w.end, w.start <= 10 < w.end
    (0, 10, True, False)
    >>> w
    Window(start=0, end=10)
    """

    start: float
    end: float


#: The one window of :class:`Global`.
GLOBAL_WINDOW = Window(-math.inf, math.inf)


def _length(owner: str, name: str, value: Any) -> float:
    """A positive, finite duration: a number or a string such as ``'500ms'``."""
    if isinstance(value, bool):
        raise TypeError(f"{owner}: {name} must be a number or a duration, got {value!r}")
    try:
        seconds = convert_interval(value)
    except (TypeError, ValueError) as e:
        raise type(e)(f"{owner}: bad {name}: {e}") from None
    if not seconds > 0 or math.isinf(seconds):
        raise ValueError(
            f"{owner}: {name} must be a positive finite number, got {short_repr(value)}"
        )
    # keep ints as ints, so that integer timestamps give integer windows
    return value if isinstance(value, int) else seconds


def _offset(owner: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{owner}: offset must be a number, got {short_repr(value)}")
    if not math.isfinite(value):
        raise ValueError(f"{owner}: offset must be finite, got {value!r}")
    return value


class WindowAssigner:
    """Base of the assigners; ``kind`` is ``'time'``, ``'session'``, ``'count'`` or ``'global'``.

    The ``window`` node knows each built-in assigner; this base class is not meant for
    user subclasses.

    Examples
    --------
    >>> [a.kind for a in (Tumbling(5), Sliding(5, 1), Session(2), CountTumbling(3), Global(2))]
    ['time', 'time', 'session', 'count', 'global']
    """

    kind = ""

    def assign(self, ts: Any) -> list[Window]:
        """The windows an element with timestamp (or position) ``ts`` belongs to."""
        raise NotImplementedError

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and vars(self) == vars(other)

    def __hash__(self) -> int:
        return hash((type(self).__name__, *sorted(vars(self).items(), key=repr)))


class Tumbling(WindowAssigner):
    """Fixed-size, non-overlapping windows ``[k*size + offset, (k+1)*size + offset)``.

    Parameters
    ----------
    size : number or str
        Width of a window (a number in the timestamps' unit, or a duration such as ``'1min'``,
        read as seconds).
    offset : number
        Shift of the window grid (default 0).

    Examples
    --------
    >>> Tumbling(10).assign(23)
    [Window(start=20, end=30)]
    >>> Tumbling(10, offset=5).assign(23)
    [Window(start=15, end=25)]
    >>> Tumbling('1min').assign(61.5)
    [Window(start=60.0, end=120.0)]
    """

    kind = "time"

    def __init__(self, size: Any, offset: float = 0):
        self.size = _length("Tumbling", "size", size)
        self.offset = _offset("Tumbling", offset)

    def index(self, ts: float) -> Any:
        """The number ``k`` of the window holding ``ts``."""
        return (ts - self.offset) // self.size

    def window(self, k: Any) -> Window:
        """Window number ``k``."""
        start = k * self.size + self.offset
        return Window(start, start + self.size)

    def assign(self, ts: Any) -> list[Window]:
        return [self.window(self.index(ts))]

    def __repr__(self) -> str:
        extra = f", offset={self.offset!r}" if self.offset else ""
        return f"Tumbling({self.size!r}{extra})"


class Sliding(WindowAssigner):
    """Overlapping (hopping) windows of width ``size``, one starting every ``slide``.

    Window ``k`` is ``[k*slide + offset, k*slide + offset + size)``; an element belongs to
    every window that contains its timestamp (``size / slide`` of them when ``slide``
    divides ``size``; ``size % slide`` need not be 0). With ``slide > size`` the windows
    leave gaps, and an element falling in a gap belongs to no window.

    Examples
    --------
    >>> Sliding(10, 5).assign(12)
    [Window(start=5, end=15), Window(start=10, end=20)]
    >>> Sliding(10, 3).assign(12)
    [Window(start=3, end=13), Window(start=6, end=16), Window(start=9, end=19),
     Window(start=12, end=22)]
    >>> Sliding(2, 5).assign(3)
    []
    """

    kind = "time"

    def __init__(self, size: Any, slide: Any, offset: float = 0):
        self.size = _length("Sliding", "size", size)
        self.slide = _length("Sliding", "slide", slide)
        self.offset = _offset("Sliding", offset)

    def window(self, k: Any) -> Window:
        """Window number ``k``."""
        start = k * self.slide + self.offset
        return Window(start, start + self.size)

    def indices(self, ts: float) -> list[Any]:
        """The numbers of the windows holding ``ts``, in increasing order."""
        slide, offset, size = self.slide, self.offset, self.size
        k = (ts - offset) // slide
        found = []
        while k * slide + offset + size > ts:
            found.append(k)
            k -= 1
        found.reverse()
        return found

    def assign(self, ts: Any) -> list[Window]:
        return [self.window(k) for k in self.indices(ts)]

    def __repr__(self) -> str:
        extra = f", offset={self.offset!r}" if self.offset else ""
        return f"Sliding({self.size!r}, {self.slide!r}{extra})"


class Session(WindowAssigner):
    """Session windows: activity separated by at least ``gap`` of silence.

    An element at ``t`` opens the window ``[t, t + gap)``; windows of one key that overlap
    merge, so a session is ``[first_ts, last_ts + gap)``. Two elements closer than ``gap``
    are in the same session; exactly ``gap`` apart, they are not. Aggregations used with
    sessions need ``merge`` (every built-in has it; ``Fold`` needs ``merge=``).

    Examples
    --------
    >>> Session(5).assign(12)
    [Window(start=12, end=17)]
    """

    kind = "session"

    def __init__(self, gap: Any):
        self.gap = _length("Session", "gap", gap)

    def assign(self, ts: Any) -> list[Window]:
        return [Window(ts, ts + self.gap)]

    def __repr__(self) -> str:
        return f"Session({self.gap!r})"


class CountTumbling(WindowAssigner):
    """Windows of ``n`` consecutive elements of a key: positions ``[k*n, (k+1)*n)``.

    No timestamps needed. A window fires when its ``n``-th element arrives; ``flush()``
    on the node fires an incomplete one as ``Window(k*n, last_position + 1)``.

    Examples
    --------
    >>> CountTumbling(3).assign(4)
    [Window(start=3, end=6)]
    """

    kind = "count"

    def __init__(self, n: int):
        self.n = check_positive_int("CountTumbling", "n", n)

    def assign(self, ts: Any) -> list[Window]:
        start = ts - ts % self.n
        return [Window(start, start + self.n)]

    def __repr__(self) -> str:
        return f"CountTumbling({self.n})"


class CountSliding(WindowAssigner):
    """Windows of ``n`` consecutive elements of a key, one starting every ``slide`` elements.

    Window starts are the positions ``0, slide, 2*slide...``; a window fires when it holds
    ``n`` elements (``flush()`` fires incomplete ones). With ``slide > n`` elements between
    windows belong to none.

    Examples
    --------
    >>> CountSliding(3).assign(4)
    [Window(start=2, end=5), Window(start=3, end=6), Window(start=4, end=7)]
    >>> CountSliding(4, slide=2).assign(5)
    [Window(start=2, end=6), Window(start=4, end=8)]
    """

    kind = "count"

    def __init__(self, n: int, slide: int = 1):
        self.n = check_positive_int("CountSliding", "n", n)
        self.slide = check_positive_int("CountSliding", "slide", slide)

    def assign(self, ts: Any) -> list[Window]:
        n, slide = self.n, self.slide
        start = ts - ts % slide
        found = []
        while start >= 0 and start + n > ts:
            found.append(Window(start, start + n))
            start -= slide
        found.reverse()
        return found

    def __repr__(self) -> str:
        extra = f", slide={self.slide}" if self.slide != 1 else ""
        return f"CountSliding({self.n}{extra})"


class Global(WindowAssigner):
    """One window per key, ``Window(-inf, inf)``, emitted whenever ``trigger`` says so.

    Parameters
    ----------
    trigger : int or callable
        ``n``: fire after every ``n`` elements; or ``trigger(count, accumulator) -> bool``,
        asked after each element (``count``: elements since the window last fired, or in
        all with ``purge=False``; ``accumulator``: the aggregation's state).
    purge : bool
        True (default): each firing emits a ``'final'`` result and the window starts
        afresh. False: each firing emits an ``'early'`` (running) result and the state is
        kept; ``flush()`` (or the end of the input) emits the ``'final'`` one.

    Examples
    --------
    >>> Global(100)
    Global(100)
    >>> Global(lambda count, acc: acc > 10).assign(None)
    [Window(start=-inf, end=inf)]
    """

    kind = "global"

    def __init__(self, trigger: int | Callable[[int, Any], bool], purge: bool = True):
        if callable(trigger):
            self.trigger: int | Callable[[int, Any], bool] = trigger
        elif isinstance(trigger, int) and not isinstance(trigger, bool):
            self.trigger = check_positive_int("Global", "trigger", trigger)
        else:
            raise TypeError(
                "Global: trigger must be a positive int (fire every n elements) or a "
                f"callable (count, accumulator) -> bool, got {short_repr(trigger)}"
            )
        self.purge = bool(purge)

    def assign(self, ts: Any) -> list[Window]:
        return [GLOBAL_WINDOW]

    def __repr__(self) -> str:
        trigger = self.trigger
        shown = repr(trigger) if isinstance(trigger, int) else getattr(trigger, "__name__", "f")
        extra = ", purge=False" if not self.purge else ""
        return f"Global({shown}{extra})"
