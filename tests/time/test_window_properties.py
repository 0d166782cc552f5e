"""Property tests: windowed results equal a batch computation, and no element vanishes.

Events are ``(id, key, ts)`` with integer timestamps (exact window arithmetic). An arrival
order is *within the bound* when every element arrives while ``ts >= watermark - allowed_lateness``
(the watermark being the largest timestamp seen so far minus ``max_out_of_orderness``):
sorting the events by ``ts + jitter`` with ``0 <= jitter <= max_out_of_orderness +
allowed_lateness`` gives exactly such orders.
"""

from __future__ import annotations

import pickle
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from millstream import Stream
from millstream.time.windows import CountSliding, CountTumbling, Global, Session, Sliding, Tumbling

SETTINGS = settings(max_examples=150, deadline=None, database=None)

keys = st.sampled_from("abc")
events_st = st.lists(st.tuples(keys, st.integers(0, 60)), max_size=40).map(
    lambda pairs: [(i, k, t) for i, (k, t) in enumerate(pairs)]
)
time_assigners = st.one_of(
    st.builds(Tumbling, st.integers(1, 15), offset=st.integers(0, 5)),
    st.builds(Sliding, st.integers(1, 15), st.integers(1, 15), offset=st.integers(0, 5)),
    st.builds(Session, st.integers(1, 10)),
)


def batch(assigner, events):
    """{(key, window): sorted ids}, computed over the whole input at once."""
    out: dict = {}
    if assigner.kind == "time":
        for i, key, ts in events:
            for w in assigner.assign(ts):
                out.setdefault((key, w), []).append(i)
    else:
        by_key: dict = {}
        for e in events:
            by_key.setdefault(e[1], []).append(e)
        for key, evs in by_key.items():
            evs.sort(key=lambda e: e[2])
            start = end = None
            ids: list = []
            for i, _, ts in evs:
                if end is not None and ts < end:
                    end = max(end, ts + assigner.gap)
                    ids.append(i)
                    continue
                if end is not None:
                    out[(key, (start, end))] = ids
                start, end, ids = ts, ts + assigner.gap, [i]
            if end is not None:
                out[(key, (start, end))] = ids
    return {k: sorted(v) for k, v in out.items()}


def build(assigner, **kwargs):
    source = Stream()
    node = source.window(
        assigner,
        "collect",
        key=lambda e: e[1],
        value=lambda e: e[0],
        timestamp=lambda e: e[2],
        **kwargs,
    )
    return source, node, node.sink_to_list()


def pairs_of(assigner, events):
    """Every (key, window, id) an element belongs to (sessions: one per element)."""
    if assigner.kind == "session":
        return None
    return {(k, w, i) for i, k, ts in events for w in assigner.assign(ts)}


ASSIGNERS = {
    "tumbling": st.builds(Tumbling, st.integers(1, 15), offset=st.integers(0, 5)),
    "sliding": st.builds(Sliding, st.integers(1, 15), st.integers(1, 15), offset=st.integers(0, 5)),
    "session": st.builds(Session, st.integers(1, 10)),
}


@pytest.mark.parametrize("kind", sorted(ASSIGNERS))
@SETTINGS
@given(events=events_st, bound=st.integers(0, 10), lateness=st.integers(0, 10), data=st.data())
def test_any_order_within_the_bound_gives_the_batch_result(kind, events, bound, lateness, data):
    assigner = data.draw(ASSIGNERS[kind])
    most = bound + lateness
    jitter = data.draw(
        st.lists(
            st.one_of(st.just(most), st.integers(0, most)),
            min_size=len(events),
            max_size=len(events),
        )
    )
    order = sorted(range(len(events)), key=lambda i: (events[i][2] + jitter[i], i))
    arrival = [events[i] for i in order]
    source, node, out = build(assigner, max_out_of_orderness=bound, allowed_lateness=lateness)
    for e in arrival:
        source.emit(e)
    node.flush()
    assert node.late_count == 0
    assert all(r.kind == "final" for r in out)
    streamed = {(r.key, tuple(r.window)): sorted(r.value) for r in out}
    assert len(streamed) == len(out)  # one result per key and window
    assert streamed == batch(assigner, events)
    ends = [r.window.end for r in out]
    assert ends == sorted(ends)


@pytest.mark.parametrize("kind", sorted(ASSIGNERS))
@SETTINGS
@given(
    events=events_st,
    bound=st.integers(0, 5),
    lateness=st.integers(0, 5),
    late=st.sampled_from(["drop", "side"]),
    data=st.data(),
)
def test_any_order_no_element_vanishes(kind, events, bound, lateness, late, data):
    assigner = data.draw(ASSIGNERS[kind])
    arrival = data.draw(st.permutations(events))
    source, node, out = build(
        assigner, max_out_of_orderness=bound, allowed_lateness=lateness, late=late
    )
    side = node.late.sink_to_list()
    for e in arrival:
        source.emit(e)
    node.flush()
    assert all(r.kind == "final" for r in out)
    in_results = [(r.key, r.window, i) for r in out for i in r.value]
    assert len(in_results) == len(set(in_results))
    if late == "side":
        assert len(side) == node.late_count and node.dropped_count == 0
        late_pairs = [(e[1], w, e[0]) for w, e in side]
    else:
        assert side == [] and node.dropped_count == node.late_count
        late_pairs = []
    expected = pairs_of(assigner, events)
    if expected is not None:  # time windows: every (window, element) pair is accounted for
        assert len(in_results) + node.late_count == len(expected)
        if late == "side":
            assert set(in_results) | set(late_pairs) == expected
            assert not set(in_results) & set(late_pairs)
    else:  # sessions: each element is in exactly one result, or late once
        ids = Counter(i for _, _, i in in_results + late_pairs)
        assert len(in_results) + node.late_count == len(events)
        if late == "side":
            assert ids == Counter(e[0] for e in events)


@SETTINGS
@given(
    assigner=st.one_of(
        st.builds(Tumbling, st.integers(1, 15), offset=st.integers(0, 5)),
        st.builds(Sliding, st.integers(1, 15), st.integers(1, 15)),
    ),
    events=events_st,
    bound=st.integers(0, 5),
    lateness=st.integers(0, 5),
    data=st.data(),
)
def test_late_updates_converge_to_the_batch_result(assigner, events, bound, lateness, data):
    arrival = data.draw(st.permutations(events))
    source, node, out = build(
        assigner, max_out_of_orderness=bound, allowed_lateness=lateness, late="update"
    )
    for e in arrival:
        source.emit(e)
    node.flush()
    latest: dict = {}
    for r in out:
        assert r.kind in ("final", "update")
        if r.kind == "final":
            assert (r.key, tuple(r.window)) not in latest  # one final per window, then updates
        latest[(r.key, tuple(r.window))] = sorted(r.value)
    assert latest == batch(assigner, events)
    assert node.dropped_count == 0
    assert node.late_count == len([r for r in out if r.kind == "update"])


@SETTINGS
@given(events=events_st, gap=st.integers(1, 10), bound=st.integers(0, 5), data=st.data())
def test_session_updates_account_for_every_element(events, gap, bound, data):
    arrival = data.draw(st.permutations(events))
    source, node, out = build(Session(gap), max_out_of_orderness=bound, late="update")
    for e in arrival:
        source.emit(e)
    node.flush()
    seen = {i for r in out for i in r.value}
    assert seen == {e[0] for e in events}
    assert node.dropped_count == 0


@SETTINGS
@given(
    values=st.lists(st.tuples(keys, st.integers()), max_size=40),
    n=st.integers(1, 5),
    slide=st.integers(1, 5),
    sliding=st.booleans(),
)
def test_count_windows_equal_chunks_of_each_key(values, n, slide, sliding):
    assigner = CountSliding(n, slide) if sliding else CountTumbling(n)
    source = Stream()
    node = source.window(assigner, "collect", key=lambda e: e[0], value=lambda e: e[1])
    out = node.sink_to_list()
    for v in values:
        source.emit(v)
    node.flush()
    expected = set()
    for key in set(k for k, _ in values):
        items = [v for k, v in values if k == key]
        step = slide if sliding else n
        for start in range(0, len(items), step):
            chunk = items[start : start + n]
            expected.add((key, start, start + len(chunk), tuple(chunk)))
    got = [(r.key, r.window.start, r.window.end, tuple(r.value)) for r in out]
    assert len(got) == len(set(got))
    assert set(got) == expected


@SETTINGS
@given(values=st.lists(st.integers(-5, 5), max_size=30), n=st.integers(1, 6))
def test_global_every_n_partitions_the_input(values, n):
    source = Stream()
    node = source.window(Global(n), "collect")
    out = node.sink_to_list()
    for v in values:
        source.emit(v)
    node.flush()
    assert [r.value for r in out] == [values[i : i + n] for i in range(0, len(values), n)]


@SETTINGS
@given(
    assigner=time_assigners,
    events=events_st,
    bound=st.integers(0, 5),
    late=st.sampled_from(["drop", "side", "update"]),
    early=st.sampled_from([None, 1, 3]),
    data=st.data(),
)
def test_snapshot_restore_anywhere_changes_nothing(assigner, events, bound, late, early, data):
    arrival = data.draw(st.permutations(events))
    cut = data.draw(st.integers(0, len(arrival)))
    kwargs = dict(max_out_of_orderness=bound, late=late, early=early)

    source, node, out = build(assigner, **kwargs)
    side = node.late.sink_to_list()
    for e in arrival:
        source.emit(e)
    node.flush()

    source1, node1, out1 = build(assigner, **kwargs)
    side1 = node1.late.sink_to_list()
    for e in arrival[:cut]:
        source1.emit(e)
    state = pickle.loads(pickle.dumps(node1.snapshot()))
    source2, node2, out2 = build(assigner, **kwargs)
    side2 = node2.late.sink_to_list()
    node2.restore(state)
    for e in arrival[cut:]:
        source2.emit(e)
    node2.flush()
    assert out1 + out2 == out
    assert side1 + side2 == side
    assert (node2.late_count, node2.dropped_count) == (node.late_count, node.dropped_count)


@SETTINGS
@given(
    assigner=st.builds(Tumbling, st.integers(1, 15), offset=st.integers(0, 5)),
    events=events_st,
    bound=st.integers(0, 5),
    late=st.sampled_from(["drop", "side", "update"]),
    data=st.data(),
)
def test_tumbling_short_path_equals_the_general_path(assigner, events, bound, late, data):
    """Elements with metadata take the general path; the results must not differ."""
    from millstream.core.refs import RefCounter

    arrival = data.draw(st.permutations(events))
    runs = []
    for with_metadata in (False, True):
        source, node, out = build(assigner, max_out_of_orderness=bound, late=late)
        side = node.late.sink_to_list()
        refs = []
        for e in arrival:
            if with_metadata:
                refs.append(RefCounter())
                source.emit(e, metadata=[{"ref": refs[-1]}])
            else:
                source.emit(e)
        node.flush()
        assert all(ref.count == 0 and not ref.failed for ref in refs)
        runs.append((out, side, node.late_count, node.dropped_count))
    assert runs[0] == runs[1]
