"""millstream: Streamz-compatible stream processing with a fast core.

>>> from millstream import Stream
>>> source = Stream()
>>> L = source.map(str.upper).sink_to_list()
>>> source.emit('hello')
>>> L
['HELLO']
"""

from __future__ import annotations

from . import operators as _operators  # noqa: F401  (registers the nodes on Stream)
from . import sinks as _sinks  # noqa: F401
from . import sources as _sources  # noqa: F401
from . import time as _time  # noqa: F401  (registers with_timestamps, window)
from ._utils import identity, no_default
from ._version import __version__ as __version__
from .core.clock import ManualClock, SystemClock
from .core.errors import DeadLetter, Retry
from .core.graph import create_graph, visualize
from .core.plugins import load_plugins
from .core.refs import RefCounter
from .core.stream import Stream
from .exceptions import MillstreamError
from .operators.aggregate import accumulate, frequencies
from .operators.asynchronous import map_async
from .operators.combine import combine_latest, union, zip, zip_latest
from .operators.counting import (
    collect,
    partition,
    partition_unique,
    slice,
    sliding_window,
    unique,
)
from .operators.elementwise import filter, flatten, map, pluck, remove, starmap
from .operators.timing import (
    buffer,
    delay,
    latest,
    rate_limit,
    timed_window,
    timed_window_unique,
)
from .sinks import Sink, sink, sink_to_file, sink_to_textfile
from .sources import PeriodicCallback, Source

__all__ = [
    "DeadLetter",
    "ManualClock",
    "MillstreamError",
    "PeriodicCallback",
    "RefCounter",
    "Retry",
    "Sink",
    "Source",
    "Stream",
    "SystemClock",
    "accumulate",
    "buffer",
    "collect",
    "combine_latest",
    "create_graph",
    "delay",
    "filter",
    "flatten",
    "frequencies",
    "identity",
    "latest",
    "map",
    "map_async",
    "no_default",
    "partition",
    "partition_unique",
    "pluck",
    "rate_limit",
    "remove",
    "sink",
    "sink_to_file",
    "sink_to_textfile",
    "slice",
    "sliding_window",
    "starmap",
    "timed_window",
    "timed_window_unique",
    "union",
    "unique",
    "visualize",
    "zip",
    "zip_latest",
]

# Methods of layers whose dependencies ``import millstream`` must not import: their
# module is imported on the first call.
Stream.register_lazy("scatter", "millstream.dask:scatter")
Stream.register_lazy(
    "to_dataframe",
    "millstream.dataframe:to_dataframe",
    missing="pandas: pip install 'millstream[dataframe]'",
)
Stream.register_lazy("to_batch", "millstream.batch:to_batch")

load_plugins(Stream)
