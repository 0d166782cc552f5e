"""``millstream wordcount --kafka BOOTSTRAP --topic T``: the word count of a Kafka topic.

It counts the words of the records of a topic, one record per line, through the Streamz
pipeline fed by ``from_kafka_batched``::

    Stream.from_kafka_batched(T, {...}, keys=True).map(decode).flatten()
          .map(normalize_line).map(str.split).flatten().frequencies()

and shows the same live table as the file mode. It runs until Ctrl-C, or until
``--exit-at-end`` (every record the topic held at start has been counted) or
``--idle-exit SECONDS`` (no new record for that long) ends it with the final table.
``millstream load-kafka`` (:mod:`millstream.cli.load_kafka`) fills a topic.

Errors are one line on stderr and exit code 1, by cause (see
:mod:`millstream.kafka.errors`): no broker, no such topic, a broker not ready within
``--timeout`` (retriable errors such as ``NOT_COORDINATOR`` on a fresh broker are tried
again until then), or the Kafka error's name and message. The Kafka client's own log and
the tracebacks are shown only with ``--verbose``. ``confluent_kafka`` is imported only
when a Kafka command runs; without it the command says how to install it.
"""

from __future__ import annotations

import argparse
import logging
import time
from contextlib import nullcontext
from typing import Any

from rich.console import Console

from ..core.stream import Stream
from ..kafka.errors import classify_kafka_error, retry_retriable
from ._args import enable_checkpoints, error, seconds
from ._dashboard import dashboard_of
from ._display import live, show_interrupted
from ._kafka_client import (
    add_connection_arguments,
    client_config,
    client_logging,
    report_failure,
    require_kafka_client,
    timeout_of,
)
from ._lag import LagProbe, lag_from_metrics
from .load_kafka import add_load_arguments, run_load
from .wordcount import WordCount, print_json

__all__ = [
    "DEFAULT_GROUP",
    "LineReader",
    "add_load_arguments",
    "add_wordcount_arguments",
    "run_load",
    "run_wordcount",
    "wants_kafka",
]

logger = logging.getLogger("millstream.cli")

DEFAULT_GROUP = "millstream-wordcount"
"""The consumer group ``wordcount --kafka`` reads and commits as, unless ``--group`` is given."""

#: the longest one poll of the topic waits for records (seconds)
POLL_INTERVAL = 0.1
#: how often the command checks whether it should end (seconds)
CHECK_INTERVAL = 0.05

_KAFKA_ONLY = (
    "group",
    "from_beginning",
    "exit_at_end",
    "idle_exit",
    "timeout",
    "verbose",
    "to_topic",
    "exactly_once",
)


# -- arguments ------------------------------------------------------------------------------


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
    add_connection_arguments(group, required=False)
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
        type=seconds,
        default=None,
        metavar="SECONDS",
        help="end after SECONDS without a new record",
    )
    group.add_argument(
        "--to-topic",
        metavar="OUT",
        default=None,
        help=(
            "for each word counted, write a record to topic OUT: key = the word, value = "
            "its new running count as decimal text"
        ),
    )
    group.add_argument(
        "--exactly-once",
        action="store_true",
        help=(
            "with --to-topic and --checkpoint: write OUT in one Kafka transaction per "
            "checkpoint, so that a read_committed reader of OUT sees the counts 1, 2, ..., N "
            "of each word exactly once, however often the job is killed and restarted"
        ),
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
    if args.exactly_once and (args.to_topic is None or args.checkpoint is None):
        return "--exactly-once needs --to-topic OUT and --checkpoint LOCATION"
    return None


# -- the count -----------------------------------------------------------------------------


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

    probe = Consumer(client_config(bootstrap, **{"group.id": group or DEFAULT_GROUP}))
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


def run_wordcount(args: argparse.Namespace, console: Console | None = None) -> int:
    """Run ``millstream wordcount --kafka ...``; return the exit code."""
    problem = _usage_error(args)
    if problem is not None:
        error("wordcount", problem)
        return 2
    if not require_kafka_client("wordcount", "--kafka"):
        return 1
    with client_logging(args.verbose):
        try:
            job = _KafkaWordCount(args, console if console is not None else Console())
        except _CheckpointsUnusable:
            return 1  # enable_checkpoints printed why
        return job.run()


class _CheckpointsUnusable(Exception):
    """The checkpoints at ``--checkpoint`` cannot be used (the error is printed)."""


class _KafkaWordCount:
    def __init__(self, args: argparse.Namespace, console: Console) -> None:
        self.args = args
        self.console = console
        self.timeout = timeout_of(args)
        self.group = None if args.from_beginning else (args.group or DEFAULT_GROUP)
        self.source: Any = None
        self.checkpoints: Any = None
        self.lag_probe: LagProbe | None = None
        self._build(self.timeout)

    def _build(self, connect_timeout: float) -> None:
        """A new pipeline: source -> decode (the reader) -> word count."""
        args = self.args
        params = {"bootstrap.servers": args.kafka, "auto.offset.reset": "earliest"}
        if self.group is not None:
            params["group.id"] = self.group
        self.reader = LineReader()
        stream: Any = Stream  # the sources are registered on Stream at import time
        batches = stream.from_kafka_batched(
            args.topic, params, poll_interval=POLL_INTERVAL, keys=True,
            connect_timeout=connect_timeout,
        )  # fmt: skip
        self.source = batches.upstream
        lines = batches.map(self.reader).flatten()
        self.wc = WordCount(
            top=args.top, normalize=not args.raw, title=f"Kafka topic {args.topic}", upstream=lines
        )
        self.wc.lag = self._lag
        if args.to_topic is not None:
            words: Any = self.wc.counts_node.upstreams[0]  # the words, one by one
            running = words.accumulate(
                running_count, start={}, returns_state=True, stream_name="running-counts"
            )
            running.to_kafka(args.to_topic, client_config(args.kafka), keys=True)
        if args.checkpoint is not None:
            self._enable_checkpoints()

    def _enable_checkpoints(self) -> None:
        """Checkpoints at ``--checkpoint``: restore the counts and the read positions of
        the newest one; the reader starts from those positions."""
        if self.checkpoints is not None:  # a failed try: its graph is gone
            self.checkpoints.close(final=False)
        self.checkpoints = enable_checkpoints(self.source, self.args)
        if self.checkpoints is None:
            raise _CheckpointsUnusable
        self.wc.resume()
        position = self.source.snapshot().get(self.args.topic, {})
        self.reader.progress.update({p: offset - 1 for p, offset in position.items()})

    def _connect(self, seconds_left: float) -> dict[int, int] | None:
        """Start the source (a new one if a try failed); with ``--exit-at-end``, the
        partitions' ends. Tried again after a retriable Kafka error: a failed start has
        read nothing, and a running source is kept."""
        args, source = self.args, self.source
        if source.stopped:
            if source.error is not None:  # a failed try: build the pipeline again
                self._build(seconds_left)
                source = self.source
            source.start()
        if not args.exit_at_end:
            return None
        return _ends_to_read(
            args.kafka, args.topic, self.group, list(source.partitions), seconds_left
        )

    def run(self) -> int:
        try:
            return self._run()
        finally:
            if self.lag_probe is not None:
                self.lag_probe.stop()

    def _run(self) -> int:
        args = self.args
        display = live(self.console, self.wc.render) if not args.json else nullcontext()
        try:
            try:
                ends = retry_retriable(self._connect, self.timeout, log=logger)
            except _CheckpointsUnusable:
                return 1  # enable_checkpoints printed why
            except ValueError as e:  # librdkafka rejected a setting (e.g. a malformed address)
                self.source.stop()
                error("wordcount", str(e))
                return 2
            except Exception as e:
                self.source.stop()
                if classify_kafka_error(e).kind == "not-kafka":
                    raise
                report_failure("wordcount", e, args, self.timeout)
                return 1
            self.wc.started = time.perf_counter()
            self.reader.last_seen = time.monotonic()
            if not args.json:
                self._start_lag_probe()
            with dashboard_of(args, self.source) as server, display:
                if server is False:
                    self._close_checkpoints()
                    self.source.stop()
                    return 1
                self._wait(ends)
        except KeyboardInterrupt:
            self._close_checkpoints()
            self.source.stop()
            self._show()
            show_interrupted("wordcount")
            return 130
        source = self.source
        self._close_checkpoints()  # a last checkpoint of everything counted, then commit
        source.stop()  # lets what is in flight finish, commits it, closes the consumer
        self._show()
        if source.error is not None:
            error("wordcount", f"reading stopped: {_one_line(source.error)}")
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

    def _start_lag_probe(self) -> None:
        """Measure the consumer lag for the table, unless the source's metrics give it."""
        if lag_from_metrics(self.source) is not None:
            return
        args = self.args
        try:
            self.lag_probe = LagProbe(
                args.kafka,
                args.topic,
                self.group,
                partitions=lambda: list(getattr(self.source, "partitions", None) or ()),
                progress=lambda: dict(self.reader.progress),
                timeout=self.timeout,
            )
        except Exception as e:  # the table then goes without the lag
            logger.debug("no consumer lag: %s", e)
            return
        self.lag_probe.start()

    def _lag(self) -> dict[int, int] | None:
        """partition -> records not counted yet: from the source's metrics, or measured."""
        lag = lag_from_metrics(self.source)
        if lag is not None:
            return lag
        return self.lag_probe.lag if self.lag_probe is not None else None

    def _close_checkpoints(self) -> None:
        if self.checkpoints is not None:
            self.checkpoints.close()

    def _show(self) -> None:
        if self.lag_probe is not None:
            self.lag_probe.refresh()  # what is left after the last records counted
        self.wc.finish()
        if self.args.json:
            print_json(self.wc.counts())
        else:
            self.console.print(self.wc.render())


def running_count(counts: dict[str, int], word: str) -> tuple[dict[str, int], tuple[str, str]]:
    """``--to-topic``'s step: count ``word``; emit ``(word, its new count as text)``.

    >>> counts = {}
    >>> running_count(counts, 'be')[1], running_count(counts, 'be')[1]
    (('be', '1'), ('be', '2'))
    """
    count = counts.get(word, 0) + 1
    counts[word] = count
    return counts, (word, str(count))


def _one_line(failure: BaseException) -> str:
    """A reading error in one line: the Kafka error's name and message, or the exception's."""
    problem = classify_kafka_error(failure)
    if problem.kind != "not-kafka" and problem.name:
        return problem.describe()
    text = str(failure).strip().splitlines()
    return f"{type(failure).__name__}: {text[0] if text else ''}".rstrip(": ")
