"""Streaming word count over Kafka on Dask, with the import changed to millstream.

Batches of lines are read from the topic on the Dask workers (``from_kafka_batched`` with
``dask=True``); the workers decode them and split each line into words; ``gather`` brings
the lists of words back, two ``flatten`` make single words of them, and ``frequencies``
keeps the running count.

    MILLSTREAM_KAFKA_BOOTSTRAP=localhost:9092 MILLSTREAM_KAFKA_TOPIC=lines \\
        python examples/seed/04_streaming_wordcount.py

The last line printed is the final count, as JSON. It stops once it has counted
$MILLSTREAM_EXAMPLE_RECORDS lines when that is set, else once no line has come for 5 s.
"""

import json
import os
import time

from dask.distributed import Client

from millstream import Stream
from millstream.testing import wait_for

BOOTSTRAP = os.environ.get("MILLSTREAM_KAFKA_BOOTSTRAP", "localhost:9092")
TOPIC = os.environ.get("MILLSTREAM_KAFKA_TOPIC", "millstream-example")
GROUP = os.environ.get("MILLSTREAM_KAFKA_GROUP", "millstream-example")
RECORDS = int(os.environ.get("MILLSTREAM_EXAMPLE_RECORDS", "0"))


def wait_until_done(count, expected, idle=5.0):
    """The docs' stream runs for ever; this one ends once ``count()`` reaches ``expected``
    (if not 0; at most 60 s), else once ``count()`` has not changed for ``idle`` seconds."""
    if expected:
        wait_for(lambda: count() >= expected, 60)
        return
    last, since = count(), time.monotonic()
    while time.monotonic() - since < idle:
        time.sleep(0.05)
        if count() != last:
            last, since = count(), time.monotonic()


def decode(batch):
    return [line.decode() for line in batch]


def split(lines):
    return [line.split() for line in lines]


if __name__ == "__main__":  # Dask starts its worker processes by re-importing this file
    client = Client()

    stream = Stream.from_kafka_batched(
        TOPIC,
        {"bootstrap.servers": BOOTSTRAP, "group.id": GROUP, "auto.offset.reset": "earliest"},
        dask=True,
        max_batch_size=2,
        poll_interval=0.01,
    )
    words = stream.map(decode).map(split).gather()
    counts = words.flatten().flatten().frequencies()
    tables = counts.sink_to_list()

    lines = []
    words.sink(lines.extend)  # after the count: a line seen here has been counted
    stream.start()

    wait_until_done(lambda: len(lines), RECORDS)
    stream.stop()
    client.close()
    print(json.dumps(dict(tables[-1]) if tables else {}, sort_keys=True))
