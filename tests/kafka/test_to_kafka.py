"""to_kafka against a real broker: contents and order, delivered values downstream, backpressure,
delivery errors, refs held until delivery, flush, destroy, and the benchmark's smoke run."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import NewTopic

from millstream import RefCounter, Stream
from millstream.exceptions import KafkaDeliveryError
from millstream.testing import wait_for

from ._helpers import delete_topics, unique_topic_name

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


def read_back(bootstrap, topic, count, partitions=1, timeout=10.0):
    """The messages of ``topic`` (assign + earliest, no group), per partition in offset order."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"millstream-test-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
        }
    )
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    messages = []
    deadline = time.monotonic() + timeout
    try:
        while len(messages) < count and time.monotonic() < deadline:
            for m in consumer.consume(count - len(messages), timeout=0.2):
                assert m.error() is None, m.error()
                messages.append(m)
        # nothing more than expected
        extra = consumer.consume(10, timeout=0.2)
        assert [m for m in extra if m.error() is None] == []
    finally:
        consumer.close()
    return messages


def values(messages):
    return [m.value() for m in messages]


def config(bootstrap, **extra):
    return {"bootstrap.servers": bootstrap, "linger.ms": 1, **extra}


def run_source(source, timeout=10.0):
    done = threading.Event()

    async def watch():
        try:
            await source.work_task
        finally:
            done.set()

    source.start()
    source.loop.add_callback(watch)
    assert done.wait(timeout), "the source did not finish"
    assert source.error is None, source.error


def loop_thread_name(node):
    return node.loop._thread.name


def discard(node):
    """Drop the messages still waiting for a broker: they fail as purged."""
    node.producer.purge()
    with pytest.raises(KafkaDeliveryError, match="Purged"):
        node.close(5)
    assert node._producer is None


# -- contents, order, downstream -----------------------------------------------------------


def test_messages_arrive_in_order_with_exact_contents(kafka_bootstrap, kafka_topic):
    topic = kafka_topic(partitions=1)
    data = [f"message {i} ".encode() * (i % 7 + 1) for i in range(300)]
    source = Stream.from_iterable(data)
    node = source.to_kafka(topic, config(kafka_bootstrap))
    run_source(source)
    node.flush()

    assert values(read_back(kafka_bootstrap, topic, 300)) == data
    node.destroy()


def test_downstream_receives_the_delivered_values_on_the_loop_thread(kafka_bootstrap, kafka_topic):
    topic = kafka_topic(partitions=1)
    source = Stream()
    node = source.to_kafka(topic, config(kafka_bootstrap))
    seen = []
    node.sink(lambda v: seen.append((v, threading.current_thread().name)))
    for i in range(50):
        source.emit(b"v%d" % i)
    node.flush()  # returns once every value has been emitted downstream

    assert [v for v, _ in seen] == [b"v%d" % i for i in range(50)]
    assert {name for _, name in seen} == {loop_thread_name(node)}
    assert node.current_value == b"v49"
    node.destroy()


def test_str_elements_are_encoded_utf8(kafka_bootstrap, kafka_topic):
    topic = kafka_topic()
    source = Stream()
    node = source.to_kafka(topic, config(kafka_bootstrap))
    delivered = node.sink_to_list()
    for text in ["héllo", "wörld €", ""]:
        source.emit(text)
    node.flush()

    expected = ["héllo".encode(), "wörld €".encode(), b""]
    assert delivered == expected
    assert values(read_back(kafka_bootstrap, topic, 3)) == expected
    node.destroy()


def test_elements_reach_several_partitions_and_all_are_delivered(kafka_bootstrap, kafka_topic):
    topic = kafka_topic(partitions=4)
    data = [b"%d" % i for i in range(1000)]
    source = Stream.from_iterable(data)
    node = source.to_kafka(topic, config(kafka_bootstrap, **{"sticky.partitioning.linger.ms": 0}))
    delivered = node.sink_to_list()
    run_source(source)
    node.flush()

    messages = read_back(kafka_bootstrap, topic, 1000, partitions=4)
    assert sorted(values(messages), key=int) == data
    assert sorted(delivered, key=int) == data
    assert len({m.partition() for m in messages}) > 1
    for p in range(4):  # each partition keeps the order of production
        in_p = [int(m.value()) for m in messages if m.partition() == p]
        assert in_p == sorted(in_p)
    node.destroy()


# -- backpressure ----------------------------------------------------------------------------


def test_a_full_producer_queue_applies_backpressure_and_loses_nothing(kafka_bootstrap, kafka_topic):
    topic = kafka_topic(partitions=1)
    data = [b"%04d" % i for i in range(1000)]
    source = Stream.from_iterable(data)
    node = source.to_kafka(topic, config(kafka_bootstrap, **{"queue.buffering.max.messages": 10}))
    waits = []
    enqueue = node._enqueue

    def counting_enqueue(x, metadata):
        waits.append(x)
        return enqueue(x, metadata)

    node._enqueue = counting_enqueue
    delivered = node.sink_to_list()
    run_source(source)  # a BufferError would stop the source with that error
    node.flush()

    assert len(waits) > 10  # the queue was full many times
    assert delivered == data
    assert values(read_back(kafka_bootstrap, topic, 1000)) == data
    node.destroy()


def test_elements_queued_behind_a_full_queue_keep_their_order(kafka_bootstrap, kafka_topic):
    """Elements pushed without waiting (emit from the loop, not awaited) while the queue is
    full wait behind the first one; none overtakes."""
    topic = kafka_topic(partitions=1)
    source = Stream()
    node = source.to_kafka(topic, config(kafka_bootstrap, **{"queue.buffering.max.messages": 5}))
    data = [b"%03d" % i for i in range(200)]

    async def push_all():
        waiting = []
        for i, x in enumerate(data):
            waiting.append(source.emit(x))  # on the loop: returns an awaitable, not awaited
            if i % 10 == 9:
                node.producer.poll(0.02)  # room frees up while earlier elements still wait
        await asyncio.gather(*waiting)

    from millstream.core.loop import sync

    sync(node.loop, push_all)
    node.flush()
    assert values(read_back(kafka_bootstrap, topic, 200)) == data
    node.destroy()


# -- refs --------------------------------------------------------------------------------------


def test_refs_are_held_until_the_delivery_report(kafka_bootstrap, kafka_topic):
    topic = kafka_topic()
    source = Stream()
    # linger 300 ms: the message cannot be delivered before the checks below
    node = source.to_kafka(topic, config(kafka_bootstrap, **{"linger.ms": 300}))
    delivered = node.sink_to_list()
    at_release = []
    ref = RefCounter(cb=lambda: at_release.append(list(delivered)))
    source.emit(b"payload", metadata=[{"ref": ref}])

    assert ref.count == 1 and at_release == []  # held by to_kafka
    node.flush()
    assert ref.count == 0 and not ref.failed
    assert at_release == [[b"payload"]]  # released after the value went downstream
    node.destroy()


def test_refs_are_held_until_an_async_downstream_finishes(kafka_bootstrap, kafka_topic):
    topic = kafka_topic()
    source = Stream()
    node = source.to_kafka(topic, config(kafka_bootstrap))
    written = []

    async def slow_write(v):
        await asyncio.sleep(0.05)
        written.append(v)

    node.sink(slow_write)
    at_release = []
    refs = [RefCounter(cb=lambda i=i: at_release.append((i, len(written)))) for i in range(3)]
    for i, ref in enumerate(refs):
        source.emit(b"%d" % i, metadata=[{"ref": ref}])
    node.flush()  # also waits for the async downstream

    assert written == [b"0", b"1", b"2"]
    assert [r.count for r in refs] == [0, 0, 0]
    assert [i for i, _ in at_release] == [0, 1, 2]
    assert all(n >= i + 1 for i, n in at_release)  # each released after its write
    node.destroy()


# -- errors ------------------------------------------------------------------------------------


def one_per_batch(bootstrap):
    """One message per produce request, so a small message never shares a big one's fate."""
    return config(bootstrap, **{"batch.num.messages": 1})


@pytest.fixture
def small_message_topic(kafka_admin):
    """A topic whose broker-side limit is 1000 bytes per message batch."""
    name = unique_topic_name()
    futures = kafka_admin.create_topics(
        [NewTopic(name, 1, 1, config={"max.message.bytes": "1000"})], operation_timeout=10
    )
    futures[name].result(timeout=10)
    deadline = time.monotonic() + 10
    while name not in kafka_admin.list_topics(timeout=5).topics:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    yield name
    delete_topics(kafka_admin, [name])


def test_a_delivery_error_is_raised_by_flush_with_a_clear_message(
    kafka_bootstrap, small_message_topic
):
    source = Stream()
    node = source.to_kafka(small_message_topic, one_per_batch(kafka_bootstrap))
    delivered = node.sink_to_list()
    ref = RefCounter()
    big = b"x" * 5000
    source.emit(big, metadata=[{"ref": ref}])
    source.emit(b"small")

    with pytest.raises(KafkaDeliveryError) as info:
        node.flush()
    error = info.value
    message = str(error)
    assert f"to_kafka(topic={small_message_topic!r})" in message
    assert "b'xxxxxxxx" in message and "chars)" in message  # the element, cut short
    assert "too large" in message.lower()
    assert error.topic == small_message_topic and error.value == big
    assert error.kafka_error.name() == "MSG_SIZE_TOO_LARGE"
    assert ref.failed and ref.count == 0 and ref.errors == [error]
    assert delivered == [b"small"]  # the other message is stored and emitted

    node.flush()  # raised once
    node.destroy()


def test_a_delivery_error_is_raised_by_the_next_element_which_is_not_sent(
    kafka_bootstrap, small_message_topic
):
    source = Stream()
    node = source.to_kafka(small_message_topic, one_per_batch(kafka_bootstrap))
    first = RefCounter()
    source.emit(b"y" * 5000, metadata=[{"ref": first}])
    wait_for(lambda: first.count == 0, 10)  # its delivery report has come back: failed

    second = RefCounter()
    with pytest.raises(KafkaDeliveryError, match="too large"):
        source.emit(b"next", metadata=[{"ref": second}])
    assert first.failed
    assert second.failed and second.count == 0  # not sent

    source.emit(b"after")  # the error was raised once: the node goes on
    node.flush()
    assert values(read_back(kafka_bootstrap, small_message_topic, 1)) == [b"after"]
    node.destroy()


def test_a_delivery_error_stops_a_source(kafka_bootstrap, small_message_topic):
    data = [b"a", b"z" * 5000] + [b"b"] * 2000

    def slowly(x):
        time.sleep(0.002)
        return x

    source = Stream.from_iterable(data)
    node = source.map(slowly).to_kafka(small_message_topic, one_per_batch(kafka_bootstrap))
    delivered = node.sink_to_list()
    source.start()
    wait_for(lambda: source.stopped, 10)
    assert isinstance(source.error, KafkaDeliveryError)
    assert "too large" in str(source.error)
    node.flush()  # the error was raised once, to the source
    assert delivered[0] == b"a" and 0 < len(delivered) < 2000
    node.destroy()


def test_messages_that_time_out_are_errors(unused_port):
    source = Stream()
    unreachable = {
        "bootstrap.servers": f"127.0.0.1:{unused_port}",
        "message.timeout.ms": 300,
        "log_level": 0,
    }
    node = source.to_kafka("nowhere", unreachable)
    ref = RefCounter()
    source.emit(b"lost", metadata=[{"ref": ref}])
    with pytest.raises(KafkaDeliveryError, match="timed out"):
        node.flush()
    assert ref.failed and ref.count == 0
    node.destroy()


def test_flush_with_a_timeout_raises_if_messages_are_left(unused_port):
    source = Stream()
    unreachable = {"bootstrap.servers": f"127.0.0.1:{unused_port}", "log_level": 0}
    node = source.to_kafka("nowhere", unreachable)
    source.emit(b"waiting")
    t0 = time.monotonic()
    with pytest.raises(
        TimeoutError, match=r"still undelivered after flush\(0.2\) \(\d+ in librdkafka's queue\)"
    ):
        node.flush(0.2)
    assert time.monotonic() - t0 < 2
    node.stop()  # does not wait for the broker
    discard(node)


def test_an_error_from_a_config_callback_waits_for_the_next_element(unused_port):
    def error_cb(err):
        raise RuntimeError(f"broker trouble: {err.str()}")

    source = Stream()
    unreachable = {"bootstrap.servers": f"127.0.0.1:{unused_port}", "error_cb": error_cb}
    node = source.to_kafka("t", {**unreachable, "log_level": 0})
    ref = RefCounter()
    source.emit(b"a", metadata=[{"ref": ref}])  # sent: its poll may meet error_cb's error
    wait_for(lambda: node._errors, 5)  # the poll timer met error_cb's error
    assert ref.count == 1  # still held: the message waits for a broker
    with pytest.raises(RuntimeError, match="broker trouble"):
        source.emit(b"b")
    assert ref.count == 1 and not ref.failed
    node.producer.purge()
    with pytest.raises((KafkaDeliveryError, RuntimeError)):
        node.close(5)
    assert ref.failed and ref.count == 0


def test_a_downstream_error_on_a_delivered_value_is_raised_by_flush(kafka_bootstrap, kafka_topic):
    topic = kafka_topic()
    source = Stream()
    node = source.to_kafka(topic, config(kafka_bootstrap))
    node.map(lambda v: 1 / 0)
    ref = RefCounter()
    source.emit(b"v", metadata=[{"ref": ref}])
    with pytest.raises(ZeroDivisionError):
        node.flush()
    assert ref.failed and ref.count == 0
    assert values(read_back(kafka_bootstrap, topic, 1)) == [b"v"]  # it was stored
    node.destroy()


def test_an_element_of_a_wrong_type_fails_clearly(kafka_bootstrap, kafka_topic):
    topic = kafka_topic()
    source = Stream()
    node = source.to_kafka(topic, config(kafka_bootstrap))
    ref = RefCounter()
    with pytest.raises(TypeError) as info:
        source.emit(42, metadata=[{"ref": ref}])
    assert "<to_kafka> failed on element of type int: 42" in "\n".join(info.value.__notes__)
    assert ref.failed and ref.count == 0
    with pytest.raises(TypeError):
        source.emit({"a": 1})  # without metadata too
    node.destroy()


# -- construction ------------------------------------------------------------------------------


def test_bad_arguments_fail_at_construction():
    source = Stream()
    good = {"bootstrap.servers": "127.0.0.1:9"}
    with pytest.raises(ValueError, match="to_kafka: topic must be a non-empty str"):
        source.to_kafka("", good)
    with pytest.raises(ValueError, match="topic must be a non-empty str, got 5"):
        source.to_kafka(5, good)
    with pytest.raises(TypeError, match=r"to_kafka\(topic='t'\): producer_config must be a dict"):
        source.to_kafka("t", [("bootstrap.servers", "x")])
    with pytest.raises(ValueError, match=r"needs 'bootstrap\.servers'"):
        source.to_kafka("t", {"linger.ms": 5})
    with pytest.raises(ValueError, match=r"delivery\.report\.only\.error"):
        source.to_kafka("t", {**good, "delivery.report.only.error": "true"})
    assert source.downstreams == []


def test_an_unknown_setting_is_reported_when_the_node_is_made():
    source = Stream()
    with pytest.raises(ValueError, match=r'to_kafka\(topic=\'t\'\).*"linger.msec"'):
        source.to_kafka("t", {"bootstrap.servers": "127.0.0.1:9", "linger.msec": 5})
    assert source.downstreams == []


def test_producer_config_is_not_modified(kafka_bootstrap, kafka_topic):
    topic = kafka_topic()
    producer_config = {"bootstrap.servers": kafka_bootstrap, "linger.ms": 1}
    before = dict(producer_config)
    source = Stream()
    node = source.to_kafka(topic, producer_config)
    source.emit(b"x")
    node.flush()
    node.destroy()
    assert producer_config == before
    assert node.producer_config["linger.ms"] == 1
    node.producer_config["linger.ms"] = 99  # a copy
    assert node.producer_config["linger.ms"] == 1


def test_the_producer_is_made_lazily_and_exposed(kafka_bootstrap):
    node = Stream().to_kafka("t", config(kafka_bootstrap))
    assert node._producer is None
    producer = node.producer
    assert type(producer).__name__ == "Producer" and node.producer is producer
    node.destroy()
    assert node._producer is None


def test_millstream_import_does_not_import_confluent_kafka():
    code = "import sys, millstream; print('confluent_kafka' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# -- flush, destroy, threads ------------------------------------------------------------------


def test_flush_returns_only_once_everything_is_delivered(kafka_bootstrap, kafka_topic):
    topic = kafka_topic(partitions=2)
    source = Stream()
    node = source.to_kafka(topic, config(kafka_bootstrap, **{"linger.ms": 50}))
    delivered = node.sink_to_list()
    for i in range(500):
        source.emit(b"%d" % i)
    node.flush()
    assert len(delivered) == 500  # right after flush, without waiting
    assert len(node.producer) == 0
    assert len(read_back(kafka_bootstrap, topic, 500, partitions=2)) == 500
    node.destroy()


def test_flush_async_in_an_asynchronous_graph(kafka_bootstrap, kafka_topic):
    topic = kafka_topic()

    async def main():
        source = Stream(asynchronous=True)
        node = source.to_kafka(topic, config(kafka_bootstrap))
        delivered = node.sink_to_list()
        for i in range(20):
            await source.emit(b"%d" % i)
        await node.flush_async()
        assert delivered == [b"%d" % i for i in range(20)]
        node.flush()  # a plain flush on the loop thread blocks, but works
        node.destroy()

    asyncio.run(main())
    assert values(read_back(kafka_bootstrap, topic, 20)) == [b"%d" % i for i in range(20)]


def test_reports_served_from_another_thread_are_handled_on_the_loop(kafka_bootstrap, kafka_topic):
    topic = kafka_topic()
    source = Stream()
    node = source.to_kafka(topic, config(kafka_bootstrap, **{"linger.ms": 100}))
    seen = []
    node.sink(lambda v: seen.append((v, threading.current_thread().name)))
    for i in range(10):
        source.emit(b"%d" % i)
    node.producer.flush(10)  # Streamz code may call the producer directly, in this thread
    wait_for(lambda: len(seen) == 10, 5)
    assert [v for v, _ in seen] == [b"%d" % i for i in range(10)]
    assert {name for _, name in seen} == {loop_thread_name(node)}
    node.destroy()


def test_the_last_reports_arrive_without_further_input(kafka_bootstrap, kafka_topic):
    topic = kafka_topic()
    source = Stream()
    node = source.to_kafka(topic, config(kafka_bootstrap))
    delivered = node.sink_to_list()
    source.emit(b"only")
    wait_for(lambda: delivered == [b"only"], 5)  # the node's own poll timer served it
    wait_for(lambda: node._timer is None, 5)  # and then stops polling
    node.destroy()


def test_destroy_flushes_and_closes(kafka_bootstrap, kafka_topic):
    topic = kafka_topic()
    source = Stream()
    node = source.to_kafka(topic, config(kafka_bootstrap, **{"linger.ms": 200}))
    for i in range(30):
        source.emit(b"%d" % i)
    node.destroy()
    assert node._producer is None and source.downstreams == []
    assert len(read_back(kafka_bootstrap, topic, 30)) == 30


def test_stop_does_not_wait_for_deliveries(unused_port):
    source = Stream.from_iterable([b"a", b"b"])
    node = source.to_kafka("t", {"bootstrap.servers": f"127.0.0.1:{unused_port}", "log_level": 0})
    run_source(source)
    t0 = time.monotonic()
    node.stop()
    assert time.monotonic() - t0 < 0.5
    assert len(node.producer) >= 2  # still waiting for a broker (len counts log events too)
    discard(node)


# -- the benchmark -----------------------------------------------------------------------------


def test_kafka_produce_benchmark_smoke(kafka_bootstrap):
    proc = subprocess.run(
        [sys.executable, str(BENCH / "kafka_produce.py"), "--size", "300", "--repeat", "1",
         "--bootstrap", kafka_bootstrap],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    (line,) = proc.stdout.splitlines()
    result = json.loads(line)
    assert result["benchmark"] == "kafka_produce"
    assert result["size"] == 300
    assert set(result["times_s"]) == {"raw", "raw_positional", "millstream"}
    assert all(t > 0 for t in result["times_s"].values())
    assert set(result["targets"]) == {"millstream_vs_raw"}
    assert set(result["targets"]["millstream_vs_raw"]) == {"what", "value", "target", "pass"}
    assert result["all_checks_passed"] is True, result["checks"]
    assert result["machine"]["millstream"]


def test_run_all_runs_the_kafka_produce_benchmark(kafka_bootstrap):
    proc = subprocess.run(
        [sys.executable, str(BENCH / "run_all.py"), "--only", "kafka_produce", "--",
         "--size", "200", "--repeat", "1", "--bootstrap", kafka_bootstrap],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    (line,) = proc.stdout.splitlines()
    assert json.loads(line)["benchmark"] == "kafka_produce"
    assert json.loads(line)["all_checks_passed"] is True
