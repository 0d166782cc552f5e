"""``KafkaTransactions``: one transactional producer whose transactions follow checkpoints.

In exactly-once mode (:func:`millstream.checkpoint.enable` with ``exactly_once=True``)
every Kafka writer of a graph (``to_kafka``, ``to_kafka_dead_letters``) produces through
one object of this class, so that all the output of one checkpoint is in one Kafka
transaction, committed together with the consumer groups' offsets
(``send_offsets_to_transaction``) and a *checkpoint record* (key: the pipeline's identity,
value: the checkpoint id, as JSON) in the record topic (:data:`RECORD_TOPIC`). A
``read_committed`` reader sees the output of a checkpoint when, and only when, the
checkpoint committed; the record says which checkpoint file a restart restores.

The life of a transaction:

1. :meth:`start` (``init_transactions``) fences any earlier producer with the same
   ``transactional.id`` (a crashed or paused earlier run of this pipeline) and aborts
   its open transaction; then a transaction begins.
2. :meth:`produce` (on the graph's loop) sends each record into the open transaction
   (and keeps a copy until it commits: an aborted attempt is produced again).
3. :meth:`prepare` (while the checkpoint holds the graph) cuts: what was produced so far
   belongs to the checkpoint. Records arriving after the cut wait in memory until the
   commit is done (typically milliseconds: the checkpoint file's write and one commit).
4. :meth:`commit` (in a worker thread): flush, the offsets, the record, commit. A
   retriable error is retried; an error that needs an abort aborts, produces the
   checkpoint's records again and retries, within ``commit_timeout`` seconds. A fatal
   error (fenced by a newer instance: ``PRODUCER_FENCED``) raises
   :class:`~millstream.exceptions.KafkaFencedError` and stays raised: the pipeline must
   stop, and a restart resumes from what was committed.
5. :meth:`resume` (on the loop) begins the next transaction and produces the records
   that waited.

``confluent_kafka`` is imported by :meth:`start`, never at import.

Examples
--------
Made without a broker, it only checks its settings:

>>> t = KafkaTransactions({'bootstrap.servers': 'localhost:9092'}, '/ckpt#7')
>>> t.transactional_id
'millstream-0f56f397485fe48d419c'
>>> t.has_uncommitted()
False
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

from .._utils import short_repr
from ..core.failpoints import failpoint
from ..exceptions import CheckpointError, KafkaFencedError
from .log import librdkafka_log

__all__ = ["FAILPOINTS", "RECORD_TOPIC", "KafkaTransactions", "transactional_id_for"]

logger = logging.getLogger("millstream.kafka")

#: The topic checkpoint records go to unless told otherwise (compacted, one partition).
RECORD_TOPIC = "millstream.checkpoints"
#: Fail-points between the steps of a Kafka commit (see :mod:`millstream.core.failpoints`).
FAILPOINTS = ("before_kafka_offsets", "before_kafka_record", "before_kafka_commit")
#: librdkafka's producer settings a transactional producer may not have.
_REFUSED = ("enable.idempotence",)
#: update() serves delivery reports (``poll(0)``) once every this many records
_POLL_EVERY = 64

Record = tuple[str, Any, Any, Any]  # topic, value, key, headers


def transactional_id_for(identity: str) -> str:
    """The default ``transactional.id`` of the pipeline named ``identity`` (its checkpoint
    location and writer id): the same on every restart, so a restart fences the old run.

    >>> transactional_id_for('/ckpt#7')
    'millstream-0f56f397485fe48d419c'
    """
    return "millstream-" + hashlib.sha256(identity.encode()).hexdigest()[:20]


def _error_of(exc: BaseException) -> Any:
    """The ``KafkaError`` inside a ``KafkaException`` (None for anything else)."""
    args = getattr(exc, "args", ())
    err = args[0] if args else None
    return err if hasattr(err, "txn_requires_abort") else None


class KafkaTransactions:
    """The transactional producer of one pipeline (see the module's text).

    Parameters
    ----------
    producer_config : dict
        librdkafka settings; ``bootstrap.servers`` at least. ``transactional.id`` is
        derived from ``identity`` unless given.
    identity : str
        Names the pipeline (its checkpoint location and writer id); the key of its
        checkpoint records.
    record_topic : str
        Where checkpoint records go (:data:`RECORD_TOPIC`); made (compacted, one
        partition) when missing.
    commit_timeout : float
        Seconds one commit may take, retries included, before it fails (the checkpoint
        is then retried whole at the next interval).
    """

    def __init__(
        self,
        producer_config: Mapping[str, Any],
        identity: str,
        record_topic: str = RECORD_TOPIC,
        commit_timeout: float = 60.0,
    ):
        config = dict(producer_config)
        for key in _REFUSED:
            value = str(config.get(key, "true")).lower()
            if value in ("false", "0", "no"):
                raise ValueError(
                    f"exactly-once Kafka output needs {key}=true (a transactional producer), "
                    f"got {key}={config[key]!r}"
                )
        given = config.get("transactional.id")
        self.transactional_id = str(given or transactional_id_for(identity))
        config["transactional.id"] = self.transactional_id
        config.setdefault("logger", librdkafka_log)
        self.config = config
        self.identity = identity
        self.record_topic = record_topic
        self.commit_timeout = float(commit_timeout)
        self.producer: Any = None
        #: the error that ends this producer (fenced); raised by every later call
        self.fatal: BaseException | None = None
        #: checkpoints committed by this object, and attempts aborted and produced again
        self.commits = 0
        self.aborts = 0
        # records produced into the open transaction (kept for a retry after an abort)
        self._produced: list[Record] = []
        # records that arrived after a cut, not produced yet
        self._waiting: list[Record] = []
        self._cut = False  # a checkpoint is being committed (or failed): new records wait
        self._upto = 0  # how many of _waiting belong to the checkpoint being committed
        self._unpolled = 0
        self._lock = threading.Lock()
        self._abortable = False  # fatal, but the open transaction can still be aborted
        #: closed (the checkpoints were): later records are kept back, never committed
        self.closed = False

    # -- starting -------------------------------------------------------------------------
    def start(self, timeout: float = 30.0) -> None:
        """Make the producer, fence earlier ones (``init_transactions``) and begin a
        transaction. Blocking; idempotent."""
        if self.producer is not None:
            return
        try:
            import confluent_kafka  # noqa: F401  (here: a missing client is one clear error)
        except ImportError as e:  # pragma: no cover - the kafka extra is part of the test extra
            raise ImportError(
                "exactly-once Kafka output needs confluent-kafka: pip install 'millstream[kafka]'"
            ) from e
        self._ensure_record_topic(timeout)
        self.producer = self._new_producer(timeout)

    def _new_producer(self, timeout: float) -> Any:
        """A producer with this ``transactional.id``, initialised (which fences and aborts
        what an earlier one left open) and in a transaction."""
        import confluent_kafka

        producer = confluent_kafka.Producer(self.config)
        deadline = time.monotonic() + timeout
        while True:
            try:
                producer.init_transactions(max(1.0, deadline - time.monotonic()))
                break
            except confluent_kafka.KafkaException as e:
                err = _error_of(e)
                if err is not None and err.retriable() and time.monotonic() < deadline:
                    time.sleep(0.2)
                    continue
                raise self._failed("init_transactions", e) from e
        producer.begin_transaction()
        return producer

    def _ensure_record_topic(self, timeout: float) -> None:
        """Create the record topic (compacted, one partition) unless it exists."""
        from confluent_kafka.admin import AdminClient, NewTopic

        servers = {
            k: v for k, v in self.config.items() if k in ("bootstrap.servers", "security.protocol")
        }
        admin = AdminClient(servers)
        topics = admin.list_topics(timeout=timeout).topics
        if self.record_topic in topics:
            return
        new = NewTopic(
            self.record_topic,
            num_partitions=1,
            config={"cleanup.policy": "compact", "segment.ms": "600000"},
        )
        future = admin.create_topics([new])[self.record_topic]
        try:
            future.result(timeout)
        except Exception as e:  # created meanwhile by another pipeline: fine
            if "TOPIC_ALREADY_EXISTS" not in str(e):
                raise

    def committed_checkpoint(self, timeout: float = 30.0) -> int | None:
        """The id in this pipeline's newest committed checkpoint record (None: none).

        Call after :meth:`start`, whose ``init_transactions`` aborted any transaction the
        previous run left open (it would hold ``read_committed`` readers back)."""
        import confluent_kafka

        consumer = confluent_kafka.Consumer(
            {
                "bootstrap.servers": self.config.get("bootstrap.servers"),
                "group.id": f"{self.transactional_id}-reader",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                "enable.partition.eof": True,
                "logger": librdkafka_log,
            }
        )
        found: int | None = None
        key = self.identity.encode()
        try:
            partition = confluent_kafka.TopicPartition(self.record_topic, 0)
            # read up to the end as of now: this pipeline's records are all before it.
            # (Not up to an end-of-partition event: while other pipelines commit more
            # often than a fetch waits, the position stays one commit marker short of
            # the end and librdkafka never reports it.)
            _, end = consumer.get_watermark_offsets(partition, timeout=timeout)
            start = confluent_kafka.OFFSET_BEGINNING
            consumer.assign([confluent_kafka.TopicPartition(self.record_topic, 0, start)])
            deadline = time.monotonic() + timeout
            while consumer.position([partition])[0].offset < end:
                if time.monotonic() > deadline:
                    raise CheckpointError(
                        f"reading checkpoint records from {self.record_topic!r} took over "
                        f"{timeout} s (an open transaction of another producer holds it?)"
                    )
                msg = consumer.poll(0.5)
                if msg is None:
                    continue
                err = msg.error()
                if err is not None:
                    if err.code() == confluent_kafka.KafkaError._PARTITION_EOF:
                        break
                    raise CheckpointError(f"reading {self.record_topic!r}: {err.str()}")
                if msg.key() == key:
                    found = int(json.loads(msg.value() or b"{}")["checkpoint"])
        finally:
            consumer.close()
        return found

    # -- producing (on the graph's loop) --------------------------------------------------
    def produce(self, topic: str, value: Any, key: Any = None, headers: Any = None) -> None:
        """Send one record into the open transaction (or keep it until the commit in
        progress ends). Raises the fatal error once the producer is fenced."""
        if self.fatal is not None:
            raise self.fatal
        record = (topic, value, key, headers)
        if self.closed:
            # after the last checkpoint (the pipeline is stopping): never committed, as the
            # input positions behind it are not; a restart produces it again
            if not self._waiting:
                logger.info(
                    "%s: records after the last checkpoint are not committed (a restart "
                    "reads their input again)",
                    self.transactional_id,
                )
            self._waiting.append(record)
            return
        if self._cut:
            self._waiting.append(record)
            return
        self._send(record)
        self._produced.append(record)

    def _send(self, record: Record) -> None:
        producer = self.producer
        topic, value, key, headers = record
        # no delivery callback: a record that is not stored fails commit_transaction()
        # (an abortable error), which aborts and produces the records again
        while True:
            try:
                if headers is None:
                    producer.produce(topic, value, key)
                else:
                    producer.produce(topic, value, key, headers=headers)
                break
            except BufferError:
                producer.poll(0.01)  # librdkafka's queue is full: let it drain
        unpolled = self._unpolled + 1
        if unpolled >= _POLL_EVERY:
            unpolled = 0
            producer.poll(0)
        self._unpolled = unpolled

    def has_uncommitted(self) -> bool:
        """Whether records wait for a checkpoint to commit them."""
        return bool(self._produced or self._waiting)

    # -- checkpoints ----------------------------------------------------------------------
    def prepare(self) -> None:
        """Cut (while the graph is held): everything produced or waiting so far belongs
        to the checkpoint that :meth:`commit` commits next."""
        if self.fatal is not None:
            raise self.fatal
        self._cut = True
        self._upto = len(self._waiting)

    def commit(
        self,
        checkpoint_id: int,
        offsets: list[tuple[Any, list[Any]]] = (),  # type: ignore[assignment]
        details: Mapping[str, Any] | None = None,
    ) -> None:
        """Commit the cut's records with ``offsets`` (``[(group_metadata,
        [TopicPartition])]``) and the checkpoint record. Blocking (call from a thread);
        after it returns, call :meth:`resume` on the loop."""
        if self.fatal is not None:
            raise self.fatal
        with self._lock:
            deadline = time.monotonic() + self.commit_timeout
            # records that waited for an earlier failed commit go into this transaction
            for record in self._waiting[: self._upto]:
                self._send(record)
                self._produced.append(record)
            del self._waiting[: self._upto]
            self._upto = 0
            value = json.dumps(
                {"checkpoint": checkpoint_id, "committed_at": time.time(), **(details or {})},
                default=str,
            ).encode()
            attempt = 0
            while True:
                attempt += 1
                try:
                    self._commit_once(offsets, value, deadline)
                    break
                except _GroupMovedOn as e:
                    self.fence(
                        f"its consumer group moved on ({e.args[0].name()}: the partitions "
                        "went to another member while this one was away)"
                    )
                    raise self.fatal from e  # type: ignore[misc]
                except _Stuck as e:
                    if time.monotonic() >= deadline:
                        raise CheckpointError(
                            f"Kafka transaction of checkpoint {checkpoint_id} "
                            f"({self.transactional_id}) not committed within "
                            f"{self.commit_timeout} s, {attempt} attempt(s): {e}"
                        ) from e
                    self._replace_producer(e, deadline)
                    continue
                except Exception as e:
                    err = _error_of(e)
                    if err is None and not isinstance(e, _DeliveryFailed):
                        raise
                    if err is not None and err.fatal():
                        raise self._failed("commit", e) from e
                    if time.monotonic() >= deadline:
                        raise CheckpointError(
                            f"Kafka transaction of checkpoint {checkpoint_id} "
                            f"({self.transactional_id}) not committed within "
                            f"{self.commit_timeout} s, {attempt} attempt(s): {e}"
                        ) from e
                    self._abort_and_replay(e, deadline)
            self._produced = []
            self.commits += 1

    def _commit_once(self, offsets: Any, record_value: bytes, deadline: float) -> None:
        producer = self.producer
        left = max(1.0, deadline - time.monotonic())
        remaining = producer.flush(left)
        if remaining:
            raise _DeliveryFailed(f"{remaining} record(s) not delivered within {left:.0f} s")
        failpoint("before_kafka_offsets")
        for group_metadata, partitions in offsets:
            if not partitions:
                continue
            try:
                _bounded(
                    producer.send_offsets_to_transaction,
                    partitions,
                    group_metadata,
                    min(_STEP_TIMEOUT, max(1.0, deadline - time.monotonic())),
                )
            except Exception as e:
                err = _error_of(e)
                if err is not None and err.name() in _GROUP_MOVED_ON:
                    raise _GroupMovedOn(err) from e
                raise
        failpoint("before_kafka_record")
        producer.produce(self.record_topic, record_value, self.identity.encode())
        failpoint("before_kafka_commit")
        producer.commit_transaction(max(1.0, deadline - time.monotonic()))
        producer.begin_transaction()

    def _abort_and_replay(self, cause: BaseException, deadline: float) -> None:
        """Abort the open transaction and produce its records again in a new one."""
        import confluent_kafka

        producer = self.producer
        self.aborts += 1
        logger.warning(
            "%s: Kafka transaction aborted, its %d record(s) produced again: %s",
            self.transactional_id,
            len(self._produced),
            cause,
        )
        while True:
            try:
                producer.abort_transaction(max(1.0, deadline - time.monotonic()))
                break
            except confluent_kafka.KafkaException as e:
                err = _error_of(e)
                if err is not None and err.fatal():
                    raise self._failed("abort", e) from e
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.2)  # retriable (the broker is away): try again
        producer.begin_transaction()
        for record in self._produced:
            self._send(record)

    def _replace_producer(self, cause: BaseException, deadline: float) -> None:
        """A call that never returned (librdkafka's ``send_offsets_to_transaction`` can block
        past its timeout once the group coordinator was away: librdkafka issues #5456,
        #5511): leave that producer to its thread, start a new one with the same
        ``transactional.id`` (which fences the old one and aborts its transaction) and
        produce the checkpoint's records again."""
        self.aborts += 1
        logger.warning(
            "%s: %s; a new producer takes over and produces the %d record(s) again",
            self.transactional_id,
            cause,
            len(self._produced),
        )
        self.producer = self._new_producer(max(5.0, deadline - time.monotonic()))
        for record in self._produced:
            self._send(record)

    def resume(self) -> None:
        """On the loop, after :meth:`commit`: produce the records that waited."""
        waiting = self._waiting
        self._waiting = []
        self._cut = False
        self._upto = 0
        for record in waiting:
            self._send(record)
            self._produced.append(record)

    def _failed(self, step: str, e: BaseException) -> BaseException:
        err = _error_of(e)
        reason = err.str() if err is not None else str(e)
        name = err.name() if err is not None else type(e).__name__
        if err is not None and err.fatal():
            self.fatal = KafkaFencedError(
                f"exactly-once Kafka output {self.transactional_id!r}: {step} failed: {reason} "
                f"({name}). Another instance with the same transactional.id (the same "
                "checkpoint location) took over; this one stops, and nothing it had not "
                "committed is visible"
            )
            return self.fatal
        return CheckpointError(
            f"exactly-once Kafka output {self.transactional_id!r}: {step} failed: {reason} ({name})"
        )

    def fence(self, why: str) -> None:
        """Stop this producer for good (from any thread): its group lost the partitions it
        read (a paused instance the group replaced). The open transaction is aborted when
        the producer closes; every later call raises :class:`KafkaFencedError`."""
        if self.fatal is None:
            self.fatal = KafkaFencedError(
                f"exactly-once Kafka output {self.transactional_id!r} stops: {why}; nothing "
                "it had not committed is visible, and a restart resumes from what was"
            )
            self._abortable = True

    # -- the end --------------------------------------------------------------------------
    def close(self, timeout: float = 10.0) -> None:
        """Abort what was not committed and close the producer."""
        self.closed = True
        producer, self.producer = self.producer, None
        if producer is None:
            return
        if self.fatal is None:
            self._abortable = True
        if self._abortable:
            try:
                producer.abort_transaction(timeout)
            except Exception as e:  # closing anyway; the broker aborts it on its timeout
                logger.debug("%s: abort at close: %s", self.transactional_id, e)
        self._produced, self._waiting = [], []

    def __repr__(self) -> str:
        return (
            f"<KafkaTransactions {self.transactional_id} of {short_repr(self.identity)}: "
            f"{len(self._produced)} produced, {len(self._waiting)} waiting>"
        )


#: errors of ``send_offsets_to_transaction`` that say this member is no longer in its group
_GROUP_MOVED_ON = (
    "ILLEGAL_GENERATION",
    "UNKNOWN_MEMBER_ID",
    "FENCED_INSTANCE_ID",
    "_FENCED",
)


class _GroupMovedOn(Exception):
    """``send_offsets_to_transaction`` was refused: the group has a newer generation."""


#: seconds one blocking step of a commit may take before its producer is replaced
_STEP_TIMEOUT = 5.0


class _Stuck(Exception):
    """A librdkafka call did not return within its bound (see ``_replace_producer``)."""


def _bounded(fn: Any, *args: Any) -> Any:
    """``fn(*args)`` whose last argument is its timeout, in a daemon thread that is given up
    (``_Stuck``) when the call outlives that timeout by 5 s."""
    timeout = float(args[-1])
    outcome: list[Any] = []

    def call() -> None:
        try:
            outcome.append((True, fn(*args)))
        except BaseException as e:  # handed to the caller
            outcome.append((False, e))

    thread = threading.Thread(target=call, name="millstream-kafka-commit", daemon=True)
    thread.start()
    thread.join(timeout + 5.0)
    if not outcome:
        raise _Stuck(f"{getattr(fn, '__name__', fn)} did not return within {timeout + 5.0:.0f} s")
    ok, value = outcome[0]
    if not ok:
        raise value
    return value


class _DeliveryFailed(Exception):
    """A record of the transaction was not stored: the attempt is aborted and replayed."""
