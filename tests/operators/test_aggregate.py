"""accumulate / scan and frequencies: outputs, state round trips, errors."""

from __future__ import annotations

import pickle

import pytest

from millstream import Stream, no_default


def test_accumulate_without_start_emits_first_element_unchanged():
    calls = []

    def add(acc, x):
        calls.append((acc, x))
        return acc + x

    source = Stream()
    out = source.accumulate(add).sink_to_list()
    for i in [5, 1, 2]:
        source.emit(i)
    assert out == [5, 6, 8]
    assert calls == [(5, 1), (6, 2)]


def test_accumulate_with_state_emits_state_result_pairs():
    source = Stream()
    out = source.accumulate(lambda acc, x: acc + x, start=0, with_state=True).sink_to_list()
    source.emit(1)
    source.emit(2)
    assert out == [(1, 1), (3, 3)]


def test_accumulate_returns_state_and_kwargs():
    source = Stream()
    node = source.accumulate(
        lambda acc, x, k: (acc + x, acc * k), start=1, returns_state=True, k=10
    )
    out = node.sink_to_list()
    source.emit(1)
    source.emit(2)
    assert out == [10, 20]
    assert node.state == 4


def test_accumulate_returns_state_with_a_non_pair_is_a_clear_error():
    source = Stream()
    source.accumulate(lambda acc, x: acc + x, start=0, returns_state=True).sink_to_list()
    with pytest.raises(TypeError, match=r"must return a \(state, result\) pair, got int"):
        source.emit(1)


def test_accumulate_snapshot_round_trip_continues_identically():
    def run(items, node_state=None):
        source = Stream()
        node = source.accumulate(lambda acc, x: acc + [x], start=[])
        out = node.sink_to_list()
        if node_state is not None:
            node.restore(pickle.loads(node_state))
        for x in items:
            source.emit(x)
        return node, out

    _, full = run([1, 2, 3, 4])
    first, _ = run([1, 2])
    saved = pickle.dumps(first.snapshot())
    _, resumed = run([3, 4], saved)
    assert resumed == full[2:]


def test_accumulate_snapshot_before_first_element_keeps_the_no_state_marker():
    source = Stream()
    node = source.accumulate(lambda a, x: a + x)
    assert node.snapshot() == {"state": no_default}
    other = Stream().accumulate(lambda a, x: a + x)
    other.restore(node.snapshot())
    out = other.sink_to_list()
    other.upstream.emit(7)
    assert out == [7]


def test_frequencies_counts_and_snapshots_are_independent():
    source = Stream()
    out = source.frequencies().sink_to_list()
    for w in "a b a c b a".split():
        source.emit(w)
    assert [dict(x) for x in out] == [
        {"a": 1},
        {"a": 1, "b": 1},
        {"a": 2, "b": 1},
        {"a": 2, "b": 1, "c": 1},
        {"a": 2, "b": 2, "c": 1},
        {"a": 3, "b": 2, "c": 1},
    ]
    assert out[1] == {"a": 1, "b": 1}
    assert "c" not in out[2] and out[2].get("c") is None
    assert pickle.loads(pickle.dumps(out[3])) == {"a": 2, "b": 1, "c": 1}


def test_frequencies_snapshot_round_trip():
    source = Stream()
    node = source.frequencies()
    for w in "x y x".split():
        source.emit(w)
    state = pickle.loads(pickle.dumps(node.snapshot()))
    source2 = Stream()
    node2 = source2.frequencies()
    node2.restore(state)
    out = node2.sink_to_list()
    source2.emit("y")
    assert out == [{"x": 2, "y": 2}]


def test_frequencies_of_unhashable_element_names_the_node():
    source = Stream()
    source.frequencies().sink_to_list()
    with pytest.raises(TypeError) as info:
        source.emit(["a", "list"])
    assert info.value.__notes__[0].startswith("millstream: <frequencies> failed on element")
