"""millstream's own exceptions."""

from __future__ import annotations

__all__ = ["KafkaConnectError", "MillstreamError", "UnknownTopicError"]


class MillstreamError(Exception):
    """Base class of errors raised by millstream itself (not by user functions)."""


class KafkaConnectError(MillstreamError, ConnectionError):
    """No Kafka broker answered at the configured ``bootstrap.servers`` in time."""


class UnknownTopicError(MillstreamError, LookupError):
    """A Kafka topic named by a source or sink does not exist on the broker."""
