"""Reference counting: RefCounter, retain and release through the graph, async sinks, errors."""

from __future__ import annotations

import asyncio

import pytest

from millstream import RefCounter, Stream
from millstream.core.loop import EventLoop
from millstream.core.refs import release_refs, retain_refs
from millstream.testing import metadata


def test_refcounter_basics():
    calls = []
    ref = RefCounter(initial=1, cb=lambda: calls.append(ref.count))
    assert str(ref) == "<RefCounter count=1>" == repr(ref)
    ref.retain(2)
    ref.release()
    ref.release()
    assert calls == []
    ref.release()
    assert calls == [0]
    assert not ref.failed
    # retained again after reaching zero: the callback fires again
    ref.retain()
    ref.release()
    assert calls == [0, 0]


def test_refcounter_without_callback():
    ref = RefCounter()
    ref.retain()
    ref.release()
    assert ref.count == 0


def test_refcounter_failed():
    ref = RefCounter()
    ref.retain()
    error = ValueError("x")
    release_refs([{"ref": ref}], error=error)
    assert ref.failed and ref.errors == [error] and ref.count == 0


def test_refcounter_callback_on_loop():
    loop = EventLoop.wrap(asyncio.new_event_loop())
    calls = []
    try:
        ref = RefCounter(cb=lambda: calls.append(1), loop=loop)
        ref.retain()
        ref.release()
        assert calls == []  # scheduled, not called inline
        loop.run_sync(lambda: asyncio.sleep(0))
        assert calls == [1]
    finally:
        loop.close()


def test_retain_release_helpers_ignore_dicts_without_ref():
    ref = RefCounter()
    md = [{"offset": 1}, {"ref": ref}, {"ref": None}]
    retain_refs(md, 3)
    assert ref.count == 3
    release_refs(md, 2)
    assert ref.count == 1
    retain_refs(None)
    release_refs([])
    assert ref.count == 1


def test_counts_through_chain_match_streamz():
    """Counts seen inside a fan-out graph (verified against Streamz 0.6.6)."""
    ref = RefCounter()
    seen = []
    source = Stream()
    source.map(inc).sink(lambda x: seen.append(("a", ref.count)))
    source.sink(lambda x: seen.append(("b", ref.count)))
    source.filter(lambda x: seen.append(("f", ref.count)))  # drops the element
    source.emit(1, metadata=[{"ref": ref}])
    assert seen == [("a", 4), ("b", 2), ("f", 1)]
    assert ref.count == 0 and not ref.failed


def inc(x):
    return x + 1


def test_ref_callback_fires_once_after_whole_graph():
    done = []
    ref = RefCounter(cb=lambda: done.append(True))
    source = Stream()
    source.map(inc).map(inc).sink_to_list()
    source.filter(lambda x: False).sink_to_list()
    source.emit(1, metadata=[{"ref": ref}])
    assert done == [True]


def test_metadata_passes_through_stateless_nodes():
    source = Stream()
    chain = source.map(inc).filter(lambda x: x > 0).map(lambda x: (x, -x)).starmap(max)
    L = metadata(chain.accumulate(lambda acc, x: acc + x)).sink_to_list()
    source.emit(1, metadata=[{"v": 1}])
    source.emit(-5, metadata=[{"v": 2}])  # dropped by the filter
    source.emit(2, metadata=[{"v": 3}])
    assert L == [[{"v": 1}], [{"v": 3}]]


def test_metadata_helper_emits_metadata_only_when_present():
    source = Stream()
    L = metadata(source.map(inc)).sink_to_list()
    source.emit(1)
    source.emit(2, metadata=[{"v": 2}])
    source.emit(3, metadata=[])
    assert L == [[{"v": 2}]]


def test_flatten_attaches_metadata_to_every_item():
    """Streamz attaches the metadata to the last item only."""
    source = Stream()
    M = metadata(source.flatten()).sink_to_list()
    source.emit([1, 2, 3], metadata=[{"v": 1}])
    assert M == [[{"v": 1}], [{"v": 1}], [{"v": 1}]]


def test_flatten_keeps_ref_until_every_item_is_done():
    ref = RefCounter()
    seen = []
    source = Stream()
    source.flatten().sink(lambda x: seen.append((x, ref.count)))
    source.emit([1, 2, 3], metadata=[{"ref": ref}])
    assert [x for x, _ in seen] == [1, 2, 3]
    assert all(count > 0 for _, count in seen)
    assert ref.count == 0 and not ref.failed


def test_flatten_async_sink_holds_ref_until_last_item_finished():
    ref_done = []
    gates = {}

    async def write(x):
        gates[x] = asyncio.Event()
        await gates[x].wait()

    async def main():
        ref = RefCounter(cb=lambda: ref_done.append(True))
        source = Stream(asynchronous=True)
        source.flatten().sink(write)
        pending = asyncio.ensure_future(source.emit([1, 2], metadata=[{"ref": ref}]))
        await asyncio.sleep(0.01)
        assert ref.count == 2 and ref_done == []
        gates[1].set()
        await asyncio.sleep(0.01)
        assert ref.count == 1 and ref_done == []
        gates[2].set()
        await pending
        assert ref.count == 0 and ref_done == [True]

    asyncio.run(main())


def test_async_sink_keeps_ref_until_coroutine_completes():
    """Streamz releases the ref as soon as the coroutine object is returned."""
    gate = []

    async def main():
        ref = RefCounter()
        event = asyncio.Event()

        async def write(x):
            await event.wait()
            gate.append(x)

        source = Stream(asynchronous=True)
        source.sink(write)
        pending = asyncio.ensure_future(source.emit(1, metadata=[{"ref": ref}]))
        await asyncio.sleep(0.01)
        assert ref.count == 1 and gate == []
        event.set()
        await pending
        assert gate == [1]
        assert ref.count == 0 and not ref.failed

    asyncio.run(main())


def test_async_sink_on_loopless_stream_keeps_ref_until_done():
    counts = []
    ref = RefCounter()

    async def write(x):
        await asyncio.sleep(0)
        counts.append(ref.count)

    source = Stream()
    source.sink(write)
    source.emit(1, metadata=[{"ref": ref}])
    assert counts == [1]
    assert ref.count == 0


def test_async_sink_error_fails_ref():
    async def write(x):
        await asyncio.sleep(0)
        raise ValueError("disk full")

    async def main():
        ref = RefCounter()
        source = Stream(asynchronous=True)
        source.sink(write)
        with pytest.raises(ValueError, match="disk full") as info:
            await source.emit(1, metadata=[{"ref": ref}])
        assert ref.count == 0 and ref.failed
        assert any("sink" in n for n in info.value.__notes__)

    asyncio.run(main())


def test_sync_error_releases_and_fails_ref_in_flatten():
    ref = RefCounter()
    source = Stream()
    source.flatten().map(lambda x: 1 / x).sink_to_list()
    with pytest.raises(ZeroDivisionError):
        source.emit([1, 0, 2], metadata=[{"ref": ref}])
    assert ref.count == 0 and ref.failed


def test_error_in_non_iterable_flatten_releases_ref():
    ref = RefCounter()
    source = Stream()
    source.flatten().sink_to_list()
    with pytest.raises(TypeError):
        source.emit(5, metadata=[{"ref": ref}])
    assert ref.count == 0 and ref.failed


def test_several_refs_in_metadata():
    r1, r2 = RefCounter(), RefCounter()
    seen = []
    source = Stream()
    source.sink(lambda x: seen.append((r1.count, r2.count)))
    source.emit(1, metadata=[{"ref": r1}, {"ref": r2}, {"other": 3}])
    assert seen == [(1, 1)]
    assert r1.count == r2.count == 0
