"""Sources: where elements enter a graph."""

from . import local  # noqa: F401  (registers the local sources)
from .base import Source
from .files import sink_to_file
from .iterable import from_iterable

__all__ = ["Source", "from_iterable", "sink_to_file"]
