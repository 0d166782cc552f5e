"""from_kafka_batched(engine='pandas' | 'cudf'): JSON-lines batches as frames, against a real
broker (engine='pandas'; cudf runs in scripts/gpu-check), with commits and refs unchanged."""

from __future__ import annotations

import json
import pickle
import sys
import time

import pandas as pd
import pytest

from millstream import Stream
from millstream.core import release_refs
from millstream.kafka import close_pooled_consumers
from millstream.sources.kafka_frames import JsonLinesFrame, ReadJsonLinesFrame
from millstream.testing import wait_for

from ._produce import committed, params, produce
from .test_from_kafka import Hold


def records(n):
    return [{"i": i, "x": i * 0.5, "name": f"n{i}"} for i in range(n)]


def encoded(rows):
    return [json.dumps(r).encode() for r in rows]


def test_each_batch_is_one_frame_equal_to_its_json_records(kafka_bootstrap, kafka_topic):
    topic = kafka_topic(2)
    rows = records(20)
    produce(kafka_bootstrap, topic, encoded(rows), partition=lambda i: i % 2)
    config = params(kafka_bootstrap)
    stream = Stream.from_kafka_batched(
        topic, config, poll_interval=0.05, max_batch_size=4, engine="pandas"
    )
    frames = stream.sink_to_list()
    source = stream.upstream
    source.start()
    try:
        wait_for(lambda: sum(len(f) for f in frames) == 20, 15)
    finally:
        source.stop()
    assert all(isinstance(f, pd.DataFrame) and 1 <= len(f) <= 4 for f in frames)
    for p in range(2):
        mine = pd.concat([f for f in frames if f.i.iloc[0] % 2 == p], ignore_index=True)
        expected = pd.DataFrame([r for r in rows if r["i"] % 2 == p])
        pd.testing.assert_frame_equal(mine, expected)
    assert committed(kafka_bootstrap, config["group.id"], topic, 2) == {0: 10, 1: 10}


def test_frames_feed_a_streaming_dataframe(kafka_bootstrap, kafka_topic):
    topic = kafka_topic(1)
    produce(kafka_bootstrap, topic, encoded(records(10)), partition=0)
    stream = Stream.from_kafka_batched(
        topic, params(kafka_bootstrap), poll_interval=0.05, max_batch_size=3, engine="pandas"
    )
    sdf = stream.to_dataframe(example=pd.DataFrame(records(1)).iloc[:0])
    totals = sdf.x.sum().stream.sink_to_list()
    stream.upstream.start()
    try:
        wait_for(lambda: totals and float(totals[-1]) == sum(r["x"] for r in records(10)), 15)
    finally:
        stream.upstream.stop()


def test_a_batch_that_is_not_json_lines_stops_the_source_and_is_not_committed_past(
    kafka_bootstrap, kafka_topic
):
    topic = kafka_topic(1)
    config = params(kafka_bootstrap)
    good = encoded(records(4))
    produce(kafka_bootstrap, topic, [*good[:2], b"{not json", *good[2:]], partition=0)
    stream = Stream.from_kafka_batched(
        topic, config, poll_interval=0.05, max_batch_size=2, engine="pandas"
    )
    frames = stream.sink_to_list()
    source = stream.upstream
    source.start()
    wait_for(lambda: source.stopped, 15)
    assert [f.i.tolist() for f in frames] == [[0, 1]]
    assert isinstance(source.error, ValueError)
    assert f"topic {topic!r} partition 0" in "\n".join(source.error.__notes__)
    assert committed(kafka_bootstrap, config["group.id"], topic, 1) == {0: 2}


def test_a_frame_held_downstream_is_committed_only_once_released(kafka_bootstrap, kafka_topic):
    topic = kafka_topic(1)
    produce(kafka_bootstrap, topic, encoded(records(3)), partition=0)
    stream = Stream.from_kafka_batched(
        topic, params(kafka_bootstrap), poll_interval=0.05, max_batch_size=1, engine="pandas"
    )
    hold = Hold(stream)
    source = stream.upstream
    source.start()
    try:
        wait_for(lambda: len(hold.held) == 3, 15)
        time.sleep(0.2)
        assert source.committed == {}
        for _, metadata in list(hold.held):
            release_refs(metadata)
        wait_for(lambda: source.committed == {(topic, 0): 3}, 5)
    finally:
        source.stop()


def test_the_dask_reader_reads_a_range_into_a_frame_and_pickles(kafka_bootstrap, kafka_topic):
    topic = kafka_topic(1)
    rows = records(5)
    produce(kafka_bootstrap, topic, encoded(rows), partition=0)
    read = pickle.loads(pickle.dumps(ReadJsonLinesFrame("pandas")))
    close_pooled_consumers()
    try:
        frame = read(params(kafka_bootstrap), topic, 0, True, 1, 3, 10)
    finally:
        pooled = close_pooled_consumers()  # the read's consumer, kept for the next read
    pd.testing.assert_frame_equal(frame, pd.DataFrame(rows[1:4]))
    assert pooled == 1


def test_tombstones_only_give_an_empty_frame():
    assert JsonLinesFrame("pandas")([]).empty


def test_a_missing_cudf_is_a_one_line_import_error_naming_the_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "cudf", None)  # as if not installed
    with pytest.raises(ImportError) as info:
        Stream.from_kafka_batched("t", {"bootstrap.servers": "localhost:1"}, engine="cudf")
    message = str(info.value)
    assert "\n" not in message and "pip install cudf-cu12" in message
    assert "engine='cudf'" in message


def test_an_unknown_engine_is_a_value_error():
    with pytest.raises(ValueError, match="engine must be None, 'cudf' or 'pandas'"):
        Stream.from_kafka_batched("t", {"bootstrap.servers": "localhost:1"}, engine="arrow")


def test_the_kafka_cudf_benchmark_prints_one_json_line_here_with_pandas(kafka_bootstrap):
    import os
    import subprocess
    from pathlib import Path

    bench = Path(__file__).resolve().parents[2] / "benchmarks" / "kafka_cudf.py"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [
        str(bench.parents[1] / "src"), os.environ.get("PYTHONPATH")]))}  # fmt: skip
    proc = subprocess.run(
        [sys.executable, str(bench), "--bootstrap", kafka_bootstrap, "--size", "3000",
         "--repeat", "1", "--batch", "500", "--engines", "millstream_pandas,streamz_pandas"],
        capture_output=True, text=True, timeout=300, env=env, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1
    result = json.loads(lines[0])
    assert result["benchmark"] == "kafka_cudf" and result["all_checks_passed"]
    assert set(result["times_s"]) == {"millstream_pandas", "streamz_pandas"}
    assert result["frame_types"]["millstream_pandas"] == ["pandas.DataFrame"]
