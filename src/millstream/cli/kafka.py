"""The Kafka commands: ``millstream wordcount --kafka ...`` and ``millstream load-kafka``.

``wordcount --kafka BOOTSTRAP --topic T`` counts the words of the records of a topic, one
record per line, through the Streamz pipeline fed by ``from_kafka_batched``::

    Stream.from_kafka_batched(T, {...}, keys=True).map(decode).flatten()
          .map(normalize_line).map(str.split).flatten().frequencies()

and shows the same live table as the file mode. It runs until Ctrl-C, or until
``--exit-at-end`` (every record the topic held at start has been counted) or
``--idle-exit SECONDS`` (no new record for that long) ends it with the final table.

``load-kafka [PATH|-] --kafka BOOTSTRAP --topic T [--create] [--partitions N]`` writes a
text into a topic, one record per line (default: the text ``wordcount`` counts).

Errors (no broker, no such topic) are one line on stderr and exit code 1; the Kafka
client's own log is shown only with ``--verbose``. ``confluent_kafka`` is imported only
when a Kafka command runs.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
import time
import traceback
from collections.abc import Iterable, Iterator
from typing import Any

from rich.console import Console
from rich.live import Live

from ..core.stream import Stream
from ..exceptions import KafkaConnectError, UnknownTopicError
from .wordcount import (
    REFRESH_PER_SECOND,
    WordCount,
    _is_interactive,
    _open_input,
    _positive_int,
    read_error,
)

__all__ = [
    "DEFAULT_GROUP",
    "LineReader",
    "add_load_arguments",
    "add_wordcount_arguments",
    "run_load",
    "run_wordcount",
    "wants_kafka",
]

DEFAULT_GROUP = "millstream-wordcount"
"""The consumer group ``wordcount --kafka`` reads and commits as, unless ``--group`` is given."""

DEFAULT_TIMEOUT = 10.0
#: the longest one poll of the topic waits for records (seconds)
POLL_INTERVAL = 0.1
#: how often the command checks whether it should end (seconds)
CHECK_INTERVAL = 0.05
#: how long librdkafka keeps trying to deliver one record before load-kafka gives up (seconds)
MIN_DELIVERY_TIMEOUT = 30.0

_KAFKA_ONLY = ("group", "from_beginning", "exit_at_end", "idle_exit", "timeout", "verbose")


# -- arguments ------------------------------------------------------------------------------


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds > 0, got {text!r}")
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number of seconds > 0, got {text}")
    return value


def _add_connection_arguments(parser: Any, required: bool) -> None:
    parser.add_argument(
        "--kafka",
        metavar="BOOTSTRAP",
        required=required,
        help="the Kafka broker(s) to connect to, host:port[,host:port...]",
    )
    parser.add_argument("--topic", metavar="TOPIC", required=required, help="the topic")
    parser.add_argument(
        "--timeout",
        type=_seconds,
        default=None,
        metavar="SECONDS",
        help=f"how long to wait for the broker to answer (default {DEFAULT_TIMEOUT:g})",
    )
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="show the Kafka client's log and the tracebacks of errors on stderr",
    )


def add_wordcount_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the Kafka options of ``millstream wordcount`` on ``parser``."""
    group = parser.add_argument_group(
        "reading the lines from Kafka",
        "With --kafka and --topic the lines are the records of the topic (one record, one "
        "line; UTF-8), read with Stream.from_kafka_batched, starting after the offsets the "
        "consumer group committed (from the beginning for a new group). The command runs "
        "until Ctrl-C, --exit-at-end or --idle-exit, then prints the final table. Exit "
        "code 1 when the broker does not answer or the topic does not exist.",
    )
    _add_connection_arguments(group, required=False)
    start = group.add_mutually_exclusive_group()
    start.add_argument(
        "--group",
        metavar="GROUP",
        help=(
            f"the consumer group (default {DEFAULT_GROUP}): it commits what was counted, "
            "so a later run with the same group counts only newer records"
        ),
    )
    start.add_argument(
        "--from-beginning",
        action="store_true",
        help="read the whole topic, without a consumer group (commits nothing)",
    )
    group.add_argument(
        "--exit-at-end",
        action="store_true",
        help="end once every record the topic held at start has been counted",
    )
    group.add_argument(
        "--idle-exit",
        type=_seconds,
        default=None,
        metavar="SECONDS",
        help="end after SECONDS without a new record",
    )


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
    _add_connection_arguments(parser, required=True)
    parser.add_argument(
        "--create",
        action="store_true",
        help="create the topic if it does not exist (replication factor 1)",
    )
    parser.add_argument(
        "--partitions",
        type=_positive_int,
        default=1,
        metavar="N",
        help="the number of partitions of a topic made by --create (default 1)",
    )


def wants_kafka(args: argparse.Namespace) -> bool:
    """Whether ``wordcount`` was asked to read from Kafka (or was given a Kafka-only option)."""
    return args.kafka is not None or args.topic is not None or _kafka_options(args) != []


def _kafka_options(args: argparse.Namespace) -> list[str]:
    return [
        "--" + name.replace("_", "-")
        for name in _KAFKA_ONLY
        if getattr(args, name, None) not in (None, False)
    ]


def _usage_error(args: argparse.Namespace) -> str | None:
    if args.kafka is None:
        if args.topic is not None:
            return "--topic needs --kafka BOOTSTRAP"
        return f"{_kafka_options(args)[0]} needs --kafka BOOTSTRAP and --topic TOPIC"
    if args.topic is None:
        return "--kafka needs --topic TOPIC"
    if args.path is not None:
        return "give either a PATH or --kafka, not both"
    return None


# -- logging -------------------------------------------------------------------------------


@contextlib.contextmanager
def _client_logging(verbose: bool) -> Iterator[None]:
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


def _client_config(bootstrap: str, **extra: Any) -> dict[str, Any]:
    return {
        "bootstrap.servers": bootstrap,
        "logger": logging.getLogger("millstream.kafka"),
        **extra,
    }


def _error(command: str, message: str) -> None:
    print(f"millstream {command}: error: {message}", file=sys.stderr)


def _no_broker(bootstrap: str, timeout: float) -> str:
    return f"no Kafka broker answered at {bootstrap} within {timeout:g} s"


def _no_topic(topic: str, bootstrap: str) -> str:
    return (
        f"Kafka topic {topic!r} does not exist at {bootstrap} (create it with: "
        f"millstream load-kafka --kafka {bootstrap} --topic {topic} --create)"
    )


# -- wordcount --kafka ---------------------------------------------------------------------


class LineReader:
    """The decode step: a batch of records -> its lines; notes how far each partition got.

    Examples
    --------
    >>> reader = LineReader()
    >>> reader([{'partition': 0, 'offset': 7, 'value': b'to be'},
    ...         {'partition': 0, 'offset': 8, 'value': 'caf\\u00e9'.encode()},
    ...         {'partition': 0, 'offset': 9, 'value': None}])
    ['to be', 'café']
    >>> reader.progress
    {0: 9}
    """

    def __init__(self) -> None:
        #: partition -> offset of the last record seen
        self.progress: dict[int, int] = {}
        #: ``time.monotonic()`` of the last batch seen (or of the start)
        self.last_seen = time.monotonic()

    def __call__(self, batch: list[dict[str, Any]]) -> list[str]:
        lines = [
            value.decode("utf-8", "replace")
            for value in (record["value"] for record in batch)
            if value is not None  # a tombstone is no line
        ]
        if batch:
            last = batch[-1]  # a batch holds records of one partition, in offset order
            self.progress[last["partition"]] = last["offset"]
            self.last_seen = time.monotonic()
        return lines

    def reached(self, ends: dict[int, int]) -> bool:
        """Whether every partition in ``ends`` (partition -> offset after its last record)
        has been read up to its end."""
        progress = self.progress
        return all(progress.get(p, -1) >= end - 1 for p, end in ends.items())


def _ends_to_read(
    bootstrap: str, topic: str, group: str | None, partitions: list[int], timeout: float
) -> dict[int, int]:
    """partition -> its end offset now, for each partition with records still to count.

    A partition whose group has committed up to its end, or that is empty, has none.
    """
    from confluent_kafka import Consumer, TopicPartition

    probe = Consumer(_client_config(bootstrap, **{"group.id": group or DEFAULT_GROUP}))
    try:
        tps = [TopicPartition(topic, p) for p in partitions]
        committed: dict[int, int] = {}
        if group is not None:
            committed = {tp.partition: tp.offset for tp in probe.committed(tps, timeout=timeout)}
        ends = {}
        for tp in tps:
            low, high = probe.get_watermark_offsets(tp, timeout=timeout)
            start = max(committed.get(tp.partition, -1), low)
            if start < high:
                ends[tp.partition] = high
        return ends
    finally:
        probe.close()


def run_wordcount(args: argparse.Namespace, console: Console) -> int:
    """Run ``millstream wordcount --kafka ...``; return the exit code."""
    problem = _usage_error(args)
    if problem is not None:
        _error("wordcount", problem)
        return 2
    with _client_logging(args.verbose):
        return _KafkaWordCount(args, console).run()


class _KafkaWordCount:
    def __init__(self, args: argparse.Namespace, console: Console) -> None:
        self.args = args
        self.console = console
        self.timeout = args.timeout if args.timeout is not None else DEFAULT_TIMEOUT
        self.group = None if args.from_beginning else (args.group or DEFAULT_GROUP)
        params = {"bootstrap.servers": args.kafka, "auto.offset.reset": "earliest"}
        if self.group is not None:
            params["group.id"] = self.group
        self.reader = LineReader()
        stream: Any = Stream  # the sources are registered on Stream at import time
        batches = stream.from_kafka_batched(
            args.topic, params, poll_interval=POLL_INTERVAL, keys=True,
            connect_timeout=self.timeout,
        )  # fmt: skip
        self.source = batches.upstream
        lines = batches.map(self.reader).flatten()
        self.wc = WordCount(
            top=args.top, normalize=not args.raw, title=f"Kafka topic {args.topic}", upstream=lines
        )

    def _show_traceback(self, error: BaseException) -> None:
        """With ``--verbose``, the whole traceback before the one-line message."""
        if self.args.verbose:
            traceback.print_exception(type(error), error, error.__traceback__, file=sys.stderr)

    def run(self) -> int:
        args, source = self.args, self.source
        try:
            try:
                source.start()
                ends = None
                if args.exit_at_end:
                    ends = _ends_to_read(
                        args.kafka, args.topic, self.group, list(source.partitions), self.timeout
                    )
            except KafkaConnectError as e:
                self._show_traceback(e)
                _error("wordcount", _no_broker(args.kafka, self.timeout))
                return 1
            except UnknownTopicError as e:
                self._show_traceback(e)
                _error("wordcount", _no_topic(args.topic, args.kafka))
                return 1
            except ValueError as e:  # librdkafka rejected a setting (e.g. a malformed address)
                _error("wordcount", str(e))
                return 2
            except Exception as e:
                if type(e).__module__.startswith(("confluent_kafka", "cimpl")):
                    _error("wordcount", _no_broker(args.kafka, self.timeout))
                    return 1
                raise
            self.wc.started = time.perf_counter()
            self.reader.last_seen = time.monotonic()
            if _is_interactive(self.console):
                with Live(
                    console=self.console,
                    get_renderable=self.wc.render,
                    refresh_per_second=REFRESH_PER_SECOND,
                    transient=True,
                    redirect_stdout=False,
                    redirect_stderr=False,
                ):
                    self._wait(ends)
            else:
                self._wait(ends)
        except KeyboardInterrupt:
            source.stop()
            self._show()
            print("millstream wordcount: interrupted (counts so far above)", file=sys.stderr)
            return 130
        source.stop()  # lets what is in flight finish, commits it, closes the consumer
        self._show()
        if source.error is not None:
            _error("wordcount", f"reading stopped: {_one_line(source.error)}")
            return 1
        return 0

    def _wait(self, ends: dict[int, int] | None) -> None:
        """Return when the source ended, the topic's end was reached, or it went idle."""
        source, reader, idle = self.source, self.reader, self.args.idle_exit
        while not source.stopped:
            if ends is not None and reader.reached(ends):
                return
            if idle is not None and time.monotonic() - reader.last_seen >= idle:
                return
            time.sleep(CHECK_INTERVAL)

    def _show(self) -> None:
        self.wc.finish()
        self.console.print(self.wc.render())


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}".rstrip(": ")


# -- load-kafka ----------------------------------------------------------------------------


def run_load(args: argparse.Namespace) -> int:
    """Run ``millstream load-kafka``; return the exit code."""
    with _client_logging(args.verbose):
        try:
            with _open_input(args.path) as (lines, name):
                return _Loader(args).load(lines, name)
        except BrokenPipeError:
            raise
        except OSError as e:
            _error("load-kafka", read_error(args.path, e))
            return 2


class _Loader:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.timeout = args.timeout if args.timeout is not None else DEFAULT_TIMEOUT
        self.delivered = 0
        self.failed = 0
        self.first_failure: Any = None

    def load(self, lines: Iterable[str], name: str) -> int:
        from confluent_kafka import KafkaException

        args = self.args
        try:
            created, partitions = self._prepare_topic()
        except KafkaException as e:
            _error("load-kafka", f"cannot create topic {args.topic!r}: {e.args[0].str()}")
            return 1
        except _LoadError as e:
            _error("load-kafka", str(e))
            return 1
        if created:
            print(f"created Kafka topic {args.topic!r} with {partitions} partition(s)")
        written = self._produce(lines, partitions)
        if self.failed or self.delivered != written:
            lost = written - self.delivered
            reason = self.first_failure.str() if self.first_failure is not None else "timed out"
            _error("load-kafka", f"{lost} of {written} records not delivered: {reason}")
            return 1
        print(
            f"wrote {self.delivered} records (the lines of {name}) to Kafka topic "
            f"{args.topic!r} at {args.kafka}"
        )
        return 0

    def _prepare_topic(self) -> tuple[bool, int]:
        """Check the broker and the topic, creating it if asked; (created, partitions)."""
        from confluent_kafka import KafkaException
        from confluent_kafka.admin import AdminClient, NewTopic

        args = self.args
        admin = AdminClient(_client_config(args.kafka))
        try:
            # all topics: asking for one by name could create it on a broker that auto-creates
            topics = admin.list_topics(timeout=self.timeout).topics
        except KafkaException:
            raise _LoadError(_no_broker(args.kafka, self.timeout))
        found = topics.get(args.topic)
        if found is not None and found.error is None:
            return False, len(found.partitions)
        if not args.create:
            raise _LoadError(
                f"Kafka topic {args.topic!r} does not exist at {args.kafka} (add --create)"
            )
        futures = admin.create_topics(
            [NewTopic(args.topic, num_partitions=args.partitions, replication_factor=1)],
            operation_timeout=self.timeout,
        )
        futures[args.topic].result(timeout=self.timeout)
        self._wait_for_leaders(admin, args.partitions)
        return True, args.partitions

    def _wait_for_leaders(self, admin: Any, partitions: int) -> None:
        topic = self.args.topic
        deadline = time.monotonic() + self.timeout
        while True:
            found = admin.list_topics(timeout=self.timeout).topics.get(topic)
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

    def _on_delivery(self, error: Any, message: Any) -> None:
        if error is None:
            self.delivered += 1
        else:
            self.failed += 1
            if self.first_failure is None:
                self.first_failure = error

    def _produce(self, lines: Iterable[str], partitions: int) -> int:
        """Produce one record per line (without its newline), line ``i`` into partition
        ``i % partitions``; return how many were produced."""
        from confluent_kafka import Producer

        delivery_timeout = max(MIN_DELIVERY_TIMEOUT, self.timeout)
        producer = Producer(
            _client_config(
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


class _LoadError(Exception):
    """A failure of load-kafka to report in one line."""
