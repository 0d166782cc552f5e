"""Benchmark: an exactly-once Kafka -> Kafka copy, millstream against Kafka's own
``TransactionalMessageCopier``, on the same broker, in the same run.

``--size`` records (default 1,000,000; key ``key-<i % 1000>``, a unique value of
``--value-bytes`` bytes, default 100) are written round robin to a topic of
``--partitions`` partitions (default 4) once; each run copies them to a fresh output
topic with as many partitions:

* ``copier``: ``org.apache.kafka.tools.TransactionalMessageCopier`` (kafka-tools, the jar
  ``scripts/kafka-broker fetch`` brings with the broker's), one JVM per input partition as
  the tool is meant to run (and as Kafka's ``transactions_test.py`` runs it), each with its
  own transactional id, ``--use-group-metadata``, transactions of
  ``--copier-transaction-size`` records (default 5000; the tool's own default is 200).
  It sets ``batch.size=512`` on its producer itself (to test many requests in flight),
  which no option changes.
* ``millstream``: ``source = Stream.from_kafka(IN, {..., 'group.id': G}, keys=True)``,
  ``source.to_kafka(OUT, {'bootstrap.servers': ...}, keys=True)`` and
  ``millstream.checkpoint.enable(source, tmpdir, interval='1s', exactly_once=True)``: one
  Kafka transaction per checkpoint with the group's offsets, in one process.

Each run is timed from its start (the JVMs' launch; millstream's ``source.start()``) until
the group's committed offsets equal the input's end offsets (polled every 20 ms): then
every record is copied and committed. Afterwards a ``read_committed`` reader must find
every input value in the output exactly once (by a 64-bit digest of each value). The
runs are taken in turn, best of ``--repeat``.

Target: copier time / millstream time (= millstream records/s / copier records/s) >= 0.5.
While ``millstream.checkpoint.enable`` has no ``exactly_once`` (before Kafka exactly-once
lands), the millstream run is reported unavailable and only the copier is measured.

``--bootstrap host:port`` uses a running broker; else a private one is started for the
run (``scripts/kafka-broker``) and stopped at exit. Needs Java 17+. Prints one JSON line.
"""

from __future__ import annotations

import hashlib
import inspect
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from _common import base_parser, best_times, emit_json, machine, target
from _kafka import ROOT, broker, create_topic, delete_topics, unique_name

import millstream

PARTITIONS = 4
KEYS = 1000
VALUE_BYTES = 100
COPIER_MAIN = "org.apache.kafka.tools.TransactionalMessageCopier"
COPIER_JVM = ["-Xmx512m"]
RUN_TIMEOUT = 900.0
SPAN = "copier_after_start_up_s"


def make_value(i: int, size: int = VALUE_BYTES) -> bytes:
    """A unique value of ``size`` bytes (at least 12): the number, then filler."""
    head = b"%012d" % i
    return head + b"x" * (size - len(head))


def digest(value: bytes | None) -> bytes:
    return hashlib.blake2b(value or b"", digest_size=8).digest()


def load_keyed(bootstrap: str, topic: str, n: int, partitions: int, size: int) -> None:
    """Write the ``n`` records round robin (record ``i`` to partition ``i % partitions``)."""
    from confluent_kafka import Producer

    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "linger.ms": 20,
            "batch.size": 1_000_000,
            "queue.buffering.max.messages": 1_000_000,
        }
    )
    errors: list[Any] = []

    def delivered(error: Any, _msg: Any) -> None:
        if error is not None:
            errors.append(error)

    for i in range(n):
        while True:
            try:
                producer.produce(
                    topic, make_value(i, size), b"key-%d" % (i % KEYS), i % partitions, delivered
                )
                break
            except BufferError:
                producer.poll(0.05)
        if i % 10_000 == 0:
            producer.poll(0)
    if producer.flush(120) or errors:
        raise RuntimeError(f"loading {topic!r} failed: {errors[:1]}")


def _admin(bootstrap: str) -> Any:
    from confluent_kafka.admin import AdminClient

    return AdminClient({"bootstrap.servers": bootstrap})


def end_offsets(bootstrap: str, topic: str, partitions: int) -> dict[int, int]:
    from confluent_kafka import TopicPartition
    from confluent_kafka.admin import OffsetSpec

    admin = _admin(bootstrap)  # kept until the answers came (destroying it drops them)
    request = {TopicPartition(topic, p): OffsetSpec.latest() for p in range(partitions)}
    answers = admin.list_offsets(request, request_timeout=30)
    return {tp.partition: f.result(timeout=60).offset for tp, f in answers.items()}


def wait_committed(
    admin: Any,
    group: str,
    topic: str,
    ends: dict[int, int],
    alive: Callable[[], None] = lambda: None,
) -> float:
    """Poll ``group``'s committed offsets every 20 ms until they equal ``ends``; return the
    ``perf_counter`` time it was seen. ``alive()`` raises if the copy died meanwhile."""
    from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition

    request = [ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p) for p in ends])]
    deadline = time.perf_counter() + RUN_TIMEOUT
    while True:
        result = admin.list_consumer_group_offsets(request)[group].result(timeout=60)
        now = time.perf_counter()
        if {tp.partition: tp.offset for tp in result.topic_partitions} == ends:
            return now
        alive()
        if now > deadline:
            raise TimeoutError(f"group {group!r} did not commit the input's end offsets")
        time.sleep(0.02)


def read_digests(bootstrap: str, topic: str, partitions: int) -> tuple[int, set[bytes]]:
    """(records read, digests of their values) of ``topic``, read_committed, to its end."""
    from confluent_kafka import Consumer, KafkaError, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": unique_name("millstream-bench-copy-check"),
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "isolation.level": "read_committed",
        }
    )
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    pending, count, digests = set(range(partitions)), 0, set()
    deadline = time.monotonic() + RUN_TIMEOUT
    try:
        while pending:
            for msg in consumer.consume(10_000, 0.5):
                error = msg.error()
                if error is None:
                    count += 1
                    digests.add(digest(msg.value()))
                elif error.code() == KafkaError._PARTITION_EOF:
                    pending.discard(msg.partition())
                else:
                    raise RuntimeError(f"reading {topic!r}: {error}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading {topic!r}: not at the end")
    finally:
        consumer.close()
    return count, digests


def copier_classpath() -> str:
    """The broker's jars with kafka-tools, fetched by scripts/kafka-broker when missing."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "kafka-broker"), "fetch"],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False,
    )  # fmt: skip
    libs = ROOT / "tools" / "kafka" / "target" / "kafka-libs"
    if done.returncode != 0 or not any(libs.glob("kafka-tools-*.jar")):
        raise RuntimeError(f"scripts/kafka-broker fetch failed: {done.stderr.strip()}")
    return f"{libs}/*"


def copier_span(logs: list[Path]) -> float | None:
    """Seconds from the first copier's first status line (after its start-up and
    ``initTransactions``) to the last one's end, from the tool's own timestamps."""
    import json

    firsts, lasts = [], []
    for log in logs:
        stamps = [
            datetime.strptime(json.loads(line)["time"], "%Y/%m/%d %H:%M:%S:%f")
            for line in log.read_text(errors="replace").splitlines()
            if line.startswith("{") and '"time"' in line
        ]
        if not stamps:
            return None
        firsts.append(stamps[0])
        lasts.append(stamps[-1])
    return (max(lasts) - min(firsts)).total_seconds()


class Copy:
    """One copy into a fresh output topic; ``copier()`` or ``millstream()`` times it."""

    def __init__(self, bootstrap: str, topic: str, partitions: int, ends: dict[int, int]):
        self.bootstrap, self.topic, self.partitions, self.ends = bootstrap, topic, partitions, ends
        self.admin = _admin(bootstrap)
        self.made: list[str] = []
        self.facts: dict[str, list[float]] = {}

    def output(self, name: str) -> str:
        out = create_topic(self.bootstrap, unique_name(f"millstream-bench-copy-{name}"),
                           self.partitions)  # fmt: skip
        self.made.append(out)
        return out

    def check(self, out: str) -> tuple[int, set[bytes]]:
        try:
            return read_digests(self.bootstrap, out, self.partitions)
        finally:
            delete_topics(self.bootstrap, [out])

    def copier(self, classpath: str, transaction_size: int) -> tuple[float, Any]:
        out, group = self.output("copier"), unique_name("millstream-bench-copy-copier")
        work = Path(tempfile.mkdtemp(prefix="millstream-bench-copier-"))
        processes, logs = [], []
        try:
            t0 = time.perf_counter()
            for p in range(self.partitions):
                logs.append(work / f"copier-{p}.log")
                with open(logs[-1], "wb") as log:
                    processes.append(subprocess.Popen(
                        ["java", *COPIER_JVM, "-cp", classpath, COPIER_MAIN,
                         "--broker-list", self.bootstrap, "--input-topic", self.topic,
                         "--input-partition", str(p), "--output-topic", out,
                         "--consumer-group", group, "--use-group-metadata",
                         "--transactional-id", f"{group}-{p}",
                         "--transaction-size", str(transaction_size)],
                        stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                    ))  # fmt: skip

            def alive() -> None:
                failed = [p.returncode for p in processes if p.poll() not in (None, 0)]
                if failed:
                    raise RuntimeError(f"a copier exited with {failed}: {logs[0].read_text()}")

            end = wait_committed(self.admin, group, self.topic, self.ends, alive)
            for process in processes:
                process.wait(60)
            alive()
            span = copier_span(logs)
            if span is not None:
                self.facts.setdefault(SPAN, []).append(span)
        finally:
            for process in processes:  # only ours, by pid
                if process.poll() is None:
                    process.kill()
                    process.wait()
            shutil.rmtree(work, ignore_errors=True)
        return end - t0, self.check(out)

    def millstream(self, interval: float) -> tuple[float, Any]:
        from millstream import Stream
        from millstream.checkpoint import enable

        out, group = self.output("millstream"), unique_name("millstream-bench-copy-ms")
        work = tempfile.mkdtemp(prefix="millstream-bench-copy-ck-")
        source = Stream.from_kafka(
            self.topic,
            {"bootstrap.servers": self.bootstrap, "group.id": group,
             "auto.offset.reset": "earliest"},
            keys=True,
        )  # fmt: skip
        source.to_kafka(out, {"bootstrap.servers": self.bootstrap}, keys=True)
        checkpoints = enable(source, work, interval=interval, exactly_once=True)
        try:
            t0 = time.perf_counter()
            source.start()

            def alive() -> None:
                if source.error is not None:
                    raise source.error

            end = wait_committed(self.admin, group, self.topic, self.ends, alive)
        finally:
            checkpoints.close(final=False)
            source.stop()
            shutil.rmtree(work, ignore_errors=True)
        self.facts.setdefault("millstream_checkpoints", []).append(len(checkpoints.history))
        return end - t0, self.check(out)


def millstream_exactly_once() -> tuple[bool, str]:
    """Whether this millstream can run the copy exactly-once, and if not why."""
    from millstream.checkpoint import enable

    if "exactly_once" not in inspect.signature(enable).parameters:
        return False, "millstream.checkpoint.enable() has no exactly_once parameter yet"
    return True, ""


def expected_digests(n: int, size: int) -> Iterator[bytes]:
    return (digest(make_value(i, size)) for i in range(n))


def main(argv: list[str] | None = None) -> None:
    parser = base_parser(__doc__.split("\n\n")[0], 1_000_000)
    parser.add_argument(
        "--bootstrap",
        default=os.environ.get("MILLSTREAM_KAFKA_BOOTSTRAP"),
        help="a running broker (host:port); default: start a private one",
    )
    parser.add_argument(
        "--partitions",
        type=int,
        default=PARTITIONS,
        help=f"partitions of the topics, copier processes (default {PARTITIONS})",
    )
    parser.add_argument(
        "--copier-transaction-size",
        type=int,
        default=5000,
        help="records per copier transaction (default 5000)",
    )
    parser.add_argument(
        "--value-bytes",
        type=int,
        default=VALUE_BYTES,
        help=f"bytes per value, at least 12 (default {VALUE_BYTES})",
    )
    parser.add_argument("--interval", type=float, default=1.0,
                        help="seconds between millstream checkpoints (default 1)")  # fmt: skip
    args = parser.parse_args(argv)
    if args.value_bytes < 12:
        parser.error("--value-bytes: at least 12 (the record number)")
    n, partitions = args.size, args.partitions
    available, reason = millstream_exactly_once()
    expected = set(expected_digests(n, args.value_bytes))
    classpath = copier_classpath()
    with broker(args.bootstrap) as bootstrap:
        topic = create_topic(bootstrap, unique_name("millstream-bench-copy-in"), partitions)
        try:
            load_keyed(bootstrap, topic, n, partitions, args.value_bytes)
            copy = Copy(bootstrap, topic, partitions, end_offsets(bootstrap, topic, partitions))
            runs: dict[str, Callable[[], tuple[float | None, Any]]] = {
                "copier": lambda: copy.copier(classpath, args.copier_transaction_size)
            }
            if available:
                runs["millstream"] = lambda: copy.millstream(args.interval)

            def exactly_input(_name: str, out: tuple[int, set[bytes]]) -> bool:
                count, digests = out
                return count == n and digests == expected

            times, ok = best_times(runs, args.repeat, exactly_input)
        finally:
            delete_topics(bootstrap, [topic, *copy.made] if "copy" in locals() else [topic])
    rates = {name: n / t for name, t in times.items()}
    ratios, targets = {}, {}
    if available:
        ratios["millstream_over_copier"] = times["copier"] / times["millstream"]
        targets["millstream_vs_copier"] = target(
            ratios["millstream_over_copier"], 0.5,
            "millstream records/s / TransactionalMessageCopier records/s (exactly-once copy)",
        )  # fmt: skip
    emit_json(
        {
            "benchmark": "kafka_copy",
            "workload": f"{n} records ({args.value_bytes}-byte values, {KEYS} keys) on "
            f"{partitions} partitions copied Kafka -> Kafka exactly-once",
            "size": n,
            "partitions": partitions,
            "machine": machine(),
            "times_s": {k: round(v, 4) for k, v in times.items()},
            "records_per_s": {k: round(v) for k, v in rates.items()},
            "ratios": {k: round(v, 3) for k, v in ratios.items()},
            "copier": {
                "processes": partitions,
                "transaction_size": args.copier_transaction_size,
                "jvm_options": COPIER_JVM,
                "after_start_up_s": [round(s, 3) for s in copy.facts.get(SPAN, [])],
            },
            "millstream": {
                "available": available,
                "reason": reason,
                "version": millstream.__version__,
                "interval_s": args.interval,
                "checkpoints": copy.facts.get("millstream_checkpoints", []),
            },
            "checks": {f"{name}_output_exactly_input": good for name, good in ok.items()},
            "targets": targets,
        }
    )


if __name__ == "__main__":
    main()
