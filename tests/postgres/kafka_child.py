"""Kafka -> map -> to_postgres with checkpoints, for the crash test:

    python kafka_child.py DSN TABLE LOCATION BOOTSTRAP TOPIC N

The topic holds the records ``b'0'`` .. ``b'N-1'``; each becomes the row
``(i, partition, offset)``. Exits once the source's position covers all N records and
a last checkpoint committed them.
"""

from __future__ import annotations

import sys
import time

from millstream import Stream
from millstream.checkpoint import enable


def main() -> None:
    dsn, table, location, bootstrap, topic, n = sys.argv[1:7]
    params = {
        "bootstrap.servers": bootstrap,
        "group.id": f"pg-{topic}",
        "auto.offset.reset": "earliest",
    }
    batches = Stream.from_kafka_batched(
        topic, params, poll_interval=0.05, keys=True, max_batch_size=200
    )
    source = batches.upstream

    def row(m: dict) -> tuple[int, int, int]:
        time.sleep(0.0003)  # so that the input outlasts the kills
        return int(m["value"]), m["partition"], m["offset"]

    rows = batches.flatten().map(row)
    rows.to_postgres(table, dsn, stream_name="out")
    checkpoints = enable(source, location, interval="100ms")
    source.start()

    def read() -> int:
        return sum(source.snapshot().get(topic, {}).values())

    while read() < int(n):
        time.sleep(0.05)
    checkpoints.close()
    source.stop()


if __name__ == "__main__":
    main()
