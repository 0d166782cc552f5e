"""Sources: where elements enter a graph."""

from . import local  # noqa: F401  (registers the local sources)
from .base import Source
from .files import sink_to_file
from .iterable import from_iterable
from .periodic import PeriodicCallback

__all__ = ["PeriodicCallback", "Source", "from_iterable", "sink_to_file"]
