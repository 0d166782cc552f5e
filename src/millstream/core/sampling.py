"""Processing time per node, sampled: for a few milliseconds every second, elements take
the per-element path with each node's ``update`` timed.

Nothing is timed the rest of the time: fused code runs untouched, and ``_emit`` pays one
flag test. While a window is open, ``Stream._emit`` skips fused code (the per-element
path is its exact equivalent: same calls, same order) and times each downstream's
``update``; a node's own time is that minus the time of the ``update`` calls it made
downstream. The mean over the timed elements estimates each node's time per element.

The sampler starts with the first source that starts (or :func:`start_sampling`) and
runs as a daemon thread; ``MILLSTREAM_SAMPLE_EVERY`` sets the seconds between windows
(default 1; ``0`` turns sampling off) and ``MILLSTREAM_SAMPLE_WINDOW`` their length
(default 0.005).

Examples
--------
>>> import time
>>> from millstream import Stream
>>> source = Stream()
>>> slow = source.map(lambda x: time.sleep(0.002) or x)
>>> L = slow.sink_to_list()
>>> with timing():
...     for i in range(5):
...         source.emit(i)
>>> seconds_per_element(slow) > 0.001, seconds_per_element(slow.downstreams[0]) < 0.001
(True, True)
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .stream import Stream

__all__ = ["TIMING", "seconds_per_element", "start_sampling", "timing"]

#: ``TIMING[0]`` is true while a sampling window is open (read by ``Stream._emit``).
TIMING = [False]
_lock = threading.Lock()
_sampler: list[threading.Thread] = []


def seconds_per_element(node: Stream) -> float | None:
    """Mean seconds ``node``'s ``update`` took per timed element, its downstreams' time
    excluded (None before any of its elements was timed)."""
    if not node.timed_elements:
        return None
    return max(node.timed_seconds - node.timed_downstream_seconds, 0.0) / node.timed_elements


@contextlib.contextmanager
def timing() -> Iterator[None]:
    """Time every element pushed inside the block (what a sampling window does)."""
    TIMING[0] = True
    try:
        yield
    finally:
        TIMING[0] = False


def _sample(every: float, window: float) -> None:
    sleep = threading.Event().wait
    sleep(min(every, 0.1))  # the first window soon, for short runs
    while True:
        TIMING[0] = True
        sleep(window)
        TIMING[0] = False
        sleep(every)


def start_sampling(every: float | None = None, window: float | None = None) -> bool:
    """Start the sampler thread if it is not running; return whether it runs."""
    if _sampler:
        return True
    if every is None:
        every = float(os.environ.get("MILLSTREAM_SAMPLE_EVERY", 1.0))
    if window is None:
        window = float(os.environ.get("MILLSTREAM_SAMPLE_WINDOW", 0.005))
    if every <= 0 or window <= 0:
        return False
    with _lock:
        if not _sampler:
            thread = threading.Thread(
                target=_sample, args=(every, window), name="millstream-sampler", daemon=True
            )
            thread.start()
            _sampler.append(thread)
    return True


perf_counter = time.perf_counter
