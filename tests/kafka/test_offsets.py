"""OffsetTracker: the completed-prefix rule, for any completion order (no broker needed)."""

from __future__ import annotations

import threading

from hypothesis import given
from hypothesis import strategies as st

from millstream.kafka.offsets import OffsetTracker


def prefix_end(ranges, finished, failed):
    """Independent oracle: the offset after the longest run of successfully finished ranges."""
    end = None
    for i, (_first, last) in enumerate(ranges):
        if i not in finished or i in failed:
            break
        end = last + 1
    return end


@given(
    sizes=st.lists(st.integers(1, 5), min_size=1, max_size=12),
    data=st.data(),
)
def test_commits_never_pass_an_unfinished_or_failed_range(sizes, data):
    ranges, offset = [], 0
    for size in sizes:
        ranges.append((offset, offset + size - 1))
        offset += size
    order = data.draw(st.permutations(range(len(ranges))))
    failed = set(data.draw(st.lists(st.sampled_from(range(len(ranges))), max_size=2)))
    tracker = OffsetTracker()
    handles = [tracker.begin("t", 0, first, last) for first, last in ranges]
    finished: set[int] = set()
    last_commit = None
    for i in order:
        tracker.finish(handles[i], ValueError("x") if i in failed else None)
        finished.add(i)
        expected = prefix_end(ranges, finished, failed)
        commits = tracker.take_commits()
        if expected != last_commit:
            assert commits == {("t", 0): expected}
            last_commit = expected
        else:
            assert commits == {}
        assert tracker.committable(("t", 0)) == expected
    assert tracker.in_flight == 0
    assert (tracker.failure is not None) == bool(failed)


def test_partitions_are_independent():
    tracker = OffsetTracker()
    a = tracker.begin("t", 0, 0, 4)
    b = tracker.begin("t", 1, 0, 9)
    tracker.finish(b)
    assert tracker.take_commits() == {("t", 1): 10}
    tracker.finish(a)
    assert tracker.take_commits() == {("t", 0): 5}


def test_finishing_twice_or_after_forget_has_no_effect():
    tracker = OffsetTracker()
    a = tracker.begin("t", 0, 0, 0)
    b = tracker.begin("t", 0, 1, 1)
    tracker.finish(a)
    tracker.finish(a, ValueError("late"))
    assert tracker.failure is None
    assert tracker.forget(("t", 0)) == 1  # revoked: what is done is still to commit
    tracker.finish(b)  # the new owner of the partition reads it again
    assert tracker.take_commits() == {}
    assert tracker.in_flight == 0


def test_finish_from_many_threads():
    tracker = OffsetTracker()
    handles = [tracker.begin("t", 0, i, i) for i in range(2000)]
    calls = []
    tracker.on_finish = lambda: calls.append(1)
    threads = [
        threading.Thread(target=lambda hs=handles[k::4]: [tracker.finish(h) for h in hs])
        for k in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert tracker.take_commits() == {("t", 0): 2000}
    assert tracker.in_flight == 0 and len(calls) == 2000
