"""Errors from tasks and the refs of elements crossing the cluster."""

from __future__ import annotations

import asyncio
import operator
import time

import pytest

from millstream import RefCounter, Stream
from millstream.testing import await_for, run_pipeline, wait_for


def inc(x):
    return x + 1


def bad(x):
    return 1 / x


def test_a_failing_task_raises_from_gather_with_a_note(client):
    source = Stream()
    L = source.scatter().map(bad).gather().sink_to_list()
    with pytest.raises(ZeroDivisionError) as info:
        source.emit(0)
    note = "\n".join(info.value.__notes__)
    assert note.startswith("millstream: <gather> received the error of Dask task 'bad-")
    assert "submitted by <map: bad> calling function 'bad'" in note
    assert L == []
    source.emit(2)  # the graph keeps working
    assert L == [0.5]


def test_a_failing_accumulate_names_the_accumulate_node(client):
    source = Stream()
    L = source.scatter().accumulate(operator.truediv, start=1).gather().sink_to_list()
    source.emit(2)
    with pytest.raises(ZeroDivisionError) as info:
        source.emit(0)
    assert "submitted by <accumulate: truediv>" in info.value.__notes__[0]
    assert L == [0.5]


def test_a_failed_element_releases_its_ref_as_failed(client):
    done = []
    ref = RefCounter(cb=lambda: done.append(True))
    source = Stream()
    source.scatter().map(bad).gather().sink_to_list()
    with pytest.raises(ZeroDivisionError):
        source.emit(0, metadata=[{"ref": ref}])
    assert ref.count == 0 and done == [True]
    assert ref.failed and isinstance(ref.errors[0], ZeroDivisionError)


def test_a_failure_behind_a_buffer_raises_to_the_next_emit_and_the_ref_failed(client):
    # as a local map before a buffer raises to the caller, the failed element's error
    # reaches the caller: here the next emit, whose element is still taken and processed
    ref = RefCounter()
    source = Stream()
    L = source.scatter().map(bad).buffer(2).gather().sink_to_list()
    source.emit(0, metadata=[{"ref": ref}])
    wait_for(lambda: ref.count == 0, 10)
    assert ref.failed
    with pytest.raises(ZeroDivisionError) as info:
        source.emit(1)
    notes = "\n".join(info.value.__notes__)
    assert "submitted by <map: bad>" in notes
    assert "<buffer: 2> raised this to a later emit" in notes
    wait_for(lambda: L == [1.0], 10)
    source.emit(2)  # the error was raised once; the graph goes on
    wait_for(lambda: L == [1.0, 0.5], 10)


def slow_bad(x):
    time.sleep(0.5)
    return 1 / x


def test_a_failure_behind_a_full_buffer_raises_to_the_emit_waiting_for_room(client):
    async def run():
        source = Stream(asynchronous=True)
        L = source.scatter().map(slow_bad).buffer(1).gather().sink_to_list()
        await source.emit(0)  # fails after 0.5 s; meanwhile gather waits for it
        await source.emit(1)  # fills the buffer
        waiting = asyncio.ensure_future(source.emit(2))  # over capacity: waits for room
        await asyncio.sleep(0.1)
        assert not waiting.done()
        with pytest.raises(ZeroDivisionError):
            await waiting
        await await_for(lambda: len(L) == 2, 10)
        return L

    async def main():
        from distributed import Client

        async with Client(client.scheduler.address, asynchronous=True):
            return await run()

    assert asyncio.run(main()) == [1.0, 0.5]


def test_a_failure_behind_a_buffer_stops_a_bounded_source_at_the_end(client):
    ref = RefCounter()
    source = Stream.from_iterable([1, 2, 4, 0])  # the last one fails: no later emit
    L = source.scatter().map(bad).buffer(8).gather().sink_to_list()
    with pytest.raises(ZeroDivisionError):
        run_pipeline(source)
    assert L == [1.0, 0.5, 0.25]  # the source ended after everything else was out
    assert isinstance(source.error, ZeroDivisionError)
    source.emit(5, metadata=[{"ref": ref}])
    wait_for(lambda: ref.count == 0, 10)
    assert L[-1] == 0.2 and not ref.failed


@pytest.mark.parametrize("fused", [False, True], ids=["scatter-alone", "scatter-then-map"])
def test_a_scatter_failure_names_the_scatter_node(client, fused):
    class Unpicklable:
        def __reduce__(self):
            raise TypeError("cannot pickle this")

    ref = RefCounter()
    source = Stream()
    node = source.scatter()
    (node.map(str) if fused else node).gather().sink_to_list()
    with pytest.raises(Exception) as info:  # distributed may wrap the pickling error
        source.emit(Unpicklable(), metadata=[{"ref": ref}])
    notes = getattr(info.value, "__notes__", [])
    assert any(n.startswith("millstream: <scatter> failed") for n in notes)
    assert ref.count == 0 and ref.failed


def test_refs_are_held_until_gathers_downstream_has_finished(client):
    counts = []
    done = []
    ref = RefCounter(cb=lambda: done.append(True))

    async def slow_sink(x):
        counts.append(ref.count)
        await asyncio.sleep(0.02)
        counts.append(ref.count)

    source = Stream()
    source.scatter().map(inc).gather().sink(slow_sink)
    source.emit(1, metadata=[{"ref": ref}])
    # scatter and gather (and the sink while it runs) hold the element
    assert len(counts) == 2 and min(counts) >= 2
    assert ref.count == 0 and done == [True] and not ref.failed


def test_refs_through_a_buffer_are_released_after_the_sink(client):
    refs = [RefCounter() for _ in range(4)]
    seen = []

    def sink(x):
        seen.append((x, refs[x - 1].count))

    source = Stream()
    source.scatter().map(inc).buffer(8).gather().sink(sink)
    for i, ref in enumerate(refs):
        source.emit(i, metadata=[{"ref": ref}])
    wait_for(lambda: len(seen) == 4 and all(r.count == 0 for r in refs), 10)
    assert [x for x, _ in seen] == [1, 2, 3, 4]
    assert all(count >= 2 for _, count in seen)  # buffer + gather still hold it in the sink
    assert not any(r.failed for r in refs)


def test_metadata_reaches_gathers_downstream(client):
    from millstream.testing import metadata

    ref = RefCounter()
    source = Stream()
    seen = metadata(source.scatter().map(inc).gather()).sink_to_list()
    source.emit(1, metadata=[{"ref": ref, "offset": 7}])
    assert seen == [[{"ref": ref, "offset": 7}]]
