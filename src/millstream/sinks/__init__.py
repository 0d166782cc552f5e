"""Sinks: the ends of a graph."""

# registers to_kafka, to_kafka_dead_letters, to_websocket, to_mqtt, to_postgres
from . import dead_letters, kafka, network, postgres, pulsar  # noqa: F401
from .core import Sink, _global_sinks, sink, sink_to_list
from .files import sink_to_file, sink_to_textfile

__all__ = ["Sink", "_global_sinks", "sink", "sink_to_file", "sink_to_list", "sink_to_textfile"]
