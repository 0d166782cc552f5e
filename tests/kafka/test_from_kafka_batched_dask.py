"""from_kafka_batched(dask=True): Streamz's shape, ranges read on real Dask workers."""

from __future__ import annotations

import pytest
from distributed import Client, LocalCluster

from millstream import Stream
from millstream.sources.kafka_batched import FromKafkaBatched
from millstream.testing import wait_for

from ._produce import committed, params, produce
from .test_from_kafka import values


@pytest.fixture(scope="module")
def dask_client():
    with (
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


def test_dask_true_reads_ranges_on_workers_and_commits_in_order(
    dask_client, kafka_bootstrap, kafka_topic
):
    topic = kafka_topic(2)
    produce(kafka_bootstrap, topic, values(20), partition=lambda i: i % 2)
    config = params(kafka_bootstrap)
    before = dict(config)
    stream = Stream.from_kafka_batched(
        topic, config, dask=True, max_batch_size=2, poll_interval=0.01
    )
    source = stream.upstream.upstream
    assert isinstance(source, FromKafkaBatched)
    L = stream.gather().sink_to_list()
    stream.start()
    try:
        wait_for(lambda: sum(map(len, L)) == 20, 30)
    finally:
        source.stop()
    assert all(len(b) <= 2 for b in L)
    for p in range(2):
        got = [v for b in L for v in b if int(v[1:]) % 2 == p]
        assert got == [v for v in values(20) if int(v[1:]) % 2 == p]
    assert committed(kafka_bootstrap, config["group.id"], topic, 2) == {0: 10, 1: 10}
    assert config == before


def test_dask_true_with_keys_and_a_tombstone_at_the_end_of_a_range(
    dask_client, kafka_bootstrap, kafka_topic
):
    topic = kafka_topic(1)
    produce(
        kafka_bootstrap, topic, [b"a", None, b"b", None], partition=0, keys=[b"1", b"2", b"3", b"4"]
    )
    stream = Stream.from_kafka_batched(
        topic, params(kafka_bootstrap), dask=True, keys=True, poll_interval=0.01
    )
    L = stream.gather().sink_to_list()
    stream.start()
    try:
        wait_for(lambda: sum(map(len, L)) == 4, 30)
    finally:
        stream.upstream.upstream.stop()
    assert [(r["key"], r["value"], r["offset"]) for b in L for r in b] == [
        (b"1", b"a", 0),
        (b"2", None, 1),
        (b"3", b"b", 2),
        (b"4", None, 3),
    ]


def test_dask_true_with_engine_pandas_reads_frames_on_the_workers(
    dask_client, kafka_bootstrap, kafka_topic
):
    import json

    import pandas as pd

    topic = kafka_topic(1)
    rows = [{"i": i, "x": i / 2} for i in range(9)]
    produce(kafka_bootstrap, topic, [json.dumps(r).encode() for r in rows], partition=0)
    config = params(kafka_bootstrap)
    stream = Stream.from_kafka_batched(
        topic, config, dask=True, max_batch_size=4, poll_interval=0.01, engine="pandas"
    )
    frames = stream.gather().sink_to_list()
    stream.start()
    try:
        wait_for(lambda: sum(map(len, frames)) == 9, 30)
    finally:
        stream.upstream.upstream.stop()
    assert all(isinstance(f, pd.DataFrame) and len(f) <= 4 for f in frames)
    pd.testing.assert_frame_equal(pd.concat(frames, ignore_index=True), pd.DataFrame(rows))
    assert committed(kafka_bootstrap, config["group.id"], topic, 1) == {0: 9}
