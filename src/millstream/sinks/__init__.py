"""Sinks: the ends of a graph."""

from .core import Sink, _global_sinks, sink, sink_to_list, sink_to_textfile

__all__ = ["Sink", "_global_sinks", "sink", "sink_to_list", "sink_to_textfile"]
