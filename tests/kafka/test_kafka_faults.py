"""Bad input and faults for from_kafka and from_kafka_batched, against real brokers.

* an unknown topic, and a broker that is not there at start: a clear error, no hang;
* the broker restarted (SIGTERM, and SIGKILL) in the middle of a stream: the stream
  carries on, nothing produced is lost (at least once), the group's commits catch up;
* undecodable bytes in a decode step: the source stops with the error, whose notes name
  the topic, partition and offset; nothing at or past the record is committed, and the
  next pipeline of the group reads it again;
* a failure in an asynchronous branch (after a buffer) blocks the commits the same way.

The restart tests use a broker of this module alone (started in a temporary directory
with scripts/kafka-broker); the session broker, shared with other tests, is never
restarted.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from millstream import Stream
from millstream.exceptions import KafkaConnectError, UnknownTopicError
from millstream.testing import wait_for

from ._helpers import (
    FAST_RESTART,
    create_topic,
    delete_topics,
    restart_broker,
    start_broker,
    stop_broker,
    unique_topic_name,
)

# -- helpers -----------------------------------------------------------------------------

#: librdkafka's own log lines of the test clients (refused connections while the broker
#: is down...) go to logging, where pytest keeps them, instead of to stderr
_LOG = {"logger": logging.getLogger("tests.kafka.faults")}


def _params(bootstrap, group=None, **extra):
    out = {
        "bootstrap.servers": bootstrap,
        "group.id": group or f"faults-{uuid.uuid4().hex[:10]}",
        "auto.offset.reset": "earliest",
    }
    out.update(extra)
    return out


def _produce(bootstrap, topic, records):
    """Write ``(partition, value)`` pairs in order; return each one's offset."""
    offsets: list[int | None] = [None] * len(records)
    errors = []
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0, **_LOG})
    for i, (partition, value) in enumerate(records):

        def delivered(error, message, i=i):
            if error is not None:
                errors.append(error)
            else:
                offsets[i] = message.offset()

        producer.produce(topic, value=value, partition=partition, on_delivery=delivered)
    assert producer.flush(10) == 0
    assert errors == []
    return offsets


def _committed(bootstrap, group, topic, partitions):
    """The group's committed offset per partition (None where none is committed)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, **_LOG})
    try:
        tps = consumer.committed([TopicPartition(topic, p) for p in range(partitions)], 10)
    finally:
        consumer.close()
    return {tp.partition: (tp.offset if tp.offset >= 0 else None) for tp in tps}


def _end_offsets(bootstrap, topic, partitions):
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "faults-watermarks", **_LOG})
    try:
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in range(partitions)
        }
    finally:
        consumer.close()


def _stop(source):
    source.stop()
    wait_for(lambda: source.work_task is None or source.work_task.done(), 15)


def _wait_stopped(source, timeout=15):
    wait_for(lambda: source.stopped and source.work_task.done(), timeout)


# -- unknown topic, no broker --------------------------------------------------------------


def _sources(topic, params, **kwargs):
    """from_kafka and from_kafka_batched's source for ``topic``."""
    return {
        "from_kafka": lambda: Stream.from_kafka(topic, params, **kwargs),
        "from_kafka_batched": lambda: Stream.from_kafka_batched(topic, params, **kwargs).upstream,
    }


@pytest.mark.parametrize("kind", ["from_kafka", "from_kafka_batched"])
def test_unknown_topic_raises_at_start_naming_topic_and_broker(kafka_bootstrap, kind):
    topic = unique_topic_name("no-such-topic")
    source = _sources(topic, _params(kafka_bootstrap), connect_timeout=5)[kind]()
    started = time.monotonic()
    with pytest.raises(UnknownTopicError) as info:
        source.start()
    took = time.monotonic() - started

    message = str(info.value)
    assert f"Kafka topic {topic!r} does not exist" in message
    assert repr(kafka_bootstrap) in message
    # the hint lists topics that are there, not the missing one
    assert "topics there" in message and repr(topic) not in message.split("topics there")[1]
    assert took < 5, f"start() took {took:.1f} s"
    assert source.stopped and source.error is info.value
    wait_for(lambda: source.work_task.done(), 5)
    # the check did not create the topic (the broker auto-creates topics on request)
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    assert topic not in admin.list_topics(timeout=10).topics


def test_unknown_topic_from_kafka_batched_start_true(kafka_bootstrap):
    topic = unique_topic_name("no-such-topic")
    with pytest.raises(UnknownTopicError, match=repr(topic)):
        Stream.from_kafka_batched(topic, _params(kafka_bootstrap), start=True, connect_timeout=5)


@pytest.mark.parametrize("kind", ["from_kafka", "from_kafka_batched"])
def test_unreachable_broker_raises_within_the_connect_timeout(unused_port, kind):
    servers = f"127.0.0.1:{unused_port}"
    source = _sources("anything", _params(servers), connect_timeout=2)[kind]()
    started = time.monotonic()
    with pytest.raises(KafkaConnectError) as info:
        source.start()
    took = time.monotonic() - started

    assert 1.5 <= took < 2 + 3, f"start() took {took:.1f} s with connect_timeout=2"
    message = str(info.value)
    assert f"bootstrap.servers={servers!r}" in message
    assert "within 2 s" in message
    assert isinstance(info.value, ConnectionError)
    assert source.stopped and source.error is info.value
    wait_for(lambda: source.work_task.done(), 5)


# -- undecodable bytes in a decode step -------------------------------------------------------

BAD = b"\xff\xfe"


def _poisoned_topic(bootstrap, kafka_topic):
    """Two partitions: 0 holds 8 good lines, 1 holds 5 good, BAD at offset 5, 4 good."""
    topic = kafka_topic(partitions=2)
    records = [(0, f"p0-{i}".encode()) for i in range(8)]
    records += [(1, f"p1-{i}".encode()) for i in range(5)]
    records += [(1, BAD)]
    records += [(1, f"p1-{i}".encode()) for i in range(6, 10)]
    offsets = _produce(bootstrap, topic, records)
    assert offsets[8 + 5] == 5  # the bad record is at partition 1 offset 5
    return topic


def _check_notes(error, topic, node_name):
    notes = getattr(error, "__notes__", [])
    assert any(
        n == f"kafka: while processing topic {topic!r} partition 1 offset 5" for n in notes
    ), notes
    assert any(n.startswith(f"millstream: <map: {node_name}> failed calling") for n in notes), notes
    assert any("decode_line" in n or "decode_batch" in n for n in notes), notes


def decode_line(b):
    return b.decode()


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "with-refs"])
def test_undecodable_record_stops_from_kafka_at_its_offset(kafka_bootstrap, kafka_topic, fused):
    topic = _poisoned_topic(kafka_bootstrap, kafka_topic)
    group = f"faults-{uuid.uuid4().hex[:10]}"
    source = Stream.from_kafka(topic, _params(kafka_bootstrap, group), poll_interval=0.05)
    received = []
    decoded = source.map(decode_line)
    if fused:
        decoded.sink(received.append)
    else:  # a buffer holds elements: the source counts refs

        async def store(x):
            await asyncio.sleep(0.005)  # the buffer still holds records when 5 fails
            received.append(x)

        decoded.buffer(4).sink(store)
    source.start()
    _wait_stopped(source)

    error = source.error
    assert isinstance(error, UnicodeDecodeError), repr(error)
    assert error.object == BAD
    _check_notes(error, topic, "decode_line")
    assert "p1-5" not in received and not any(r.startswith("p1-6") for r in received)
    # never committed past the bad record; everything before it in its partition is
    committed = _committed(kafka_bootstrap, group, topic, 2)
    assert committed[1] == 5, committed
    assert committed[0] in (None, 8), committed  # partition 0 is independent

    # the next pipeline of the group reads the bad record again (at least once)
    again = Stream.from_kafka(topic, _params(kafka_bootstrap, group), poll_interval=0.05)
    seen = []
    again.sink(lambda b: seen.append(b))
    again.start()
    try:
        wait_for(lambda: BAD in seen, 10)
    finally:
        _stop(again)
    assert [b for b in seen if b == BAD or b.startswith(b"p1-")][:1] == [BAD]


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "with-refs"])
def test_undecodable_record_stops_from_kafka_batched_at_its_batch(
    kafka_bootstrap, kafka_topic, fused
):
    topic = _poisoned_topic(kafka_bootstrap, kafka_topic)
    group = f"faults-{uuid.uuid4().hex[:10]}"
    stream = Stream.from_kafka_batched(
        topic, _params(kafka_bootstrap, group), poll_interval=0.05, max_batch_size=3
    )
    source = stream.upstream
    received = []
    tried = []

    def decode_batch(batch):
        tried.append(list(batch))
        return [b.decode() for b in batch]

    decoded = stream.map(decode_batch)
    if fused:
        decoded.sink(received.extend)
    else:

        async def store(x):
            await asyncio.sleep(0.005)  # the buffer still holds batches when BAD fails
            received.extend(x)

        decoded.buffer(4).sink(store)
    source.start()
    _wait_stopped(source)

    error = source.error
    assert isinstance(error, UnicodeDecodeError), repr(error)
    _check_notes(error, topic, "decode_batch")
    assert not any(r.startswith("p1-6") for r in received)
    # committed: up to the start of the failed batch, exactly (what came before finished)
    failed_batch = next(batch for batch in tried if BAD in batch)
    batch_start = 5 - failed_batch.index(BAD)
    committed = _committed(kafka_bootstrap, group, topic, 2)
    assert committed[1] == (batch_start or None), (committed, failed_batch)

    again = Stream.from_kafka_batched(
        topic, _params(kafka_bootstrap, group), poll_interval=0.05, max_batch_size=3
    )
    seen = []
    again.sink(seen.append)
    again.upstream.start()
    try:
        wait_for(lambda: any(BAD in batch for batch in seen), 10)
    finally:
        _stop(again.upstream)
    first_p1 = next(batch for batch in seen if BAD in batch or batch[0].startswith(b"p1-"))
    assert first_p1[0] == ([b"p1-%d" % i for i in range(5)] + [BAD])[batch_start]


@pytest.mark.parametrize("keys", [False, True], ids=["values", "keys"])
def test_undecodable_record_after_a_buffer_is_named_exactly(kafka_bootstrap, kafka_topic, keys):
    """The decode step runs after a buffer, in the background: the error still names the
    exact offset of the record, not only its batch."""
    topic = _poisoned_topic(kafka_bootstrap, kafka_topic)
    group = f"faults-{uuid.uuid4().hex[:10]}"
    stream = Stream.from_kafka_batched(
        topic, _params(kafka_bootstrap, group), poll_interval=0.05, max_batch_size=3, keys=keys
    )
    source = stream.upstream

    def decode_batch(batch):
        return [(r["value"] if keys else r).decode() for r in batch]

    stream.buffer(4).map(decode_batch).sink(lambda x: None)
    source.start()
    _wait_stopped(source)

    error = source.error
    assert isinstance(error, UnicodeDecodeError), repr(error)
    _check_notes(error, topic, "decode_batch")


# -- a failure in an asynchronous branch ----------------------------------------------------


def test_failure_after_a_buffer_blocks_commits_past_it(kafka_bootstrap, kafka_topic):
    """A buffer decouples the branch: later records finish first, the commit still stops."""
    topic = kafka_topic(partitions=1)
    _produce(kafka_bootstrap, topic, [(0, f"{i}".encode()) for i in range(40)])
    group = f"faults-{uuid.uuid4().hex[:10]}"
    source = Stream.from_kafka(topic, _params(kafka_bootstrap, group), poll_interval=0.05)
    fast = []
    source.sink(fast.append)  # a synchronous branch that sees everything first

    def check(b):
        if b == b"17":
            raise ValueError("record 17 is bad")
        return b

    slow = []
    source.buffer(50).map(check).sink(slow.append)
    source.start()
    _wait_stopped(source)

    assert isinstance(source.error, ValueError), repr(source.error)
    assert f"kafka: while processing topic {topic!r} partition 0 offset 17" in (
        source.error.__notes__
    )
    assert b"17" not in slow and b"16" in slow
    assert _committed(kafka_bootstrap, group, topic, 1) == {0: 17}


def test_failure_after_a_buffer_blocks_batched_commits_past_it(kafka_bootstrap, kafka_topic):
    """The same for from_kafka_batched: the commit stops at the start of the failed batch."""
    topic = kafka_topic(partitions=1)
    _produce(kafka_bootstrap, topic, [(0, f"{i}".encode()) for i in range(40)])
    group = f"faults-{uuid.uuid4().hex[:10]}"
    stream = Stream.from_kafka_batched(
        topic, _params(kafka_bootstrap, group), poll_interval=0.05, max_batch_size=5
    )
    source = stream.upstream
    fast = []
    stream.sink(fast.append)
    tried = []

    def check(batch):
        tried.append(list(batch))
        if b"17" in batch:
            raise ValueError("record 17 is bad")
        return batch

    stream.buffer(50).map(check).sink(lambda batch: None)
    source.start()
    _wait_stopped(source)

    assert isinstance(source.error, ValueError), repr(source.error)
    failed = next(batch for batch in tried if b"17" in batch)
    first, last = int(failed[0]), int(failed[-1])
    where = f"offset {first}" if first == last else f"offsets {first}..{last}"
    assert f"kafka: while processing topic {topic!r} partition 0 {where}" in (
        source.error.__notes__
    )
    assert _committed(kafka_bootstrap, group, topic, 1) == {0: first or None}


def test_failing_async_sink_blocks_commits_past_it(kafka_bootstrap, kafka_topic):
    """A sink whose coroutine raises after a delay, beside a branch that succeeds."""

    topic = kafka_topic(partitions=1)
    _produce(kafka_bootstrap, topic, [(0, f"{i}".encode()) for i in range(20)])
    group = f"faults-{uuid.uuid4().hex[:10]}"
    source = Stream.from_kafka(topic, _params(kafka_bootstrap, group), poll_interval=0.05)
    done = []

    async def write(b):
        await asyncio.sleep(0.01)
        if b == b"9":
            raise OSError("the store went away")
        done.append(b)

    source.sink(write)
    source.sink(lambda b: None)
    source.start()
    _wait_stopped(source)

    assert isinstance(source.error, OSError), repr(source.error)
    assert f"kafka: while processing topic {topic!r} partition 0 offset 9" in (
        source.error.__notes__
    )
    assert done == [f"{i}".encode() for i in range(9)]
    assert _committed(kafka_bootstrap, group, topic, 1) == {0: 9}


# -- the broker restarted in the middle of a stream ---------------------------------------------


@pytest.fixture(scope="module")
def own_broker(tmp_path_factory):
    """``(state_dir, bootstrap)`` of a broker for this module's restart tests alone."""
    state_dir = tmp_path_factory.mktemp("restarted-broker")
    bootstrap = start_broker(state_dir, FAST_RESTART)
    try:
        yield state_dir, bootstrap
    finally:
        stop_broker(state_dir)


class _Producer(threading.Thread):
    """Produce ``n`` numbered records over about ``seconds``, idempotently, then flush."""

    def __init__(self, bootstrap, topic, partitions, n, seconds):
        super().__init__(daemon=True)
        self.bootstrap, self.topic, self.partitions = bootstrap, topic, partitions
        self.n, self.seconds = n, seconds
        self.acked: list[bytes] = []
        self.errors: list = []
        self.unflushed = None

    def run(self):
        producer = Producer(
            {
                "bootstrap.servers": self.bootstrap,
                "enable.idempotence": True,
                "linger.ms": 5,
                "message.timeout.ms": 60000,
                **_LOG,
            }
        )
        pause = self.seconds / (self.n / 50)
        for i in range(self.n):

            def delivered(error, message):
                if error is not None:
                    self.errors.append(error)
                else:
                    self.acked.append(message.value())

            producer.produce(
                self.topic, value=b"%d" % i, partition=i % self.partitions, on_delivery=delivered
            )
            if i % 50 == 49:
                producer.poll(0)
                time.sleep(pause)
        self.unflushed = producer.flush(60)


def _restart_mid_stream(own_broker, kind, kill, graph):
    """Produce 3000 records over ~4 s into 3 partitions while a pipeline reads them; restart
    the broker after a fifth has arrived. Everything produced arrives (duplicates allowed),
    and the group's commits reach the end offsets."""
    state_dir, bootstrap = own_broker
    admin = AdminClient({"bootstrap.servers": bootstrap})
    topic = create_topic(admin, unique_topic_name("restart"), partitions=3)
    group = f"faults-{uuid.uuid4().hex[:10]}"
    params = _params(bootstrap, group)
    received: list[bytes] = []
    if kind == "from_kafka_batched":
        stream = Stream.from_kafka_batched(topic, params, poll_interval=0.05, max_batch_size=50)
        source = stream.upstream
        store = received.extend
    else:
        stream = source = Stream.from_kafka(topic, params, poll_interval=0.05)
        store = received.append
    if graph == "fused":
        stream.sink(store)
    else:  # records are held in the graph (in flight) when the broker goes

        async def slow_store(x):
            await asyncio.sleep(0.001)
            store(x)

        stream.buffer(20).sink(slow_store)
    n = 3000
    producer = _Producer(bootstrap, topic, 3, n, seconds=4)
    source.start()
    started = time.monotonic()
    try:
        producer.start()
        wait_for(lambda: len(received) >= n // 5, 10)
        during = len(received)
        restart_broker(state_dir, kill=kill, down=0.5)
        restarted = time.monotonic()
        producer.join(20)
        assert not producer.is_alive() and producer.unflushed == 0 and producer.errors == []
        produced = set(producer.acked)
        assert len(produced) == n
        try:
            wait_for(lambda: produced <= set(received), 15)
        except TimeoutError:
            missing = sorted(produced - set(received), key=int)
            raise AssertionError(
                f"{len(missing)} of {n} records never arrived after the restart "
                f"(first: {missing[:10]}); received {len(received)}, duplicates "
                f"{len(received) - len(set(received))}; source error: {source.error!r}"
            ) from None
        caught_up = time.monotonic()
        duplicates = len(received) - len(set(received))
        assert not source.stopped, source.error
        ends = _end_offsets(bootstrap, topic, 3)
        assert sum(ends.values()) == n
        try:
            wait_for(lambda: _committed(bootstrap, group, topic, 3) == ends, 10, period=0.2)
        except TimeoutError:
            raise AssertionError(
                f"committed {_committed(bootstrap, group, topic, 3)} != end offsets {ends} "
                f"while running (received {len(received)}, duplicates: {duplicates})"
            ) from None
    finally:
        _stop(source)
    assert source.error is None
    assert _committed(bootstrap, group, topic, 3) == ends
    delete_topics(admin, [topic])
    return {
        "received": len(received),
        "duplicates": duplicates,
        "before restart": during,
        "caught up after restart (s)": round(caught_up - restarted, 2),
        "total (s)": round(time.monotonic() - started, 2),
    }


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    ("kind", "kill", "graph"),
    [
        ("from_kafka", False, "fused"),
        ("from_kafka", True, "buffered"),
        ("from_kafka_batched", False, "buffered"),
        ("from_kafka_batched", True, "fused"),
    ],
    ids=["from_kafka-sigterm-fused", "from_kafka-sigkill-buffered",
         "batched-sigterm-buffered", "batched-sigkill-fused"],
)  # fmt: skip
def test_stream_survives_a_broker_restart(own_broker, kind, kill, graph):
    report = _restart_mid_stream(own_broker, kind, kill, graph)
    assert report["received"] >= 3000, report
    print(report)  # shown with -s: duplicates, catch-up time


@pytest.mark.timeout(30)
def test_records_finishing_while_the_broker_is_down_are_committed_once_it_is_back(own_broker):
    """The commit of records that finish while the broker is down waits for it (librdkafka
    retries a synchronous commit until the coordinator answers), and the source goes on."""

    state_dir, bootstrap = own_broker
    admin = AdminClient({"bootstrap.servers": bootstrap})
    topic = create_topic(admin, unique_topic_name("late-commit"), partitions=1)
    _produce(bootstrap, topic, [(0, b"%d" % i) for i in range(10)])
    group = f"faults-{uuid.uuid4().hex[:10]}"
    source = Stream.from_kafka(topic, _params(bootstrap, group), poll_interval=0.05)
    gate = threading.Event()
    held = []

    async def hold(x):
        if x == b"9":
            held.append(x)
            await asyncio.to_thread(gate.wait, 30)

    source.sink(hold)
    source.start()
    try:
        wait_for(lambda: held, 10)
        stop_broker(state_dir, keep_data=True)
        gate.set()  # record 9 finishes now: its commit meets no broker
        time.sleep(2)
        start_broker(state_dir)
        try:
            wait_for(lambda: _committed(bootstrap, group, topic, 1) == {0: 10}, 10, period=0.2)
        except TimeoutError:
            raise AssertionError(
                f"committed {_committed(bootstrap, group, topic, 1)} 10 s after the broker came "
                f"back, expected {{0: 10}}; the source says it committed {source.committed}"
            ) from None
    finally:
        _stop(source)
        gate.set()
    assert source.error is None
    assert _committed(bootstrap, group, topic, 1) == {0: 10}


class _FailingCommits:
    """Stands in for a source's Consumer: the next ``fail`` commits raise, as librdkafka's
    do on a request timeout or a coordinator error."""

    def __init__(self, consumer, fail=1):
        self._consumer = consumer
        self.fail = fail
        self.failed = []

    def commit(self, *args, **kwargs):
        if self.fail:
            from confluent_kafka import KafkaError, KafkaException

            self.fail -= 1
            self.failed.append(kwargs.get("offsets"))
            raise KafkaException(KafkaError(KafkaError._TIMED_OUT, "injected commit failure"))
        return self._consumer.commit(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._consumer, name)


def test_a_failed_commit_is_made_again_later(kafka_bootstrap, kafka_topic):
    """A commit that raises is logged and skipped; its offsets must be committed by a later
    commit (at the latest on stop), even when no new record comes."""

    topic = kafka_topic(partitions=1)
    _produce(kafka_bootstrap, topic, [(0, b"%d" % i) for i in range(10)])
    group = f"faults-{uuid.uuid4().hex[:10]}"
    source = Stream.from_kafka(topic, _params(kafka_bootstrap, group), poll_interval=0.05)
    gate = threading.Event()
    held = []

    async def hold(x):
        if x == b"9":
            held.append(x)
            await asyncio.to_thread(gate.wait, 30)

    source.sink(hold)
    source.start()
    try:
        wait_for(lambda: held, 10)
        failing = source.consumer = _FailingCommits(source.consumer)
        gate.set()
        wait_for(lambda: failing.failed, 5)
        time.sleep(1)  # several more cycles, no new record
        running = _committed(kafka_bootstrap, group, topic, 1)
    finally:
        _stop(source)
    assert source.error is None
    assert len(failing.failed) == 1
    final = _committed(kafka_bootstrap, group, topic, 1)
    assert final == {0: 10}, (
        f"after a failed commit of {failing.failed}: committed {running} while running, "
        f"{final} after stop; the source believes it committed {source.committed}"
    )
