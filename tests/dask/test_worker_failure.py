"""A Dask worker killed (``kill -9``) in the middle of a stream, on a cluster of ``dask``
CLI processes of this module alone: a scheduler, 2 workers with nannies, and for each test
a bare worker (no nanny, so it stays dead) that the test kills.

Tasks that were running on the dead worker, or whose results were only there, are run
again elsewhere by the scheduler. Data stored with ``client.scatter`` cannot be made
again: its key is forgotten and every task needing it is cancelled. ``scatter`` puts each
element on the cluster as a task that loads it (:mod:`millstream.dask.payloads`), which
the scheduler runs again, so a stream loses nothing.
"""

from __future__ import annotations

import asyncio
import os
import time

import pytest
from distributed import Client, get_worker, wait
from distributed.client import FutureCancelledError

from kafka._produce import committed, params, produce
from millstream import Stream
from millstream.dask.payloads import scatter_element, submit_element
from millstream.testing import wait_for


def inc(x):
    return x + 1


def slow_times_ten(x):
    """``(10 x, the worker's name)`` after 20 ms."""
    time.sleep(0.02)
    return 10 * x, get_worker().name


def slowly_tagged(batch):
    time.sleep(0.02)
    return batch, get_worker().name


@pytest.fixture
def cluster(module_process_cluster):
    return module_process_cluster


@pytest.fixture
def client(cluster):
    """A client of this module's cluster: the current and default client in the test."""
    with Client(cluster.scheduler_address, timeout=60) as c:
        yield c


@pytest.fixture
def victim(cluster, client):
    """The name of a bare worker started for the test (stopped after it, if still alive)."""
    name = cluster.start_worker(nanny=False)
    yield name
    if cluster.workers[name].poll() is None:
        cluster.kill_worker(name)
    cluster.workers.pop(name)


def test_scatter_emits_futures_the_scheduler_can_compute_again(client):
    """Alone and fused into the next ``map``, scatter's futures are tasks, not stored data."""
    source = Stream()
    alone = source.scatter().sink_to_list()
    fused = source.scatter().map(inc).sink_to_list()
    source.emit(0)
    wait(alone + fused, timeout=20)  # the scheduler has the tasks
    keys = [alone[0].key, fused[0].key]
    assert keys[0].startswith("int-") and keys[1].startswith("inc-")

    def run_specs(dask_scheduler):
        return [dask_scheduler.tasks[k].run_spec is not None for k in keys]

    assert client.run_on_scheduler(run_specs) == [True, True]
    assert client.gather(alone + fused) == [0, 1]


def test_data_stored_with_client_scatter_dies_with_its_worker(cluster, client, victim):
    """Why scatter must not use ``client.scatter``: its data cannot be recomputed."""
    address = cluster.worker_addresses(client)[victim]
    [stored] = client.scatter([41], workers=[address], hash=False)
    assert client.submit(inc, stored).result(timeout=20) == 42
    cluster.kill_worker(victim)
    with pytest.raises(FutureCancelledError):
        client.submit(inc, stored).result(timeout=20)


def test_an_element_stored_as_a_task_is_computed_again_elsewhere(cluster, client, victim):
    address = cluster.worker_addresses(client)[victim]
    futures = [
        submit_element(client, {"x": i}, workers=[address], allow_other_workers=True)
        for i in range(5)
    ]
    wait(futures, timeout=20)
    assert all(holders == (address,) for holders in map(tuple, client.who_has(futures).values()))
    assert len({f.key for f in futures}) == 5 and futures[0].key.startswith("dict-")
    cluster.kill_worker(victim)
    assert client.gather([client.submit(lambda d: d["x"] + 1, f) for f in futures]) == [
        1,
        2,
        3,
        4,
        5,
    ]
    assert client.gather(futures) == [{"x": i} for i in range(5)]


def test_scatter_element_waits_until_a_worker_holds_the_element(client):
    future = asyncio.run(scatter_element(client, b"payload"))
    assert future.status == "finished" and future.key.startswith("bytes-")
    assert client.gather(future) == b"payload"


def _refuse_to_load():
    if os.environ.get("MILLSTREAM_TEST_DASK_ROLE") == "worker":  # set by ProcessCluster
        raise RuntimeError("this element cannot be loaded on a worker")
    return _Fragile()


class _Fragile:
    def __reduce__(self):
        return _refuse_to_load, ()


def test_an_element_a_worker_cannot_load_is_an_error_not_a_dead_worker(cluster, client):
    """Loaded by its task (not by the worker's connection, which it would break)."""
    workers = cluster.worker_addresses(client)
    with pytest.raises(RuntimeError, match="cannot be loaded on a worker"):
        asyncio.run(scatter_element(client, _Fragile()))
    assert cluster.worker_addresses(client) == workers
    assert all(p.poll() is None for p in cluster.workers.values())
    assert client.submit(inc, 1).result(timeout=20) == 2


def test_a_stream_element_a_worker_cannot_load_is_raised_by_gather(cluster, client):
    """Through scatter alone and scatter fused into map: an error, no worker harmed."""
    workers = cluster.worker_addresses(client)
    source = Stream()
    node = source.scatter()
    node.gather().sink_to_list()
    mapped = node.map(str).gather().sink_to_list()
    source.emit(1)
    assert mapped == ["1"]
    for fused in (False, True):
        source = Stream()
        node = source.scatter()
        (node.map(str) if fused else node).gather().sink_to_list()
        with pytest.raises(RuntimeError, match="cannot be loaded on a worker") as info:
            source.emit(_Fragile())
        notes = "\n".join(info.value.__notes__)
        if fused:  # the first note made, on the worker, is the one kept
            assert notes == (
                "millstream: the element sent by <scatter> could not be loaded on the worker"
            )
        else:
            prefix = "millstream: <gather> received the error of Dask task '_Fragile-"
            assert notes.startswith(prefix)
            assert notes.endswith("submitted by <scatter>")
    assert cluster.worker_addresses(client) == workers
    assert client.submit(inc, 1).result(timeout=20) == 2


def test_a_stream_loses_nothing_when_a_worker_is_killed_mid_stream(cluster, client, victim):
    source = Stream()
    L = source.scatter().map(slow_times_ten).buffer(8).gather().sink_to_list()
    for i in range(200):
        if i == 100:
            wait_for(lambda: any(name == victim for _, name in L), 20)
            cluster.kill_worker(victim)
        source.emit(i)
    wait_for(lambda: len(L) == 200, 30)
    assert [x for x, _ in L] == [10 * i for i in range(200)]
    names = [name for _, name in L]
    assert victim in names[:100] and victim not in names[names.index(victim) + 100 :]


def test_a_kafka_read_on_workers_loses_nothing_when_a_worker_is_killed(
    cluster, client, victim, kafka_bootstrap, kafka_topic
):
    topic = kafka_topic(2)
    values = [b"v%d" % i for i in range(400)]
    produce(kafka_bootstrap, topic, values, partition=lambda i: i % 2)
    config = params(kafka_bootstrap)
    stream = Stream.from_kafka_batched(
        topic, config, dask=True, max_batch_size=5, poll_interval=0.02
    )
    L = stream.map(slowly_tagged).buffer(8).gather().sink_to_list()
    source = stream.upstream.upstream
    stream.start()
    try:
        wait_for(lambda: any(name == victim for _, name in L), 20)
        cluster.kill_worker(victim)
        wait_for(lambda: sum(len(b) for b, _ in L) >= 400, 30)
        wait_for(lambda: source.committed == {(topic, 0): 200, (topic, 1): 200}, 20)
    finally:
        source.stop()
    read = [r for b, _ in L for r in b]
    assert sorted(read) == sorted(values)  # each record exactly once
    for p in range(2):
        assert [r for r in read if int(r[1:]) % 2 == p] == values[p::2]
    assert committed(kafka_bootstrap, config["group.id"], topic, 2) == {0: 200, 1: 200}
