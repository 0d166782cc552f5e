"""Sources: where elements enter a graph."""

from __future__ import annotations

from typing import Any

from . import kafka, kafka_batched, local, pulsar, rabbitmq, redis  # noqa: F401  (register the sources on Stream)
from .base import ManagedSource, Source
from .iterable import from_iterable
from .periodic import PeriodicCallback

__all__ = ["ManagedSource", "PeriodicCallback", "Source", "from_iterable", "sink_to_file"]


def __getattr__(name: str) -> Any:
    # Streamz has ``sink_to_file`` in ``streamz.sources``; it is a sink, so it lives in
    # millstream.sinks and is found here on first use (the one upward reference of this
    # package, allowed by tests/test_architecture.py for Streamz compatibility).
    if name == "sink_to_file":
        from ..sinks.files import sink_to_file

        return sink_to_file
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
