"""Benchmark: ``from_pulsar`` and ``to_pulsar`` against plain pulsar-client loops doing the
same work, in the same run, on the same standalone Pulsar.

* read: ``--size`` messages of 100 bytes, produced once (batched) to a topic, are read
  from the earliest through a fresh Shared subscription, each acknowledged after it is
  appended to a list. ``millstream``: ``Stream.from_pulsar(url, topic, sub,
  initial_position='earliest').sink(list.append)``, timed from ``start()`` until every
  message is acknowledged. ``plain``: ``client.subscribe`` with the same receiver queue,
  batch-receive policy and batch-index acknowledgement (``from_pulsar``'s default), then
  ``batch_receive()`` and ``acknowledge(message)`` per message
  until all are in; timed from ``subscribe``. ``--no-index-acks``: both acknowledge at
  Pulsar's plain batch level instead.
* write: the same messages sent to a fresh topic. ``millstream``:
  ``Stream.from_iterable(values).to_pulsar(url, topic)`` then ``flush()``; ``plain``:
  ``create_producer`` with the same settings (batching, 1,000 pending, block when full),
  ``send_async`` of each message with a callback, ``flush()``. Both timed until every
  message is acknowledged by the broker.

Figures in turn, best of ``--repeat``, after a warm-up. Targets: plain time / millstream
time >= 0.8 for each. ``--url`` uses a running Pulsar; else the script starts one with
scripts/pulsar-standalone (stopped at the end).
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pulsar
from _common import base_parser, best_times, emit_json, machine, target

from millstream import Stream

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "pulsar-standalone"
LOG = logging.getLogger("bench.pulsar")
BATCH = 500
QUEUE = 1000


@contextlib.contextmanager
def pulsar_service(url: str | None) -> Iterator[str]:
    if url:
        yield url
        return
    with tempfile.TemporaryDirectory() as state:
        base = [sys.executable, str(SCRIPT)]
        started = subprocess.run(
            [*base, "start", "--state-dir", state, "--owner-pid", str(os.getpid())],
            capture_output=True,
            text=True,
            check=False,
        )
        if started.returncode != 0:
            raise SystemExit(f"cannot start Pulsar: {started.stderr[-2000:]}")
        try:
            yield started.stdout.strip().splitlines()[-1]
        finally:
            subprocess.run([*base, "stop", "--state-dir", state], capture_output=True)


def topic_name(kind: str) -> str:
    return f"persistent://public/default/bench-{kind}-{uuid.uuid4().hex[:10]}"


def produce(client: Any, topic: str, values: list[bytes]) -> None:
    producer = client.create_producer(
        topic, batching_enabled=True, max_pending_messages=QUEUE, block_if_queue_full=True
    )
    for v in values:
        producer.send_async(v, None)
    producer.flush()
    producer.close()


def read_millstream(url: str, topic: str, n: int, index_acks: bool) -> tuple[float, Any]:
    out: list[bytes] = []
    source = Stream.from_pulsar(
        url,
        topic,
        f"ms-{uuid.uuid4().hex[:8]}",
        initial_position="earliest",
        receiver_queue_size=QUEUE,
        batch_size=BATCH,
        consumer_params={"batch_index_ack_enabled": index_acks},
    )
    source.sink(out.append)
    t0 = time.perf_counter()
    source.start()
    while source.acknowledged < n:
        time.sleep(0.001)
    elapsed = time.perf_counter() - t0
    source.stop()
    return elapsed, len(out)


def read_plain(client: Any, topic: str, n: int, index_acks: bool) -> tuple[float, Any]:
    out: list[bytes] = []
    t0 = time.perf_counter()
    consumer = client.subscribe(
        topic,
        f"plain-{uuid.uuid4().hex[:8]}",
        consumer_type=pulsar.ConsumerType.Shared,
        initial_position=pulsar.InitialPosition.Earliest,
        receiver_queue_size=QUEUE,
        batch_receive_policy=pulsar.ConsumerBatchReceivePolicy(BATCH, -1, 100),
        batch_index_ack_enabled=index_acks,
    )
    while len(out) < n:
        for message in consumer.batch_receive():
            out.append(message.data())
            consumer.acknowledge(message)
    elapsed = time.perf_counter() - t0
    consumer.close()
    return elapsed, len(out)


def write_millstream(url: str, values: list[bytes]) -> tuple[float, Any]:
    topic = topic_name("w")
    t0 = time.perf_counter()
    source = Stream.from_iterable(values)
    sink = source.to_pulsar(url, topic, max_pending=QUEUE)
    source.start()
    while not source.stopped:
        time.sleep(0.001)
    sink.flush()
    elapsed = time.perf_counter() - t0
    sent = sink.sent
    sink.close()
    return elapsed, sent


def write_plain(client: Any, values: list[bytes]) -> tuple[float, Any]:
    topic = topic_name("w")
    sent = [0]

    def done(result: Any, message_id: Any) -> None:
        sent[0] += result == pulsar.Result.Ok

    t0 = time.perf_counter()
    producer = client.create_producer(
        topic, batching_enabled=True, max_pending_messages=QUEUE, block_if_queue_full=True
    )
    for v in values:
        producer.send_async(v, done)
    producer.flush()
    deadline = time.monotonic() + 10
    while sent[0] < len(values) and time.monotonic() < deadline:
        time.sleep(0.0005)  # the client's flush can return before its last callbacks ran
    elapsed = time.perf_counter() - t0
    producer.close()
    return elapsed, sent[0]


def main() -> None:
    parser = base_parser(__doc__.split("\n\n")[0], 100_000)
    parser.add_argument("--url", help="a running Pulsar's service URL")
    parser.add_argument(
        "--no-index-acks",
        action="store_true",
        help="both readers acknowledge whole batches (batch_index_ack_enabled=False)",
    )
    args = parser.parse_args()
    n = args.size
    index_acks = not args.no_index_acks
    values = [f"{i:0100d}".encode() for i in range(n)]
    with pulsar_service(args.url) as url:
        client = pulsar.Client(url, logger=LOG)
        topic = topic_name("r")
        produce(client, topic, values)
        runs = {
            "read_millstream": lambda: read_millstream(url, topic, n, index_acks),
            "read_plain": lambda: read_plain(client, topic, n, index_acks),
            "write_millstream": lambda: write_millstream(url, values),
            "write_plain": lambda: write_plain(client, values),
        }
        best_times(runs, 1, lambda name, out: out == n)  # warm-up
        times, ok = best_times(runs, args.repeat, lambda name, out: out == n)
        client.close()
    read = times["read_plain"] / times["read_millstream"]
    write = times["write_plain"] / times["write_millstream"]
    info = machine()
    info["pulsar_client"] = getattr(pulsar, "__version__", "?")
    info["pulsar"] = "4.2.4 standalone (scripts/pulsar-standalone)"
    emit_json(
        {
            "benchmark": "pulsar",
            "size": n,
            "batch_index_acks": index_acks,
            "seconds": {k: round(v, 4) for k, v in times.items()},
            "messages_per_second": {k: round(n / v) for k, v in times.items()},
            "targets": {
                "read": target(read, 0.8, "plain read loop time / from_pulsar time"),
                "write": target(write, 0.8, "plain send_async loop time / to_pulsar time"),
            },
            "checks": {f"{k}_all_messages": v for k, v in ok.items()},
            "machine": info,
        }
    )


if __name__ == "__main__":
    main()
