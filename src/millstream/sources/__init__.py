"""Sources: where elements enter a graph."""

from . import kafka, kafka_batched, local  # noqa: F401  (register the sources on Stream)
from .base import Source
from .files import sink_to_file
from .iterable import from_iterable
from .periodic import PeriodicCallback

__all__ = ["PeriodicCallback", "Source", "from_iterable", "sink_to_file"]
