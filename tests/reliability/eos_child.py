"""The pipeline the exactly-once reliability tests (T1, T3, T5) run, kill and restart.

    python tests/reliability/eos_child.py BOOTSTRAP IN OUT GROUP CHECKPOINTS TOTAL
        [--dead-letters TOPIC] [--interval SECONDS] [--pace SECONDS]

Kafka ``IN`` (keyed records with unique values) -> a running count per key (keyed state)
-> Kafka ``OUT``: for each record, key = its key, value = ``<its value>:<the key's new
count>``, written exactly-once (``enable(..., exactly_once=True)``: one transaction per
checkpoint with the group's offsets). A record whose value starts with ``poison`` makes
the parsing step raise; with ``--dead-letters`` it goes, byte-identical, to that topic in
the same transaction (else the pipeline stops on it).

The child resumes from its checkpoints, exits 0 once its state has taken ``TOTAL``
records (counted plus dead-lettered), and prints ``restored <id>`` at start,
``progress <records taken>`` every 0.2 s and ``done <counted> <dead>`` at the end.
"""

from __future__ import annotations

import argparse
import faulthandler
import logging
import signal
import sys
import time

from millstream import Stream
from millstream.checkpoint import enable


class Parse:
    """The parsing step: raises on a poison record; sleeps ``pace`` s every 100 records
    (so that the faults of a test find the pipeline in the middle of its input)."""

    def __init__(self, pace: float):
        self.pace, self.seen = pace, 0

    def __call__(self, record: dict) -> dict:
        self.seen += 1
        if self.pace and self.seen % 100 == 0:
            time.sleep(self.pace)
        if record["value"].startswith(b"poison"):
            raise ValueError(f"poison record {record['value'][:20]!r}")
        return record


def count(counts: dict, record: dict) -> tuple[dict, tuple[bytes, bytes]]:
    key = record["key"]
    n = counts[key] = counts.get(key, 0) + 1
    return counts, (key, record["value"] + b":%d" % n)


def main() -> int:
    faulthandler.register(signal.SIGUSR1)  # a stalled run's stacks: kill -USR1 <pid>
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    parser = argparse.ArgumentParser()
    for name in ("bootstrap", "in_topic", "out_topic", "group", "checkpoints"):
        parser.add_argument(name)
    parser.add_argument("total", type=int)
    parser.add_argument("--dead-letters", default=None)
    parser.add_argument("--interval", type=float, default=0.2)
    parser.add_argument("--pace", type=float, default=0.0, help="sleep per 100 records (s)")
    args = parser.parse_args()
    config = {"bootstrap.servers": args.bootstrap}
    source = Stream.from_kafka(
        args.in_topic,
        {**config, "group.id": args.group, "auto.offset.reset": "earliest"},
        keys=True,
        max_in_flight=200,  # small reads: a checkpoint finds the loop free every 200 records
        stream_name="in",
    )  # fmt: skip
    on_error = "raise"
    dead_count = None
    if args.dead_letters is not None:
        on_error = Stream(stream_name="dead")
        on_error.to_kafka_dead_letters(args.dead_letters, config)
        dead_count = on_error.accumulate(lambda n, _: n + 1, start=0, stream_name="dead-count")
    counted = source.map(Parse(args.pace), on_error=on_error).accumulate(
        count, start={}, returns_state=True, stream_name="counts"
    )
    counted.to_kafka(args.out_topic, config, keys=True)
    checkpoints = enable(source, args.checkpoints, interval=args.interval, exactly_once=True)
    print(f"restored {checkpoints.restored}", flush=True)

    def taken() -> tuple[int, int]:
        try:  # read from this thread while the loop's thread changes them
            counts = counted.snapshot()["state"]
            dead = dead_count.snapshot()["state"] if dead_count is not None else 0
        except RuntimeError:  # changed during the copy: read again next time
            return 0, 0
        return (
            sum(counts.values()) if isinstance(counts, dict) else 0,
            dead if isinstance(dead, int) else 0,
        )

    source.start()
    shown = time.monotonic()
    while sum(taken()) < args.total:
        if source.stopped:
            print(f"source stopped: {source.error!r}", flush=True)
            return 1
        if time.monotonic() - shown >= 0.2:
            shown = time.monotonic()
            print("progress %d" % sum(taken()), flush=True)
        time.sleep(0.05)
    checkpoints.close()  # the last checkpoint commits everything taken
    source.stop()
    print("done %d %d" % taken(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
