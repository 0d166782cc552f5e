"""Benchmark: producing to Kafka, ``to_kafka`` against a raw ``confluent_kafka`` loop.

``--size`` messages (default 1,000,000) of about 100 bytes each, lines of 10 words
drawn (seeded) from a vocabulary of 10,000 words, produced into a fresh topic of
``--partitions`` partitions (default 4) for every run, with the same producer settings
(``linger.ms=5``, librdkafka's defaults otherwise) by:

* ``raw``: the loop the confluent-kafka documentation shows:
  ``producer.produce(topic, line, on_delivery=cb)`` then ``producer.poll(0)`` per
  message, on ``BufferError`` ``poll(0.05)`` and retry, then ``producer.flush()``; ``cb``
  counts delivery errors. The reference of the target.
* ``raw_positional`` (for information): the same loop passing the callback
  positionally (``produce(topic, line, None, -1, cb)``), which saves confluent-kafka's
  keyword parsing (about 0.25 us a message); ``to_kafka`` calls it that way.
* ``millstream``: ``Stream.from_iterable(lines).to_kafka(topic, config)``, timed from
  ``start()`` until the source has pushed its last line and ``flush()`` has returned.

Every run is timed from the producer's creation until every message is acknowledged,
and is checked afterwards: the topic's high watermarks must add up to ``--size`` and
no delivery may have failed. Streamz 0.6.6 is not run: its ``to_kafka`` waits for each
message's delivery future, served by a poll every 0.2 s (Streamz #398), so
``from_iterable`` would send about 5 messages a second.

Target: raw_time / millstream_time >= 0.8.

``--bootstrap host:port`` (or ``$MILLSTREAM_KAFKA_BOOTSTRAP``) uses a running broker
(the topics made are deleted at the end); without either a private broker is started
with ``scripts/kafka-broker`` in a temporary directory and stopped at exit. Prints one
JSON line.
"""

from __future__ import annotations

import os
import random
import time
from typing import Any

from _common import base_parser, best_times, emit_json, machine, run_millstream_source, target
from _kafka import broker, create_topic, delete_topics, unique_name

import millstream

WORDS_PER_LINE = 10
VOCABULARY = 10_000


def make_lines(n: int, seed: int = 0) -> list[str]:
    """``n`` lines of 10 words (3 to 15 letters, about 100 bytes a line), seeded."""
    rnd = random.Random(seed)
    letters = "abcdefghijklmnopqrstuvwxyz"
    words = ["".join(rnd.choices(letters, k=rnd.randint(3, 15))) for _ in range(VOCABULARY)]
    return [" ".join(rnd.choices(words, k=WORDS_PER_LINE)) for _ in range(n)]


def run_raw(config: dict[str, Any], topic: str, lines: list[str], positional: bool) -> int:
    """The raw loop; returns the number of failed deliveries."""
    from confluent_kafka import Producer

    errors = [0]

    def delivered(err: Any, msg: Any) -> None:
        if err is not None:
            errors[0] += 1

    producer = Producer(config)
    produce, poll = producer.produce, producer.poll
    if positional:
        for line in lines:
            while True:
                try:
                    produce(topic, line, None, -1, delivered)
                    break
                except BufferError:
                    poll(0.05)
            poll(0)
    else:
        for line in lines:
            while True:
                try:
                    produce(topic, line, on_delivery=delivered)
                    break
                except BufferError:
                    poll(0.05)
            poll(0)
    left = producer.flush()
    return errors[0] + left


def run_millstream(config: dict[str, Any], topic: str, lines: list[str]) -> float:
    source = millstream.Stream.from_iterable(lines)  # type: ignore[attr-defined]
    node = source.to_kafka(topic, config)
    t0 = time.perf_counter()
    run_millstream_source(source)
    node.flush()  # raises KafkaDeliveryError if a delivery failed
    elapsed = time.perf_counter() - t0
    node.destroy()
    return elapsed


def stored(bootstrap: str, topic: str) -> int:
    """The number of messages in ``topic``: the sum of its high watermarks."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": unique_name("wm")})
    try:
        partitions = consumer.list_topics(topic, timeout=30).topics[topic].partitions
        total = 0
        for p in partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)
            total += high - low
        return total
    finally:
        consumer.close()


def check_and_delete(bootstrap: str, out: tuple[str, int], size: int) -> bool:
    """No failed delivery and ``size`` messages stored; then delete the topic (so that the
    broker's load does not grow from run to run)."""
    topic, failed = out
    good = failed == 0 and stored(bootstrap, topic) == size
    delete_topics(bootstrap, [topic])
    return good


def main(argv: list[str] | None = None) -> None:
    parser = base_parser(__doc__.split("\n\n")[0], 1_000_000)
    parser.add_argument("--bootstrap", default=os.environ.get("MILLSTREAM_KAFKA_BOOTSTRAP"))
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--linger-ms", type=int, default=5)
    args = parser.parse_args(argv)
    size = args.size
    lines = make_lines(size)
    topics: list[str] = []

    with broker(args.bootstrap) as bootstrap:
        config = {"bootstrap.servers": bootstrap, "linger.ms": args.linger_ms}

        def fresh_topic() -> str:
            topic = create_topic(
                bootstrap, unique_name("millstream-bench-produce"), args.partitions
            )
            topics.append(topic)
            return topic

        def raw(positional: bool) -> tuple[float, tuple[str, int]]:
            topic = fresh_topic()
            t0 = time.perf_counter()
            failed = run_raw(config, topic, lines, positional)
            return time.perf_counter() - t0, (topic, failed)

        def ms() -> tuple[float, tuple[str, int]]:
            topic = fresh_topic()
            return run_millstream(config, topic, lines), (topic, 0)

        try:
            # warm-up: every implementation once on a small input (starts the loop thread)
            warm = lines[: min(size, 10_000)]
            run_raw(config, fresh_topic(), warm, False)
            run_millstream(config, fresh_topic(), warm)

            times, ok = best_times(
                {
                    "raw": lambda: raw(False),
                    "raw_positional": lambda: raw(True),
                    "millstream": ms,
                },
                args.repeat,
                lambda name, out: check_and_delete(bootstrap, out, size),
            )
        finally:
            delete_topics(bootstrap, topics)

    ratios = {
        "raw_over_millstream": times["raw"] / times["millstream"],
        "raw_positional_over_millstream": times["raw_positional"] / times["millstream"],
    }
    mean_bytes = sum(len(line) for line in lines) / max(size, 1)
    emit_json(
        {
            "benchmark": "kafka_produce",
            "workload": f"{size} lines of {WORDS_PER_LINE} words (~{mean_bytes:.0f} bytes) "
            f"-> a fresh {args.partitions}-partition topic, linger.ms={args.linger_ms}",
            "size": size,
            "method": f"time.perf_counter, best of {args.repeat} (figures taken in turn) after "
            "a warm-up run; each run from the producer's creation until every message is "
            "acknowledged (flush), into a fresh topic; the broker runs on the same machine",
            "machine": machine(),
            "times_s": {k: round(v, 6) for k, v in times.items()},
            "messages_per_s": {k: round(size / v) for k, v in times.items()},
            "ratios": {k: round(v, 3) for k, v in ratios.items()},
            "checks": {f"{name}_all_stored_no_error": good for name, good in ok.items()},
            "targets": {
                "millstream_vs_raw": target(
                    ratios["raw_over_millstream"], 0.8, "raw_time / millstream_time"
                ),
            },
        }
    )
    if not all(ok.values()):
        raise SystemExit("check failed: " + ", ".join(k for k, v in ok.items() if not v))


if __name__ == "__main__":
    main()
