"""Read a Kafka topic in batches on Dask (Streamz docs, ``from_kafka_batched``), with the
import changed to millstream.

The source plans one batch of offsets per partition at a time (at most ``max_batch_size``
records); with ``dask=True`` the batches are read on the Dask workers and the stream
carries futures, which ``gather`` brings back as lists of record values (bytes).

    MILLSTREAM_KAFKA_BOOTSTRAP=localhost:9092 MILLSTREAM_KAFKA_TOPIC=lines \\
        python examples/seed/03_kafka_batched_dask.py

It prints each batch, then, as its last line, all the batches (decoded) as JSON. It
stops once it has seen $MILLSTREAM_EXAMPLE_RECORDS records when that is set, else once
no batch has come for 5 seconds.
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


if __name__ == "__main__":  # Dask starts its worker processes by re-importing this file
    client = Client()

    stream = Stream.from_kafka_batched(
        TOPIC,
        {"bootstrap.servers": BOOTSTRAP, "group.id": GROUP, "auto.offset.reset": "earliest"},
        dask=True,
        max_batch_size=2,
        poll_interval=0.01,
    )
    gathered = stream.gather()
    gathered.sink(print)
    batches = gathered.sink_to_list()
    stream.start()

    wait_until_done(lambda: sum(map(len, batches)), RECORDS)
    stream.stop()
    client.close()
    print(json.dumps([[value.decode() for value in batch] for batch in batches]))
