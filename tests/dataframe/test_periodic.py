"""PeriodicDataFrame (DataFrame.from_periodic), Random (DataFrame.random), random_datablock,
random_datapoint: timing, shape, start/stop, garbage collection, Dask."""

from __future__ import annotations

import gc
import itertools
import time

import numpy as np
import pandas as pd
import pytest

from millstream.dataframe import DataFrame, PeriodicDataFrame, Random
from millstream.dataframe.core import random_datablock, random_datapoint
from millstream.testing import wait_for


def test_random_chunks_arrive_at_roughly_the_interval_with_x_y_z_on_a_datetime_index():
    sdf = DataFrame.random(freq="10ms", interval="100ms")
    arrivals: list[float] = []
    chunks = sdf.stream.map(lambda c: arrivals.append(time.monotonic()) or c).sink_to_list()
    try:
        wait_for(lambda: len(chunks) >= 6, 10)
    finally:
        sdf.stop()
    assert isinstance(sdf, Random) and isinstance(sdf, DataFrame)
    gaps = np.diff(arrivals)
    assert 0.08 < float(np.median(gaps)) < 0.3, gaps
    frame = pd.concat(chunks)
    assert list(frame.columns) == ["x", "y", "z"]
    assert isinstance(frame.index, pd.DatetimeIndex) and frame.index.is_monotonic_increasing
    freq = pd.Timedelta("10ms")
    for chunk in chunks:
        assert (chunk.index.to_series().diff().dropna() == freq).all()
    joins = [b.index[0] - a.index[-1] for a, b in itertools.pairwise(chunks) if len(a) and len(b)]
    assert joins and all(freq <= j < 2 * freq for j in joins)  # no overlap, no lost row
    assert 5 <= float(np.median([len(c) for c in chunks[1:]])) <= 15
    assert ((frame.x >= 0) & (frame.x < 1)).all()
    assert (frame.y >= 0).all() and frame.y.dtype.kind == "i"
    assert frame.z.dtype.kind == "f"
    assert list(sdf.example.columns) == ["x", "y", "z"] and len(sdf.example) == 0


def test_from_periodic_calls_the_user_datafn_with_last_now_and_its_kwargs():
    calls: list[dict] = []

    def datafn(last, now, **kwargs):
        calls.append({"last": last, "now": now, **kwargs})
        return pd.DataFrame({"span": [(now - last).total_seconds()]})

    sdf = DataFrame.from_periodic(datafn=datafn, interval="50ms", scale=3)
    assert isinstance(sdf, PeriodicDataFrame)
    example_call = calls[0]  # the example: computed at construction, last == now
    assert example_call["last"] == example_call["now"] and example_call["scale"] == 3
    spans = sdf.span.stream.sink_to_list()
    try:
        wait_for(lambda: len(spans) >= 3, 10)
    finally:
        sdf.stop()
    ticks = calls[1:]
    assert all(c["scale"] == 3 and isinstance(c["now"], pd.Timestamp) for c in ticks)
    assert all(b["last"] == a["now"] for a, b in itertools.pairwise(ticks))
    assert all(0.03 < float(s.iloc[0]) < 1.0 for s in spans)


def test_start_false_waits_and_stop_ends_the_task_and_the_chunks():
    sdf = PeriodicDataFrame(interval=0.02, start=False, freq=pd.Timedelta("5ms"))
    chunks = sdf.stream.sink_to_list()
    time.sleep(0.1)
    assert chunks == [] and sdf.source.stopped
    sdf.start()
    wait_for(lambda: len(chunks) >= 2, 10)
    sdf.stop()
    assert sdf.source.stopped and sdf.source.work_task.done()
    n = len(chunks)
    time.sleep(0.1)
    assert len(chunks) == n
    sdf.start()  # restarts; ``last`` is the restart time, not the stop time
    wait_for(lambda: len(chunks) >= n + 2, 10)
    sdf.stop()
    assert chunks[n].index[0] > chunks[n - 1].index[-1] + pd.Timedelta("50ms")


def test_stop_interrupts_a_long_interval_at_once():
    sdf = Random(interval="1h")
    t0 = time.monotonic()
    sdf.stop()
    assert time.monotonic() - t0 < 1 and sdf.source.work_task.done()


def test_garbage_collection_stops_the_source_and_leaves_no_task_running():
    sdf = Random(freq="5ms", interval="20ms")
    source = sdf.source
    chunks = sdf.stream.sink_to_list()
    wait_for(lambda: len(chunks) >= 1, 10)
    del sdf
    gc.collect()
    wait_for(lambda: source.work_task.done(), 5)
    assert source.stopped
    n = len(chunks)
    time.sleep(0.1)
    assert len(chunks) == n


def test_random_datablock_and_datapoint():
    t = pd.Timestamp("2026-01-01")
    df = random_datablock(t, t + pd.Timedelta("1s"))  # freq defaults to 100ms
    assert len(df) == 10 and df.index[0] == t + pd.Timedelta("100ms")
    assert len(random_datablock(t, t, freq=pd.Timedelta("1ms"))) == 0
    one = random_datapoint(now=t)
    assert list(one.columns) == ["a"] and list(one.index) == [t]
    assert len(random_datapoint()) == 1


def test_dask_true_computes_the_chunks_on_the_workers():
    distributed = pytest.importorskip("distributed")
    from millstream.dask import DaskStream

    with distributed.Client(
        processes=False, n_workers=1, threads_per_worker=1, dashboard_address=None
    ):
        sdf = Random(freq="10ms", interval="50ms", dask=True)
        assert isinstance(sdf.stream, DaskStream)
        chunks = sdf.stream.gather().sink_to_list()
        try:
            wait_for(lambda: len(chunks) >= 2, 20)
        finally:
            sdf.stop()
    assert all(list(c.columns) == ["x", "y", "z"] for c in chunks)
    assert sum(len(c) for c in chunks) >= 5


def test_a_failing_datafn_stops_the_source_with_an_error_naming_it():
    def broken(last, now, **kwargs):
        if last != now:
            raise ZeroDivisionError("no data")
        return pd.DataFrame({"a": [1.0]})

    sdf = PeriodicDataFrame(datafn=broken, interval=0.02)
    wait_for(lambda: sdf.source.stopped, 10)
    assert isinstance(sdf.source.error, ZeroDivisionError)
    assert "broken" in "\n".join(getattr(sdf.source.error, "__notes__", []))
    wait_for(lambda: sdf.source.work_task.done(), 5)  # the task ends just after `stopped`
