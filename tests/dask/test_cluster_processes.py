"""Dask streams on two real clusters: a ``LocalCluster`` and ``dask scheduler`` +
``dask worker`` processes started with the command line (fixture ``cluster_client``).

The subset covers the border (scatter, gather), tasks (map, starmap, accumulate), local
nodes over futures (buffer, partition, zip) and a task's error crossing processes.
"""

from __future__ import annotations

import os
import subprocess
import time

import pytest
from distributed import Client, Future, get_worker

from millstream import Stream
from millstream.testing import wait_for


def inc(x):
    return x + 1


def where(x):
    """``(x, the worker's address, its pid)``, after a short nap (so tasks overlap)."""
    time.sleep(0.05)
    return x, get_worker().address, os.getpid()


def add(acc, x):
    return acc + x


def bad(x):
    return 1 / x


def test_the_cli_cluster_is_separate_dask_processes(process_cluster):
    """Workers are the children of the ``dask worker`` nannies, and can import millstream."""
    with Client(process_cluster.scheduler_address) as client:

        def about():
            import millstream

            return os.getpid(), os.getppid(), millstream.__name__

        info = client.run(about)
    nannies = {p.pid for p in process_cluster.workers.values()}
    assert len(info) == 2
    assert {ppid for _, ppid, _ in info.values()} == nannies
    assert all(pid != os.getpid() and name == "millstream" for pid, _, name in info.values())
    assert process_cluster.scheduler.poll() is None


def test_scatter_map_gather_runs_on_worker_processes(cluster_client):
    source = Stream()
    futures = source.scatter().map(where).sink_to_list()
    L = source.scatter().map(inc).map(inc).gather().sink_to_list()
    for i in range(5):
        source.emit(i)
    assert L == [2, 3, 4, 5, 6]
    assert all(isinstance(f, Future) and f.client is cluster_client for f in futures)
    pids = {pid for _, _, pid in cluster_client.gather(futures)}
    assert os.getpid() not in pids


def test_buffer_keeps_both_workers_busy_and_the_order(cluster_client):
    source = Stream()
    L = source.scatter().map(where).buffer(8).gather().sink_to_list()
    for i in range(12):
        source.emit(i)
    wait_for(lambda: len(L) == 12, 30)
    assert [x for x, _, _ in L] == list(range(12))
    assert {address for _, address, _ in L} == set(cluster_client.scheduler_info()["workers"])


def test_accumulate_state_stays_on_the_cluster(cluster_client):
    source = Stream()
    node = source.scatter().accumulate(add, start=100)
    states = node.sink_to_list()
    L = node.gather().sink_to_list()
    for i in range(5):
        source.emit(i)
    assert L == [100, 101, 103, 106, 110]
    assert all(isinstance(s, Future) for s in states)
    assert node.snapshot() == {"state": 110}


def test_accumulate_returns_state_and_starmap(cluster_client):
    def running(acc, x):
        return acc + x, (acc, x)

    source = Stream()
    pairs = source.scatter().accumulate(running, start=0, returns_state=True)
    L = pairs.starmap(lambda acc, x: f"{acc}+{x}").gather().sink_to_list()
    for i in range(1, 5):
        source.emit(i)
    assert L == ["0+1", "1+2", "3+3", "6+4"]


def test_partition_and_zip_of_futures(cluster_client):
    source = Stream()
    scattered = source.scatter()
    pairs = scattered.partition(2).gather().sink_to_list()
    zipped = scattered.zip(scattered.map(inc)).gather().sink_to_list()
    for i in range(4):
        source.emit(i)
    assert pairs == [(0, 1), (2, 3)]
    assert zipped == [(0, 1), (1, 2), (2, 3), (3, 4)]


def test_a_task_error_crosses_processes_with_its_note(cluster_client):
    source = Stream()
    L = source.scatter().map(bad).gather().sink_to_list()
    with pytest.raises(ZeroDivisionError) as info:
        source.emit(0)
    assert "submitted by <map: bad>" in "\n".join(info.value.__notes__)
    source.emit(4)
    assert L == [0.25]


def test_closing_a_cli_cluster_leaves_no_process(start_process_cluster):
    cluster = start_process_cluster(n_workers=1)
    with Client(cluster.scheduler_address) as client:
        worker_pids = list(client.run(os.getpid).values())
    pids = [cluster.scheduler.pid, *(p.pid for p in cluster.workers.values()), *worker_pids]
    cluster.close()
    for pid in pids:
        # reaped CLI processes are gone; the nanny's worker must not linger as an orphan
        out = subprocess.run(["ps", "-o", "stat=", "-p", str(pid)], capture_output=True, text=True)
        assert out.stdout.strip() in ("", "Z"), f"pid {pid} still running: {out.stdout!r}"
