"""``millstream load-kafka [PATH|-] --kafka BOOTSTRAP --topic T [--create] [--partitions N]``:
write a text into a Kafka topic, one record per line (default: the text ``wordcount``
counts), for ``millstream wordcount --kafka`` to count.

Errors are one line on stderr and exit code 1, by cause (see
:mod:`millstream.kafka.errors`); without ``confluent_kafka`` the command says how to
install it.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Iterable
from typing import Any

from ..kafka.errors import classify_kafka_error, retry_retriable
from ._args import error, open_input, positive_int, read_error
from ._kafka_client import (
    add_connection_arguments,
    client_config,
    client_logging,
    report_failure,
    require_kafka_client,
    timeout_of,
)

__all__ = ["MIN_DELIVERY_TIMEOUT", "add_load_arguments", "run_load"]

logger = logging.getLogger("millstream.cli")

MIN_DELIVERY_TIMEOUT = 30.0
"""How long librdkafka keeps trying to deliver one record before load-kafka gives up (s)."""


def add_load_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the arguments of ``millstream load-kafka`` on ``parser``."""
    parser.add_argument(
        "path",
        nargs="?",
        default=None,
        metavar="PATH|-",
        help=(
            "text file to load (UTF-8), or '-' for standard input; default: the text "
            "`millstream wordcount` counts (Newton's Opticks)"
        ),
    )
    add_connection_arguments(parser, required=True)
    parser.add_argument(
        "--create",
        action="store_true",
        help="create the topic if it does not exist (replication factor 1)",
    )
    parser.add_argument(
        "--partitions",
        type=positive_int,
        default=1,
        metavar="N",
        help="the number of partitions of a topic made by --create (default 1)",
    )


def run_load(args: argparse.Namespace) -> int:
    """Run ``millstream load-kafka``; return the exit code."""
    if not require_kafka_client("load-kafka", "load-kafka"):
        return 1
    with client_logging(args.verbose):
        try:
            with open_input(args.path) as (lines, name):
                return _Loader(args).load(lines, name)
        except BrokenPipeError:
            raise
        except OSError as e:
            error("load-kafka", read_error(args.path, e))
            return 2


class _LoadError(Exception):
    """A failure of load-kafka to report in one line."""


class _Loader:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.timeout = timeout_of(args)
        self.delivered = 0
        self.failed = 0
        self.first_failure: Any = None

    def load(self, lines: Iterable[str], name: str) -> int:
        args = self.args
        try:
            created, partitions = retry_retriable(self._prepare_topic, self.timeout, log=logger)
        except _LoadError as e:
            error("load-kafka", str(e))
            return 1
        except Exception as e:
            if classify_kafka_error(e).kind == "not-kafka":
                raise
            report_failure("load-kafka", e, args, self.timeout)
            return 1
        if created:
            print(f"created Kafka topic {args.topic!r} with {partitions} partition(s)")
        written = self._produce(lines, partitions)
        if self.failed or self.delivered != written:
            lost = written - self.delivered
            reason = (
                _describe(self.first_failure) if self.first_failure is not None else "timed out"
            )
            error("load-kafka", f"{lost} of {written} records not delivered: {reason}")
            return 1
        print(
            f"wrote {self.delivered} records (the lines of {name}) to Kafka topic "
            f"{args.topic!r} at {args.kafka}"
        )
        return 0

    def _prepare_topic(self, seconds_left: float) -> tuple[bool, int]:
        """Check the broker and the topic, creating it if asked; (created, partitions).

        Kafka errors propagate (a retriable one is tried again by the caller)."""
        from confluent_kafka import KafkaException
        from confluent_kafka.admin import AdminClient, NewTopic

        args = self.args
        admin = AdminClient(client_config(args.kafka))
        # all topics: asking for one by name could create it on a broker that auto-creates
        topics = admin.list_topics(timeout=seconds_left).topics
        found = topics.get(args.topic)
        if found is not None and found.error is None:
            return False, len(found.partitions)
        if found is not None and classify_kafka_error(KafkaException(found.error)).kind == (
            "retriable"
        ):
            raise KafkaException(found.error)  # e.g. a topic just made, without a leader yet
        if not args.create:
            raise _LoadError(
                f"Kafka topic {args.topic!r} does not exist at {args.kafka} (add --create)"
            )
        futures = admin.create_topics(
            [NewTopic(args.topic, num_partitions=args.partitions, replication_factor=1)],
            operation_timeout=seconds_left,
        )
        try:
            futures[args.topic].result(timeout=seconds_left)
        except KafkaException as e:
            if classify_kafka_error(e).kind == "retriable":
                raise
            raise _LoadError(f"cannot create topic {args.topic!r}: {_describe(e)}") from e
        self._wait_for_leaders(admin, args.partitions, seconds_left)
        return True, args.partitions

    def _wait_for_leaders(self, admin: Any, partitions: int, seconds_left: float) -> None:
        topic = self.args.topic
        deadline = time.monotonic() + seconds_left
        while True:
            found = admin.list_topics(timeout=seconds_left).topics.get(topic)
            if (
                found is not None
                and found.error is None
                and len(found.partitions) == partitions
                and all(p.leader >= 0 for p in found.partitions.values())
            ):
                return
            if time.monotonic() > deadline:
                raise _LoadError(
                    f"Kafka topic {topic!r} was created but has no leader after {self.timeout:g} s"
                )
            time.sleep(0.05)

    def _on_delivery(self, failure: Any, message: Any) -> None:
        if failure is None:
            self.delivered += 1
        else:
            self.failed += 1
            if self.first_failure is None:
                self.first_failure = failure

    def _produce(self, lines: Iterable[str], partitions: int) -> int:
        """Produce one record per line (without its newline), line ``i`` into partition
        ``i % partitions``; return how many were produced."""
        from confluent_kafka import Producer

        delivery_timeout = max(MIN_DELIVERY_TIMEOUT, self.timeout)
        producer = Producer(
            client_config(
                self.args.kafka,
                **{
                    "enable.idempotence": True,  # no duplicates, order kept per partition
                    "linger.ms": 20,
                    "message.timeout.ms": int(delivery_timeout * 1000),
                },
            )
        )
        topic = self.args.topic
        on_delivery = self._on_delivery
        written = 0
        for line in lines:
            value = (line[:-1] if line.endswith("\n") else line).encode("utf-8")
            while True:
                try:
                    producer.produce(
                        topic, value, partition=written % partitions, on_delivery=on_delivery
                    )
                    break
                except BufferError:  # the local queue is full: let deliveries drain it
                    producer.poll(0.05)
            written += 1
            if not written % 1000:
                producer.poll(0)
                if self.failed:
                    break
        producer.flush(delivery_timeout + 5)
        return written


def _describe(failure: Any) -> str:
    """A Kafka error (a ``KafkaError`` or an exception carrying one) as ``NAME (message)``."""
    from confluent_kafka import KafkaError, KafkaException

    if isinstance(failure, KafkaError):
        failure = KafkaException(failure)
    return classify_kafka_error(failure).describe()
