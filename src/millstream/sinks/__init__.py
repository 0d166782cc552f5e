"""Sinks: the ends of a graph."""

from . import dead_letters, kafka, network  # noqa: F401  (registers to_kafka, to_websocket...)
from .core import Sink, _global_sinks, sink, sink_to_list
from .files import sink_to_file, sink_to_textfile

__all__ = ["Sink", "_global_sinks", "sink", "sink_to_file", "sink_to_list", "sink_to_textfile"]
