"""Sinks: the ends of a graph."""

# registers to_kafka, to_kafka_dead_letters, to_websocket, to_mqtt, to_postgres,
# to_parquet, to_pulsar, to_rabbitmq, to_redis_stream
from . import dead_letters, kafka, network, parquet, postgres, pulsar, rabbitmq, redis  # noqa: F401
from .core import Sink, _global_sinks, sink, sink_to_list
from .files import sink_to_file, sink_to_textfile

__all__ = ["Sink", "_global_sinks", "sink", "sink_to_file", "sink_to_list", "sink_to_textfile"]
