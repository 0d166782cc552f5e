"""Which client a Dask stream uses: ``distributed.default_client()`` as each element
arrives, exactly as in Streamz.

distributed's rule: the *current* client of the emitting context (set by ``with
Client(...)``, ``async with`` or ``client.as_current()``) if there is one, else the most
recently created client that is still open (``set_as_default=False`` clients never count).
millstream runs each element's work in the context of the call that emitted it (asyncio
copies it across threads), so the rule holds from any thread, as in Streamz.

Two real clusters tell the clients apart by where the tasks ran: the session's
``LocalCluster`` (fixture ``client``, created without ``with``) and the ``dask`` CLI
cluster (``process_cluster``). "streamz 0.6.6" marks behaviour checked by running streamz
with two clients.
"""

from __future__ import annotations

import asyncio
import threading

import pytest
from distributed import Client, default_client, get_worker

from millstream import Stream


def where(x):
    return x, get_worker().address


def inc(x):
    return x + 1


def add(acc, x):
    return acc + x


def _clusters(client, process_cluster, L):
    """'local' or 'cli' for each ``(x, worker address)`` in ``L``."""
    local = set(client.scheduler_info()["workers"])
    with Client(process_cluster.scheduler_address, set_as_default=False) as c:
        cli = set(c.scheduler_info()["workers"])
    return ["local" if a in local else "cli" if a in cli else a for _, a in L]


def _emit_from_another_thread(source, x):
    errors = []

    def run():
        try:
            source.emit(x)
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(30)
    assert not thread.is_alive() and errors == []


def test_the_newest_client_is_used_and_the_older_one_after_it_closes(client, process_cluster):
    newer = Client(process_cluster.scheduler_address)
    try:
        assert default_client() is newer
        source = Stream()  # built while the newer client is the default
        scattered = source.scatter()
        futures = scattered.sink_to_list()
        L = scattered.map(where).gather().sink_to_list()
        source.emit(0)
        assert futures[0].client is newer
    finally:
        newer.close()
    assert default_client() is client
    # streamz 0.6.6: this graph runs on the newer client's loop, and emit now hangs
    source.emit(1)
    assert futures[1].client is client
    assert [x for x, _ in L] == [0, 1]
    assert _clusters(client, process_cluster, L) == ["cli", "local"]


def test_a_graph_built_before_a_new_client_moves_to_it_and_back(client, process_cluster):
    source = Stream()
    L = source.scatter().map(where).gather().sink_to_list()
    source.emit(0)
    newer = Client(process_cluster.scheduler_address)
    try:
        source.emit(1)
    finally:
        newer.close()
    source.emit(2)
    assert _clusters(client, process_cluster, L) == ["local", "cli", "local"]  # streamz 0.6.6


def test_the_current_client_of_the_emitting_context_wins_over_a_newer_one(client, process_cluster):
    source = Stream()
    L = source.scatter().map(where).gather().sink_to_list()
    newer = Client(process_cluster.scheduler_address)
    try:
        with client.as_current():
            source.emit(0)  # this context's current client: the older one
            _emit_from_another_thread(source, 1)  # no current client there: the newest
        source.emit(2)
    finally:
        newer.close()
    assert _clusters(client, process_cluster, L) == ["local", "cli", "cli"]  # streamz 0.6.6


def test_a_client_not_set_as_default_is_not_used(client, process_cluster):
    source = Stream()
    L = source.scatter().map(where).gather().sink_to_list()
    with Client(process_cluster.scheduler_address, set_as_default=False):
        source.emit(0)
    assert _clusters(client, process_cluster, L) == ["local"]  # streamz 0.6.6


@pytest.mark.asyncio
async def test_an_asynchronous_client_of_the_cli_cluster(client, process_cluster):
    async with Client(process_cluster.scheduler_address, asynchronous=True) as aclient:
        assert default_client() is aclient
        source = Stream()
        scattered = source.scatter()
        assert scattered.asynchronous is True  # the graph runs on this loop
        L = scattered.map(inc).accumulate(add, start=0).buffer(4).gather().sink_to_list()
        places = scattered.map(where).gather().sink_to_list()
        for i in range(5):
            await source.emit(i)
        for _ in range(2000):
            if len(L) == 5:
                break
            await asyncio.sleep(0.005)
        assert L == [1, 3, 6, 10, 15]
        assert {a for _, a in places} <= set(await aclient.run(inc, 0))  # its workers


@pytest.mark.asyncio
async def test_an_asynchronous_graph_goes_back_to_the_older_client_when_the_newer_closes(
    client, process_cluster
):
    async with Client(process_cluster.scheduler_address, asynchronous=True):
        source = Stream()
        L = source.scatter().map(where).gather().sink_to_list()
        await source.emit(0)
    assert default_client() is client
    await source.emit(1)  # the graph stays on this loop; the synchronous client serves it
    assert [x for x, _ in L] == [0, 1]
    assert _clusters(client, process_cluster, L) == ["cli", "local"]


def _count_scheduler_gathers(dask_scheduler):
    """Wrap the scheduler's ``gather`` handler (looked up per message) with a counter."""
    original = dask_scheduler.handlers["gather"]
    if getattr(original, "calls", None) is None:

        async def counting(*args, **kwargs):
            counting.calls += 1
            return await original(*args, **kwargs)

        counting.calls = 0
        counting.original = original
        dask_scheduler.handlers["gather"] = counting
    return 0


def _scheduler_gathers(dask_scheduler, restore=False):
    handler = dask_scheduler.handlers["gather"]
    calls = handler.calls
    if restore:
        dask_scheduler.handlers["gather"] = handler.original
    return calls


def test_results_come_from_the_workers_unless_the_client_says_otherwise(client):
    """``gather`` fetches directly on this machine's cluster; ``direct_to_workers=False``
    (a client that cannot reach the workers) routes results through the scheduler."""
    from millstream.dask._bridge import gathers_directly

    assert client.scheduler.address.startswith("tcp://127.0.0.1:") and gathers_directly(client)
    client.run_on_scheduler(_count_scheduler_gathers)
    try:
        source = Stream()
        L = source.scatter().map(inc).gather().sink_to_list()
        source.emit(1)
        assert L == [2] and client.run_on_scheduler(_scheduler_gathers) == 0
        with Client(client.scheduler.address, direct_to_workers=False) as through_scheduler:
            assert not gathers_directly(through_scheduler)
            source.emit(2)
            assert L == [2, 3] and client.run_on_scheduler(_scheduler_gathers) == 1
    finally:
        client.run_on_scheduler(_scheduler_gathers, restore=True)
