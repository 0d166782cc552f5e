"""``from_kafka_batched(..., dask=True)`` on real clusters (``LocalCluster`` and ``dask``
CLI processes): the client plans offset ranges, the workers read and reduce the records,
and only small results reach the client; commits stay ordered and at-least-once.

The bytes the client receives are counted on its own comms (its scheduler stream and its
RPC connections), by wrapping ``distributed.comm.tcp.TCP.read`` in this process.
"""

from __future__ import annotations

import contextvars
import os
import threading
import time

import pytest
from distributed import secede

from kafka._produce import committed, params, produce
from millstream import Stream
from millstream.sources.kafka_batched import FromKafkaBatched
from millstream.testing import wait_for

#: 10 MB of records: 2 partitions of 5000 records of 1000 bytes
RECORD_SIZE = 1000
N_RECORDS = 10_000
PAYLOAD = RECORD_SIZE * N_RECORDS


def batch_size(batch):
    """``(records, bytes)`` of one batch: what a worker sends back instead of the batch."""
    return len(batch), sum(map(len, batch))


def wait_for_flag_if(batch, marker, flag):
    """Hold the batch that contains ``marker`` until the file ``flag`` exists (20 s at most).

    The held task leaves its worker's thread pool (``secede``), so that the tasks of later
    batches placed on the same 1-thread worker still run.
    """
    if marker in batch:
        secede()
        deadline = time.monotonic() + 20
        while not os.path.exists(flag) and time.monotonic() < deadline:
            time.sleep(0.01)
    return len(batch)


def fail_if(batch, marker):
    if marker in batch:
        raise ValueError(f"bad record {marker!r}")
    return len(batch)


def records(n, prefix=b"r"):
    return [prefix + str(i).encode() for i in range(n)]


# -- counting what the client receives ----------------------------------------------------


class ClientReads:
    """Bytes read by ``client``'s comms in this process (its scheduler stream and RPCs).

    Each message read by a TCP comm is an 8-byte length and frames; comms of a scheduler
    living in this process (``LocalCluster``) are not the client's and are not counted.
    """

    def __init__(self, client):
        self.client = client
        self.client_bytes = 0
        self.other_bytes = 0
        self._lock = threading.Lock()

    def is_clients(self, comm) -> bool:
        client = self.client
        stream = client.scheduler_comm
        if stream is not None and stream.comm is comm:
            return True
        return any(comm in comms for comms in list(client.rpc.occupied.values()))

    def add(self, comm, n: int) -> None:
        with self._lock:
            if self.is_clients(comm):
                self.client_bytes += n
            else:
                self.other_bytes += n

    def reset(self) -> None:
        with self._lock:
            self.client_bytes = self.other_bytes = 0


@pytest.fixture
def client_reads(cluster_client, monkeypatch):
    from distributed.comm import tcp

    counter = ClientReads(cluster_client)
    reading: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar(
        "reading", default=None
    )
    read = tcp.TCP.read
    read_bytes_rw = tcp.read_bytes_rw

    async def counting_read(self, deserializers=None):
        sizes = [8]  # the message's length prefix
        token = reading.set(sizes)
        try:
            return await read(self, deserializers)
        finally:
            reading.reset(token)
            counter.add(self, sum(sizes))

    async def counting_read_bytes_rw(stream, n):
        sizes = reading.get()
        if sizes is not None:
            sizes.append(n)
        return await read_bytes_rw(stream, n)

    monkeypatch.setattr(tcp.TCP, "read", counting_read)
    monkeypatch.setattr(tcp, "read_bytes_rw", counting_read_bytes_rw)
    return counter


@pytest.fixture
def ten_megabytes(kafka_bootstrap, kafka_topic):
    """A 2-partition topic holding 10 MB: record i (1000 bytes) in partition i % 2."""
    topic = kafka_topic(2)
    values = [str(i).encode().ljust(RECORD_SIZE, b".") for i in range(N_RECORDS)]
    produce(kafka_bootstrap, topic, values, partition=lambda i: i % 2)
    return topic


def _run_to_end(stream, L, done, timeout=30):
    source = stream.upstream.upstream
    assert isinstance(source, FromKafkaBatched)
    stream.start()
    try:
        wait_for(lambda: done(L), timeout)
    finally:
        source.stop()
    return source


def test_records_are_read_and_reduced_on_workers_not_on_the_client(
    cluster_client, client_reads, kafka_bootstrap, ten_megabytes
):
    config = params(kafka_bootstrap)
    stream = Stream.from_kafka_batched(
        ten_megabytes, config, dask=True, max_batch_size=1000, poll_interval=0.05
    )
    sizes = stream.map(batch_size).buffer(8).gather().sink_to_list()
    client_reads.reset()
    source = _run_to_end(stream, sizes, lambda L: sum(n for n, _ in L) == N_RECORDS)
    received = client_reads.client_bytes
    assert (sum(n for n, _ in sizes), sum(b for _, b in sizes)) == (N_RECORDS, PAYLOAD)
    assert len(sizes) == 10  # 5000 records per partition, 1000 per batch
    print(f"\nclient received {received} bytes for {PAYLOAD} bytes of records")
    assert received < 0.05 * PAYLOAD, received
    assert source.committed == {(ten_megabytes, 0): 5000, (ten_megabytes, 1): 5000}
    assert committed(kafka_bootstrap, config["group.id"], ten_megabytes, 2) == {0: 5000, 1: 5000}


def test_gathering_the_batches_brings_the_payload_to_the_client(
    cluster_client, client_reads, kafka_bootstrap, ten_megabytes
):
    """The control: the same read with the batches gathered is counted at full size."""
    stream = Stream.from_kafka_batched(
        ten_megabytes, params(kafka_bootstrap), dask=True, max_batch_size=1000, poll_interval=0.05
    )
    batches = stream.buffer(8).gather().sink_to_list()
    client_reads.reset()
    _run_to_end(stream, batches, lambda L: sum(map(len, L)) == N_RECORDS)
    received = client_reads.client_bytes
    print(f"\nclient received {received} bytes for {PAYLOAD} bytes of records (gathered)")
    assert PAYLOAD <= received < 1.2 * PAYLOAD, received


def test_commits_never_pass_a_batch_still_running_on_a_worker(
    cluster_client, kafka_bootstrap, kafka_topic, tmp_path
):
    topic = kafka_topic(1)
    produce(kafka_bootstrap, topic, records(24), partition=0)
    config = params(kafka_bootstrap)
    flag = tmp_path / "go"
    # batches of 3: offsets 0-2, 3-5, 6-8 (held on its worker until the flag), 9-11...
    stream = Stream.from_kafka_batched(
        topic, config, dask=True, max_batch_size=3, poll_interval=0.02
    )
    counted = stream.map(wait_for_flag_if, b"r6", str(flag))
    futures = counted.sink_to_list()
    counts = counted.buffer(8).gather().sink_to_list()
    source = stream.upstream.upstream
    stream.start()
    try:
        wait_for(lambda: len(futures) == 8, 20)
        # every later batch has finished on the workers; the held one has not
        wait_for(lambda: all(f.status == "finished" for f in futures[3:]), 20)
        assert futures[2].status == "pending"
        wait_for(lambda: source.committed.get((topic, 0)) == 6, 10)
        time.sleep(0.3)  # many commit cycles
        assert source.committed == {(topic, 0): 6}
        assert committed(kafka_bootstrap, config["group.id"], topic, 1) == {0: 6}
        assert counts == [3, 3]
        flag.touch()
        wait_for(lambda: len(counts) == 8, 20)
        wait_for(lambda: source.committed.get((topic, 0)) == 24, 10)
    finally:
        flag.touch()
        source.stop()
    assert counts == [3] * 8
    assert committed(kafka_bootstrap, config["group.id"], topic, 1) == {0: 24}


def test_a_failing_task_stops_the_source_and_is_never_committed_past(
    cluster_client, kafka_bootstrap, kafka_topic
):
    topic = kafka_topic(1)
    produce(kafka_bootstrap, topic, records(24), partition=0)
    config = params(kafka_bootstrap)
    stream = Stream.from_kafka_batched(
        topic, config, dask=True, max_batch_size=3, poll_interval=0.02
    )
    futures = stream.sink_to_list()
    counts = stream.map(fail_if, b"r10").buffer(8).gather().sink_to_list()
    source = stream.upstream.upstream
    stream.start()
    wait_for(lambda: source.stopped and source.work_task.done(), 20)
    assert isinstance(source.error, ValueError), repr(source.error)
    notes = "\n".join(source.error.__notes__)
    assert "submitted by <map: fail_if>" in notes
    assert f"kafka: while processing topic {topic!r} partition 0 offsets 9..11" in notes
    # the batches before the failed one, then any planned after it (drained on stop)...
    assert counts[:3] == [3, 3, 3] and len(counts) <= 7 and len(futures) >= 4
    # ...are never committed past it
    assert committed(kafka_bootstrap, config["group.id"], topic, 1) == {0: 9}

    # at least once: the group's next pipeline starts again at the failed batch
    again = Stream.from_kafka_batched(
        topic, config, dask=True, max_batch_size=3, poll_interval=0.02
    )
    batches = again.gather().sink_to_list()
    _run_to_end(again, batches, lambda L: sum(map(len, L)) == 15)
    assert [r for b in batches for r in b] == records(24)[9:]
    assert committed(kafka_bootstrap, config["group.id"], topic, 1) == {0: 24}
