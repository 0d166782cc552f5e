"""What the two Kafka commands (``wordcount --kafka``, ``load-kafka``) share: the
connection options, the client's configuration and log, and their one-line errors."""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
import traceback
from collections.abc import Iterator
from typing import Any

from ..kafka.errors import KafkaNotReady, classify_kafka_error, missing_kafka_client
from ._args import error, seconds

__all__ = [
    "DEFAULT_TIMEOUT",
    "add_connection_arguments",
    "client_config",
    "client_logging",
    "failure_message",
    "no_broker",
    "no_topic",
    "report_failure",
    "require_kafka_client",
    "timeout_of",
]

DEFAULT_TIMEOUT = 10.0
"""How long a Kafka command waits for the broker to answer, unless ``--timeout`` is given."""


def add_connection_arguments(parser: Any, required: bool) -> None:
    """Declare ``--kafka``, ``--topic``, ``--timeout`` and ``--verbose`` on ``parser``
    (a parser or an argument group)."""
    parser.add_argument(
        "--kafka",
        metavar="BOOTSTRAP",
        required=required,
        help="the Kafka broker(s) to connect to, host:port[,host:port...]",
    )
    parser.add_argument("--topic", metavar="TOPIC", required=required, help="the topic")
    parser.add_argument(
        "--timeout",
        type=seconds,
        default=None,
        metavar="SECONDS",
        help=f"how long to wait for the broker to answer (default {DEFAULT_TIMEOUT:g})",
    )
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="show the Kafka client's log and the tracebacks of errors on stderr",
    )


def timeout_of(args: argparse.Namespace) -> float:
    """The ``--timeout`` given, or :data:`DEFAULT_TIMEOUT`."""
    return float(args.timeout) if args.timeout is not None else DEFAULT_TIMEOUT


def require_kafka_client(command: str, what: str) -> bool:
    """Whether ``confluent_kafka`` can be imported; if not, say so in one line."""
    missing = missing_kafka_client(what)
    if missing is not None:
        error(command, missing)
        return False
    return True


@contextlib.contextmanager
def client_logging(verbose: bool) -> Iterator[None]:
    """Keep the ``millstream`` log (librdkafka's lines, source errors) off stderr unless verbose.

    The command reports every error itself, in one line; ``--verbose`` adds the log.
    """
    logger = logging.getLogger("millstream")
    handler: logging.Handler
    if verbose:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(name)s: %(levelname)s: %(message)s"))
    else:
        handler = logging.NullHandler()
    propagate = logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


def client_config(bootstrap: str, **extra: Any) -> dict[str, Any]:
    """librdkafka settings for a client of ``bootstrap`` that logs to ``millstream.kafka``."""
    return {
        "bootstrap.servers": bootstrap,
        "logger": logging.getLogger("millstream.kafka"),
        **extra,
    }


def no_broker(bootstrap: str, timeout: float) -> str:
    return f"no Kafka broker answered at {bootstrap} within {timeout:g} s"


def no_topic(topic: str, bootstrap: str) -> str:
    return (
        f"Kafka topic {topic!r} does not exist at {bootstrap} (create it with: "
        f"millstream load-kafka --kafka {bootstrap} --topic {topic} --create)"
    )


def failure_message(failure: BaseException, bootstrap: str, topic: str, timeout: float) -> str:
    """The one-line error for a Kafka failure, by its cause: no broker, no such topic, a
    broker not ready in time, or the Kafka error's name and message."""
    problem = classify_kafka_error(failure)
    if problem.kind == "unreachable":
        return no_broker(bootstrap, timeout)
    if problem.kind == "unknown-topic":
        return no_topic(topic, bootstrap)
    if isinstance(failure, KafkaNotReady):
        return (
            f"the Kafka broker at {bootstrap} was not ready within {failure.timeout:g} s: "
            f"{problem.describe()}"
        )
    if problem.kind == "retriable":
        return f"the Kafka broker at {bootstrap} was not ready: {problem.describe()}"
    return f"Kafka error at {bootstrap}: {problem.describe()}"


def report_failure(
    command: str, failure: BaseException, args: argparse.Namespace, timeout: float
) -> None:
    """Print the one-line error for ``failure`` (with ``--verbose``: its traceback first)."""
    if args.verbose:
        traceback.print_exception(type(failure), failure, failure.__traceback__, file=sys.stderr)
    error(command, failure_message(failure, args.kafka, args.topic, timeout))
