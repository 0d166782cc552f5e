"""The word-count display the ``millstream`` commands share: the live table on a
terminal, the final table, and the note after Ctrl-C."""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping

from rich.console import Console, RenderableType
from rich.live import Live

__all__ = [
    "RATE_WINDOW",
    "REFRESH_PER_SECOND",
    "RateMeter",
    "describe_lag",
    "is_interactive",
    "live",
    "show_interrupted",
]

REFRESH_PER_SECOND = 4
"""How often the live table is redrawn (never per word)."""

RATE_WINDOW = 1.0
"""The current rate is measured over about the last this many seconds."""


class RateMeter:
    """The current rate of a growing count: its growth per second over the last
    ``window`` seconds, from the counts it was shown at successive reads (the live table's
    redraws), not the average since the start. An idle input reads 0 within ``window``.

    Examples
    --------
    >>> now = [0.0]
    >>> meter = RateMeter(window=1.0, clock=lambda: now[0])
    >>> meter.rate(0)
    0.0
    >>> now[0] = 0.5; meter.rate(500)       # 500 in half a second
    1000.0
    >>> now[0] = 1.0; meter.rate(1000)
    1000.0
    >>> now[0] = 2.0; meter.rate(1000)      # nothing new for a second
    0.0
    """

    def __init__(self, window: float = RATE_WINDOW, clock: Callable[[], float] = time.monotonic):
        self.window = window
        self.clock = clock
        self._samples: deque[tuple[float, int]] = deque()
        self._lock = threading.Lock()  # read by the redraw thread and the final print

    def rate(self, count: int) -> float:
        """Note ``count`` now; return its growth per second over the last ``window``
        seconds (over the time since the previous read when reads are further apart)."""
        with self._lock:
            now = self.clock()
            samples = self._samples
            samples.append((now, count))
            while len(samples) > 2 and samples[1][0] <= now - self.window:
                samples.popleft()
            then, before = samples[0]
            if now <= then:
                return 0.0
            return max(count - before, 0) / (now - then)


def describe_lag(lag: Mapping[int, int], by_partition: int = 8) -> str:
    """A consumer lag in a few words: the total, and each partition's when there are at
    most ``by_partition`` of them.

    Examples
    --------
    >>> describe_lag({0: 3, 1: 0, 2: 1200})
    'lag 1,203 (p0 3, p1 0, p2 1,200)'
    >>> describe_lag({0: 0})
    'lag 0'
    >>> describe_lag({p: 1 for p in range(12)})
    'lag 12 (12 partitions)'
    """
    total = sum(lag.values())
    if len(lag) <= 1:
        return f"lag {total:,}"
    if len(lag) > by_partition:
        return f"lag {total:,} ({len(lag)} partitions)"
    parts = ", ".join(f"p{p} {n:,}" for p, n in sorted(lag.items()))
    return f"lag {total:,} ({parts})"


def is_interactive(console: Console) -> bool:
    """Draw live frames only on a real terminal (never into pipes or CI logs)."""
    if not console.is_terminal or console.is_dumb_terminal:
        return False
    isatty = getattr(console.file, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:
        return False


@contextlib.contextmanager
def live(console: Console, render: Callable[[], RenderableType]) -> Iterator[None]:
    """While the block runs, redraw ``render()`` on ``console`` a few times per second
    (on a terminal only; the frames vanish at the end, the caller prints the final one)."""
    if not is_interactive(console):
        yield
        return
    with Live(
        console=console,
        get_renderable=render,
        refresh_per_second=REFRESH_PER_SECOND,
        transient=True,
        redirect_stdout=False,
        redirect_stderr=False,
    ):
        yield


def show_interrupted(command: str) -> None:
    """The note after Ctrl-C, below the table of the counts so far."""
    print(f"millstream {command}: interrupted (counts so far above)", file=sys.stderr)
