"""The ``window`` node: every window kind, lateness policies, early results, refs, state."""

from __future__ import annotations

import asyncio
import datetime
import pickle

import pytest

from millstream import Stream
from millstream.core.refs import RefCounter
from millstream.time.aggregations import Fold, Reduce
from millstream.time.operators import WindowResult
from millstream.time.windows import (
    GLOBAL_WINDOW,
    CountSliding,
    CountTumbling,
    Global,
    Session,
    Sliding,
    Tumbling,
    Window,
)

W = Window


def R(key, start, end, value, kind="final"):
    return WindowResult(key, Window(start, end), value, kind)


def keyed(assigner, agg="collect", **kwargs):
    """A node over events (key, ts, value), with its own watermark."""
    source = Stream()
    node = source.window(
        assigner,
        agg,
        key=lambda e: e[0],
        timestamp=lambda e: e[1],
        value=lambda e: e[2],
        **kwargs,
    )
    return source, node, node.sink_to_list()


def feed(source, events):
    for e in events:
        source.emit(e)


# -- tumbling ------------------------------------------------------------------------------
def test_tumbling_keyed_sum():
    source, node, out = keyed(Tumbling(10), "sum")
    feed(source, [("b", 1, 1), ("a", 2, 10), ("a", 11, 5), ("b", 12, 2), ("c", 13, 1)])
    assert out == [R("b", 0, 10, 1), R("a", 0, 10, 10)]
    source.emit(("a", 25, 0))
    assert out[2:] == [R("a", 10, 20, 5), R("b", 10, 20, 2), R("c", 10, 20, 1)]
    assert node.watermark == 25
    node.flush()
    assert out[5:] == [R("a", 20, 30, 0)]
    assert node.watermark == float("inf")


def test_results_ordered_by_end_then_key_first_seen():
    # with lateness both windows fire together; [10, 20) got y before x, but x was seen first
    source, _node, out = keyed(Tumbling(10), allowed_lateness=10)
    feed(source, [("x", 1, 1), ("y", 2, 2), ("y", 11, 3), ("x", 12, 4), ("z", 40, 5)])
    assert out == [R("x", 0, 10, [1]), R("y", 0, 10, [2]), R("x", 10, 20, [4]), R("y", 10, 20, [3])]


def test_unkeyed_and_element_values():
    source = Stream()
    node = source.window(Tumbling(5), timestamp=lambda x: x)
    out = node.sink_to_list()
    feed(source, [0, 3, 1, 7, 12])
    assert out == [R(None, 0, 5, [0, 3, 1]), R(None, 5, 10, [7])]


def test_index_getters():
    source = Stream()
    out = source.window(Tumbling(10), "max", key="k", value="v", timestamp="t").sink_to_list()
    feed(source, [{"k": 1, "t": 1, "v": 3}, {"k": 1, "t": 2, "v": 9}, {"k": 1, "t": 10, "v": 0}])
    assert out == [R(1, 0, 10, 9)]


def test_offset_and_float_times():
    source, _node, out = keyed(Tumbling(1.0, offset=0.5), "count")
    feed(source, [("a", 0.4, 0), ("a", 0.6, 0), ("a", 1.49, 0), ("a", 1.5, 0)])
    assert out == [R("a", -0.5, 0.5, 1), R("a", 0.5, 1.5, 2)]


@pytest.mark.parametrize(
    "agg, expected",
    [
        ("sum", 9),
        ("count", 3),
        ("min", 1),
        ("max", 6),
        ("mean", 3.0),
        ("collect", [2, 6, 1]),
        (Reduce(lambda a, b: a * b), 12),
        (Fold("", lambda acc, v: acc + str(v)), "261"),
    ],
)
def test_aggregations_in_a_window(agg, expected):
    source, _node, out = keyed(Tumbling(10), agg)
    feed(source, [("a", 1, 2), ("a", 2, 6), ("a", 3, 1), ("a", 10, 0)])
    assert out == [R("a", 0, 10, expected)]


def test_max_out_of_orderness():
    source, node, out = keyed(Tumbling(10), "collect", max_out_of_orderness=5)
    feed(source, [("a", 1, 1), ("a", 12, 2), ("a", 8, 3)])  # wm 7: [0, 10) still open
    assert out == [] and node.watermark == 7
    source.emit(("a", 15, 4))  # wm 10
    assert out == [R("a", 0, 10, [1, 3])]
    source.emit(("a", 9, 5))
    assert node.late_count == 1 and node.dropped_count == 1


def test_allowed_lateness():
    source, node, out = keyed(Tumbling(10), "collect", allowed_lateness=5)
    feed(source, [("a", 1, "a1"), ("a", 12, "a12"), ("a", 3, "a3")])
    assert out == []  # [0, 10) closes at 15
    source.emit(("a", 15, "a15"))
    assert out == [R("a", 0, 10, ["a1", "a3"])]
    source.emit(("a", 4, "a4"))
    assert node.late_count == 1 and node.dropped_count == 1
    node.flush()
    assert out[1:] == [R("a", 10, 20, ["a12", "a15"])]


def test_nothing_fires_before_end_plus_lateness():
    source, _node, out = keyed(Tumbling(10), "count", allowed_lateness=2)
    feed(source, [("a", 0, 0), ("a", 11.9, 0)])
    assert out == []
    source.emit(("a", 12, 0))
    assert out == [R("a", 0, 10, 1)]


def test_closed_windows_are_freed():
    source, node, out = keyed(Tumbling(1), "sum")
    for t in range(1000):
        for key in range(7):
            source.emit((key, t, 1))
    assert len(out) == 7 * 999
    state = node.snapshot()  # only the last window [999, 1000) is still open
    assert sorted(state["open"]) == [(999, key, 1, 0) for key in range(7)]
    assert state["keys"] == list(range(7)) and state["kept"] == []


# -- late data policies ---------------------------------------------------------------------
def test_late_drop_counts_and_releases_refs_at_once():
    source, node, out = keyed(Tumbling(10), "count")
    feed(source, [("a", 1, 0), ("a", 10, 0)])
    ref = RefCounter()
    source.emit(("a", 5, 0), metadata=[{"ref": ref}])
    assert (node.late_count, node.dropped_count) == (1, 1)
    assert ref.count == 0 and not ref.failed
    assert out == [R("a", 0, 10, 1)]


def test_late_side_stream_with_metadata():
    source, node, _out = keyed(Tumbling(10), "count", late="side")
    late = node.late.sink_to_list()
    seen_metadata = []
    node.late.sink(lambda x: seen_metadata.append(node.late.current_metadata))
    feed(source, [("a", 1, 0), ("a", 10, 0)])
    ref = RefCounter()
    source.emit(("a", 5, 0), metadata=[{"ref": ref, "n": 1}])
    assert late == [(Window(0, 10), ("a", 5, 0))]
    assert seen_metadata == [[{"ref": ref, "n": 1}]]
    assert ref.count == 0
    assert (node.late_count, node.dropped_count) == (1, 0)


def test_late_side_sliding_one_pair_per_closed_window():
    source, node, out = keyed(Sliding(10, 5), "collect", late="side")
    late = node.late.sink_to_list()
    feed(source, [("a", 1, 1), ("a", 10, 2)])  # wm 10: [-5, 5) and [0, 10) closed
    source.emit(("a", 4, 3))  # windows [-5, 5), [0, 10): both closed
    source.emit(("a", 7, 4))  # windows [0, 10) closed, [5, 15) open
    assert late == [
        (Window(-5, 5), ("a", 4, 3)),
        (Window(0, 10), ("a", 4, 3)),
        (Window(0, 10), ("a", 7, 4)),
    ]
    assert node.late_count == 3
    node.flush()
    assert out == [
        R("a", -5, 5, [1]),
        R("a", 0, 10, [1]),
        R("a", 5, 15, [2, 4]),
        R("a", 10, 20, [2]),
    ]


def test_late_update_re_emits_corrected_result():
    source, node, out = keyed(Tumbling(10), "sum", late="update", update_for=5)
    feed(source, [("a", 1, 1), ("a", 2, 1), ("a", 10, 1)])
    assert out == [R("a", 0, 10, 2)]
    ref = RefCounter()
    source.emit(("a", 5, 1), metadata=[{"ref": ref}])
    source.emit(("b", 5, 7))  # a window with no earlier result for b
    assert out[1:] == [R("a", 0, 10, 3, "update"), R("b", 0, 10, 7, "update")]
    assert ref.count == 0
    source.emit(("a", 14, 1))  # wm 14: [0, 10) kept until 15
    source.emit(("a", 9, 1))
    assert out[3:] == [R("a", 0, 10, 4, "update")]
    source.emit(("a", 15, 1))  # kept state of [0, 10) expires
    source.emit(("a", 9, 1))
    assert out[4:] == []
    assert (node.late_count, node.dropped_count) == (4, 1)
    assert node.snapshot()["kept"] == []


def test_late_update_keeps_state_forever_by_default():
    source, node, out = keyed(Tumbling(10), "collect", late="update")
    feed(source, [("a", 1, 1), ("a", 1000, 2), ("a", 2, 3)])
    assert out == [R("a", 0, 10, [1]), R("a", 0, 10, [1, 3], "update")]
    node.flush()
    source.emit(("a", 3, 4))
    assert out[-1] == R("a", 0, 10, [1, 3, 4], "update")


def test_early_results():
    source, node, out = keyed(Tumbling(10), "collect", early=2)
    feed(source, [("a", 1, 1), ("b", 1, 9), ("a", 2, 2), ("a", 3, 3), ("a", 4, 4)])
    assert out == [R("a", 0, 10, [1, 2], "early"), R("a", 0, 10, [1, 2, 3, 4], "early")]
    source.emit(("a", 10, 5))
    assert out[2:] == [R("a", 0, 10, [1, 2, 3, 4], "final"), R("b", 0, 10, [9], "final")]
    out[0].value.append("changed")  # early values are copies
    node.flush()
    assert out[-1] == R("a", 10, 20, [5])


def test_early_then_late_update():
    source, _node, out = keyed(Tumbling(10), "count", early=1, late="update")
    feed(source, [("a", 1, 0), ("a", 10, 0), ("a", 3, 0)])
    assert [r.kind for r in out] == ["early", "early", "final", "update"]
    assert [r.value for r in out] == [1, 1, 1, 2]


# -- sliding ---------------------------------------------------------------------------------
def test_sliding_sum():
    source, node, out = keyed(Sliding(10, 5), "sum")
    feed(source, [("a", 1, 1), ("a", 6, 10)])
    assert out == [R("a", -5, 5, 1)]
    source.emit(("a", 11, 100))
    assert out[1:] == [R("a", 0, 10, 11)]
    node.flush()
    assert out[2:] == [R("a", 5, 15, 110), R("a", 10, 20, 100)]


def test_sliding_with_gaps_ignores_elements_between_windows():
    source, node, out = keyed(Sliding(2, 5), "collect")
    feed(source, [("a", 1, 1), ("a", 3, 2), ("a", 5, 3), ("a", 9, 4)])
    node.flush()
    assert out == [R("a", 0, 2, [1]), R("a", 5, 7, [3])]
    assert node.late_count == 0


# -- sessions -------------------------------------------------------------------------------
def test_sessions_close_on_the_watermark():
    source, node, out = keyed(Session(5))
    feed(source, [("a", 1, 1), ("a", 3, 3), ("b", 4, 4)])
    assert out == []
    source.emit(("a", 10, 10))
    assert out == [R("a", 1, 8, [1, 3]), R("b", 4, 9, [4])]
    source.emit(("a", 14.9, 14.9))
    node.flush()
    assert out[2:] == [R("a", 10, 19.9, [10, 14.9])]


def test_sessions_exactly_gap_apart_do_not_merge():
    source, node, out = keyed(Session(5), max_out_of_orderness=100)
    feed(source, [("a", 0, 0), ("a", 5, 5)])
    node.flush()
    assert out == [R("a", 0, 5, [0]), R("a", 5, 10, [5])]


def test_session_bridge_merges_sessions():
    source, node, out = keyed(Session(5), "sum", max_out_of_orderness=10)
    feed(source, [("a", 20, 1), ("a", 28, 10), ("a", 24, 100)])
    node.flush()
    assert out == [R("a", 20, 33, 111)]


def test_session_lateness_only_when_joining_closed_sessions():
    source, node, out = keyed(Session(5), late="side")
    late = node.late.sink_to_list()
    feed(source, [("a", 1, 1), ("a", 10, 10)])  # fires [1, 6)
    assert out == [R("a", 1, 6, [1])]
    source.emit(("a", 2, 2))  # [2, 7) closed, overlaps no open session: late
    source.emit(("a", 8, 8))  # [8, 13) open: joins [10, 15)
    source.emit(("a", 4, 4))  # [4, 9) closed, but overlaps the open [8, 15): joins it
    assert late == [(Window(2, 7), ("a", 2, 2))]
    assert node.late_count == 1
    node.flush()
    assert out[1:] == [R("a", 4, 15, [10, 8, 4])]


def test_session_late_update_merges_into_kept_session():
    source, _node, out = keyed(Session(5), "collect", late="update")
    feed(source, [("a", 1, 1), ("a", 10, 10), ("a", 3, 3)])
    assert out == [R("a", 1, 6, [1]), R("a", 1, 8, [1, 3], "update")]
    source.emit(("a", 3.5, 3.5))
    assert out[2:] == [R("a", 1, 8.5, [1, 3, 3.5], "update")]


def test_session_late_update_expires():
    source, node, out = keyed(Session(5), "count", late="update", update_for=5)
    feed(source, [("a", 1, 1), ("a", 10, 10), ("a", 3, 3)])
    # [1, 6) fired at 10 and was kept until 11; the update made it [1, 8), kept until 13
    assert out == [R("a", 1, 6, 1), R("a", 1, 8, 2, "update")]
    feed(source, [("a", 12.9, 0), ("a", 2, 0)])
    assert out[2:] == [R("a", 1, 8, 3, "update")]
    feed(source, [("a", 13, 0), ("a", 2, 0)])
    assert out[3:] == [] and node.dropped_count == 1 and node.late_count == 3
    assert node.snapshot()["kept"] == []


def test_session_early():
    source, _node, out = keyed(Session(5), "count", early=2, max_out_of_orderness=100)
    feed(source, [("a", 0, 0), ("a", 20, 0), ("a", 10, 0)])
    assert out == []
    source.emit(("a", 3, 0))  # joins [0, 5): 2 elements
    assert out == [R("a", 0, 8, 2, "early")]
    source.emit(("a", 6, 0))  # bridges [0, 8) and [10, 15) into 4 elements
    assert out[1:] == [R("a", 0, 15, 4, "early")]


def test_session_with_fold_needs_merge():
    with pytest.raises(ValueError, match=r"window: agg .*Session"):
        Stream().window(Session(5), Fold(0, lambda a, v: a + v), timestamp=lambda x: x)
    out = (
        Stream()
        .window(Session(5), Fold(0, lambda a, v: a + v, merge=lambda a, b: a + b), timestamp=abs)
        .sink_to_list()
    )
    assert out == []


# -- count and global windows ---------------------------------------------------------------
def test_count_tumbling():
    source = Stream()
    node = source.window(CountTumbling(3), "sum", key=lambda e: e[0], value=lambda e: e[1])
    out = node.sink_to_list()
    feed(source, [("a", 1), ("a", 2), ("b", 5), ("a", 3), ("a", 4), ("b", 6)])
    assert out == [R("a", 0, 3, 6)]
    node.flush()
    assert out[1:] == [R("b", 0, 2, 11), R("a", 3, 4, 4)]
    feed(source, [("a", 10), ("a", 11)])
    node.flush()
    assert out[3:] == [R("a", 4, 6, 21)]


def test_count_sliding():
    source = Stream()
    node = source.window(CountSliding(3))
    out = node.sink_to_list()
    feed(source, [1, 2, 3, 4, 5])
    assert out == [R(None, 0, 3, [1, 2, 3]), R(None, 1, 4, [2, 3, 4]), R(None, 2, 5, [3, 4, 5])]
    node.flush()
    assert out[3:] == [R(None, 3, 5, [4, 5]), R(None, 4, 5, [5])]


def test_count_sliding_with_step_and_gaps():
    source = Stream()
    out = source.window(CountSliding(2, slide=3), "collect").sink_to_list()
    feed(source, range(8))
    assert out == [R(None, 0, 2, [0, 1]), R(None, 3, 5, [3, 4]), R(None, 6, 8, [6, 7])]
    source2 = Stream()
    out2 = source2.window(CountSliding(4, slide=2), "sum").sink_to_list()
    feed(source2, range(8))
    assert out2 == [R(None, 0, 4, 6), R(None, 2, 6, 14), R(None, 4, 8, 22)]


def test_count_early():
    source = Stream()
    out = source.window(CountTumbling(4), "sum", early=2).sink_to_list()
    feed(source, [1, 2, 3, 4, 5])
    assert out == [R(None, 0, 4, 3, "early"), R(None, 0, 4, 10, "final")]


def test_global_every_n():
    source = Stream()
    node = source.window(Global(3), "sum")
    out = node.sink_to_list()
    feed(source, range(1, 8))
    assert out == [
        WindowResult(None, GLOBAL_WINDOW, 6, "final"),
        WindowResult(None, GLOBAL_WINDOW, 15, "final"),
    ]
    node.flush()
    assert out[2:] == [WindowResult(None, GLOBAL_WINDOW, 7, "final")]


def test_global_callable_trigger_keyed():
    seen = []

    def trigger(count, acc):
        seen.append((count, acc))
        return acc >= 10

    source = Stream()
    node = source.window(Global(trigger), "sum", key=lambda e: e[0], value=lambda e: e[1])
    out = node.sink_to_list()
    feed(source, [("a", 4), ("b", 20), ("a", 7), ("a", 1)])
    assert out == [
        WindowResult("b", GLOBAL_WINDOW, 20, "final"),
        WindowResult("a", GLOBAL_WINDOW, 11, "final"),
    ]
    assert seen == [(1, 4), (1, 20), (2, 11), (1, 1)]


def test_global_without_purge_emits_running_results():
    source = Stream()
    node = source.window(Global(2, purge=False), "collect")
    out = node.sink_to_list()
    feed(source, [1, 2, 3, 4, 5])
    node.flush()
    assert out == [
        WindowResult(None, GLOBAL_WINDOW, [1, 2], "early"),
        WindowResult(None, GLOBAL_WINDOW, [1, 2, 3, 4], "early"),
        WindowResult(None, GLOBAL_WINDOW, [1, 2, 3, 4, 5], "final"),
    ]


# -- refs -------------------------------------------------------------------------------------
def test_refs_held_until_the_window_fires():
    source = Stream()
    node = source.window(Sliding(10, 5), "count", timestamp=lambda x: x)
    emitted_metadata = []
    node.sink(lambda r: emitted_metadata.append((r.window, node.current_metadata)))
    refs = [RefCounter() for _ in range(3)]
    for t, ref in zip([1, 6, 12], refs, strict=True):
        source.emit(t, metadata=[{"ref": ref}])
    # 1 is in [-5, 5) (fired at 6) and [0, 10) (fired at 12); 6 in [0, 10) and [5, 15)
    assert [r.count for r in refs] == [0, 1, 2]
    assert emitted_metadata == [
        (Window(-5, 5), [{"ref": refs[0]}]),
        (Window(0, 10), [{"ref": refs[0]}, {"ref": refs[1]}]),
    ]
    node.flush()
    assert [r.count for r in refs] == [0, 0, 0]
    assert not any(r.failed for r in refs)


def test_refs_released_after_async_downstream_finishes():
    async def main():
        source = Stream(asynchronous=True)
        node = source.window(Tumbling(10), "count", timestamp=lambda x: x)
        gate = asyncio.get_running_loop().create_future()
        done = []

        class Slow(Stream):  # returns an awaitable, holds no refs of its own
            def update(self, x, who=None, metadata=None):
                done.append(x)
                return gate

        Slow(node)
        ref = RefCounter()
        await source.emit(1, metadata=[{"ref": ref}])
        assert ref.count == 1
        task = asyncio.ensure_future(source.emit(10))
        await asyncio.sleep(0.01)
        assert ref.count == 1 and not task.done()
        assert done == [R(None, 0, 10, 1)]
        gate.set_result(None)
        await asyncio.wait_for(task, 2)
        assert ref.count == 0 and not ref.failed

    asyncio.run(main())


def test_refs_marked_failed_when_downstream_raises():
    source = Stream()
    node = source.window(CountTumbling(2), timestamp=None)

    def boom(result):
        raise RuntimeError("sink failed")

    node.sink(boom)
    ref = RefCounter()
    source.emit(1, metadata=[{"ref": ref}])
    with pytest.raises(RuntimeError, match="sink failed"):
        source.emit(2)
    assert ref.count == 0 and ref.failed


def test_session_and_count_windows_hold_refs():
    source = Stream()
    source.window(Session(5), "count", timestamp=lambda x: x)
    refs = [RefCounter(), RefCounter()]
    source.emit(1, metadata=[{"ref": refs[0]}])
    source.emit(3, metadata=[{"ref": refs[1]}])
    assert [r.count for r in refs] == [1, 1]
    source.emit(100)
    assert [r.count for r in refs] == [0, 0]
    g = Stream()
    gnode = g.window(Global(2), "count")
    ref = RefCounter()
    g.emit("x", metadata=[{"ref": ref}])
    assert ref.count == 1
    g.emit("y")
    assert ref.count == 0
    assert gnode.late_count == 0


def test_restore_releases_held_refs_as_failed():
    source = Stream()
    node = source.window(Tumbling(10), timestamp=lambda x: x)
    ref = RefCounter()
    source.emit(1, metadata=[{"ref": ref}])
    node.restore(Stream().window(Tumbling(10), timestamp=lambda x: x).snapshot())
    assert ref.count == 0 and ref.failed


# -- snapshot / restore -------------------------------------------------------------------------
EVENTS = [
    ("a", 1, 1),
    ("b", 2, 2),
    ("a", 7, 3),
    ("a", 12, 4),
    ("b", 4, 5),
    ("c", 14, 6),
    ("a", 23, 7),
    ("b", 6, 8),
    ("b", 26, 9),
    ("a", 19, 10),
    ("c", 31, 11),
    ("a", 40, 12),
]


@pytest.mark.parametrize(
    "assigner, kwargs",
    [
        (Tumbling(10), {}),
        (Tumbling(10), {"early": 1, "allowed_lateness": 3}),
        (Tumbling(10), {"late": "update", "max_out_of_orderness": 2}),
        (Sliding(10, 5), {"late": "update", "update_for": 8}),
        (Session(4), {"max_out_of_orderness": 5}),
        (Session(4), {"late": "update", "early": 2}),
        (CountTumbling(2), {}),
        (CountSliding(3, slide=2), {"early": 2}),
        (Global(3), {}),
        (Global(2, purge=False), {}),
    ],
)
@pytest.mark.parametrize("cut", [0, 3, 6, 9])
def test_snapshot_restore_round_trip(assigner, kwargs, cut):
    def build():
        source = Stream()
        time_kwargs = {"timestamp": lambda e: e[1]} if assigner.kind in ("time", "session") else {}
        node = source.window(
            assigner, "collect", key=lambda e: e[0], value=lambda e: e[2], **time_kwargs, **kwargs
        )
        return source, node, node.sink_to_list()

    source, node, out = build()
    feed(source, EVENTS)
    node.flush()
    expected = list(out)

    source1, node1, out1 = build()
    feed(source1, EVENTS[:cut])
    state = pickle.loads(pickle.dumps(node1.snapshot()))
    source1.emit(("z", 0, "after snapshot"))  # must not leak into the snapshot
    source2, node2, out2 = build()
    node2.restore(state)
    feed(source2, EVENTS[cut:])
    node2.flush()
    assert out1 + out2 == expected or (out1[: len(out1) - 1] + out2 == expected)
    assert out1[: len(expected)] == expected[: len(out1)] or out1[-1].key == "z"
    assert node2.late_count == node.late_count
    assert node2.dropped_count == node.dropped_count


def test_snapshot_is_plain_data_and_rejects_other_kinds():
    source, node, _out = keyed(Tumbling(10), "mean")
    feed(source, [("a", 1, 2), ("a", 2, 4)])
    state = node.snapshot()
    assert state["open"] == [(0, "a", [6, 2], 0)]
    assert state["watermark"] == 2 and state["keys"] == ["a"]
    other = Stream().window(Session(3), timestamp=abs)
    with pytest.raises(ValueError, match="cannot restore"):
        other.restore(state)


# -- timestamps --------------------------------------------------------------------------------
def test_aware_datetimes_are_timestamps():
    utc = datetime.timezone.utc
    source = Stream()
    out = source.window(Tumbling(60), "count", timestamp=lambda d: d).sink_to_list()
    base = datetime.datetime(2024, 1, 1, tzinfo=utc)
    for seconds in [0, 30, 61]:
        source.emit(base + datetime.timedelta(seconds=seconds))
    start = base.timestamp()
    assert out == [R(None, start, start + 60, 2)]


def test_naive_datetime_refused():
    source = Stream()
    source.window(Tumbling(60), timestamp=lambda d: d)
    with pytest.raises(TypeError):
        source.emit(datetime.datetime(2024, 1, 1))


def test_nan_timestamp_refused():
    source = Stream()
    source.window(Tumbling(60), timestamp=lambda d: d)
    with pytest.raises(ValueError, match="window"):
        source.emit(float("nan"))


# -- errors ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "args, kwargs, error, words",
    [
        ((Tumbling,), {"timestamp": abs}, TypeError, ["window", "assigner", "Tumbling(...)"]),
        ((10,), {"timestamp": abs}, TypeError, ["window", "assigner", "10"]),
        ((Tumbling(1), "median"), {"timestamp": abs}, ValueError, ["window", "agg", "median"]),
        ((Tumbling(1),), {"timestamp": abs, "late": "keep"}, ValueError, ["window", "late"]),
        ((Tumbling(1),), {"timestamp": abs, "early": 0}, ValueError, ["window", "early"]),
        ((Tumbling(1),), {"timestamp": abs, "allowed_lateness": -1}, ValueError, ["window"]),
        ((Tumbling(1),), {"timestamp": abs, "allowed_lateness": "x"}, ValueError, ["window"]),
        ((Tumbling(1),), {"timestamp": abs, "max_out_of_orderness": -2}, ValueError, ["window"]),
        ((Tumbling(1),), {"timestamp": abs, "update_for": 3}, ValueError, ["update_for"]),
        ((Tumbling(1),), {}, TypeError, ["window", "timestamp"]),
        ((Tumbling(1),), {"timestamp": [1]}, TypeError, ["window", "timestamp"]),
        ((Tumbling(1),), {"timestamp": abs, "key": {}}, TypeError, ["window", "key"]),
        ((CountTumbling(2),), {"allowed_lateness": 1}, ValueError, ["window", "allowed_lateness"]),
        ((CountTumbling(2),), {"late": "side"}, ValueError, ["window", "late"]),
        ((Global(2),), {"timestamp": abs}, ValueError, ["window", "timestamp"]),
        ((Session(2), Fold(0, max)), {"timestamp": abs}, ValueError, ["window", "agg", "merge"]),
    ],
)
def test_bad_arguments(args, kwargs, error, words):
    with pytest.raises(error) as info:
        Stream().window(*args, **kwargs)
    for word in words:
        assert word in str(info.value)


@pytest.mark.parametrize("where", ["timestamp", "key", "value"])
@pytest.mark.parametrize("assigner", [Tumbling(10), Sliding(10, 5), Session(3), CountTumbling(2)])
def test_user_function_errors_are_annotated(where, assigner):
    def bad(x):
        raise ZeroDivisionError("boom")

    funcs = {"timestamp": lambda x: x, "key": lambda x: 1, "value": lambda x: x}
    funcs[where] = bad
    if assigner.kind == "count":
        if where == "timestamp":
            return  # count windows take no timestamp
        del funcs["timestamp"]
    source = Stream()
    source.window(assigner, **funcs)
    with pytest.raises(ZeroDivisionError) as info:
        source.emit(1)
    assert "window" in info.value.__notes__[0] and "bad" in info.value.__notes__[0]


def test_aggregation_errors_are_annotated():
    def explode(a, b):
        raise KeyError("agg")

    source = Stream()
    source.window(Tumbling(10), Reduce(explode), timestamp=lambda x: x)
    source.emit(1)
    with pytest.raises(KeyError) as info:
        source.emit(2)
    assert "explode" in info.value.__notes__[0]
    s2 = Stream()
    s2.window(Tumbling(10), "sum", timestamp=lambda x: x[0], value=lambda x: x[1])
    s2.emit((1, 1))
    with pytest.raises(TypeError) as info2:
        s2.emit((2, "x"))
    assert "window" in info2.value.__notes__[0]


def test_trigger_errors_are_annotated():
    def trigger(count, acc):
        raise ValueError("no")

    source = Stream()
    source.window(Global(trigger))
    with pytest.raises(ValueError) as info:
        source.emit(1)
    assert "trigger" in info.value.__notes__[0]


def test_str():
    node = Stream().window(Tumbling(10), "sum", timestamp=abs)
    assert str(node) == "<window: assigner=Tumbling(10), agg=Sum()>"


# -- with a with_timestamps upstream ---------------------------------------------------------------
def test_watermark_from_with_timestamps_and_its_timestamp():
    source = Stream()
    events = source.with_timestamps(lambda e: e[1], max_out_of_orderness=2)
    node = events.window(Tumbling(10), "sum", key=lambda e: e[0], value=lambda e: e[2])
    out = node.sink_to_list()
    feed(source, [("a", 1, 1), ("a", 11, 2), ("a", 9, 3)])  # watermark 9: [0, 10) open
    assert out == [] and node.watermark == 9
    source.emit(("b", 12, 4))  # watermark 10
    assert out == [R("a", 0, 10, 4)]
    source.emit(("a", 5, 100))
    assert node.late_count == 1
    assert events.end_of_input() == []
    assert out[1:] == [R("a", 10, 20, 2), R("b", 10, 20, 4)]
    assert node.watermark == float("inf")


def test_with_timestamps_through_a_map_needs_timestamp():
    source = Stream()
    events = source.with_timestamps(lambda e: e["t"])
    node = events.map(lambda e: (e["t"], e["v"])).window(
        Tumbling(5), "collect", timestamp=lambda p: p[0], value=lambda p: p[1]
    )
    out = node.sink_to_list()
    for t, v in [(1, "x"), (4, "y"), (6, "z")]:
        source.emit({"t": t, "v": v})
    assert out == [R(None, 0, 5, ["x", "y"])]


def test_several_with_timestamps_use_the_smallest_watermark():
    a, b = Stream(), Stream()
    ta, tb = a.with_timestamps(lambda e: e), b.with_timestamps(lambda e: e)
    with pytest.raises(TypeError, match="2 with_timestamps"):
        ta.union(tb).window(Tumbling(10))
    node = ta.union(tb).window(Tumbling(10), "collect", timestamp=lambda e: e)
    out = node.sink_to_list()
    a.emit(1)
    a.emit(25)  # b has no watermark yet: nothing closes
    assert out == [] and node.watermark == float("-inf")
    b.emit(12)  # min(25, 12): [0, 10) closes
    assert out == [R(None, 0, 10, [1])] and node.watermark == 12
    b.emit(30)
    assert out[1:] == [R(None, 10, 20, [12])]


def test_a_window_refused_at_construction_is_not_left_in_the_graph():
    a, b = Stream(), Stream()
    both = a.with_timestamps(lambda e: e).union(b.with_timestamps(lambda e: e))
    with pytest.raises(TypeError, match="2 with_timestamps"):
        both.window(Tumbling(10))
    assert not both.downstreams
    a.emit(1)  # nothing half-built below to trip over


def test_max_out_of_orderness_belongs_to_with_timestamps():
    events = Stream().with_timestamps(lambda e: e)
    with pytest.raises(ValueError, match="window: max_out_of_orderness"):
        events.window(Tumbling(10), max_out_of_orderness=3)


def test_end_of_input_fires_count_and_global_windows():
    source = Stream()
    events = source.with_timestamps(lambda e: e)
    counts = events.window(CountTumbling(3), "sum").sink_to_list()
    globals_ = events.window(Global(10), "count").sink_to_list()
    feed(source, [1, 2, 3, 4])
    assert counts == [R(None, 0, 3, 6)] and globals_ == []
    events.end_of_input()
    assert counts[1:] == [R(None, 3, 4, 4)]
    assert globals_ == [WindowResult(None, GLOBAL_WINDOW, 4, "final")]


def test_idle_partition_timer_closes_windows(manual_clock):
    source = Stream()
    events = source.with_timestamps(lambda e: e[0], idle_timeout=5, partition=lambda e: e[1])
    node = events.window(Tumbling(10), "collect", key=lambda e: e[1], value=lambda e: e[0])
    out = node.sink_to_list()
    source.emit((3, "b"))
    source.emit((15, "a"))  # 'b' holds the watermark at 3
    assert out == []
    manual_clock.advance(5)  # 'b' idle: the watermark jumps to 15, with no new element
    assert out == [R("b", 0, 10, [3])]
    assert node.watermark == 15


def test_window_after_window():
    source = Stream()
    events = source.with_timestamps(lambda e: e)
    per_10 = events.window(Tumbling(10), "count")
    per_30 = per_10.window(
        Tumbling(30), "sum", timestamp=lambda r: r.window.start, value=lambda r: r.value
    )
    out = per_30.sink_to_list()
    feed(source, [1, 2, 15, 21, 22, 23, 35])
    assert out == [R(None, 0, 30, 6)]


@pytest.mark.parametrize(
    "assigner", [Tumbling(1.0), Sliding(2.0, 1.0), Session(0.5), CountTumbling(3)]
)
def test_fused_window_gives_what_the_per_element_path_gives(assigner):
    """A source's fused code calls the window's update directly (fusion stage 'push'):
    the results, late elements and errors are those of the per-element path."""
    import random

    rng = random.Random(7)
    events = [(i / 10 + rng.random() * 2.0, i % 3, i) for i in range(300)]

    timed = not isinstance(assigner, CountTumbling)
    options = (
        {"timestamp": lambda e: e[0], "max_out_of_orderness": 0.3, "late": "side"} if timed else {}
    )

    def run(fused: bool) -> tuple:
        source = Stream()
        node = source.window(assigner, "sum", key=lambda e: e[1], value=lambda e: e[2], **options)
        out = node.sink_to_list()
        late = node.late.sink_to_list() if timed else []
        for e in events:
            # no metadata: the fused path; metadata=[] (no refs): the per-element path
            source.emit(e) if fused else source.emit(e, metadata=[])
        if fused:
            assert source._compiled is not None and not source._compiled.complete
        node.flush()
        return out, late, node.snapshot()

    fused = run(True)
    assert fused[0] and (fused[1] or not timed)  # results, and late elements to compare
    assert fused == run(False)
