"""millstream's own exceptions."""

from __future__ import annotations

from typing import Any

__all__ = [
    "CheckpointError",
    "FailpointError",
    "KafkaConnectError",
    "KafkaDeliveryError",
    "KafkaFencedError",
    "KafkaNotReady",
    "MillstreamError",
    "PulsarConnectError",
    "PulsarSendError",
    "RabbitMQConnectError",
    "RabbitMQDeliveryError",
    "RedisConnectError",
    "RedisStreamError",
    "StateError",
    "TestingAbort",
    "UnknownQueueError",
    "UnknownTopicError",
]


class MillstreamError(Exception):
    """Base class of errors raised by millstream itself (not by user functions)."""


class KafkaConnectError(MillstreamError, ConnectionError):
    """Kafka at the configured ``bootstrap.servers`` could not be used: no broker answered in
    time, the broker was not ready in time, or it refused the request; the message says
    which, with Kafka's error name, and the client's exception is the cause."""


class UnknownTopicError(MillstreamError, LookupError):
    """A Kafka topic named by a source or sink does not exist on the broker (or a Pulsar
    topic, tenant or namespace does not exist)."""


class PulsarConnectError(MillstreamError, ConnectionError):
    """Pulsar at the configured service URL could not be used: no broker answered in time,
    or it refused the request; the message says which, and the client's exception is the
    cause."""


class PulsarSendError(MillstreamError):
    """Pulsar did not store a message sent by ``to_pulsar``; the message names the node,
    the topic and Pulsar's result."""


class KafkaDeliveryError(MillstreamError):
    """The broker did not store a message produced by ``to_kafka``.

    Attributes
    ----------
    kafka_error : confluent_kafka.KafkaError
        librdkafka's error (``.code()``, ``.name()``, ``.str()``, ``.retriable()``).
    topic : str
        The topic the message was produced to.
    value : bytes or None
        The message's value.
    """

    def __init__(self, message: str, kafka_error: Any = None, topic: Any = None, value: Any = None):
        super().__init__(message)
        self.kafka_error = kafka_error
        self.topic = topic
        self.value = value


class KafkaFencedError(MillstreamError):
    """Exactly-once Kafka output stopped for good: a newer instance of the pipeline (the
    same ``transactional.id``) fenced its producer, or its consumer group gave its
    partitions to another member. Nothing it had not committed is visible; restart the
    pipeline to resume from what was committed."""


class KafkaNotReady(MillstreamError):
    """A step kept failing with retriable Kafka errors until its time bound ran out.

    ``problem`` is the last error sorted by cause (a
    :class:`millstream.kafka.errors.KafkaProblem`), ``timeout`` the bound in seconds.
    """

    def __init__(self, problem: Any, timeout: float) -> None:
        super().__init__(f"not ready within {timeout:g} s: {problem.describe()}")
        self.problem = problem
        self.timeout = timeout


class TestingAbort(RuntimeError):
    """The error a :class:`millstream.testing.TestingSource` raises at an ``ABORT()`` marker
    (a crash injection)."""

    __test__ = False


class StateError(MillstreamError, ValueError):
    """A node cannot restore the state given to it (wrong shape, wrong types, another
    node's state): the message names the node and what is wrong. The node is unchanged."""


class CheckpointError(MillstreamError):
    """A checkpoint could not be taken, written or read back."""


class FailpointError(MillstreamError):
    """Raised at a fail-point set to ``raise`` in ``MILLSTREAM_FAILPOINTS`` (tests only)."""


class RedisConnectError(MillstreamError, ConnectionError):
    """The Redis server at a source's or sink's URL could not be reached (the message names
    its ``host:port``)."""


class RedisStreamError(MillstreamError, LookupError):
    """A Redis key named as a stream holds another type, or the consumer group a source
    reads with does not exist (and the source was told not to create it)."""


class RabbitMQConnectError(MillstreamError, ConnectionError):
    """RabbitMQ at the URL of ``from_rabbitmq``/``to_rabbitmq`` could not be reached or
    refused the connection (the message names ``host:port``; the client's exception is
    the cause), or the connection was lost while the node used it."""


class UnknownQueueError(MillstreamError, LookupError):
    """A RabbitMQ queue named by ``from_rabbitmq`` does not exist (and it was not asked
    to declare it), or an exchange named by ``to_rabbitmq`` does not exist."""


class RabbitMQDeliveryError(MillstreamError):
    """RabbitMQ did not take a message published by ``to_rabbitmq``: the broker refused it
    (a negative publisher confirm), returned it as unroutable (no queue bound for its
    routing key), or the channel closed before it was confirmed."""
