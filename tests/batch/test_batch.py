"""millstream.batch and millstream.collection against Streamz's semantics."""

from __future__ import annotations

import operator

import pytest

from millstream import Stream
from millstream.batch import Batch
from millstream.collection import Streaming, get_stream_type, map_partitions

RECORDS = [
    [{"name": "Alice", "value": 1}, {"name": "Bob", "value": -2}],
    [{"name": "C", "value": 3}],
]


def run_pipeline(stream_cls):
    source = stream_cls()
    batches = source.to_batch()
    sums = batches.pluck("value").map(abs).sum().stream.sink_to_list()
    names = batches.filter(lambda r: r["value"] > 0).pluck("name").stream.sink_to_list()
    flat = batches.pluck("name").to_stream().sink_to_list()
    for records in RECORDS:
        source.emit(records)
    return sums, names, flat, type(batches.pluck("value")).__name__


def test_pipeline_results():
    assert run_pipeline(Stream) == ([3, 6], [["Alice"], ["C"]], ["Alice", "Bob", "C"], "Batch")


def test_same_as_streamz():
    streamz = pytest.importorskip("streamz")
    pytest.importorskip("streamz.batch")

    assert run_pipeline(Stream) == run_pipeline(streamz.Stream)


def test_result_types_follow_the_example():
    b = Batch()
    assert isinstance(b.map(str), Batch)
    total = b.sum()
    assert type(total) is Streaming and total.example == 0
    assert get_stream_type((1,)) is Batch and get_stream_type({1}) is Batch
    assert get_stream_type(1.5) is None


def test_to_batch_example_and_stream():
    source = Stream()
    b = source.to_batch(example=[1])
    assert isinstance(b, Batch) and b.stream is source and b.example == [1]


def test_pluck_list():
    b = Batch()
    pairs = b.pluck(["a", "b"]).stream.sink_to_list()
    b.emit([{"a": 1, "b": 2}])
    assert pairs == [[(1, 2)]]


def test_emit_verifies_subtype():
    class Ints(Streaming):
        subtype = int

    s = Ints(example=0)
    assert s._subtype is int and s._stream_type == "streaming"
    with pytest.raises(TypeError, match="expected a chunk of type"):
        s.emit("x")


def test_example_required_and_stream_type_checked():
    with pytest.raises(TypeError, match="example"):
        Streaming()
    with pytest.raises(ValueError):
        Streaming(example=1, stream_type="other")


def test_operators_and_zip():
    a, b = Streaming(example=0), Streaming(example=0)
    out = (a + b).stream.sink_to_list()
    neg = (-a).stream.sink_to_list()
    rsub = (10 - a).stream.sink_to_list()
    cmp = (a > 1).stream.sink_to_list()
    a.emit(3)
    b.emit(4)
    assert out == [7] and neg == [-3] and rsub == [7] and cmp == [True]
    with pytest.raises(TypeError):
        hash(a)


def test_stream_type_of_results():
    up = Streaming(example=0, stream_type="updating")
    assert (up + 1).stream_type == "updating"
    assert map_partitions(operator.add, up, Streaming(example=0)).stream_type == "streaming"
    assert map_partitions(abs, up, stream_type="streaming").stream_type == "streaming"


def test_accumulate_partitions_returns_state_and_args():
    s = Streaming(example=0)

    def running(acc, x, scale):
        acc = acc + x * scale
        return acc, -acc

    out = s.accumulate_partitions(running, 10, start=0, returns_state=True).stream.sink_to_list()
    s.emit(1)
    s.emit(2)
    assert out == [-10, -30]


def test_repr_and_current_value():
    b = Batch(example=[1, 2])
    assert repr(b) == "Batch - elements like:\n[1, 2]"
    assert "<h5>Batch" in b._repr_html_()
    b.stream.sink(lambda x: None)
    b.emit([5])
    assert b.current_value == [5]


def test_to_dataframe_when_available():
    pd = pytest.importorskip("pandas")
    b = Batch()
    try:
        import millstream.dataframe  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match=r"millstream\.dataframe"):
            b.to_dataframe()
        return
    frames = b.to_dataframe().stream.sink_to_list()
    b.emit([{"x": 1}])
    pd.testing.assert_frame_equal(frames[0], pd.DataFrame([{"x": 1}]))
