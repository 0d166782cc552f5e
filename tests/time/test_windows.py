"""Window assigners: the windows each element belongs to, and bad arguments."""

from __future__ import annotations

import math
import pickle

import pytest

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


def test_window_is_a_half_open_named_tuple():
    w = Window(0, 10)
    assert w == (0, 10)
    assert (w.start, w.end) == (0, 10)
    assert pickle.loads(pickle.dumps(w)) == w
    assert Window(-math.inf, math.inf) == GLOBAL_WINDOW


@pytest.mark.parametrize(
    "ts, expected",
    [(0, Window(0, 10)), (9.999, Window(0, 10)), (10, Window(10, 20)), (-1, Window(-10, 0))],
)
def test_tumbling_boundaries(ts, expected):
    assert Tumbling(10).assign(ts) == [expected]


def test_tumbling_offset_and_duration_string():
    assert Tumbling(10, offset=3).assign(12) == [Window(3, 13)]
    assert Tumbling(10, offset=3).assign(13) == [Window(13, 23)]
    assert Tumbling(10, offset=3).assign(2) == [Window(-7, 3)]
    assert Tumbling("500ms").assign(1.2) == [Window(1.0, 1.5)]
    assert Tumbling(10).size == 10 and isinstance(Tumbling(10).size, int)


def test_tumbling_same_window_object_for_every_timestamp_of_a_bucket():
    # windows are computed from the bucket number, so float noise never splits a bucket
    t = Tumbling(0.1)
    windows = {t.assign(0.2 + i * 0.0099)[0] for i in range(10)}
    assert len(windows) == 1


def test_tumbling_contains_its_timestamps():
    t = Tumbling(0.7, offset=0.3)
    for i in range(-50, 50):
        ts = i * 0.123
        (w,) = t.assign(ts)
        assert w.start <= ts < w.end
        assert w.end - w.start == pytest.approx(0.7)


def test_sliding_windows_contain_the_timestamp_in_order():
    assert Sliding(10, 5).assign(12) == [Window(5, 15), Window(10, 20)]
    assert Sliding(10, 5).assign(10) == [Window(5, 15), Window(10, 20)]
    assert Sliding(10, 5).assign(9.9) == [Window(0, 10), Window(5, 15)]
    assert Sliding(10, 3).assign(12) == [
        Window(3, 13),
        Window(6, 16),
        Window(9, 19),
        Window(12, 22),
    ]
    assert Sliding(10, 10).assign(12) == [Window(10, 20)]
    assert Sliding(10, 5, offset=1).assign(12) == [Window(6, 16), Window(11, 21)]


def test_sliding_with_gaps():
    s = Sliding(2, 5)
    assert s.assign(0) == [Window(0, 2)]
    assert s.assign(1.5) == [Window(0, 2)]
    assert s.assign(2) == []
    assert s.assign(4.9) == []
    assert s.assign(5) == [Window(5, 7)]


def test_sliding_matches_brute_force():
    s = Sliding(7, 3, offset=1)
    for ts in [x / 4 for x in range(-40, 80)]:
        brute = [
            Window(k * 3 + 1, k * 3 + 8) for k in range(-30, 40) if k * 3 + 1 <= ts < k * 3 + 8
        ]
        assert s.assign(ts) == brute


def test_session_proto_window():
    assert Session(5).assign(12) == [Window(12, 17)]
    assert Session("2s").assign(1) == [Window(1, 3.0)]


def test_count_tumbling_positions():
    c = CountTumbling(3)
    assert [c.assign(i) for i in range(7)] == [
        [Window(0, 3)],
        [Window(0, 3)],
        [Window(0, 3)],
        [Window(3, 6)],
        [Window(3, 6)],
        [Window(3, 6)],
        [Window(6, 9)],
    ]


def test_count_sliding_positions():
    c = CountSliding(3)
    assert c.assign(0) == [Window(0, 3)]
    assert c.assign(1) == [Window(0, 3), Window(1, 4)]
    assert c.assign(4) == [Window(2, 5), Window(3, 6), Window(4, 7)]
    c2 = CountSliding(4, slide=2)
    assert c2.assign(0) == [Window(0, 4)]
    assert c2.assign(3) == [Window(0, 4), Window(2, 6)]
    gaps = CountSliding(2, slide=3)
    assert [gaps.assign(i) for i in range(5)] == [
        [Window(0, 2)],
        [Window(0, 2)],
        [],
        [Window(3, 5)],
        [Window(3, 5)],
    ]


def test_global_window():
    assert Global(3).assign("anything") == [GLOBAL_WINDOW]
    assert Global(3).purge is True
    assert Global(lambda c, a: True, purge=False).purge is False


def test_reprs_and_equality():
    assert repr(Tumbling(10)) == "Tumbling(10)"
    assert repr(Tumbling(10, offset=2)) == "Tumbling(10, offset=2)"
    assert repr(Sliding(10, 5)) == "Sliding(10, 5)"
    assert repr(Session(3)) == "Session(3)"
    assert repr(CountTumbling(4)) == "CountTumbling(4)"
    assert repr(CountSliding(4, 2)) == "CountSliding(4, slide=2)"
    assert repr(Global(5)) == "Global(5)"
    assert Tumbling(10) == Tumbling(10) and Tumbling(10) != Tumbling(5)
    assert hash(Sliding(4, 2)) == hash(Sliding(4, 2))
    assert Tumbling(10) != Session(10)


@pytest.mark.parametrize(
    "make, error, words",
    [
        (lambda: Tumbling(0), ValueError, ["Tumbling", "size", "0"]),
        (lambda: Tumbling(-1), ValueError, ["Tumbling", "size"]),
        (lambda: Tumbling(math.inf), ValueError, ["Tumbling", "size"]),
        (lambda: Tumbling(math.nan), ValueError, ["Tumbling", "size"]),
        (lambda: Tumbling("soon"), ValueError, ["Tumbling", "size", "soon"]),
        (lambda: Tumbling(None), TypeError, ["Tumbling", "size"]),
        (lambda: Tumbling(True), TypeError, ["Tumbling", "size"]),
        (lambda: Tumbling(10, offset="1"), TypeError, ["Tumbling", "offset"]),
        (lambda: Tumbling(10, offset=math.inf), ValueError, ["Tumbling", "offset"]),
        (lambda: Sliding(10, 0), ValueError, ["Sliding", "slide"]),
        (lambda: Sliding(0, 1), ValueError, ["Sliding", "size"]),
        (lambda: Session(0), ValueError, ["Session", "gap"]),
        (lambda: CountTumbling(0), ValueError, ["CountTumbling", "n"]),
        (lambda: CountTumbling(2.5), ValueError, ["CountTumbling", "n"]),
        (lambda: CountSliding(3, slide=0), ValueError, ["CountSliding", "slide"]),
        (lambda: Global(0), ValueError, ["Global", "trigger"]),
        (lambda: Global("often"), TypeError, ["Global", "trigger"]),
        (lambda: Global(True), TypeError, ["Global", "trigger"]),
    ],
)
def test_bad_arguments(make, error, words):
    with pytest.raises(error) as info:
        make()
    for word in words:
        assert word in str(info.value)
