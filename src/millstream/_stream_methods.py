"""What type checkers see of the methods registered on :class:`~millstream.core.stream.Stream`.

``@Stream.register_api()`` and ``Stream.register_lazy(...)`` put the nodes of the layers
above core on ``Stream`` at run time, where mypy, pyright and editors cannot see them.
``Stream`` derives from :class:`StreamMethods` for type checkers only (``core.stream``
imports this module under ``if TYPE_CHECKING:``; ``import millstream`` never imports it),
so ``source.map(f)`` has the parameters of ``map(upstream, f)`` without ``upstream`` and
is a ``map``, and ``Stream.from_iterable(...)`` is a ``from_iterable``.

Each line names the node itself, so its signature is the node's own; adding a node means
adding its line here, which ``tests/test_stream_typing.py`` checks against the methods
``Stream`` has at run time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar, overload

from . import batch, dask, dataframe, testing
from .operators import aggregate, asynchronous, combine, counting, elementwise, timing
from .sinks import core as sinks_core
from .sinks import dead_letters, parquet, postgres
from .sinks import files as sinks_files
from .sinks import kafka as sinks_kafka
from .sinks import network as sinks_network
from .sinks import pulsar as sinks_pulsar
from .sinks import rabbitmq as sinks_rabbitmq
from .sinks import redis as sinks_redis
from .sources import file_readers, iterable, kafka_batched, periodic, process
from .sources import files as sources_files
from .sources import kafka as sources_kafka
from .sources import network as sources_network
from .sources import pulsar as sources_pulsar
from .sources import rabbitmq as sources_rabbitmq
from .sources import redis as sources_redis
from .time import operators as time_operators
from .time import watermarks

__all__ = ["StreamMethods", "node_method", "source_method"]

P = ParamSpec("P")
R = TypeVar("R")


class node_method(Generic[P, R]):
    """A node as a method: ``upstream.name(*args)`` is ``node(upstream, *args)``."""

    def __init__(self, node: Callable[Concatenate[Any, P], R]) -> None:
        self.node = node

    @overload
    def __get__(self, obj: None, owner: type[Any]) -> Callable[Concatenate[Any, P], R]: ...

    @overload
    def __get__(self, obj: object, owner: type[Any]) -> Callable[P, R]: ...

    def __get__(self, obj: object, owner: type[Any]) -> Callable[..., R]:
        raise NotImplementedError("for type checkers only: Stream's methods are registered")


class source_method(Generic[P, R]):
    """A source as a static method: ``Stream.name(*args)`` is ``node(*args)``."""

    def __init__(self, node: Callable[P, R]) -> None:
        self.node = node

    def __get__(self, obj: object, owner: type[Any]) -> Callable[P, R]:
        raise NotImplementedError("for type checkers only: Stream's methods are registered")


class StreamMethods:
    """The methods registered on ``Stream``, by name, for type checkers."""

    # operators
    accumulate = node_method(aggregate.accumulate)
    buffer = node_method(timing.buffer)
    collect = node_method(counting.collect)
    combine_latest = node_method(combine.combine_latest)
    delay = node_method(timing.delay)
    filter = node_method(elementwise.filter)
    flatten = node_method(elementwise.flatten)
    frequencies = node_method(aggregate.frequencies)
    latest = node_method(timing.latest)
    map = node_method(elementwise.map)
    map_async = node_method(asynchronous.map_async)
    partition = node_method(counting.partition)
    partition_unique = node_method(counting.partition_unique)
    pluck = node_method(elementwise.pluck)
    rate_limit = node_method(timing.rate_limit)
    remove = node_method(elementwise.remove)
    slice = node_method(counting.slice)
    sliding_window = node_method(counting.sliding_window)
    starmap = node_method(elementwise.starmap)
    timed_window = node_method(timing.timed_window)
    timed_window_unique = node_method(timing.timed_window_unique)
    union = node_method(combine.union)
    unique = node_method(counting.unique)
    zip = node_method(combine.zip)
    zip_latest = node_method(combine.zip_latest)

    # sources
    filenames = source_method(sources_files.filenames)
    from_csv = source_method(file_readers.from_csv)
    from_http_server = source_method(sources_network.from_http_server)
    from_iterable = source_method(iterable.from_iterable)
    from_kafka = source_method(sources_kafka.from_kafka)
    from_jsonl = source_method(file_readers.from_jsonl)
    from_kafka_batched = source_method(kafka_batched.from_kafka_batched)
    from_mqtt = source_method(sources_network.from_mqtt)
    from_parquet = source_method(file_readers.from_parquet)
    from_periodic = source_method(periodic.from_periodic)
    from_process = source_method(process.from_process)
    from_pulsar = source_method(sources_pulsar.from_pulsar)
    from_q = source_method(sources_network.from_q)
    from_redis_stream = source_method(sources_redis.from_redis_stream)
    from_rabbitmq = source_method(sources_rabbitmq.from_rabbitmq)
    from_tcp = source_method(sources_network.from_tcp)
    from_testing = source_method(testing.TestingSource)  # registered by millstream.testing
    from_textfile = source_method(sources_files.from_textfile)
    from_websocket = source_method(sources_network.from_websocket)

    # sinks
    sink = node_method(sinks_core.sink)
    sink_to_list = node_method(sinks_core.sink_to_list)
    sink_to_textfile = node_method(sinks_files.sink_to_textfile)
    to_kafka = node_method(sinks_kafka.to_kafka)
    to_kafka_dead_letters = node_method(dead_letters.to_kafka_dead_letters)
    to_mqtt = node_method(sinks_network.to_mqtt)
    to_parquet = node_method(parquet.to_parquet)
    to_postgres = node_method(postgres.to_postgres)
    to_redis_stream = node_method(sinks_redis.to_redis_stream)
    to_rabbitmq = node_method(sinks_rabbitmq.to_rabbitmq)
    to_pulsar = node_method(sinks_pulsar.to_pulsar)
    to_websocket = node_method(sinks_network.to_websocket)

    # event time
    window = node_method(time_operators.window)
    with_timestamps = node_method(watermarks.with_timestamps)

    # registered lazily by millstream/__init__.py (their modules are imported on first use)
    scatter = node_method(dask.scatter)
    to_batch = node_method(batch.to_batch)
    to_dataframe = node_method(dataframe.to_dataframe)
