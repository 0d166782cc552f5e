"""What went wrong talking to Kafka, by cause: for clear errors in the sources and the
one-line errors of the ``millstream`` Kafka commands.

:func:`classify_kafka_error` sorts an exception raised by ``confluent_kafka`` or by a
millstream Kafka source (``KafkaConnectError``, ``UnknownTopicError``, whose cause is the
client's ``KafkaException``) by its Kafka error code:

- ``unreachable``: no broker answered (``_TRANSPORT``, ``_ALL_BROKERS_DOWN``,
  ``_TIMED_OUT``, ``_RESOLVE``, or a ``KafkaConnectError`` without a Kafka cause);
- ``unknown-topic``: ``UNKNOWN_TOPIC_OR_PART``, ``_UNKNOWN_TOPIC``, ``UnknownTopicError``;
- ``retriable``: the broker answered but is not ready yet (``NOT_COORDINATOR`` while
  ``__consumer_offsets`` is being created on a fresh broker, ``COORDINATOR_LOAD_IN_PROGRESS``,
  ``LEADER_NOT_AVAILABLE``, ... or any error librdkafka marks retriable):
  :func:`retry_retriable` waits and tries again within the command's time bound;
- ``other``: any other Kafka error, shown with its Kafka error name and message;
- ``not-kafka``: an exception that carries no Kafka error (a bug, a bad setting...).

``confluent_kafka`` is imported only when an error is classified.
"""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from ..exceptions import KafkaConnectError, KafkaNotReady, UnknownTopicError
from .log import logger as kafka_logger

__all__ = [
    "KafkaNotReady",
    "KafkaProblem",
    "classify_kafka_error",
    "missing_kafka_client",
    "retry_retriable",
]


T = TypeVar("T")

Kind = Literal["unreachable", "unknown-topic", "retriable", "other", "not-kafka"]

UNREACHABLE_CODES = ("_TRANSPORT", "_ALL_BROKERS_DOWN", "_TIMED_OUT", "_RESOLVE")
UNKNOWN_TOPIC_CODES = ("UNKNOWN_TOPIC_OR_PART", "_UNKNOWN_TOPIC")
RETRIABLE_CODES = (
    "NOT_COORDINATOR",
    "COORDINATOR_LOAD_IN_PROGRESS",
    "COORDINATOR_NOT_AVAILABLE",
    "LEADER_NOT_AVAILABLE",
    "NOT_LEADER_FOR_PARTITION",
    "REQUEST_TIMED_OUT",
    "_WAIT_COORD",
)

#: the pause between two tries of a step that failed with a retriable error (seconds)
RETRY_PAUSE = 0.2


@dataclass(frozen=True)
class KafkaProblem:
    """An exception sorted by cause: ``kind``, and the Kafka error's ``name`` and ``message``
    (empty when the exception carries no Kafka error)."""

    kind: Kind
    name: str = ""
    message: str = ""

    def describe(self) -> str:
        """``NAME (message)``, the way the one-line errors show a Kafka error.

        Examples
        --------
        >>> KafkaProblem('retriable', 'NOT_COORDINATOR', 'Broker: Not coordinator').describe()
        'NOT_COORDINATOR (Broker: Not coordinator)'
        >>> KafkaProblem('other', '', 'boom').describe()
        'boom'
        """
        if not self.name:
            return self.message
        return f"{self.name} ({self.message})" if self.message else self.name


def _kafka_error(error: BaseException) -> Any:
    """The ``confluent_kafka.KafkaError`` in ``error`` or its causes, or None."""
    try:
        confluent_kafka = importlib.import_module("confluent_kafka")
    except ImportError:
        return None
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:  # raise ... from ... chains
        seen.add(id(current))
        if isinstance(current, confluent_kafka.KafkaException) and current.args:
            first = current.args[0]
            if isinstance(first, confluent_kafka.KafkaError):
                return first
        current = current.__cause__
    return None


def classify_kafka_error(error: BaseException) -> KafkaProblem:
    """Sort ``error`` by cause (see the module's docstring).

    Examples
    --------
    >>> from confluent_kafka import KafkaError, KafkaException
    >>> classify_kafka_error(KafkaException(KafkaError(KafkaError._TRANSPORT))).kind
    'unreachable'
    >>> classify_kafka_error(KafkaException(KafkaError(KafkaError.NOT_COORDINATOR)))
    KafkaProblem(kind='retriable', name='NOT_COORDINATOR', message='Broker: Not coordinator')
    >>> classify_kafka_error(KafkaException(KafkaError(KafkaError.GROUP_AUTHORIZATION_FAILED)))
    KafkaProblem(kind='other', name='GROUP_AUTHORIZATION_FAILED', message='Broker: Group authorization failed')
    """  # noqa: E501
    if isinstance(error, KafkaNotReady):
        return error.problem
    kafka_error = _kafka_error(error)
    if kafka_error is None:
        if isinstance(error, KafkaConnectError):
            return KafkaProblem("unreachable", "", str(error))
        if isinstance(error, UnknownTopicError):
            return KafkaProblem("unknown-topic", "", str(error))
        lines = str(error).strip().splitlines()
        return KafkaProblem("not-kafka", type(error).__name__, lines[0] if lines else "")
    name, message = kafka_error.name(), kafka_error.str()
    kind: Kind
    if name in UNREACHABLE_CODES:
        kind = "unreachable"
    elif name in UNKNOWN_TOPIC_CODES or isinstance(error, UnknownTopicError):
        kind = "unknown-topic"
    elif name in RETRIABLE_CODES or kafka_error.retriable():
        kind = "retriable"
    elif isinstance(error, KafkaConnectError):  # no answer, by a cause not listed above
        kind = "unreachable"
    else:
        kind = "other"
    return KafkaProblem(kind, name, message)


def retry_retriable(
    step: Callable[[float], T],
    timeout: float,
    pause: float = RETRY_PAUSE,
    log: logging.Logger | None = None,
) -> T:
    """``step(seconds_left)``, tried again after each retriable Kafka error until ``timeout``
    seconds have passed since the first try; then :class:`KafkaNotReady` (from the last
    error). Any other exception is raised as it is. Each retry is logged as a warning to
    ``log`` (default: ``millstream.kafka``).

    Examples
    --------
    >>> from confluent_kafka import KafkaError, KafkaException
    >>> answers = [KafkaException(KafkaError(KafkaError.NOT_COORDINATOR)), 'committed']
    >>> def step(seconds_left):
    ...     answer = answers.pop(0)
    ...     if isinstance(answer, Exception):
    ...         raise answer
    ...     return answer
    >>> retry_retriable(step, timeout=5, pause=0.01)
    'committed'
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            return step(max(deadline - time.monotonic(), 0.001))
        except Exception as error:
            problem = classify_kafka_error(error)
            if problem.kind != "retriable":
                raise
            if time.monotonic() + pause >= deadline:
                raise KafkaNotReady(problem, timeout) from error
            (log or kafka_logger).warning(
                "Kafka is not ready: %s; trying again", problem.describe()
            )
            time.sleep(pause)


def missing_kafka_client(what: str) -> str | None:
    """The one-line error when ``confluent_kafka`` cannot be imported (None when it can):
    ``what`` (e.g. ``wordcount --kafka``) needs the ``kafka`` extra."""
    try:
        importlib.import_module("confluent_kafka")
    except ImportError:
        return (
            f"{what} needs confluent-kafka, which is not installed: pip install 'millstream[kafka]'"
        )
    return None
