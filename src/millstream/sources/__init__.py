"""Sources: where elements enter a graph."""

from . import local  # noqa: F401  (registers the local sources)
from .base import Source
from .iterable import from_iterable

__all__ = ["Source", "from_iterable"]
