"""frequencies: O(1) snapshots that stay independent, compare and pickle like dicts."""

from __future__ import annotations

import gc
import pickle
import random
import sys
import threading
import time

from millstream import Stream
from millstream.operators.aggregate import FrequencyTable


def expected_snapshots(xs):
    counts = {}
    out = []
    for x in xs:
        counts[x] = counts.get(x, 0) + 1
        out.append(dict(counts))
    return out


def data(n, keys=50, seed=0):
    rng = random.Random(seed)
    return [rng.randrange(keys) for _ in range(n)]


def test_all_snapshots_kept_over_10k_elements():
    xs = data(10_000)
    source = Stream()
    L = source.frequencies().sink_to_list()
    for x in xs:
        source.emit(x)
    expected = expected_snapshots(xs)
    assert len(L) == len(expected)
    # read in an order that is not the emission order
    for i in [*range(0, 10_000, 7), *range(9_999, -1, -13)]:
        assert L[i] == expected[i], i
    assert [dict(t) for t in L] == expected


def test_all_snapshots_kept_batch_path():
    xs = data(10_000, keys=7, seed=1)
    source = Stream()
    L = source.frequencies().sink_to_list()
    for _ in source._emit_batch(xs):
        pass
    assert [t.copy() for t in L] == expected_snapshots(xs)


def test_only_last_kept():
    xs = data(10_000, seed=2)
    source = Stream()
    last = []
    source.frequencies().sink(lambda t: last.__setitem__(slice(None), [t]))
    for x in xs:
        source.emit(x)
    assert last[0] == expected_snapshots(xs)[-1]
    assert len(last[0]) == 50


def test_one_old_snapshot_kept_while_5000_arrive():
    xs = data(5_200, keys=30, seed=3)
    expected = expected_snapshots(xs)
    source = Stream()
    node = source.frequencies()
    kept = {}
    keep_at = {99, 127}  # 127 is the 128th snapshot: one of those compaction tracks

    def keep(t, counter=[0]):  # noqa: B006
        if counter[0] in keep_at:
            kept[counter[0]] = t
        counter[0] += 1

    node.sink(keep)
    for x in xs:
        source.emit(x)
    gc.collect()
    # the tracked snapshot was given its own dict by compaction, freeing the chain
    assert kept[127]._base is None
    for i, t in kept.items():
        assert t == expected[i]
        assert dict(t) == expected[i]
        assert len(t) == len(expected[i])
        for k in range(30):
            assert t.get(k) == expected[i].get(k)
    assert node.current_value == expected[-1]


def test_snapshot_does_not_change_when_reading_old_first():
    source = Stream()
    L = source.frequencies().sink_to_list()
    for w in "abcab":
        source.emit(w)
    assert L[1]["b"] == 1
    assert "c" not in L[1]
    assert L[0] == {"a": 1}
    assert L[4] == {"a": 2, "b": 2, "c": 1}
    source.emit("c")
    assert L[4] == {"a": 2, "b": 2, "c": 1}
    assert L[5] == {"a": 2, "b": 2, "c": 2}


def test_pickle_gives_dict():
    source = Stream()
    L = source.frequencies().sink_to_list()
    for w in "aab":
        source.emit(w)
    for t, exp in zip(L, [{"a": 1}, {"a": 2}, {"a": 2, "b": 1}], strict=True):
        back = pickle.loads(pickle.dumps(t))
        assert type(back) is dict and back == exp


def test_equality_and_mapping_behaviour():
    source = Stream()
    L = source.frequencies().sink_to_list()
    for w in "aab":
        source.emit(w)
    t = L[2]
    assert t == {"a": 2, "b": 1}
    assert {"b": 1, "a": 2} == t  # noqa: SIM300  (dict on the left)
    assert t != {"a": 2}
    assert L[1] == FrequencyTable({"a": 2})
    assert L[1] != L[2]
    assert t != [("a", 2)]
    assert list(t) == ["a", "b"]
    assert list(t.items()) == [("a", 2), ("b", 1)]
    assert repr(t) == "{'a': 2, 'b': 1}"
    assert t.copy() == {"a": 2, "b": 1} and type(t.copy()) is dict
    try:
        hash(t)
    except TypeError:
        pass
    else:  # pragma: no cover
        raise AssertionError("FrequencyTable must not be hashable")


def test_snapshot_restore_round_trip():
    xs = data(300, keys=5, seed=4)
    full = Stream()
    L_full = full.frequencies().sink_to_list()
    for x in xs:
        full.emit(x)

    first = Stream()
    node1 = first.frequencies()
    for x in xs[:150]:
        first.emit(x)
    state = pickle.loads(pickle.dumps(node1.snapshot()))
    second = Stream()
    node2 = second.frequencies()
    node2.restore(state)
    L2 = node2.sink_to_list()
    for x in xs[150:]:
        second.emit(x)
    assert [dict(t) for t in L2] == [dict(t) for t in L_full[150:]]


def test_concurrent_reads_never_raise():
    xs = data(30_000, keys=40, seed=5)
    source = Stream()
    L = source.frequencies().sink_to_list()
    errors = []
    done = threading.Event()

    def write():
        try:
            for x in xs:
                source.emit(x)
        except BaseException as e:  # pragma: no cover
            errors.append(e)
        finally:
            done.set()

    old_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # switch threads often: reads land in the middle of updates
    writer = threading.Thread(target=write)
    writer.start()
    rng = random.Random(6)
    try:
        _read_while_writing(L, rng, done, errors)
    finally:
        sys.setswitchinterval(old_interval)
    writer.join()
    assert errors == []
    assert L[-1] == expected_snapshots(xs)[-1]


def _read_while_writing(L, rng, done, errors):
    reads = 0
    while not done.is_set() or reads < 200:
        n = len(L)
        if not n:
            continue
        i = rng.randrange(max(0, n - 50), n)  # mostly the newest snapshots, under change
        t = L[i]
        try:
            for k in (rng.randrange(40), rng.randrange(40)):
                t.get(k)
            total = sum(t.values())
            assert total == i + 1
            len(t)
            list(t)
        except BaseException as e:
            errors.append(e)
            break
        reads += 1


def test_concurrent_reads_with_thread_loop_emits():
    source = Stream(ensure_io_loop=True)
    L = source.frequencies().sink_to_list()
    errors = []
    stop = threading.Event()

    def read():
        while not stop.is_set():
            if L:
                t = L[-1]
                try:
                    assert sum(t.values()) <= len(L) + 1
                    dict(t)
                except BaseException as e:
                    errors.append(e)
                    return
            time.sleep(0)  # let the emitting threads have the GIL

    reader = threading.Thread(target=read)
    reader.start()
    for i in range(500):
        source.emit(i % 9)
    stop.set()
    reader.join()
    assert errors == []
    assert L[-1] == {k: (56 if k < 5 else 55) for k in range(9)}


def test_a_snapshot_superseded_while_an_older_one_is_read_keeps_its_counts(monkeypatch):
    """The race behind a rare failure of test_concurrent_reads_never_raise, made
    deterministic: an older snapshot is materialized from the newest one, which the writer
    supersedes in between; the newest then gets its own dict, and the older one must not
    apply its changes to that dict."""
    from millstream.operators.aggregate import FrequencyTable

    source = Stream()
    L = source.frequencies().sink_to_list()
    for word in "a b a c".split():
        source.emit(word)
    older, newest = L[1], L[3]
    chain = FrequencyTable._chain

    def chain_then_write(self):
        found = chain(self)
        if self is older:
            source.emit("a")  # the writer moves on while the reader walks
        return found

    monkeypatch.setattr(FrequencyTable, "_chain", chain_then_write)
    assert dict(older) == {"a": 1, "b": 1}
    monkeypatch.undo()
    assert dict(newest) == {"a": 2, "b": 1, "c": 1}
    assert dict(L[4]) == {"a": 3, "b": 1, "c": 1}


def test_a_copy_is_the_callers_to_change():
    source = Stream()
    L = source.frequencies().sink_to_list()
    for word in "a b a".split():
        source.emit(word)
    mine = L[1].copy()
    mine["a"] = 100
    again = L[1].copy()
    again.clear()
    assert dict(L[1]) == {"a": 1, "b": 1}
