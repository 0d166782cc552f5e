"""The graph, the push protocol, loops, clocks, refs and registration."""

from .clock import Clock, ManualClock, SystemClock, get_default_clock, use_clock
from .loop import EventLoop, get_io_loop, sync
from .refs import RefCounter
from .stream import Stream

__all__ = [
    "Clock",
    "EventLoop",
    "ManualClock",
    "RefCounter",
    "Stream",
    "SystemClock",
    "get_default_clock",
    "get_io_loop",
    "sync",
    "use_clock",
]
