"""The shared harness of the reliability suite (``tests/reliability/``).

Every reliability test follows one recipe (reliability.md §2, §6): a seeded generator of
input, a seeded fault schedule, faults injected at moments tied to the pipeline's
progress, and an independent check of what a ``read_committed`` reader sees afterwards.
This module holds the parts they share:

Sizes and seeds
    :data:`FULL` / :func:`sized` (CI sizes by default; full sizes with
    ``MILLSTREAM_RELIABILITY_FULL=1``), :func:`reliability_seed` (from
    ``MILLSTREAM_RELIABILITY_SEED``, else random) and :func:`fault_schedule`, a
    :class:`FaultSchedule` of :class:`Fault` s that the test prints (``schedule.show()``)
    before it starts, so that any failure can be replayed with the same seed;
    :func:`kill_schedule` is the one shared by T1 and the reference run.
Input and output
    :func:`produce_input` (N keyed records with unique values over P partitions; an
    :class:`InputData`), :func:`read_topic` (a topic read to its end, ``read_committed``
    or ``read_uncommitted``, as :class:`Record` s), :class:`ConcurrentReader` (a
    ``read_committed`` reader running while the faults happen), :func:`end_offsets`,
    :func:`committed_offsets` (a group's committed offsets), :func:`open_transactions`
    and :func:`wait_no_open_transactions` (partitions whose last stable offset lags the
    high watermark: a transaction is open there), :func:`create_topics`; the harness keeps
    one AdminClient per broker until :func:`close_clients`.
Checks
    :func:`check_delivery` (lost, duplicated and unexpected records against the input, by
    unique value: a :class:`DeliveryCheck`) and :func:`aborted_records` (records that
    ``read_uncommitted`` sees and ``read_committed`` does not: the proof that a kill hit an
    open transaction).
Processes
    :class:`Children`: child processes the test started, killed with SIGKILL by pid
    (never by name), the leftovers killed at the end. :func:`wait_until` polls a condition.
The reference
    :func:`copier_command`: Kafka's own ``TransactionalMessageCopier`` (kafka-tools,
    fetched with the broker's jars by ``scripts/kafka-broker fetch``).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from confluent_kafka import (
    Consumer,
    ConsumerGroupTopicPartitions,
    IsolationLevel,
    KafkaError,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic, OffsetSpec

__all__ = [
    "COPIER_MAIN",
    "FULL",
    "FULL_ENV",
    "KILL_SCHEDULE",
    "SEED_ENV",
    "Children",
    "ConcurrentReader",
    "DeliveryCheck",
    "Fault",
    "FaultSchedule",
    "InputData",
    "Record",
    "aborted_records",
    "check_delivery",
    "close_clients",
    "committed_offsets",
    "copier_command",
    "create_topics",
    "end_offsets",
    "fault_schedule",
    "kafka_classpath",
    "kill_schedule",
    "open_transactions",
    "produce_input",
    "read_topic",
    "reliability_seed",
    "sized",
    "wait_no_open_transactions",
    "wait_until",
]

ROOT = Path(__file__).resolve().parents[2]
SEED_ENV = "MILLSTREAM_RELIABILITY_SEED"
FULL_ENV = "MILLSTREAM_RELIABILITY_FULL"

#: True when ``MILLSTREAM_RELIABILITY_FULL=1``: the tests run at their full sizes.
FULL: bool = os.environ.get(FULL_ENV, "").strip() == "1"

T = TypeVar("T")


def sized(ci: T, full: T) -> T:
    """``full`` when the suite runs at full size (``MILLSTREAM_RELIABILITY_FULL=1``), else
    ``ci``: ``n = sized(60_000, 1_000_000)``."""
    return full if FULL else ci


def reliability_seed() -> int:
    """The seed of this run: ``$MILLSTREAM_RELIABILITY_SEED``, else a fresh random one."""
    value = os.environ.get(SEED_ENV, "").strip()
    if value:
        return int(value)
    return random.SystemRandom().randrange(2**32)


# -- the fault schedule ------------------------------------------------------------------------


@dataclass(frozen=True)
class Fault:
    """One planned fault: ``kind`` happens once ``at`` (a fraction, 0..1) of the input has
    been processed and committed, ``delay_s`` seconds later; ``target`` names what it hits
    when there is a choice (a process, a partition), else None."""

    number: int
    kind: str
    at: float
    delay_s: float
    target: str | None = None

    def __str__(self) -> str:
        where = f" on {self.target}" if self.target is not None else ""
        at = f"at {self.at:.1%} of the input +{self.delay_s:.3f} s"
        return f"#{self.number} {self.kind}{where} {at}"


@dataclass
class FaultSchedule:
    """The seeded faults of one test run; ``rng`` (seeded from the same seed) is for any
    other random choice the test makes, so that the seed replays all of them. Two runs
    of a schedule of the same ``name`` with the same seed get the same faults."""

    name: str
    seed: int
    faults: list[Fault]
    rng: random.Random = field(repr=False)

    def describe(self) -> str:
        """The seed (with how to replay it), the size mode and every planned fault."""
        lines = [
            f"schedule {self.name!r}: seed {self.seed} (replay: {SEED_ENV}={self.seed}), "
            f"{'full' if FULL else 'CI'} sizes ({FULL_ENV}=1 for full), "
            f"{len(self.faults)} fault(s):"
        ]
        lines += [f"  {fault}" for fault in self.faults]
        return "\n".join(lines)

    def show(self) -> None:
        """Print :meth:`describe` (pytest shows it with the failure's captured output)."""
        print(self.describe(), flush=True)


def fault_schedule(
    name: str,
    count: int | tuple[int, int],
    kind: str = "kill -9",
    targets: Sequence[str] = (),
    spread: tuple[float, float] = (0.05, 0.85),
    max_delay_s: float = 0.3,
    seed: int | None = None,
) -> FaultSchedule:
    """A :class:`FaultSchedule` named ``name`` of ``count`` faults (or a seeded number in
    ``count``'s inclusive range) of ``kind``, at sorted seeded fractions of the input
    within ``spread``, each with a seeded extra delay up to ``max_delay_s`` and, if
    ``targets`` are given, a seeded target among them. ``seed`` defaults to
    :func:`reliability_seed`; the same name and seed give the same faults.

    >>> a = fault_schedule('t', (3, 5), seed=7)
    >>> b = fault_schedule('t', (3, 5), seed=7)
    >>> a.faults == b.faults and 3 <= len(a.faults) <= 5
    True
    >>> [f.at for f in a.faults] == sorted(f.at for f in a.faults)
    True
    """
    if seed is None:
        seed = reliability_seed()
    rng = random.Random(f"{name}:{seed}")
    n = count if isinstance(count, int) else rng.randint(*count)
    low, high = spread
    points = sorted(rng.uniform(low, high) for _ in range(n))
    faults = [
        Fault(
            number=i + 1,
            kind=kind,
            at=round(at, 4),
            delay_s=round(rng.uniform(0, max_delay_s), 3),
            target=rng.choice(list(targets)) if targets else None,
        )
        for i, at in enumerate(points)
    ]
    return FaultSchedule(name, seed, faults, rng)


#: The kill -9 schedule of a Kafka -> Kafka exactly-once pipeline: T1 (millstream) and
#: the reference run (TransactionalMessageCopier) use it, so that with one seed both
#: face the same kills.
KILL_SCHEDULE = "kafka kill -9"


def kill_schedule(seed: int | None = None) -> FaultSchedule:
    """The :data:`KILL_SCHEDULE`: 5 kills (full size: 15), each once 5 % to 75 % of the
    input is committed, plus up to 0.2 s."""
    return fault_schedule(
        KILL_SCHEDULE, sized(5, 15), kind="kill -9", spread=(0.05, 0.75), max_delay_s=0.2,
        seed=seed,
    )  # fmt: skip


# -- polling -------------------------------------------------------------------------------------


def wait_until(
    condition: Callable[[], Any],
    timeout: float,
    what: str,
    period: float = 0.02,
    check: Callable[[], None] | None = None,
) -> Any:
    """Poll ``condition()`` until it returns something true and return that; raise
    ``TimeoutError`` naming ``what`` after ``timeout`` s. ``check()`` (if given) runs each
    round and may raise, for instance when a process the wait depends on died."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if check is not None:
            check()
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not reached within {timeout:g} s")
        time.sleep(period)


# -- topics, input and offsets ------------------------------------------------------------------


@dataclass(frozen=True)
class Record:
    """One Kafka record as a reader saw it."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


@dataclass
class InputData:
    """What :func:`produce_input` wrote: ``records`` in the order produced (with their
    partitions and offsets) and each partition's end offset after the write."""

    topic: str
    partitions: int
    records: list[Record]
    end_offsets: dict[int, int]

    @property
    def values(self) -> list[bytes]:
        """The unique values, in the order produced."""
        return [r.value for r in self.records if r.value is not None]

    def __len__(self) -> int:
        return len(self.records)


_admins: dict[str, AdminClient] = {}


_LOG = logging.getLogger("reliability")


def _admin(bootstrap: str) -> AdminClient:
    """One AdminClient per broker, kept (a fresh one costs a connection) until
    :func:`close_clients`."""
    admin = _admins.get(bootstrap)
    if admin is None:
        settings: dict[str, Any] = {"bootstrap.servers": bootstrap, "logger": _LOG}
        admin = AdminClient(settings)
        _admins[bootstrap] = admin
    return admin


#: helpers whose threads the running test started; the ``reliability`` conftest halts them
#: at the test's teardown, so a failed test leaves no thread using a client behind
RUNNING: list[Any] = []


def halt_running() -> None:
    """Halt every helper of :data:`RUNNING` (idempotent)."""
    while RUNNING:
        RUNNING.pop().halt()


def close_clients(bootstrap: str | None = None) -> None:
    """Drop the harness's AdminClient of ``bootstrap`` (of every broker when None): call it
    before stopping a broker, or the client goes on trying to reach it."""
    for address in [bootstrap] if bootstrap is not None else list(_admins):
        _admins.pop(address, None)


def create_topics(bootstrap: str, partitions: int, *names: str, timeout: float = 30.0) -> list[str]:
    """Create the topics ``names`` (fresh names when none given: two) with ``partitions``
    partitions each and wait until every partition has a leader."""
    names = names or tuple(f"reliability-{uuid.uuid4().hex[:10]}" for _ in range(2))
    admin = _admin(bootstrap)
    futures = admin.create_topics(
        [NewTopic(name, num_partitions=partitions, replication_factor=1) for name in names],
        operation_timeout=timeout,
    )
    for future in futures.values():
        future.result(timeout=timeout)

    def ready() -> bool:
        topics = admin.list_topics(timeout=timeout).topics
        return all(
            name in topics
            and topics[name].error is None
            and len(topics[name].partitions) == partitions
            and all(p.leader >= 0 for p in topics[name].partitions.values())
            for name in names
        )

    wait_until(ready, timeout, f"leaders for {names}", period=0.05)
    return list(names)


def produce_input(
    bootstrap: str,
    topic: str,
    n: int,
    partitions: int,
    keys: int | None = None,
    value: Callable[[int], bytes] = lambda i: b"%d" % i,
) -> InputData:
    """Write ``n`` keyed records with unique values to ``topic`` (``partitions`` partitions)
    with an idempotent producer; raise on any delivery error.

    Record ``i`` has key ``b'k<i % keys>'`` (``keys`` defaults to ``10 * partitions``) and
    value ``value(i)`` (default: ``i`` in decimal; it must be unique). A key always goes
    to the same partition (``key number % partitions``), so per-key order is the
    partition's order.
    """
    keys = keys or 10 * partitions
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "linger.ms": 20,
            "batch.size": 1_000_000,
            "queue.buffering.max.messages": 1_000_000,
            "logger": _LOG,  # "coordinator load in progress" and such: retried, not printed
        }
    )
    delivered: dict[int, Record] = {}
    errors: list[Any] = []

    def report(i: int, key: bytes, payload: bytes) -> Callable[[Any, Any], None]:
        def on_delivery(error: Any, msg: Any) -> None:
            if error is not None:
                errors.append(error)
            else:
                delivered[i] = Record(msg.partition(), msg.offset(), key, payload)

        return on_delivery

    for i in range(n):
        key_number = i % keys
        key, payload = b"k%d" % key_number, value(i)
        while True:
            try:
                producer.produce(
                    topic, payload, key, partition=key_number % partitions,
                    on_delivery=report(i, key, payload),
                )  # fmt: skip
                break
            except BufferError:
                producer.poll(0.05)
        if i % 10_000 == 0:
            producer.poll(0)
    left = producer.flush(120)
    if left or errors or len(delivered) != n:
        raise RuntimeError(
            f"produce_input({topic!r}): {left} not delivered, {len(errors)} error(s) "
            f"(first: {errors[:1]}), {len(delivered)} of {n} confirmed"
        )
    values = [delivered[i].value for i in range(n)]
    if len(set(values)) != n:
        raise ValueError("produce_input: value(i) must give a unique value per record")
    return InputData(topic, partitions, [delivered[i] for i in range(n)],
                     end_offsets(bootstrap, topic))  # fmt: skip


def _partitions_of(admin: AdminClient, topic: str) -> list[int]:
    meta = admin.list_topics(topic=topic, timeout=30).topics.get(topic)
    if meta is None or meta.error is not None or not meta.partitions:
        raise RuntimeError(f"topic {topic!r} not found ({meta.error if meta else 'no metadata'})")
    return sorted(meta.partitions)


def end_offsets(bootstrap: str, topic: str, isolation: str = "read_uncommitted") -> dict[int, int]:
    """Each partition's end: the high watermark (``read_uncommitted``) or the last stable
    offset (``read_committed``: nothing at or past it belongs to a finished transaction)."""
    admin = _admin(bootstrap)
    level = {
        "read_uncommitted": IsolationLevel.READ_UNCOMMITTED,
        "read_committed": IsolationLevel.READ_COMMITTED,
    }[isolation]
    request = {TopicPartition(topic, p): OffsetSpec.latest() for p in _partitions_of(admin, topic)}
    answers = admin.list_offsets(request, isolation_level=level, request_timeout=30)
    return {tp.partition: future.result().offset for tp, future in answers.items()}


def open_transactions(bootstrap: str, topic: str) -> list[int]:
    """The partitions of ``topic`` where a transaction is open now: the last stable offset
    lags the high watermark (records of an unfinished transaction, or its marker to come)."""
    committed = end_offsets(bootstrap, topic, "read_committed")
    high = end_offsets(bootstrap, topic, "read_uncommitted")
    return sorted(p for p in high if committed[p] < high[p])


def wait_no_open_transactions(bootstrap: str, topic: str, timeout: float = 60.0) -> None:
    """Wait until no partition of ``topic`` has an open transaction (the last step of
    Kafka's EOS verifier: no transaction left hanging)."""
    wait_until(
        lambda: not open_transactions(bootstrap, topic),
        timeout,
        f"every transaction on {topic!r} finished (open on {open_transactions(bootstrap, topic)})",
        period=0.1,
    )


def committed_offsets(
    bootstrap: str, group: str, topic: str, stable: bool = True
) -> dict[int, int | None]:
    """The offsets ``group`` has committed for each partition of ``topic`` (None: none).

    ``stable`` waits for offsets still inside an open transaction (require_stable);
    without it the answer is the last committed one.
    """
    admin = _admin(bootstrap)
    partitions = [TopicPartition(topic, p) for p in _partitions_of(admin, topic)]
    futures = admin.list_consumer_group_offsets(
        [ConsumerGroupTopicPartitions(group, partitions)], require_stable=stable,
        request_timeout=30,
    )  # fmt: skip
    result = futures[group].result()
    return {tp.partition: (tp.offset if tp.offset >= 0 else None) for tp in result.topic_partitions}


def _consumer(bootstrap: str, isolation: str) -> Consumer:
    return Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"reliability-reader-{uuid.uuid4().hex[:10]}",  # assign(): never joins
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "isolation.level": isolation,
            "auto.offset.reset": "earliest",
            "logger": _LOG,
        }
    )


def _assign_from_start(consumer: Consumer, bootstrap: str, topic: str) -> list[int]:
    partitions = _partitions_of(_admin(bootstrap), topic)
    consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
    return partitions


def _record(msg: Any) -> Record:
    return Record(msg.partition(), msg.offset(), msg.key(), msg.value())


def read_topic(
    bootstrap: str, topic: str, isolation: str = "read_committed", timeout: float = 120.0
) -> list[Record]:
    """Every record of ``topic`` from the start to each partition's end, as a reader with
    ``isolation.level=isolation`` sees it (``read_committed``: committed records only;
    ``read_uncommitted``: aborted ones too). Meant for a topic nobody writes to any more."""
    consumer = _consumer(bootstrap, isolation)
    try:
        pending = set(_assign_from_start(consumer, bootstrap, topic))
        records: list[Record] = []
        deadline = time.monotonic() + timeout
        while pending:
            for msg in consumer.consume(10_000, 0.2):
                error = msg.error()
                if error is None:
                    records.append(_record(msg))
                elif error.code() == KafkaError._PARTITION_EOF:
                    pending.discard(msg.partition())
                else:
                    raise RuntimeError(f"reading {topic!r}: {error}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading {topic!r}: partitions {sorted(pending)} not at end")
        return records
    finally:
        consumer.close()


class ConcurrentReader:
    """A ``read_committed`` reader of ``topic`` in a thread, running while the faults happen
    (Kafka's transactions_test reads the output concurrently too): ``start()``, then,
    once nothing writes any more, ``finish()`` reads to the end and returns its records."""

    def __init__(self, bootstrap: str, topic: str, isolation: str = "read_committed"):
        self.bootstrap, self.topic, self.isolation = bootstrap, topic, isolation
        self.records: list[Record] = []
        self._at_end: dict[int, bool] = {}
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"reader-{topic}", daemon=True)

    def start(self) -> ConcurrentReader:
        self._thread.start()
        RUNNING.append(self)
        return self

    def halt(self) -> None:
        """Stop reading and wait for the thread (it closes its consumer)."""
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        consumer = _consumer(self.bootstrap, self.isolation)
        try:
            for p in _assign_from_start(consumer, self.bootstrap, self.topic):
                self._at_end[p] = False
            while not self._stop.is_set():
                for msg in consumer.consume(10_000, 0.1):
                    error, partition = msg.error(), int(msg.partition() or 0)
                    if error is None:
                        self.records.append(_record(msg))
                        self._at_end[partition] = False
                    elif error.code() == KafkaError._PARTITION_EOF:
                        self._at_end[partition] = True
                    else:
                        raise RuntimeError(f"reading {self.topic!r}: {error}")
        except BaseException as error:  # reported by finish()
            self._error = error
        finally:
            consumer.close()

    def finish(self, timeout: float = 120.0) -> list[Record]:
        """Wait until every partition was read to its end, stop; return the records."""

        def done() -> bool:
            if self._error is not None or not self._thread.is_alive():
                failure = f"the concurrent reader of {self.topic!r} failed: {self._error!r}"
                raise RuntimeError(failure)
            return bool(self._at_end) and all(self._at_end.values())

        try:
            wait_until(done, timeout, f"the concurrent reader at the end of {self.topic!r}", 0.05)
        finally:
            self._stop.set()
            self._thread.join(30)
        return self.records


# -- checks ---------------------------------------------------------------------------------------


@dataclass
class DeliveryCheck:
    """Output against input, by unique value: ``lost`` input values never seen,
    ``duplicated`` values seen more than once (with their counts), ``unexpected`` values
    that are not in the input."""

    expected: int
    seen: int
    lost: list[bytes]
    duplicated: dict[bytes, int]
    unexpected: list[bytes]

    @property
    def ok(self) -> bool:
        """Exactly once: nothing lost, duplicated or unexpected."""
        return not (self.lost or self.duplicated or self.unexpected)

    def describe(self, limit: int = 10) -> str:
        def some(values: Iterable[Any]) -> str:
            values = list(values)
            return repr(values[:limit]) + (" ..." if len(values) > limit else "")

        parts = [
            f"{name} {len(values)}" + (f" {some(values)}" if values else "")
            for name, values in (
                ("lost", self.lost),
                ("duplicated", list(self.duplicated.items())),
                ("unexpected", self.unexpected),
            )
        ]
        return f"{self.seen} record(s) for {self.expected} input value(s): " + ", ".join(parts)


def check_delivery(expected: Iterable[bytes | None], records: Iterable[Record]) -> DeliveryCheck:
    """Compare the values of ``records`` with the unique values ``expected``.

    >>> check = check_delivery([b'1', b'2', b'3'], [Record(0, 0, None, b'1'),
    ...     Record(0, 1, None, b'1'), Record(1, 0, None, b'4')])
    >>> check.ok, check.lost, check.duplicated, check.unexpected
    (False, [b'2', b'3'], {b'1': 2}, [b'4'])
    """
    wanted = [v for v in expected if v is not None]
    wanted_set = set(wanted)
    counts = Counter(r.value for r in records)
    return DeliveryCheck(
        expected=len(wanted),
        seen=sum(counts.values()),
        lost=[v for v in wanted if v not in counts],
        duplicated={v: c for v, c in counts.items() if c > 1 and v is not None},
        unexpected=[v for v in counts if v not in wanted_set],  # type: ignore[misc]
    )


def aborted_records(committed: Iterable[Record], uncommitted: Iterable[Record]) -> list[Record]:
    """The records a ``read_uncommitted`` reader saw that a ``read_committed`` one did not
    (by partition and offset): records of aborted transactions. A kill test that finds
    none never hit an open transaction and has proved nothing.

    >>> aborted_records([Record(0, 2, None, b'a')],
    ...                 [Record(0, 0, None, b'a'), Record(0, 2, None, b'a')])
    [Record(partition=0, offset=0, key=None, value=b'a')]
    """
    seen = {(r.partition, r.offset) for r in committed}
    return [r for r in uncommitted if (r.partition, r.offset) not in seen]


# -- processes ------------------------------------------------------------------------------------


class Children:
    """The child processes a test started. ``kill(process)`` sends SIGKILL to that pid
    only (never a signal by name, never a process group); ``close()`` kills those still
    running. Each child writes stdout and stderr to its own log file."""

    def __init__(self, log_dir: Path):
        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.started: list[subprocess.Popen[bytes]] = []
        self.logs: dict[int, Path] = {}

    def start(
        self, command: Sequence[str], name: str, env: Mapping[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        """Start ``command`` with its output in ``<log_dir>/<name>.log``."""
        log = self.log_dir / f"{name}.log"
        with open(log, "wb") as out:  # the child keeps its own copy of the descriptor
            process = subprocess.Popen(
                list(command), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                env=None if env is None else dict(env), cwd=ROOT,
            )  # fmt: skip
        self.started.append(process)
        self.logs[process.pid] = log
        return process

    def log(self, process: subprocess.Popen[bytes]) -> str:
        """What ``process`` has written so far."""
        return self.logs[process.pid].read_text(errors="replace")

    def kill(self, *processes: subprocess.Popen[bytes]) -> None:
        """SIGKILL each of ``processes`` (by its pid) that still runs, all of them first,
        then reap them."""
        for process in processes:
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGKILL)
        for process in processes:
            process.wait(30)

    def close(self) -> None:
        self.kill(*self.started)


# -- the reference: Kafka's TransactionalMessageCopier --------------------------------------------

COPIER_MAIN = "org.apache.kafka.tools.TransactionalMessageCopier"
_LIBS = ROOT / "tools" / "kafka" / "target" / "kafka-libs"


@functools.cache
def kafka_classpath() -> str:
    """The classpath of the broker's jars (with kafka-tools), fetched once per session when
    missing or stale (``scripts/kafka-broker fetch`` compares the pom's digest)."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "kafka-broker"), "fetch"],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    if result.returncode != 0 or not any(_LIBS.glob("kafka-tools-*.jar")):
        raise RuntimeError(f"scripts/kafka-broker fetch failed: {result.stderr.strip()}")
    return f"{_LIBS}/*"


def copier_command(
    bootstrap: str,
    input_topic: str,
    partition: int,
    output_topic: str,
    group: str,
    transactional_id: str,
    transaction_size: int = 200,
    transaction_timeout_ms: int = 60_000,
    java_options: Sequence[str] = ("-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1"),
) -> list[str]:
    """The command line of one ``TransactionalMessageCopier``: it copies one partition of
    ``input_topic`` to the same partition of ``output_topic`` in transactions of
    ``transaction_size`` records, committing its offsets for ``group`` in each
    (``--use-group-metadata``: KIP-447), and exits once it reached the partition's end
    offset as of its start. Its stdout is one JSON status line per transaction
    (``totalProcessed``, ``remaining``, ``stage``). Keys and values pass through Java
    strings (UTF-8) and headers are dropped: give it UTF-8 text without headers.
    """
    home = os.environ.get("JAVA_HOME")
    java = str(Path(home) / "bin" / "java") if home else "java"
    return [
        java, *java_options,
        f"-Dlog4j2.configurationFile={ROOT / 'tools' / 'kafka' / 'log4j2.properties'}",
        "-cp", kafka_classpath(), COPIER_MAIN,
        "--broker-list", bootstrap,
        "--input-topic", input_topic, "--input-partition", str(partition),
        "--output-topic", output_topic,
        "--consumer-group", group, "--use-group-metadata",
        "--transactional-id", transactional_id,
        "--transaction-size", str(transaction_size),
        "--transaction-timeout", str(transaction_timeout_ms),
    ]  # fmt: skip
