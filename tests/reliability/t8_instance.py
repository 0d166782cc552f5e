"""One instance of T8's exactly-once Kafka -> Kafka pipeline, run as a child process by
test_t8_two_instances.py.

Usage: ``t8_instance.py BOOTSTRAP IN OUT GROUP CHECKPOINT_DIR TAG [--dynamic]``

``from_kafka(IN, keys=True)`` -> each record to ``(key, value|TAG|ms)`` (TAG names this
run of the instance, ``ms`` is the wall time of the processing in milliseconds) ->
``to_kafka(OUT, keys=True)``, with ``enable(..., exactly_once=True)`` at CHECKPOINT_DIR.
The source is a static member of GROUP (its ``group.instance.id`` follows from the
checkpoint location) unless ``--dynamic``: then it leaves the group when it stops, so a
stop rebalances at once.

It prints a JSON status line every :data:`STATUS_EVERY` seconds (``assigned``
partitions, records ``processed``, Kafka transactions ``commits`` and ``aborts``). On
SIGTERM it closes the checkpoints (a last one commits what was processed), stops the
source and exits 0. When its output is fenced it prints ``FENCED: <error>`` and exits
:data:`FENCED_EXIT`; any other end of the source prints ``FAILED: <error>`` and exits 1.
"""

from __future__ import annotations

import faulthandler
import json
import logging
import signal
import sys
import threading
import time
from typing import Any

from millstream import Stream
from millstream.checkpoint import enable
from millstream.exceptions import KafkaFencedError

FENCED_EXIT = 3
STATUS_EVERY = 0.1
#: librdkafka settings of the source: a paused member is replaced after 6 s
SESSION_TIMEOUT_MS = 6000
#: the producer's transaction timeout: longer than any pause of the test, so a paused
#: instance's open transaction is still open when it wakes (it is fenced by its group,
#: KIP-447, not by the broker's timeout)
TRANSACTION_TIMEOUT_MS = 60_000


def _fenced(*errors: BaseException | None) -> BaseException | None:
    for error in errors:
        seen: BaseException | None = error
        while seen is not None:
            if isinstance(seen, KafkaFencedError):
                return seen
            seen = seen.__cause__ or seen.__context__
    return None


def main() -> int:
    bootstrap, topic_in, topic_out, group, where, tag = sys.argv[1:7]
    dynamic = "--dynamic" in sys.argv[7:]
    faulthandler.register(signal.SIGUSR1, all_threads=True)  # a stack dump on demand
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s"
    )
    consumer = {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": SESSION_TIMEOUT_MS,
        "heartbeat.interval.ms": 500,
    }
    if dynamic:
        consumer["group.instance.id"] = ""
    producer = {
        "bootstrap.servers": bootstrap,
        "linger.ms": 5,
        "transaction.timeout.ms": TRANSACTION_TIMEOUT_MS,
    }
    mark = b"|" + tag.encode() + b"|"
    processed = [0]

    def transform(record: dict[str, Any]) -> tuple[bytes, bytes]:
        processed[0] += 1
        return record["key"], record["value"] + mark + b"%d" % int(time.time() * 1000)

    source = Stream.from_kafka(topic_in, consumer, poll_interval=0.05, keys=True)
    source.map(transform).to_kafka(topic_out, producer, keys=True)
    checkpoints = enable(source, where, interval="200ms", exactly_once=True)
    output = checkpoints.kafka_output
    assert output is not None

    source.start()

    def status() -> None:
        transaction = output.transaction
        line = {
            "t": time.time(),
            "assigned": sorted(p for _, p in source.assignment),
            "processed": processed[0],
            "commits": transaction.commits if transaction is not None else 0,
            "aborts": transaction.aborts if transaction is not None else 0,
        }
        print(json.dumps(line), flush=True)

    while not stop.is_set() and not source.stopped:
        status()
        stop.wait(STATUS_EVERY)
    status()
    closing_error: BaseException | None = None
    if stop.is_set():
        try:
            checkpoints.close()  # the last checkpoint commits what was processed
        except Exception as e:
            closing_error = e
        source.stop()
    else:  # the source ended by itself: fenced, or failed
        try:
            checkpoints.close(final=False)
        except Exception as e:
            closing_error = e
    status()
    fenced = _fenced(checkpoints.error, source.error, closing_error)
    if fenced is not None:
        print(f"FENCED: {type(fenced).__name__}: {fenced}", flush=True)
        return FENCED_EXIT
    problem = closing_error or source.error or (None if stop.is_set() else checkpoints.error)
    if problem is not None or not stop.is_set():
        print(f"FAILED: {type(problem).__name__}: {problem}", flush=True)
        return 1
    print("STOPPED", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
