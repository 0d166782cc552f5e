"""The Dask examples of the Streamz documentation (docs/source/dask.rst), run unchanged except
for the import (``from millstream import Stream``) and a shorter ``sleep`` in ``inc``.

The ``client`` fixture stands for the docs' ``client = Client()``: a real LocalCluster with
two worker processes. Expected outputs were checked against streamz 0.6.6 on the same cluster.
"""

from __future__ import annotations

from time import sleep

from millstream import Stream
from millstream.dask import DaskStream
from millstream.testing import wait_for


def inc(x):
    sleep(0.01)  # simulate actual work (the docs sleep 1 s)
    return x + 1


def test_sequential_execution(capsys):
    source = Stream()
    source.map(inc).sink(print)

    for i in range(10):
        source.emit(i)

    assert capsys.readouterr().out.split() == [str(i + 1) for i in range(10)]


def test_parallel_execution_scatter_map_buffer_gather_sink(client, capsys):
    source = Stream()
    source.scatter().map(inc).buffer(8).gather().sink(print)

    for i in range(10):
        source.emit(i)

    out: list[str] = []
    wait_for(lambda: out.extend(capsys.readouterr().out.split()) or len(out) >= 10, 10)
    assert out == [str(i + 1) for i in range(10)]


def test_parallel_execution_into_a_list(client):
    L: list[int] = []
    source = Stream()
    source.scatter().map(inc).buffer(8).gather().sink(L.append)
    for i in range(10):
        source.emit(i)
    wait_for(lambda: len(L) == 10, 10)
    assert L == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]


def test_from_iterable_scatter_map_gather(client):
    source = Stream.from_iterable(range(10))
    L = source.scatter().map(inc).gather().sink_to_list()
    source.start()
    wait_for(lambda: len(L) == 10, 10)
    assert L == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]


def test_gotcha_a_stream_node_after_a_dask_stream_receives_futures(client):
    from distributed import Future

    source = Stream()
    source2 = Stream()
    a = source.scatter().map(inc)
    b = source2.combine_latest(a)

    assert isinstance(a, DaskStream) and not isinstance(b, DaskStream)
    L = b.sink_to_list()
    source2.emit("x")
    source.emit(1)
    assert len(L) == 1 and L[0][0] == "x" and isinstance(L[0][1], Future)
    assert L[0][1].result() == 2
