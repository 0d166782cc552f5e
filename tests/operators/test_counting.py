"""slice, partition, partition_unique, sliding_window, unique, collect.

Expected outputs marked "Streamz" were checked by running streamz 0.6.6 on the same
input. Metadata and ref counts follow streamz-api.md §1.4 with its bugs fixed.
"""

from __future__ import annotations

import asyncio
import logging
import pickle
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

import pytest

from millstream import RefCounter, Stream
from millstream.core.fusion import is_fusible
from millstream.operators.counting import LRU

# -- helpers ---------------------------------------------------------------------------


class meta(Stream):
    """Emits the metadata list of each element that has some (Streamz's ``metadata`` probe)."""

    def update(self, x: Any, who: Stream | None = None, metadata: Any = None) -> Any:
        if metadata:
            return self._emit(list(metadata))
        return None


class hold(Stream):
    """Downstream work that finishes only when the test resolves its future."""

    def __init__(self, upstream: Stream, **kwargs: Any):
        self.futures: list[asyncio.Future[Any]] = []
        self.seen: list[Any] = []
        super().__init__(upstream, **kwargs)

    def update(self, x: Any, who: Stream | None = None, metadata: Any = None) -> Any:
        fut = asyncio.get_running_loop().create_future()
        self.futures.append(fut)
        self.seen.append(x)
        return [fut]


def refs(n: int) -> list[RefCounter]:
    return [RefCounter() for _ in range(n)]


def md(ref: RefCounter, **extra: Any) -> list[dict[str, Any]]:
    return [{"ref": ref, **extra}]


def fail_on(bad: Any) -> Callable[[Any], Any]:
    def check(x: Any) -> Any:
        if x == bad:
            raise ZeroDivisionError(f"bad {x!r}")
        return x

    return check


def fused_and_plain(build: Callable[[Stream], Stream], xs: list[Any]) -> list[Any]:
    """Run ``xs`` through ``build`` three ways (fused one by one, fused batch, plain with
    metadata); all must give the same output, which is returned."""
    fused = Stream()
    got1 = build(fused).sink_to_list()
    for i, x in enumerate(xs):
        fused.emit(x)
        if i == 0:
            assert fused._compiled is not None, "expected the graph to be fused"

    batch = Stream()
    got2 = build(batch).sink_to_list()
    for pending in batch._emit_batch(xs):
        assert not pending

    plain = Stream()
    got3 = build(plain).sink_to_list()
    for i, x in enumerate(xs):
        plain.emit(x, metadata=[{"i": i}])
    assert got1 == got2 == got3
    return got1


def round_trip(
    build: Callable[[Stream], Stream], first: list[Any], rest: list[Any]
) -> tuple[list[Any], list[Any], Any]:
    """Uninterrupted output vs. (output before snapshot + output of a restored fresh node)."""
    whole_src = Stream()
    whole = build(whole_src).sink_to_list()
    for x in first + rest:
        whole_src.emit(x)

    src1 = Stream()
    node1 = build(src1)
    out1 = node1.sink_to_list()
    for x in first:
        src1.emit(x)
    state = node1.snapshot()
    state = pickle.loads(pickle.dumps(state))

    src2 = Stream()
    node2 = build(src2)
    out2 = node2.sink_to_list()
    node2.restore(state)
    for x in rest:
        src2.emit(x)
    return whole, out1 + out2, state


# -- slice -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "pars,expected",
    [  # Streamz test_slice cases (6 elements 0..5), verified against streamz 0.6.6
        ([], [0, 1, 2, 3, 4, 5]),
        ([None, None, None], [0, 1, 2, 3, 4, 5]),
        ([1, None, None], [1, 2, 3, 4, 5]),
        ([None, 4, None], [0, 1, 2, 3]),
        ([None, 4, 2], [0, 2]),
        ([3, 1, None], []),
    ],
)
def test_slice_streamz_cases(pars: list[Any], expected: list[int]) -> None:
    a = Stream()
    out = a.slice(*pars).sink_to_list()
    for i in range(6):
        a.emit(i)
    assert out == expected


def test_slice_step_counts_from_zero_like_streamz() -> None:
    # Streamz quirk kept on purpose: positions i >= start with i % step == 0
    a = Stream()
    out = a.slice(1, None, 2).sink_to_list()
    for i in range(8):
        a.emit(i)
    assert out == [2, 4, 6]  # Python's [1::2] would give [1, 3, 5, 7]


def test_slice_start_end_step() -> None:
    a = Stream()
    out = a.slice(2, 6, 2).sink_to_list()
    for i in range(10):
        a.emit(i)
    assert out == [2, 4]


def test_slice_detaches_at_end() -> None:
    a = Stream()
    s = a.slice(None, 3)
    out = s.sink_to_list()
    a.emit(0)
    a.emit(1)
    assert s in a.downstreams
    a.emit(2)
    assert s not in a.downstreams
    assert s.upstreams == [a]  # like Streamz: still knows its upstream (start/stop work)
    a.emit(3)
    assert out == [0, 1, 2]


def test_slice_end_zero_passes_nothing() -> None:
    # Streamz treats end=0 as "no end" and passes everything
    a = Stream()
    s = a.slice(0, 0)
    out = s.sink_to_list()
    for i in range(3):
        a.emit(i)
    assert out == []
    assert s not in a.downstreams


@pytest.mark.parametrize(
    "kwargs", [{"end": -1}, {"start": -2}, {"step": -1}, {"start": 1, "end": -5}]
)
def test_slice_negative_raises(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="slice: negative indices are not supported"):
        Stream().slice(**kwargs)


def test_slice_step_zero_raises() -> None:
    with pytest.raises(ValueError, match="slice: step must not be zero"):
        Stream().slice(None, None, 0)


@pytest.mark.parametrize("bad", [1.5, "2", True])
def test_slice_non_integer_raises(bad: Any) -> None:
    with pytest.raises(TypeError, match="slice: start must be an integer or None"):
        Stream().slice(bad)


def test_slice_passes_backpressure_on() -> None:
    async def main() -> None:
        source = Stream(asynchronous=True)
        h = hold(source.slice(1))
        await source.emit(0)
        task = asyncio.ensure_future(source.emit(1))
        await asyncio.sleep(0.01)
        assert h.seen == [1] and not task.done()
        h.futures[0].set_result(None)
        await task

    asyncio.run(main())


def test_slice_metadata_passes_through_and_refs_are_released() -> None:
    a = Stream()
    got = meta(a.slice(1, None, 2)).sink_to_list()
    rs = refs(4)
    for i, r in enumerate(rs):
        a.emit(i, metadata=md(r, v=i))
        assert r.count == 0
    assert got == [[{"ref": rs[2], "v": 2}]]


def test_slice_fused_matches_plain() -> None:
    assert is_fusible(Stream().slice(1, 7, 2))
    out = fused_and_plain(lambda s: s.slice(1, 7, 2).map(lambda x: x * 10), list(range(10)))
    assert out == [20, 40, 60]


def test_slice_snapshot_round_trip() -> None:
    whole, resumed, state = round_trip(
        lambda s: s.slice(1, 9, 3), list(range(4)), list(range(4, 12))
    )
    assert state == {"count": 4}
    assert whole == resumed == [3, 6]


def test_slice_restore_past_end_detaches() -> None:
    a = Stream()
    s = a.slice(None, 5)
    out = s.sink_to_list()
    s.restore({"count": 5})
    assert s not in a.downstreams
    a.emit(1)
    assert out == []


def test_slice_restore_before_end_reattaches() -> None:
    a = Stream()
    s = a.slice(None, 2)
    out = s.sink_to_list()
    a.emit("a")
    a.emit("b")
    assert s not in a.downstreams
    s.restore({"count": 1})
    a.emit("c")
    a.emit("d")
    assert out == ["a", "b", "c"]


# -- partition -------------------------------------------------------------------------


def test_partition() -> None:
    source = Stream()
    got = source.partition(2).sink_to_list()
    for i in range(10):
        source.emit(i)
    assert got == [(0, 1), (2, 3), (4, 5), (6, 7), (8, 9)]


def test_partition_key_index() -> None:
    source = Stream()
    got = source.partition(2, key=0).sink_to_list()
    for i in range(4):
        source.emit((i % 2, i))
    assert got == [((0, 0), (0, 2)), ((1, 1), (1, 3))]


def test_partition_key_callable() -> None:
    source = Stream()
    got = source.partition(2, key=lambda x: x % 2).sink_to_list()
    for i in range(10):
        source.emit(i)
    assert got == [(0, 2), (1, 3), (4, 6), (5, 7)]


def test_partition_key_dict_field() -> None:
    source = Stream()
    got = source.partition(2, key="k").sink_to_list()
    for i, k in enumerate("abba"):
        source.emit({"k": k, "i": i})
    assert got == [
        ({"k": "b", "i": 1}, {"k": "b", "i": 2}),
        ({"k": "a", "i": 0}, {"k": "a", "i": 3}),
    ]


def test_partition_size_one() -> None:
    source = Stream()
    got = source.partition(1).sink_to_list()
    for i in range(3):
        source.emit(i)
    assert got == [(0,), (1,), (2,)]


def test_partition_str() -> None:
    assert str(Stream().partition(2)) == "<partition: 2>"


def test_partition_without_timeout_needs_no_loop() -> None:
    source = Stream()
    p = source.partition(2)
    assert p.loop is None and source.loop is None
    assert is_fusible(p)


def test_partition_with_timeout_forces_loop(manual_clock: Any) -> None:
    source = Stream()
    p = source.partition(2, timeout=1)
    assert p.loop is not None and source.loop is p.loop
    assert not is_fusible(p)


def test_partition_flushed_groups_leave_no_keys() -> None:
    source = Stream()
    p = source.partition(2, key=lambda x: x % 3)
    for i in range(6):
        source.emit(i)
    assert p._buffer == {}


def test_partition_ref_counts() -> None:
    # Streamz test_partition_ref_counts
    source = Stream()
    _ = source.partition(2)
    for i in range(10):
        r = RefCounter()
        source.emit(i, metadata=[{"ref": r}])
        assert r.count == (1 if i % 2 == 0 else 0)


def test_partition_ref_counts_per_key() -> None:
    source = Stream()
    _ = source.partition(2, key=lambda x: x % 2)
    rs = refs(4)
    for i, r in enumerate(rs):
        source.emit(i, metadata=md(r))
    assert [r.count for r in rs] == [0, 0, 0, 0]
    r4, r5 = refs(2)
    source.emit(4, metadata=md(r4))
    source.emit(5, metadata=md(r5))
    assert (r4.count, r5.count) == (1, 1)


def test_partition_metadata() -> None:
    # Streamz test_partition_metadata
    source = Stream()
    got = meta(source.partition(2)).sink_to_list()
    source.emit(0)
    source.emit(1, metadata=[{"v": 1}])
    source.emit(2, metadata=[{"v": 2}])
    source.emit(3, metadata=[{"v": 3}])
    assert got == [[{"v": 1}], [{"v": 2}, {"v": 3}]]


def test_partition_without_metadata_emits_none_metadata() -> None:
    source = Stream()
    p = source.partition(2)
    seen: list[Any] = []

    class probe(Stream):
        def update(self, x: Any, who: Any = None, metadata: Any = None) -> Any:
            seen.append(metadata)

    probe(p)
    source.emit(0)
    source.emit(1)
    assert seen == [None]


def test_partition_key_error_is_annotated() -> None:
    source = Stream()
    source.partition(2, key=lambda x: 1 / x).sink_to_list()
    r = RefCounter()
    with pytest.raises(ZeroDivisionError) as info:
        source.emit(0, metadata=md(r))
    assert any("partition" in n for n in info.value.__notes__)
    assert r.count == 0 and r.failed


def test_partition_downstream_error_releases_refs_as_failed() -> None:
    source = Stream()
    source.partition(2).map(fail_on((1, 2))).sink_to_list()
    r1, r2 = refs(2)
    source.emit(1, metadata=md(r1))
    assert r1.count == 1
    with pytest.raises(ZeroDivisionError):
        source.emit(2, metadata=md(r2))
    assert (r1.count, r2.count) == (0, 0)
    assert r1.failed and r2.failed


def test_partition_holds_refs_until_downstream_finished() -> None:
    async def main() -> None:
        source = Stream(asynchronous=True)
        h = hold(source.partition(2))
        r1, r2 = refs(2)
        await source.emit(1, metadata=md(r1))
        task = asyncio.ensure_future(source.emit(2, metadata=md(r2)))
        await asyncio.sleep(0.01)
        assert h.seen == [(1, 2)]
        assert (r1.count, r2.count) == (1, 1)
        assert not task.done()
        h.futures[0].set_result(None)
        await task
        assert (r1.count, r2.count) == (0, 0)

    asyncio.run(main())


def test_partition_fused_matches_plain() -> None:
    out = fused_and_plain(lambda s: s.partition(3, key=lambda x: x % 2), list(range(13)))
    assert out == [(0, 2, 4), (1, 3, 5), (6, 8, 10), (7, 9, 11)]


def test_partition_mixed_metadata_fused_path_keeps_refs_and_metadata() -> None:
    source = Stream()
    p = source.partition(3)
    got = p.sink_to_list()
    metas = meta(p).sink_to_list()
    r = RefCounter()
    source.emit(0, metadata=md(r))  # plain path, buffered with a ref
    source.emit(1)
    source.emit(2)  # fused path must still emit the held metadata and release it
    assert got == [(0, 1, 2)]
    assert metas == [[{"ref": r}]]
    assert r.count == 0
    source.emit(3)
    source.emit(4)
    source.emit(5)
    assert got == [(0, 1, 2), (3, 4, 5)]
    assert metas == [[{"ref": r}]]


@pytest.mark.parametrize("n", [0, -1, 1.5, True, "2", None])
def test_partition_bad_n(n: Any) -> None:
    with pytest.raises(ValueError, match="partition: n must be a positive integer"):
        Stream().partition(n)


@pytest.mark.parametrize(
    "timeout,error", [(-1, ValueError), ("soon", ValueError), (object(), TypeError)]
)
def test_partition_bad_timeout(timeout: Any, error: type) -> None:
    with pytest.raises(error, match="partition: bad timeout"):
        Stream().partition(2, timeout=timeout)


def test_partition_bad_key() -> None:
    with pytest.raises(TypeError, match="partition: key must be callable or a hashable index"):
        Stream().partition(2, key=[0])


def test_partition_snapshot_round_trip() -> None:
    whole, resumed, state = round_trip(
        lambda s: s.partition(3, key=lambda x: x % 2), list(range(5)), list(range(5, 12))
    )
    assert state == {"buffers": [[1, [1, 3]]]}
    assert whole == resumed == [(0, 2, 4), (1, 3, 5), (6, 8, 10), (7, 9, 11)]


def test_partition_restore_discards_held_refs_as_failed() -> None:
    source = Stream()
    p = source.partition(3)
    r = RefCounter()
    source.emit(0, metadata=md(r))
    assert r.count == 1
    p.restore({"buffers": [[None, [7]]]})
    assert r.count == 0 and r.failed
    got = p.sink_to_list()
    source.emit(8)
    source.emit(9)
    assert got == [(7, 8, 9)]


# -- partition timeout -------------------------------------------------------------------


def test_partition_timeout_thread_loop(manual_clock: Any) -> None:
    source = Stream()
    got = source.partition(3, timeout=1).sink_to_list()
    source.emit(0)
    source.emit(1)
    manual_clock.advance(0.5)
    assert got == []
    manual_clock.advance(0.5)
    assert got == [(0, 1)]
    source.emit(2)
    source.emit(3)
    source.emit(4)
    assert got == [(0, 1), (2, 3, 4)]
    assert manual_clock.pending == 0  # the timer of the full group was cancelled
    manual_clock.advance(5)
    assert got == [(0, 1), (2, 3, 4)]


def test_partition_timeout_cancel(manual_clock: Any) -> None:
    # Streamz test_partition_timeout_cancel, with the manual clock
    source = Stream()
    got = source.partition(3, timeout=0.1).sink_to_list()
    for i in range(3):
        source.emit(i)
    manual_clock.advance(0.09)
    source.emit(3)
    manual_clock.advance(0.02)
    assert got == [(0, 1, 2)]
    manual_clock.advance(0.09)
    assert got == [(0, 1, 2), (3,)]


def test_partition_timeout_string_interval(manual_clock: Any) -> None:
    source = Stream()
    p = source.partition(5, timeout="500ms")
    got = p.sink_to_list()
    assert p.timeout == 0.5
    source.emit("a")
    manual_clock.advance(0.5)
    assert got == [("a",)]


def test_partition_timeout_per_key(manual_clock: Any) -> None:
    source = Stream()
    got = source.partition(3, timeout=1, key=lambda x: x % 2).sink_to_list()
    source.emit(0)
    manual_clock.advance(0.5)
    source.emit(1)
    source.emit(2)
    manual_clock.advance(0.5)
    assert got == [(0, 2)]
    manual_clock.advance(0.5)
    assert got == [(0, 2), (1,)]


def test_partition_timeout_refs(manual_clock: Any) -> None:
    source = Stream()
    metas = meta(source.partition(3, timeout=1)).sink_to_list()
    r1, r2 = refs(2)
    source.emit(0, metadata=md(r1, v=0))
    source.emit(1, metadata=md(r2, v=1))
    assert (r1.count, r2.count) == (1, 1)
    manual_clock.advance(1)
    assert (r1.count, r2.count) == (0, 0)
    assert metas == [[{"ref": r1, "v": 0}, {"ref": r2, "v": 1}]]


def test_partition_timeout_downstream_error_is_logged(
    manual_clock: Any, caplog: pytest.LogCaptureFixture
) -> None:
    source = Stream()
    source.partition(3, timeout=1).map(fail_on((5,))).sink_to_list()
    r = RefCounter()
    source.emit(5, metadata=md(r))
    with caplog.at_level(logging.ERROR, logger="millstream"):
        manual_clock.advance(1)
    assert "partial tuple" in caplog.text
    assert r.count == 0 and r.failed


def test_partition_timeout_asynchronous(manual_clock: Any) -> None:
    async def main() -> list[Any]:
        source = Stream(asynchronous=True)
        p = source.partition(3, timeout=1)
        got = p.sink_to_list()
        assert p.loop.asyncio_loop is asyncio.get_running_loop()
        await source.emit(0)
        await source.emit(1)
        await manual_clock.advance_async(0.9)
        assert got == []
        await manual_clock.advance_async(0.1)
        assert got == [(0, 1)]
        for i in range(2, 6):
            await source.emit(i)
        assert got == [(0, 1), (2, 3, 4)]
        await manual_clock.advance_async(1)
        return got

    assert asyncio.run(main()) == [(0, 1), (2, 3, 4), (5,)]


def test_partition_timeout_restore_starts_fresh_timers(manual_clock: Any) -> None:
    source = Stream()
    p = source.partition(3, timeout=1, key=0)
    got = p.sink_to_list()
    p.restore({"buffers": [["a", [("a", 1)]], ["b", [("b", 2), ("b", 3)]]]})
    manual_clock.advance(0.5)
    source.emit(("b", 4))
    assert got == [(("b", 2), ("b", 3), ("b", 4))]
    manual_clock.advance(0.5)
    assert got == [(("b", 2), ("b", 3), ("b", 4)), (("a", 1),)]
    assert manual_clock.pending == 0


def test_partition_timeout_snapshot_round_trip(manual_clock: Any) -> None:
    source = Stream()
    p = source.partition(4, timeout=10)
    for i in range(3):
        source.emit(i)
    state = p.snapshot()
    assert state == {"buffers": [[None, [0, 1, 2]]], "due_in": [10.0]}

    source2 = Stream()
    p2 = source2.partition(4, timeout=10)
    got = p2.sink_to_list()
    p2.restore(state)
    source2.emit(3)
    assert got == [(0, 1, 2, 3)]


# -- partition_unique --------------------------------------------------------------------


@pytest.mark.parametrize(
    "n,key,keep,elements,expected",
    [  # Streamz test_partition_unique cases
        (3, lambda x: x, "first", [1, 2, 1, 3, 1, 3, 3, 2], [(1, 2, 3), (1, 3, 2)]),
        (3, lambda x: x, "last", [1, 2, 1, 3, 1, 3, 3, 2], [(2, 1, 3), (1, 3, 2)]),
        (
            3,
            len,
            "last",
            ["f", "fo", "f", "foo", "f", "foo", "foo", "fo"],
            [("fo", "f", "foo"), ("f", "foo", "fo")],
        ),
        (
            2,
            "id",
            "first",
            [{"id": 0, "foo": "bar"}, {"id": 0, "foo": "baz"}, {"id": 1, "foo": "bat"}],
            [({"id": 0, "foo": "bar"}, {"id": 1, "foo": "bat"})],
        ),
        (
            2,
            "id",
            "last",
            [{"id": 0, "foo": "bar"}, {"id": 0, "foo": "baz"}, {"id": 1, "foo": "bat"}],
            [({"id": 0, "foo": "baz"}, {"id": 1, "foo": "bat"})],
        ),
    ],
)
def test_partition_unique_streamz_cases(
    n: int, key: Any, keep: str, elements: list[Any], expected: list[Any]
) -> None:
    source = Stream()
    got = source.partition_unique(n, key, keep).sink_to_list()
    for x in elements:
        source.emit(x)
    assert got == expected


def test_partition_unique_default_key() -> None:
    source = Stream()
    got = source.partition_unique(2).sink_to_list()
    for x in "aabcc":
        source.emit(x)
    assert got == [("a", "b")]


def test_partition_unique_metadata_is_flat() -> None:
    # Streamz emits a list of per-element lists here (and so never releases the refs)
    source = Stream()
    metas = meta(source.partition_unique(2)).sink_to_list()
    source.emit(1, metadata=[{"v": 0}])
    source.emit(1, metadata=[{"v": 1}])
    source.emit(2)
    source.emit(3, metadata=[{"v": 3}])
    source.emit(4, metadata=[{"v": 4}])
    assert metas == [[{"v": 0}], [{"v": 3}, {"v": 4}]]


def test_partition_unique_keep_last_metadata_in_element_order() -> None:
    source = Stream()
    metas = meta(source.partition_unique(3, keep="last")).sink_to_list()
    for i, x in enumerate([1, 2, 1, 3]):
        source.emit(x, metadata=[{"v": i}])
    assert metas == [[{"v": 1}, {"v": 2}, {"v": 3}]]


def test_partition_unique_refs_keep_first() -> None:
    source = Stream()
    _ = source.partition_unique(2)
    rs = refs(3)
    for x, r in zip([1, 1, 2], rs, strict=True):
        source.emit(x, metadata=md(r))
        if x == 1:
            assert rs[0].count == 1
    # the dropped duplicate is released at once; the kept ones when emitted
    assert [r.count for r in rs] == [0, 0, 0]
    assert not any(r.failed for r in rs)


def test_partition_unique_refs_dropped_duplicate_released_immediately() -> None:
    source = Stream()
    _ = source.partition_unique(2)
    r1, r2 = refs(2)
    source.emit(1, metadata=md(r1))
    source.emit(1, metadata=md(r2))
    assert (r1.count, r2.count) == (1, 0)


def test_partition_unique_refs_keep_last_releases_replaced() -> None:
    source = Stream()
    _ = source.partition_unique(2, keep="last")
    r1, r2, r3 = refs(3)
    source.emit(1, metadata=md(r1))
    source.emit(1, metadata=md(r2))
    assert (r1.count, r2.count) == (0, 1)
    source.emit(2, metadata=md(r3))
    assert (r1.count, r2.count, r3.count) == (0, 0, 0)


def test_partition_unique_holds_refs_until_downstream_finished() -> None:
    async def main() -> None:
        source = Stream(asynchronous=True)
        h = hold(source.partition_unique(2))
        r1, r2 = refs(2)
        await source.emit("a", metadata=md(r1))
        task = asyncio.ensure_future(source.emit("b", metadata=md(r2)))
        await asyncio.sleep(0.01)
        assert h.seen == [("a", "b")]
        assert (r1.count, r2.count) == (1, 1)
        h.futures[0].set_result(None)
        await task
        assert (r1.count, r2.count) == (0, 0)

    asyncio.run(main())


def test_partition_unique_fused_matches_plain() -> None:
    out = fused_and_plain(
        lambda s: s.partition_unique(3, key=lambda x: x % 4, keep="last"),
        [1, 5, 2, 1, 3, 4, 8, 0, 7, 6],
    )
    assert out == [(2, 1, 3), (0, 7, 6)]


def test_partition_unique_mixed_metadata() -> None:
    source = Stream()
    p = source.partition_unique(2)
    got = p.sink_to_list()
    metas = meta(p).sink_to_list()
    r = RefCounter()
    source.emit("a", metadata=md(r))
    source.emit("a")
    source.emit("b")
    assert got == [("a", "b")]
    assert metas == [[{"ref": r}]]
    assert r.count == 0


def test_partition_unique_key_error_is_annotated() -> None:
    source = Stream()
    source.partition_unique(2, key="id").sink_to_list()
    with pytest.raises(KeyError) as info:
        source.emit({"other": 1})
    assert any("partition_unique" in n for n in info.value.__notes__)


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        ({"n": 0}, ValueError, "partition_unique: n must be a positive integer"),
        (
            {"n": 2, "keep": "middle"},
            ValueError,
            'partition_unique: keep must be "first" or "last"',
        ),
        ({"n": 2, "key": {}}, TypeError, "partition_unique: key must be callable or a hashable"),
    ],
)
def test_partition_unique_bad_arguments(kwargs: dict[str, Any], error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        Stream().partition_unique(**kwargs)


def test_partition_unique_snapshot_round_trip() -> None:
    whole, resumed, state = round_trip(
        lambda s: s.partition_unique(3, keep="last"), [1, 2, 1], [3, 2, 4, 4, 5, 6]
    )
    assert state == {"buffer": [[2, 2], [1, 1]]}
    assert whole == resumed == [(2, 1, 3), (2, 4, 5)]


def test_partition_unique_restore_discards_held_refs() -> None:
    source = Stream()
    p = source.partition_unique(3)
    r = RefCounter()
    source.emit(1, metadata=md(r))
    p.restore({"buffer": []})
    assert r.count == 0 and r.failed


# -- sliding_window ----------------------------------------------------------------------


def test_sliding_window() -> None:
    # Streamz test_sliding_window
    source = Stream()
    got = source.sliding_window(2).sink_to_list()
    for i in range(10):
        source.emit(i)
    assert got == [(0,), (0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (5, 6), (6, 7), (7, 8), (8, 9)]

    got = source.sliding_window(2, return_partial=False).sink_to_list()
    for i in range(10):
        source.emit(i)
    assert got == [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (5, 6), (6, 7), (7, 8), (8, 9)]


def test_sliding_window_size_one() -> None:
    source = Stream()
    got = source.sliding_window(1, return_partial=False).sink_to_list()
    for i in range(3):
        source.emit(i)
    assert got == [(0,), (1,), (2,)]


def test_sliding_window_ref_counts() -> None:
    # Streamz test_sliding_window_ref_counts
    source = Stream()
    _ = source.sliding_window(2)
    r_prev = RefCounter()
    source.emit(-2)
    source.emit(-1, metadata=[{"ref": r_prev}])
    for i in range(10):
        r = RefCounter()
        assert r_prev.count == 1
        source.emit(i, metadata=[{"ref": r}])
        assert r_prev.count == 0
        assert r.count == 1
        r_prev = r


def test_sliding_window_ref_counts_not_partial() -> None:
    source = Stream()
    _ = source.sliding_window(3, return_partial=False)
    rs = refs(5)
    counts = []
    for i, r in enumerate(rs):
        source.emit(i, metadata=md(r))
        counts.append([x.count for x in rs])
    assert counts == [
        [1, 0, 0, 0, 0],
        [1, 1, 0, 0, 0],
        [0, 1, 1, 0, 0],
        [0, 0, 1, 1, 0],
        [0, 0, 0, 1, 1],
    ]


def test_sliding_window_metadata() -> None:
    # Streamz test_sliding_window_metadata
    source = Stream()
    got = meta(source.sliding_window(2)).sink_to_list()
    source.emit(0)
    source.emit(1, metadata=[{"v": 1}])
    source.emit(2, metadata=[{"v": 2}])
    source.emit(3, metadata=[{"v": 3}])
    assert got == [[{"v": 1}], [{"v": 1}, {"v": 2}], [{"v": 2}, {"v": 3}]]


def test_sliding_window_holds_refs_until_downstream_finished() -> None:
    async def main() -> None:
        source = Stream(asynchronous=True)
        h = hold(source.sliding_window(1))
        r1, r2 = refs(2)
        t1 = asyncio.ensure_future(source.emit("a", metadata=md(r1)))
        await asyncio.sleep(0.01)
        assert r1.count == 1
        h.futures[0].set_result(None)
        await t1
        assert r1.count == 0
        t2 = asyncio.ensure_future(source.emit("b", metadata=md(r2)))
        await asyncio.sleep(0.01)
        assert r2.count == 1
        h.futures[1].set_exception(ValueError("downstream failed"))
        with pytest.raises(ValueError):
            await t2
        assert r2.count == 0 and r2.failed
        assert h.seen == [("a",), ("b",)]

    asyncio.run(main())


def test_sliding_window_fused_matches_plain() -> None:
    out = fused_and_plain(lambda s: s.sliding_window(3, return_partial=False), list(range(6)))
    assert out == [(0, 1, 2), (1, 2, 3), (2, 3, 4), (3, 4, 5)]
    out = fused_and_plain(lambda s: s.sliding_window(2), list(range(3)))
    assert out == [(0,), (0, 1), (1, 2)]


def test_sliding_window_mixed_metadata_matches_plain() -> None:
    def run(flags: list[bool]) -> tuple[list[Any], list[Any], list[int]]:
        source = Stream()
        w = source.sliding_window(3)
        got = w.sink_to_list()
        metas = meta(w).sink_to_list()
        rs = refs(len(flags))
        for i, (flag, r) in enumerate(zip(flags, rs, strict=True)):
            if flag:
                source.emit(i, metadata=md(r, v=i))
            else:
                source.emit(i)
        return got, [[m["v"] for m in ms] for ms in metas], [r.count for r in rs]

    got, metas, counts = run([False, True, False, False, False, True, False])
    assert got == [(0,), (0, 1), (0, 1, 2), (1, 2, 3), (2, 3, 4), (3, 4, 5), (4, 5, 6)]
    assert metas == [[1], [1], [1], [5], [5]]
    assert counts == [0, 0, 0, 0, 0, 1, 0]


@pytest.mark.parametrize("n", [0, -3, 2.0])
def test_sliding_window_bad_n(n: Any) -> None:
    with pytest.raises(ValueError, match="sliding_window: n must be a positive integer"):
        Stream().sliding_window(n)


@pytest.mark.parametrize("partial", [True, False])
def test_sliding_window_snapshot_round_trip(partial: bool) -> None:
    whole, resumed, state = round_trip(
        lambda s: s.sliding_window(3, return_partial=partial), [0, 1], [2, 3, 4]
    )
    assert state == {"window": [0, 1]}
    assert whole == resumed


def test_sliding_window_snapshot_full_window() -> None:
    whole, resumed, state = round_trip(lambda s: s.sliding_window(2), list(range(5)), [5, 6])
    assert state == {"window": [3, 4]}
    assert whole == resumed
    assert resumed[-2:] == [(4, 5), (5, 6)]


def test_sliding_window_restore_trims_and_releases() -> None:
    source = Stream()
    w = source.sliding_window(2)
    r = RefCounter()
    source.emit(0, metadata=md(r))
    w.restore({"window": [7, 8, 9]})
    assert r.count == 0 and r.failed
    got = w.sink_to_list()
    source.emit(10)
    assert got == [(9, 10)]


# -- unique ------------------------------------------------------------------------------


def test_unique() -> None:
    source = Stream()
    got = source.unique().sink_to_list()
    for x in [1, 2, 1]:
        source.emit(x)
    assert got == [1, 2]


def test_unique_key() -> None:
    source = Stream()
    got = source.unique(key=lambda x: x % 2, maxsize=1).sink_to_list()
    for x in [1, 2, 4, 6, 3]:
        source.emit(x)
    assert got == [1, 2, 3]


def test_unique_metadata_passes_through() -> None:
    source = Stream()
    got = meta(source.unique()).flatten().sink_to_list()
    for i in range(5):
        source.emit(i, metadata=[{"v": i}])
    assert got == [{"v": i} for i in range(5)]


def test_unique_holds_no_refs() -> None:
    source = Stream()
    source.unique().sink_to_list()
    rs = refs(3)
    for x, r in zip([1, 1, 2], rs, strict=True):
        source.emit(x, metadata=md(r))
    assert [r.count for r in rs] == [0, 0, 0]


def test_unique_history() -> None:
    # Streamz test_unique_history
    source = Stream()
    s = source.unique(maxsize=2)
    s2 = source.unique(maxsize=2, hashable=False)
    got = s.sink_to_list()
    got2 = s2.sink_to_list()
    for x in [1, 2, 1, 2, 1, 2]:
        source.emit(x)
    assert got == got2 == [1, 2]
    source.emit(3)
    source.emit(2)
    assert got == got2 == [1, 2, 3]
    source.emit(1)
    assert got == got2 == [1, 2, 3, 1]
    source.emit(2)
    source.emit(3)
    source.emit(2)
    assert got == got2 == [1, 2, 3, 1, 3]


def test_unique_lru_lookup_counts_as_use() -> None:
    # verified against streamz 0.6.6 (zict.LRU): output [1, 2, 3, 2, 1], seen {2: 1, 1: 1}
    source = Stream()
    u = source.unique(maxsize=2)
    got = u.sink_to_list()
    for x in [1, 2, 1, 3, 2, 1]:
        source.emit(x)
    assert got == [1, 2, 3, 2, 1]
    assert isinstance(u.seen, LRU)
    assert list(u.seen) == [2, 1]


def test_unique_list_history_is_most_recent_first() -> None:
    source = Stream()
    u = source.unique(maxsize=2, hashable=False)
    got = u.sink_to_list()
    for x in [1, 2, 1, 3, 2, 1]:
        source.emit(x)
    assert got == [1, 2, 3, 2, 1]
    assert u.seen == [1, 2]


def test_unique_history_dict() -> None:
    # Streamz test_unique_history_dict: unhashable elements
    source = Stream()
    got = source.unique(maxsize=2, hashable=False).sink_to_list()
    a, b, c = {"hi": "world"}, {"hi": "bar"}, {"foo": "bar"}
    for x in [a, b, a, b, a, b]:
        source.emit(x)
    assert got == [a, b]
    source.emit(c)
    source.emit(b)
    assert got == [a, b, c]
    source.emit(a)
    assert got == [a, b, c, a]


def test_unique_unbounded_dict() -> None:
    source = Stream()
    u = source.unique()
    got = u.sink_to_list()
    for x in [3, 1, 3, 2, 1]:
        source.emit(x)
    assert got == [3, 1, 2]
    assert type(u.seen) is dict and u.seen == {3: 1, 1: 1, 2: 1}


def test_unique_seen_can_be_primed() -> None:
    source = Stream()
    u = source.unique()
    u.seen[5] = 1
    got = u.sink_to_list()
    source.emit(5)
    source.emit(6)
    assert got == [6]

    source2 = Stream()
    u2 = source2.unique(hashable=False)
    u2.seen.append([1])
    got2 = u2.sink_to_list()
    source2.emit([1])
    source2.emit([2])
    assert got2 == [[2]]


def test_unique_unhashable_with_hashable_true_raises_annotated() -> None:
    source = Stream()
    source.unique().sink_to_list()
    with pytest.raises(TypeError) as info:
        source.emit([1])
    assert any("unique" in n for n in info.value.__notes__)


def test_unique_key_error_is_annotated() -> None:
    source = Stream()
    source.unique(key=lambda x: 1 / x).sink_to_list()
    with pytest.raises(ZeroDivisionError) as info:
        source.emit(0)
    assert any("unique" in n and "lambda" in n for n in info.value.__notes__)


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        ({"key": "id"}, TypeError, "unique: key must be callable"),
        ({"maxsize": 0}, ValueError, "unique: maxsize must be a positive integer"),
        ({"maxsize": -1}, ValueError, "unique: maxsize must be a positive integer"),
    ],
)
def test_unique_bad_arguments(kwargs: dict[str, Any], error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        Stream().unique(**kwargs)


@pytest.mark.parametrize("kwargs", [{}, {"maxsize": 2}, {"maxsize": 2, "hashable": False}])
def test_unique_fused_matches_plain(kwargs: dict[str, Any]) -> None:
    out = fused_and_plain(lambda s: s.unique(**kwargs), [1, 2, 1, 3, 2, 1, 1, 4])
    if kwargs:
        assert out == [1, 2, 3, 2, 1, 4]
    else:
        assert out == [1, 2, 3, 4]


@pytest.mark.parametrize(
    "kwargs,state",
    [
        ({}, {"seen": [[1, 1], [2, 1], [3, 1]]}),
        ({"maxsize": 2}, {"seen": [[3, 1], [2, 1]]}),
        ({"maxsize": 2, "hashable": False}, {"seen": [2, 3]}),
    ],
)
def test_unique_snapshot_round_trip(kwargs: dict[str, Any], state: dict[str, Any]) -> None:
    whole, resumed, got = round_trip(lambda s: s.unique(**kwargs), [1, 2, 3, 2], [1, 3, 4, 1, 2])
    assert got == state
    assert whole == resumed


def test_lru() -> None:
    seen = LRU(2, [("a", 1), ("b", 2)])
    assert "a" in seen and list(seen) == ["a", "b"]  # `in` does not touch
    assert seen["a"] == 1
    seen["c"] = 3
    assert dict(seen) == {"a": 1, "c": 3}
    assert seen.get("zzz", 0) == 0
    del seen["a"]
    assert len(seen) == 1 and repr(seen) == "LRU(2, [('c', 3)])"


# -- collect -----------------------------------------------------------------------------


def test_collect() -> None:
    # Streamz test_collect
    source1, source2 = Stream(), Stream()
    collector = source1.collect()
    got = collector.sink_to_list()
    source2.sink(collector.flush)
    source1.emit(1)
    source1.emit(2)
    assert got == []
    source2.emit("anything")
    assert got == [(1, 2)]
    source2.emit("anything")
    assert got == [(1, 2), ()]
    source1.emit(3)
    assert got == [(1, 2), ()]
    source2.emit("anything")
    assert got == [(1, 2), (), (3,)]


def test_collect_ref_counts() -> None:
    # Streamz test_collect_ref_counts
    source = Stream()
    collector = source.collect()
    rs = refs(10)
    for i, r in enumerate(rs):
        source.emit(i, metadata=md(r))
    assert all(r.count == 1 for r in rs)
    collector.flush()
    assert all(r.count == 0 for r in rs)


def test_collect_metadata() -> None:
    # Streamz test_collect_metadata
    source = Stream()
    collector = source.collect()
    got = meta(collector).sink_to_list()
    source.emit(0)
    source.emit(1, metadata=[{"v": 1}])
    source.emit(2, metadata=[{"v": 2}])
    collector.flush()
    source.emit(3, metadata=[{"v": 3}])
    source.emit(4, metadata=[{"v": 4}])
    collector.flush()
    assert got == [[{"v": 1}, {"v": 2}], [{"v": 3}, {"v": 4}]]


def test_collect_custom_cache() -> None:
    cache: list[Any] = ["primed"]
    source = Stream()
    collector = source.collect(cache=cache)
    got = collector.sink_to_list()
    source.emit(1)
    assert cache == ["primed", 1]
    collector.flush()
    assert got == [("primed", 1)]
    assert cache == [] and collector.cache is cache


def test_collect_downstream_error_releases_refs_as_failed() -> None:
    source = Stream()
    collector = source.collect()
    collector.map(fail_on((1,))).sink_to_list()
    r = RefCounter()
    source.emit(1, metadata=md(r))
    with pytest.raises(ZeroDivisionError):
        collector.flush()
    assert r.count == 0 and r.failed
    assert list(collector.cache) == []


def test_collect_flush_in_async_code_returns_task_holding_refs() -> None:
    async def main() -> None:
        source = Stream(asynchronous=True)
        collector = source.collect()
        h = hold(collector)
        r = RefCounter()
        await source.emit("x", metadata=md(r))
        task = collector.flush()
        assert isinstance(task, asyncio.Future)
        await asyncio.sleep(0.01)
        assert h.seen == [("x",)]
        assert r.count == 1
        h.futures[0].set_result(None)
        await task
        assert r.count == 0

    asyncio.run(main())


def test_collect_flush_without_awaitables_returns_none() -> None:
    source = Stream()
    collector = source.collect()
    collector.sink_to_list()
    source.emit(1)
    assert collector.flush() is None
    assert collector.flush("ignored argument") is None


def test_collect_reentrant_element_is_kept_for_next_flush() -> None:
    # Streamz clears the cache after emitting and loses the element: [(1,), ()]
    source = Stream()
    collector = source.collect()
    out: list[Any] = []

    def on_flush(t: tuple[Any, ...]) -> None:
        out.append(t)
        if t == (1,):
            source.emit(2)

    collector.sink(on_flush)
    source.emit(1)
    collector.flush()
    collector.flush()
    assert out == [(1,), (2,)]


def test_collect_flush_from_other_thread_runs_on_loop() -> None:
    source = Stream(ensure_io_loop=True)
    collector = source.collect()
    threads: list[Any] = []
    collector.sink(lambda t: threads.append((t, threading.current_thread().name)))
    source.emit(1)
    collector.flush()
    assert threads == [((1,), "millstream-loop")]


def test_collect_snapshot_round_trip() -> None:
    source = Stream()
    c = source.collect()
    source.emit(1)
    source.emit(2)
    state = pickle.loads(pickle.dumps(c.snapshot()))
    assert state == {"cache": [1, 2]}

    source2 = Stream()
    c2 = source2.collect()
    got = c2.sink_to_list()
    c2.restore(state)
    source2.emit(3)
    c2.flush()
    assert got == [(1, 2, 3)]
    assert type(c2.cache) is deque


def test_collect_restore_discards_held_refs() -> None:
    source = Stream()
    c = source.collect()
    r = RefCounter()
    source.emit(1, metadata=md(r))
    c.restore({"cache": []})
    assert r.count == 0 and r.failed
    assert list(c.metadata_cache) == []


# -- registration ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["slice", "partition", "partition_unique", "sliding_window", "unique", "collect"]
)
def test_registered_with_docstring_examples(name: str) -> None:
    method = getattr(Stream, name)
    assert method.__name__ == name
    assert "Examples" in (method.__doc__ or "")
