"""Event timestamps and watermarks (millstream.time.watermarks).

The tracker is tested on its own (per partition, out-of-orderness bound, idle partitions on
a ManualClock, end of input, snapshots), then the ``with_timestamps`` node (elements pass
unchanged, listeners, the idle timer on the graph's loop, errors, snapshots), then the
graph functions ``watermark_sources``/``watermark``.
"""

from __future__ import annotations

import asyncio
import datetime
import fractions
import math
import pickle
from typing import Any

import pytest

import millstream
from millstream import ManualClock, RefCounter, Stream
from millstream.time import (
    NO_WATERMARK,
    WatermarkTracker,
    to_timestamp,
    watermark,
    watermark_sources,
    with_timestamps,
)

UTC = datetime.timezone.utc


def record(key, value, partition, timestamp):
    """A record as ``from_kafka(..., keys=True)`` emits it (``timestamp`` given in seconds)."""
    return {
        "key": key,
        "value": value,
        "topic": "t",
        "partition": partition,
        "offset": 0,
        "timestamp": int(timestamp * 1000),
    }


# -- to_timestamp ---------------------------------------------------------------------------
def test_to_timestamp_numbers_and_aware_datetimes():
    assert to_timestamp(3) == 3.0 and type(to_timestamp(3)) is float
    assert to_timestamp(2.5) == 2.5
    assert to_timestamp(-1) == -1.0
    assert to_timestamp(datetime.datetime(2024, 1, 1, tzinfo=UTC)) == 1704067200.0
    plus_one = datetime.timezone(datetime.timedelta(hours=1))
    assert to_timestamp(datetime.datetime(2024, 1, 1, 1, tzinfo=plus_one)) == 1704067200.0


def test_to_timestamp_accepts_other_reals_and_datetime_subclasses():
    class Stamp(datetime.datetime):  # as pandas.Timestamp is
        pass

    assert to_timestamp(fractions.Fraction(3, 2)) == 1.5
    assert to_timestamp(Stamp(2024, 1, 1, 0, 0, 1, tzinfo=UTC)) == 1704067201.0
    with pytest.raises(TypeError, match="naive datetime"):
        to_timestamp(Stamp(2024, 1, 1))


@pytest.mark.parametrize(
    "value, fragment",
    [
        (datetime.datetime(2024, 1, 1), "naive datetime"),
        ("2024-01-01", "got str '2024-01-01'"),
        (None, "got NoneType None"),
        (True, "got bool True"),
        (float("nan"), "must not be NaN"),
        (datetime.date(2024, 1, 1), "got date"),
    ],
)
def test_to_timestamp_rejects_other_values_naming_node_and_element(value, fragment):
    with pytest.raises(TypeError) as info:
        to_timestamp(value)
    assert str(info.value).startswith("to_timestamp: ")
    assert fragment in str(info.value)
    with pytest.raises(TypeError) as info:
        to_timestamp(value, node="<my node>", x={"id": 42})
    message = str(info.value)
    assert message.startswith("<my node>: ")
    assert fragment in message
    assert message.endswith("(element {'id': 42})")


# -- WatermarkTracker -----------------------------------------------------------------------
def test_tracker_starts_at_minus_infinity():
    t = WatermarkTracker()
    assert t.watermark == NO_WATERMARK == -math.inf
    assert t.partitions == []
    assert t.idle_deadline() is None


def test_tracker_bound_on_one_partition():
    t = WatermarkTracker(max_out_of_orderness=3)
    seen = []
    for ts in [10, 8, 12, 5, 11, 20]:
        t.observe(ts)
        seen.append(t.watermark)
    assert seen == [7.0, 7.0, 9.0, 9.0, 9.0, 17.0]


def test_tracker_duration_strings_and_timedeltas():
    assert WatermarkTracker("1500ms").max_out_of_orderness == 1.5
    assert WatermarkTracker(datetime.timedelta(minutes=1)).max_out_of_orderness == 60.0
    assert WatermarkTracker(0, idle_timeout="2s").idle_timeout == 2.0


def test_tracker_min_over_partitions():
    t = WatermarkTracker(max_out_of_orderness=1)
    t.observe(10, "a")
    assert t.watermark == 9.0
    t.observe(30, "b")
    assert t.watermark == 9.0  # 'a' is the slowest
    t.observe(25, "a")
    assert t.watermark == 24.0
    t.observe(40, "a")
    assert t.watermark == 29.0  # now 'b' holds it back
    assert t.partitions == ["a", "b"]


def test_tracker_never_goes_back_for_a_new_partition():
    t = WatermarkTracker()
    t.observe(100, "a")
    t.observe(5, "b")  # a partition first seen late: its elements are late, no step back
    assert t.watermark == 100.0
    t.observe(150, "a")
    assert t.watermark == 100.0  # 'b' (at 5) holds it until 'b' passes 100
    t.observe(120, "b")
    assert t.watermark == 120.0


def test_tracker_idle_partition_stops_holding_back():
    clock = ManualClock()
    t = WatermarkTracker(max_out_of_orderness=0, idle_timeout=5, clock=clock)
    t.observe(10, "a")
    t.observe(50, "b")
    assert t.watermark == 10.0
    assert t.idle_deadline() == 5.0
    clock.advance(3)
    t.observe(60, "b")  # 'b' keeps talking, 'a' is silent
    assert t.idle_deadline() == 5.0
    clock.advance(1.999)
    assert t.watermark == 10.0 and t.idle_partitions() == []
    clock.advance(0.001)  # 'a' silent for exactly 5 s: idle
    assert t.idle_partitions() == ["a"]
    assert t.watermark == 60.0
    assert t.idle_deadline() == 8.0  # when 'b' goes idle
    t.observe(20, "a")  # 'a' wakes up with old data: no step back
    assert t.watermark == 60.0
    t.observe(70, "a")
    assert t.watermark == 60.0  # 'b' (60) holds it again
    t.observe(80, "b")
    assert t.watermark == 70.0


def test_tracker_declared_partitions_hold_it_back_until_they_report():
    t = WatermarkTracker(partitions=[0, 1, 2])
    assert t.partitions == [0, 1, 2]
    t.observe(100, 0)
    t.observe(90, 2)
    assert t.watermark == NO_WATERMARK  # partition 1 said nothing yet
    t.observe(50, 1)  # not late: the watermark waited for it
    assert t.watermark == 50.0


def test_tracker_declared_partitions_go_idle_from_creation():
    clock = ManualClock()
    t = WatermarkTracker(idle_timeout=3, clock=clock, partitions=["a", "b"])
    assert t.idle_deadline() == 3.0
    clock.advance(2)
    t.observe(7, "a")
    assert t.watermark == NO_WATERMARK
    clock.advance(1)  # 'b' never spoke: idle 3 s after creation
    assert t.idle_partitions() == ["b"]
    assert t.watermark == 7.0


def test_tracker_all_idle_gives_the_max_over_partitions():
    clock = ManualClock()
    t = WatermarkTracker(max_out_of_orderness=2, idle_timeout=1, clock=clock)
    t.observe(10, "a")
    t.observe(30, "b")
    t.observe(20, "c")
    assert t.watermark == 8.0
    clock.advance(1)
    assert sorted(t.idle_partitions()) == ["a", "b", "c"]
    assert t.watermark == 28.0
    assert t.idle_deadline() is None


def test_tracker_without_idle_timeout_never_idles():
    clock = ManualClock()
    t = WatermarkTracker(idle_timeout=None, clock=clock)
    t.observe(1, "a")
    t.observe(9, "b")
    clock.advance(1e9)
    assert t.watermark == 1.0
    assert t.idle_partitions() == [] and t.idle_deadline() is None


def test_tracker_advance_to_end():
    t = WatermarkTracker(max_out_of_orderness=5)
    t.observe(10)
    t.advance_to_end()
    assert t.watermark == math.inf
    t.observe(1000)
    assert t.watermark == math.inf


def test_tracker_snapshot_restore_round_trip_keeps_ages():
    clock = ManualClock(1000)
    t = WatermarkTracker(max_out_of_orderness=1, idle_timeout=10, clock=clock)
    t.observe(5, "a")
    clock.advance(4)
    t.observe(9, ("b", 1))
    clock.advance(2)  # ages: a 6 s, b 2 s
    state = pickle.loads(pickle.dumps(t.snapshot()))
    other_clock = ManualClock(0)  # another process, another clock
    fresh = WatermarkTracker(max_out_of_orderness=1, idle_timeout=10, clock=other_clock)
    fresh.restore(state)
    assert fresh.partitions == ["a", ("b", 1)]
    assert fresh.watermark == t.watermark == 4.0
    assert fresh.idle_deadline() == 4.0  # 'a' has 4 s left
    other_clock.advance(4)
    clock.advance(4)
    assert fresh.watermark == t.watermark == 8.0  # 'a' idle in both
    assert fresh.idle_partitions() == t.idle_partitions() == ["a"]


def test_tracker_snapshot_keeps_floor_and_end():
    t = WatermarkTracker()
    t.observe(100, "a")
    t.observe(5, "b")
    fresh = WatermarkTracker()
    fresh.restore(t.snapshot())
    assert fresh.watermark == 100.0
    t.advance_to_end()
    fresh.restore(t.snapshot())
    assert fresh.watermark == math.inf


@pytest.mark.parametrize(
    "kwargs, error, fragment",
    [
        ({"max_out_of_orderness": -1}, ValueError, "max_out_of_orderness must not be negative"),
        ({"max_out_of_orderness": "soon"}, ValueError, "bad max_out_of_orderness 'soon'"),
        ({"max_out_of_orderness": [1]}, TypeError, "bad max_out_of_orderness [1]"),
        ({"idle_timeout": 0}, ValueError, "idle_timeout must be greater than 0"),
        ({"idle_timeout": -2}, ValueError, "idle_timeout must not be negative"),
        ({"idle_timeout": float("nan")}, ValueError, "idle_timeout must not be negative"),
    ],
)
def test_tracker_bad_arguments(kwargs, error, fragment):
    with pytest.raises(error) as info:
        WatermarkTracker(**kwargs)
    assert str(info.value).startswith("with_timestamps: ")
    assert fragment in str(info.value)


# -- with_timestamps: elements, listeners -----------------------------------------------------
def test_elements_pass_unchanged_and_the_watermark_follows():
    source = Stream()
    events = source.with_timestamps(lambda e: e[0], max_out_of_orderness=2)
    assert isinstance(events, with_timestamps)
    L = events.sink_to_list()
    marks = []
    for e in [(5, "a"), (3, "b"), (9, "c"), (1, "d")]:
        source.emit(e)
        marks.append(events.watermark)
    assert L == [(5, "a"), (3, "b"), (9, "c"), (1, "d")]  # late ones too: windows decide
    assert marks == [3.0, 3.0, 7.0, 7.0]
    assert events.loop is None  # no idle timeout: no loop needed
    assert str(events) == "<with_timestamps: timestamp=<lambda>, max_out_of_orderness=2.0>"


def test_metadata_passes_through_and_refs_are_released():
    source = Stream()
    out = []

    class grab_metadata(Stream):
        def update(self, x, who=None, metadata=None):
            out.append((x, metadata))
            return self._emit(x, metadata)

    grab_metadata(source.with_timestamps(lambda t: t))
    done = []
    ref = RefCounter(cb=lambda: done.append(True))
    metadata = [{"ref": ref, "offset": 7}]
    source.emit(4, metadata=metadata)
    assert out == [(4, metadata)]
    assert done == [True] and ref.count == 0


def test_listeners_are_called_after_the_element_and_only_when_it_advances():
    source = Stream()
    events = source.with_timestamps(lambda t: t, max_out_of_orderness=1)
    log: list[Any] = []
    events.sink(lambda x: log.append(("element", x)))

    def listener():
        log.append(("watermark", events.watermark))

    events.add_watermark_listener(listener)
    events.add_watermark_listener(listener)  # a second add does nothing
    for t in [10, 9, 10, 12]:
        source.emit(t)
    assert log == [
        ("element", 10),
        ("watermark", 9.0),
        ("element", 9),
        ("element", 10),
        ("element", 12),
        ("watermark", 11.0),
    ]
    events.remove_watermark_listener(listener)
    source.emit(20)
    assert log[-1] == ("element", 20)
    with pytest.raises(ValueError, match="is not a watermark listener"):
        events.remove_watermark_listener(listener)
    with pytest.raises(TypeError, match="listener must be callable"):
        events.add_watermark_listener(42)


def test_listeners_awaitables_are_returned_by_update():
    loop = asyncio.new_event_loop()
    try:
        source = Stream()
        events = source.with_timestamps(lambda t: t)
        sink_future = loop.create_future()
        events.sink(lambda x: sink_future)
        first, second, third = (loop.create_future() for _ in range(3))
        events.add_watermark_listener(lambda: [first, second])
        events.add_watermark_listener(lambda: third)
        events.add_watermark_listener(lambda: None)
        assert events.update(5) == [sink_future, first, second, third]
        assert events.update(4) == [sink_future]  # no advance, no listener
    finally:
        loop.close()


def test_emit_waits_for_the_listeners_awaitables():
    async def main():
        source = Stream(asynchronous=True)
        events = source.with_timestamps(lambda t: t)
        gate = asyncio.Event()
        finished = []

        async def close_windows():
            await gate.wait()
            finished.append(events.watermark)

        events.add_watermark_listener(lambda: [close_windows()])
        emitted = asyncio.ensure_future(source.emit(3))
        await asyncio.sleep(0.01)
        assert not emitted.done()  # the emitter waits on the listener's work
        gate.set()
        await asyncio.wait_for(emitted, 1)
        return finished

    assert asyncio.run(main()) == [3.0]


def test_kafka_records_use_timestamp_and_partition():
    source = Stream()
    events = source.with_timestamps("kafka", max_out_of_orderness=0)
    L = events.sink_to_list()
    records = [
        record("k", 1, partition=1, timestamp=50.0),
        record("k", 2, partition=0, timestamp=100.0),
        record("k", 3, partition=0, timestamp=200.0),
    ]
    for r in records:
        source.emit(r)
    assert records == L
    assert events.tracker.partitions == [1, 0]
    assert events.watermark == 50.0  # partition 1 holds it back
    assert str(events) == "<with_timestamps: kafka>"


def test_kafka_timestamps_with_another_partitioning():
    source = Stream()
    events = source.with_timestamps("kafka", partition=lambda r: r["key"])
    for r in [record("y", 2, 0, 5.0), record("x", 1, 0, 10.0)]:
        source.emit(r)
    assert events.tracker.partitions == ["y", "x"]
    assert events.watermark == 5.0


def test_the_partition_function_does_not_hide_the_partition_node():
    source = Stream()
    events = source.with_timestamps("kafka", partition=lambda r: r["key"])
    pairs = events.partition(2)  # the node's method, not the partition function
    L = pairs.map(lambda rs: [r["value"] for r in rs]).sink_to_list()
    for r in [record("y", 2, 0, 5.0), record("x", 1, 0, 10.0)]:
        source.emit(r)
    assert L == [[2, 1]]
    assert events.partition_func is not None


def test_a_kafka_record_without_a_timestamp_is_an_error_naming_it():
    source = Stream()
    source.with_timestamps("kafka")
    bad = dict(record("k", 1, 0, 1.0), timestamp=None)
    with pytest.raises(ValueError, match="has no timestamp") as info:
        source.emit(bad)
    assert info.value.__notes__[0].startswith("millstream: <with_timestamps: kafka> failed")


def test_kafka_timestamps_on_something_else_name_the_node_and_element():
    source = Stream()
    source.with_timestamps("kafka")
    with pytest.raises(TypeError) as info:
        source.emit(17)
    (note,) = info.value.__notes__
    assert note.startswith("millstream: <with_timestamps: kafka> failed calling")
    assert note.endswith("on element of type int: 17")


def test_declared_partitions_on_the_node(manual_clock):
    source = Stream()
    events = source.with_timestamps("kafka", idle_timeout=10, partitions=range(2))
    seen = []
    events.add_watermark_listener(lambda: seen.append(events.watermark))
    source.emit(record("k", 1, partition=0, timestamp=100.0))
    assert events.watermark == NO_WATERMARK and seen == []
    manual_clock.advance(10)  # partition 1 never spoke: idle, by the timer
    assert seen == [100.0]


def test_partition_function():
    source = Stream()
    events = source.with_timestamps(lambda e: e["t"], partition=lambda e: e["sensor"])
    for e in [{"sensor": "s1", "t": 4}, {"sensor": "s2", "t": 9}, {"sensor": "s1", "t": 12}]:
        source.emit(e)
    assert events.tracker.partitions == ["s1", "s2"]
    assert events.watermark == 9.0


def test_datetime_timestamps_and_bounds():
    source = Stream()
    events = source.with_timestamps(
        lambda e: e["at"], max_out_of_orderness=datetime.timedelta(seconds=5)
    )
    start = datetime.datetime(2024, 1, 1, tzinfo=UTC)
    source.emit({"at": start + datetime.timedelta(seconds=30)})
    assert events.watermark == start.timestamp() + 25
    events2 = Stream().with_timestamps(lambda e: e, max_out_of_orderness="5s")
    assert events2.max_out_of_orderness == 5.0


def test_naive_datetime_is_a_type_error_naming_node_and_element():
    source = Stream()
    source.with_timestamps(lambda e: e["at"])
    with pytest.raises(TypeError) as info:
        source.emit({"at": datetime.datetime(2024, 1, 1)})
    message = str(info.value)
    assert message.startswith("<with_timestamps: <lambda>>: a naive datetime")
    assert "give it a time zone" in message
    assert message.endswith("(element {'at': datetime.datetime(2024, 1, 1, 0, 0)})")


def test_timestamp_function_errors_are_annotated_and_reraised():
    def parse(e):
        return e["t"]

    source = Stream()
    events = source.with_timestamps(parse)
    L = events.sink_to_list()
    with pytest.raises(KeyError) as info:
        source.emit({"x": 1})
    (note,) = info.value.__notes__
    assert note.startswith("millstream: <with_timestamps: parse> failed calling ")
    assert "calling function 'test_timestamp_function_errors_are_annotated_and_reraised." in note
    assert note.endswith("on element of type dict: {'x': 1}")
    assert L == [] and events.watermark == NO_WATERMARK


def test_failing_element_releases_its_refs_marked_failed():
    source = Stream()
    source.with_timestamps(lambda e: e["t"]).sink_to_list()
    ref = RefCounter()
    with pytest.raises(KeyError):
        source.emit({}, metadata=[{"ref": ref}])
    assert ref.count == 0 and ref.failed


def test_partition_errors_are_annotated():
    source = Stream()
    source.with_timestamps(lambda e: e[0], partition=lambda e: e[1])
    with pytest.raises(TypeError) as info:
        source.emit((1, ["unhashable"]))
    assert info.value.__notes__[0].endswith("on element of type tuple: (1, ['unhashable'])")
    with pytest.raises(IndexError) as info2:
        source.emit((1,))
    assert info2.value.__notes__[0].startswith("millstream: <with_timestamps: <lambda>> failed")


@pytest.mark.parametrize(
    "kwargs, error, fragment",
    [
        ({"timestamp": 5}, TypeError, "with_timestamps: timestamp must be callable, got 5"),
        ({"timestamp": "kafak"}, ValueError, "with_timestamps: timestamp must be a function"),
        (
            {"timestamp": abs, "partition": "key"},
            TypeError,
            "with_timestamps: partition must be callable",
        ),
        (
            {"timestamp": abs, "max_out_of_orderness": -0.5},
            ValueError,
            "with_timestamps: max_out_of_orderness must not be negative, got -0.5",
        ),
        (
            {"timestamp": abs, "idle_timeout": 0},
            ValueError,
            "with_timestamps: idle_timeout must be greater than 0",
        ),
        (
            {"timestamp": abs, "idle_timeout": "-1s"},
            ValueError,
            "with_timestamps: bad idle_timeout '-1s'",
        ),
    ],
)
def test_bad_constructor_arguments(kwargs, error, fragment):
    with pytest.raises(error) as info:
        Stream().with_timestamps(**kwargs)
    assert fragment in str(info.value)


def test_end_of_input_moves_to_infinity_and_notifies_once():
    source = Stream()
    events = source.with_timestamps(lambda t: t, max_out_of_orderness=10)
    seen = []

    class Done:
        def __await__(self):
            return iter(())

    done = Done()
    events.add_watermark_listener(lambda: seen.append(events.watermark) or [done])
    source.emit(100)
    assert events.end_of_input() == [done]
    assert seen == [90.0, math.inf]
    assert watermark(events.map(str)) == math.inf
    assert events.end_of_input() == []
    source.emit(1000)  # still accepted, the watermark stays at the end
    assert seen == [90.0, math.inf]


def test_snapshot_restore_round_trip_gives_the_same_outputs():
    elements = [(3, "b"), (12, "a"), (15, "a"), (9, "b"), (7, "a"), (30, "b"), (31, "a")]

    def build():
        source = Stream()
        events = source.with_timestamps(
            lambda e: e[0], max_out_of_orderness=2, partition=lambda e: e[1]
        )
        out = events.sink_to_list()
        events.add_watermark_listener(lambda: out.append(("wm", events.watermark)))
        return source, events, out

    source, _, uninterrupted = build()
    for e in elements:
        source.emit(e)

    source, events, first = build()
    for e in elements[:4]:
        source.emit(e)
    state = pickle.loads(pickle.dumps(events.snapshot()))
    source, events, second = build()
    events.restore(state)
    assert events.watermark == 7.0
    for e in elements[4:]:
        source.emit(e)
    assert first + second == uninterrupted
    assert [x for x in uninterrupted if x[0] == "wm"] == [
        ("wm", 1.0),
        ("wm", 7.0),
        ("wm", 13.0),
        ("wm", 28.0),
    ]


# -- with_timestamps: idle partitions on the loop ----------------------------------------------
def test_idle_timer_notifies_without_new_elements(manual_clock):
    source = Stream()
    events = source.with_timestamps(lambda e: e[0], idle_timeout=5, partition=lambda e: e[1])
    assert events.loop is not None  # the idle timer needs a loop
    seen = []
    events.add_watermark_listener(lambda: seen.append((manual_clock.now(), events.watermark)))
    source.emit((3, "b"))
    source.emit((10, "a"))
    assert seen == [(0.0, 3.0)]
    seen.clear()
    manual_clock.advance(3)
    source.emit((12, "a"))  # 'b' (at 3) still holds it back: no advance
    assert seen == [] and events.watermark == 3.0
    manual_clock.advance(2)  # t=5: 'b' idle, no element arrives
    assert seen == [(5.0, 12.0)]
    manual_clock.advance(10)  # 'a' idle too: max over partitions is 12, nothing moves
    assert seen == [(5.0, 12.0)]
    assert sorted(events.tracker.idle_partitions()) == ["a", "b"]
    assert manual_clock.pending == 0  # no timer left when everything is idle


def test_idle_timer_all_idle_moves_to_the_max(manual_clock):
    source = Stream()
    events = source.with_timestamps(
        lambda e: e[0], max_out_of_orderness=1, idle_timeout="2s", partition=lambda e: e[1]
    )
    seen = []
    events.add_watermark_listener(lambda: seen.append(events.watermark))
    source.emit((10, "a"))
    source.emit((20, "b"))
    assert seen == [9.0]
    manual_clock.advance(1.5)
    assert seen == [9.0]
    manual_clock.advance(0.5)
    assert seen == [9.0, 19.0]


def test_idle_timer_awaits_the_listeners_awaitables(manual_clock):
    source = Stream()
    events = source.with_timestamps(lambda e: e[0], idle_timeout=1, partition=lambda e: e[1])
    done = []

    async def close_windows(mark):
        await asyncio.sleep(0)
        done.append(mark)

    events.add_watermark_listener(lambda: [close_windows(events.watermark)])
    source.emit((1, "a"))
    source.emit((5, "b"))
    assert done == [1.0]  # awaited by the emit
    manual_clock.advance(1)
    assert done == [1.0, 5.0]  # the timer ran the listener and its coroutine


def test_idle_timer_errors_are_logged_not_lost(manual_clock, caplog):
    source = Stream()
    events = source.with_timestamps(lambda e: e[0], idle_timeout=1, partition=lambda e: e[1])

    def listener():
        if events.watermark > 1:
            raise RuntimeError("window broke")

    events.add_watermark_listener(listener)
    source.emit((1, "a"))
    source.emit((5, "b"))
    with caplog.at_level("ERROR", logger="millstream.time"):
        manual_clock.advance(1)
    assert "a watermark listener failed after a partition went idle" in caplog.text
    assert "window broke" in caplog.text
    assert events.watermark == 5.0


def test_idle_snapshot_restore_on_another_clock():
    def build(clock):
        source = Stream()
        events = source.with_timestamps(
            lambda e: e[0], idle_timeout=4, partition=lambda e: e[1], clock=clock
        )
        seen = []
        events.add_watermark_listener(lambda: seen.append(events.watermark))
        return source, events, seen

    clock = ManualClock()
    source, events, seen = build(clock)
    source.emit((10, "a"))
    source.emit((50, "b"))
    clock.advance(3)
    source.emit((60, "b"))
    state = pickle.loads(pickle.dumps(events.snapshot()))
    clock.advance(1)  # 'a' goes idle: 60
    assert seen == [10.0, 60.0]

    other = ManualClock(500)
    _, events2, seen2 = build(other)
    events2.restore(state)
    assert events2.watermark == 10.0
    other.advance(1)  # the restored timer fires when 'a' has its 4 s of silence
    assert seen2 == [60.0]


# -- watermark() over the graph -----------------------------------------------------------------
def test_watermark_through_map_and_filter():
    source = Stream()
    events = source.with_timestamps(lambda t: t)
    tail = events.map(lambda t: t * 2).filter(lambda t: t > 0).map(str)
    assert watermark_sources(tail) == [events]
    assert watermark(tail) == NO_WATERMARK
    source.emit(7)
    assert watermark(tail) == watermark(events) == 7.0
    assert watermark_sources(events) == [events]


def test_watermark_without_with_timestamps_is_minus_infinity():
    source = Stream()
    tail = source.map(abs).sink_to_list()
    source.emit(-3)
    assert watermark_sources(source.downstreams[0]) == []
    assert watermark(source) == NO_WATERMARK
    assert tail == [3]


def test_watermark_is_the_min_of_union_and_zip_inputs():
    a, b = Stream(), Stream()
    ta = a.with_timestamps(lambda t: t)
    tb = b.with_timestamps(lambda t: t, max_out_of_orderness=5)
    u = ta.map(int).union(tb.filter(None))
    z = ta.zip(tb)
    c = ta.combine_latest(tb)
    assert watermark_sources(u) == [ta, tb]
    a.emit(10)
    assert watermark(u) == NO_WATERMARK  # b has said nothing yet
    b.emit(30)
    assert watermark(u) == watermark(z) == watermark(c) == 10.0
    a.emit(40)
    assert watermark(u) == watermark(z) == watermark(c) == 25.0


def test_watermark_uses_the_nearest_source_and_dedupes_diamonds():
    source = Stream()
    outer = source.with_timestamps(lambda t: t)
    inner = outer.map(lambda t: t - 100).with_timestamps(lambda t: t)
    diamond = inner.map(str).zip(inner.map(repr))
    assert watermark_sources(diamond) == [inner]
    source.emit(150)
    assert watermark(outer) == 150.0
    assert watermark(diamond) == 50.0


def test_watermark_sources_follow_graph_changes():
    a, b = Stream(), Stream()
    ta = a.with_timestamps(lambda t: t)
    tb = b.with_timestamps(lambda t: t)
    sink_node = ta.map(str)
    assert watermark_sources(sink_node) == [ta]
    u = Stream()
    tb.connect(u)
    ta.connect(u)
    assert watermark_sources(u) == [tb, ta]
    a.emit(1)
    b.emit(2)
    assert watermark(u) == 1.0
    ta.disconnect(u)
    assert watermark_sources(u) == [tb]
    assert watermark(u) == 2.0


def test_millstream_exports_and_registration():
    assert Stream.with_timestamps.__name__ == "with_timestamps"
    assert millstream.time.with_timestamps is with_timestamps
    assert set(millstream.time.__all__) >= {
        "NO_WATERMARK",
        "WatermarkTracker",
        "to_timestamp",
        "watermark",
        "watermark_sources",
        "with_timestamps",
    }


# -- more: an oracle, asynchronous graphs, garbage ---------------------------------------------
def test_tracker_matches_a_brute_force_oracle():
    import random

    rng = random.Random(5)
    for _ in range(200):
        bound = rng.choice([0, 1, 2.5])
        t = WatermarkTracker(max_out_of_orderness=bound)
        maxima: dict[Any, float] = {}
        oracle = NO_WATERMARK
        for _ in range(rng.randrange(1, 30)):
            ts, p = float(rng.randrange(100)), rng.randrange(4)
            t.observe(ts, p)
            maxima[p] = max(maxima.get(p, -math.inf), ts)
            oracle = max(oracle, min(maxima.values()) - bound)
            if rng.random() < 0.5:  # reading it or not changes nothing
                assert t.watermark == oracle
        assert t.watermark == oracle


def test_idle_timer_in_an_asynchronous_graph():
    async def main():
        clock = ManualClock()
        source = Stream(asynchronous=True)
        events = source.with_timestamps(
            lambda e: e[0], idle_timeout=2, partition=lambda e: e[1], clock=clock
        )
        assert events.loop.asyncio_loop is asyncio.get_running_loop()
        seen = []
        events.add_watermark_listener(lambda: seen.append((clock.now(), events.watermark)))
        await source.emit((4, "slow"))
        await source.emit((9, "fast"))
        await clock.advance_async(1)
        await source.emit((11, "fast"))
        await clock.advance_async(1)  # 'slow' idle at t=2
        return seen

    assert asyncio.run(main()) == [(0.0, 4.0), (2.0, 11.0)]


def test_a_node_with_an_idle_timer_can_be_collected(manual_clock):
    import gc
    import weakref

    source = Stream()
    events = source.with_timestamps(lambda t: t, idle_timeout=100)
    source.emit(1)
    assert manual_clock.pending == 1
    ref = weakref.ref(events)
    del source, events
    gc.collect()
    assert ref() is None
    manual_clock.advance(100)  # the timer finds nothing and ends


def test_the_end_of_a_bounded_source_closes_every_window():
    from millstream.testing import wait_for
    from millstream.time import Tumbling

    source = Stream.from_iterable([(1, 5), (12, 1), (3, 2), (25, 7)])
    events = source.with_timestamps(lambda e: e[0], max_out_of_orderness=10)
    L = events.window(Tumbling(10), "sum", value=lambda e: e[1]).sink_to_list()
    source.start()
    wait_for(lambda: len(L) == 3, 5)
    assert [(r.window.start, r.value) for r in L] == [(0, 7), (10, 1), (20, 7)]
    assert source.exhausted and events.watermark == float("inf")


def test_the_input_ends_when_every_source_has_ended():
    from millstream.testing import wait_for

    first, second = Stream.from_iterable([1, 2]), Stream.from_iterable([3])
    events = first.union(second).with_timestamps(lambda t: t)
    first.start()
    wait_for(lambda: first.exhausted, 5)
    assert events.watermark == 2.0  # the second source may still bring 0
    second.start()
    wait_for(lambda: events.watermark == float("inf"), 5)


def test_an_input_fed_by_emit_never_ends_by_itself():
    from millstream.testing import wait_for

    bounded, emitted = Stream.from_iterable([1, 2]), Stream()
    events = bounded.union(emitted).with_timestamps(lambda t: t)
    bounded.start()
    wait_for(lambda: bounded.exhausted, 5)
    assert events.watermark == 2.0


def test_end_of_input_from_another_thread_runs_on_the_graphs_loop():
    import threading

    from millstream.time import Tumbling

    source = Stream(ensure_io_loop=True)
    events = source.with_timestamps(lambda e: e[0])
    threads = []
    results = events.window(Tumbling(10), "sum", value=lambda e: e[1]).sink(
        lambda r: threads.append((r.window.start, r.value, threading.current_thread().name))
    )
    assert results is not None
    for e in [(1, 2), (15, 3)]:
        source.emit(e)
    assert [t[:2] for t in threads] == [(0, 2)]
    assert events.end_of_input() == []  # blocks until the window [10, 20) is out
    assert [t[:2] for t in threads] == [(0, 2), (10, 3)]
    assert threads[1][2] != threading.current_thread().name  # fired on the loop's thread
