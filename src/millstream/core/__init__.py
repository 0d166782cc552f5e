"""The graph, the push protocol, loops, clocks, refs and registration.

What the packages above use from here is public and listed in ``__all__``: the node
base class, the helpers for awaiting what a push returned, the graph version, refs and
the metadata type.
"""

from .awaitables import (
    await_all,
    push_from_outside,
    release_refs_after,
    run_awaitables,
    run_on_graph_loop,
)
from .clock import Clock, ManualClock, SystemClock, get_default_clock, use_clock
from .errors import DeadLetter, ErrorCounts, Retry
from .loop import EventLoop, get_io_loop, in_loop_thread, log_task_error, sync
from .refs import Metadata, RefCounter, release_refs, retain_refs
from .stream import Stream, fused_attribute, graph_changed, graph_version

__all__ = [
    "Clock",
    "DeadLetter",
    "ErrorCounts",
    "EventLoop",
    "ManualClock",
    "Metadata",
    "RefCounter",
    "Retry",
    "Stream",
    "SystemClock",
    "await_all",
    "fused_attribute",
    "get_default_clock",
    "get_io_loop",
    "graph_changed",
    "graph_version",
    "in_loop_thread",
    "log_task_error",
    "push_from_outside",
    "release_refs",
    "release_refs_after",
    "retain_refs",
    "run_awaitables",
    "run_on_graph_loop",
    "sync",
    "use_clock",
]
