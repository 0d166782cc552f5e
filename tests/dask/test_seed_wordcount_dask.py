"""The seed's streaming word count on Dask, counting on the cluster before ``gather``.

``examples/seed/04_streaming_wordcount.py`` gathers the lists of words and counts on the
client (``...map(split).gather().flatten().flatten().frequencies()``). With every node
working on a ``DaskStream``, the count can stay on the cluster:
``stream.map(decode).map(split).flatten().flatten().frequencies().gather()``; the tables
reaching the client are the running counts, one per batch of lines.
"""

from __future__ import annotations

from collections import Counter

from kafka._produce import committed, params, produce
from millstream import Stream
from millstream.testing import wait_for

LINES = [
    "the quick brown fox",
    "jumps over the lazy dog",
    "",
    "the dog sleeps",
    "a fox a dog a cat",
] * 8


def decode(batch):
    return [line.decode() for line in batch]


def split(lines):
    return [line.split() for line in lines]


def wordcount(stream):
    """The seed's chain with the count before ``gather``."""
    return stream.map(decode).map(split).flatten().flatten().frequencies()


def expected_counts():
    return Counter(w for line in LINES for w in line.split())


def batches_of(size):
    data = [line.encode() for line in LINES]
    return [data[i : i + size] for i in range(0, len(data), size)]


def test_wordcount_before_gather_matches_the_local_run_and_a_counter(client):
    batches = batches_of(3)
    local = Stream()
    local_tables = wordcount(local).sink_to_list()
    source = Stream()
    counts = wordcount(source.scatter())
    tables = counts.gather().sink_to_list()
    for batch in batches:
        local.emit(batch)
        source.emit(batch)
    wait_for(lambda: len(tables) == len(batches), 20)
    assert tables[-1] == local_tables[-1] == expected_counts()
    # one table per batch: the local table after the batch's last word
    ends, seen = [], 0
    for batch in batches:
        seen += sum(len(line.split()) for line in batch)
        ends.append(local_tables[seen - 1] if seen else {})
    assert tables == ends


def test_wordcount_on_kafka_read_on_workers_counts_before_gather(
    client, kafka_bootstrap, kafka_topic
):
    topic = kafka_topic(2)
    produce(kafka_bootstrap, topic, [line.encode() for line in LINES], partition=lambda i: i % 2)
    config = params(kafka_bootstrap)
    stream = Stream.from_kafka_batched(
        topic, config, dask=True, max_batch_size=4, poll_interval=0.01
    )
    source = stream.upstream.upstream
    tables = wordcount(stream).gather().sink_to_list()
    total = sum(expected_counts().values())
    stream.start()
    try:
        wait_for(lambda: bool(tables) and sum(tables[-1].values()) == total, 30)
        # every batch's refs were released once counted: the offsets are committed
        wait_for(
            lambda: committed(kafka_bootstrap, config["group.id"], topic, 2) == {0: 20, 1: 20},
            20,
        )
    finally:
        source.stop()
    assert tables[-1] == expected_counts()
