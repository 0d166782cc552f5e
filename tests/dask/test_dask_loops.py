"""Which loop a Dask graph runs on, asynchronous clients, and the lazy import of dask."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest
from distributed import Client

from millstream import Stream
from millstream.core.loop import EventLoop, get_io_loop
from millstream.dask import DaskStream
from millstream.testing import wait_for


def inc(x):
    return x + 1


def test_a_sync_graph_runs_on_millstreams_loop_not_the_clients(client):
    source = Stream()
    L = source.scatter().map(inc).gather().sink_to_list()
    assert source.loop is get_io_loop(False)
    assert source.loop.asyncio_loop is not client.loop.asyncio_loop
    assert source.asynchronous is False
    source.emit(1)
    assert L == [2]


def test_a_source_with_a_loop_before_the_client_is_fine(client):
    # Streamz #401: a graph whose source picked a loop before scatter() must not clash
    source = Stream.from_iterable(range(3))
    assert source.loop is not None
    L = source.scatter().map(inc).gather().sink_to_list()
    source.start()
    wait_for(lambda: len(L) == 3, 10)
    assert L == [1, 2, 3]


def test_a_graph_on_the_clients_own_loop(client):
    # as from_kafka_batched(dask=True) does in Streamz: loop=client.loop
    source = Stream(loop=client.loop)
    L = source.scatter().map(inc).buffer(2).gather().sink_to_list()
    for i in range(3):
        source.emit(i)
    wait_for(lambda: len(L) == 3, 10)
    assert L == [1, 2, 3]


def test_an_in_process_client_becomes_the_default(client, inproc_client):
    from distributed import get_worker

    def where(x):
        return get_worker().address

    source = Stream()
    addresses = source.scatter().map(where).gather().sink_to_list()
    source.emit(1)
    assert addresses == list(inproc_client.scheduler_info()["workers"])


@pytest.mark.asyncio
async def test_an_asynchronous_client_on_the_running_loop(dask_cluster):
    async with Client(dask_cluster.scheduler_address, asynchronous=True) as client:
        source = Stream()
        L = source.scatter().map(inc).buffer(4).gather().sink_to_list()
        running = asyncio.get_running_loop()
        assert source.asynchronous is True
        assert source.loop is EventLoop.wrap(running)
        assert client.loop.asyncio_loop is running
        for i in range(5):
            await source.emit(i)
        for _ in range(1000):
            if len(L) == 5:
                break
            await asyncio.sleep(0.01)
        assert L == [1, 2, 3, 4, 5]


@pytest.mark.asyncio
async def test_an_asynchronous_client_with_an_explicit_asynchronous_source(dask_cluster):
    async with Client(dask_cluster.scheduler_address, asynchronous=True):
        source = Stream(asynchronous=True)
        L = source.scatter().map(inc).gather().sink_to_list()
        for i in range(3):
            await source.emit(i)
        assert L == [1, 2, 3]


@pytest.mark.asyncio
async def test_an_asynchronous_graph_with_a_synchronous_client(client):
    source = Stream(asynchronous=True)
    L = source.scatter().map(inc).gather().sink_to_list()
    assert source.loop.asyncio_loop is asyncio.get_running_loop()
    assert client.loop.asyncio_loop is not asyncio.get_running_loop()
    for i in range(3):
        await source.emit(i)
    assert L == [1, 2, 3]


def test_no_client_raises_from_the_emitter_with_a_note():
    code = (
        "from millstream import Stream\n"
        "s = Stream(); s.scatter().gather().sink_to_list()\n"
        "try:\n"
        "    s.emit(1)\n"
        "except ValueError as e:\n"
        "    print('No clients found' in str(e), e.__notes__[0].startswith("
        "'millstream: <scatter> failed'))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.split() == ["True", "True"]


def test_import_millstream_does_not_import_dask_until_scatter():
    code = (
        "import sys, millstream\n"
        "print(sorted(m for m in ('dask', 'distributed') if m in sys.modules))\n"
        "node = millstream.Stream().scatter()\n"
        "print(type(node).__name__, 'distributed' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.splitlines() == ["[]", "scatter True"]


def test_scatter_without_distributed_names_the_extra_to_install():
    code = (
        "import sys\n"
        "sys.modules['distributed'] = None\n"
        "from millstream import Stream\n"
        "try:\n"
        "    Stream().scatter()\n"
        "except ImportError as e:\n"
        "    print(e)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert "pip install 'millstream[dask]'" in out.stdout


def test_dask_stream_built_without_any_client_uses_the_background_loop():
    node = DaskStream()
    assert node.loop is get_io_loop(False) and node.asynchronous is False
