"""The ``on_error=`` policy of the nodes that call a user function (no broker needed)."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from millstream import Stream
from millstream.core import RefCounter
from millstream.core.errors import DeadLetter, Retry
from millstream.core.fusion import is_fusible


def _inverse(x):
    return 10 // x


def _is_big(x):
    return 10 // x < 5


def _checked_add(acc, x):
    if x < 0:
        raise ValueError(f"negative: {x}")
    return acc + x


DATA = [1, 0, 2, 0, 5, "a"]


# -- map, starmap, filter, remove, flatten, accumulate: the three policies -----------------
def _build(kind, on_error):
    source = Stream()
    if kind == "map":
        node = source.map(_inverse, on_error=on_error)
    elif kind == "starmap":
        node = source.map(lambda x: (x,)).starmap(_inverse, on_error=on_error)
    elif kind == "filter":
        node = source.filter(_is_big, on_error=on_error)
    elif kind == "remove":
        node = source.remove(_is_big, on_error=on_error)
    else:
        raise AssertionError(kind)
    return source, node, node.sink_to_list()


EXPECTED = {
    "map": [10, 5, 2],
    "starmap": [10, 5, 2],
    "filter": [5],
    "remove": [1, 2],
}


@pytest.mark.parametrize("kind", sorted(EXPECTED))
def test_raise_is_the_default_and_unchanged(kind):
    source, node, _ = _build(kind, "raise")
    assert node.error_policy is None and is_fusible(node)
    source.emit(1)
    with pytest.raises(ZeroDivisionError) as info:
        source.emit(0)
    assert any(str(node) in n for n in info.value.__notes__)


@pytest.mark.parametrize("kind", sorted(EXPECTED))
def test_skip_drops_and_counts(kind, caplog):
    source, node, out = _build(kind, "skip")
    assert not is_fusible(node)
    with caplog.at_level(logging.WARNING, logger="millstream"):
        for x in DATA:
            source.emit(x)
    assert out == EXPECTED[kind]
    assert node.errors.total == 3 and node.errors.skipped == 3
    assert dict(node.errors.by_type) == {"ZeroDivisionError": 2, "TypeError": 1}
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2  # once per kind: ZeroDivisionError, TypeError
    assert all(str(node) in r.getMessage() for r in warnings)


@pytest.mark.parametrize("kind", sorted(EXPECTED))
def test_dead_letter_stream_gets_the_element_and_the_error(kind):
    dead = Stream()
    letters = dead.sink_to_list()
    source, node, out = _build(kind, dead)
    for x in DATA:
        source.emit(x)
    assert out == EXPECTED[kind]
    arrived = [(0,), (0,), ("a",)] if kind == "starmap" else [0, 0, "a"]
    assert [d.element for d in letters] == arrived
    assert [d.error_type for d in letters] == ["ZeroDivisionError"] * 2 + ["TypeError"]
    first = letters[0]
    assert isinstance(first, DeadLetter)
    assert first.node == str(node)
    assert first.function in ("_inverse", "_is_big")
    assert "division" in first.error_message
    assert "ZeroDivisionError" in first.traceback
    assert first.function in first.traceback
    assert isinstance(first.error, ZeroDivisionError)
    assert node.errors.dead_lettered == 3


def test_accumulate_policies_leave_the_state_as_it_was(caplog):
    for on_error in ("skip", "dead"):
        dead = Stream()
        letters = dead.sink_to_list()
        source = Stream()
        node = source.accumulate(
            _checked_add, start=0, on_error=dead if on_error == "dead" else "skip"
        )
        out = node.sink_to_list()
        for x in [1, 2, -5, 3, -1, 4]:
            source.emit(x)
        assert out == [1, 3, 6, 10]
        assert node.state == 10 and node.errors.total == 2
        if on_error == "dead":
            assert [(d.element, d.error_type, d.function) for d in letters] == [
                (-5, "ValueError", "_checked_add"),
                (-1, "ValueError", "_checked_add"),
            ]
    source = Stream()
    source.accumulate(_checked_add, start=0).sink_to_list()
    with pytest.raises(ValueError, match="negative"):
        source.emit(-1)


def test_flatten_policy_covers_elements_that_are_not_iterable():
    dead = Stream()
    letters = dead.sink_to_list()
    source = Stream()
    node = source.flatten(on_error=dead)
    out = node.sink_to_list()
    for x in [[1, 2], 3, [4]]:
        source.emit(x)
    assert out == [1, 2, 4] and [d.element for d in letters] == [3]
    source = Stream()
    skipping = source.flatten(on_error="skip")
    out = skipping.sink_to_list()
    source.emit(None)
    source.emit([5])
    assert out == [5] and skipping.errors.skipped == 1


def test_bad_policies_fail_at_construction():
    source = Stream()
    with pytest.raises(ValueError, match="map: on_error must be"):
        source.map(abs, on_error="ignore")
    with pytest.raises(ValueError, match="on_error='retry' is for sinks"):
        source.map(abs, on_error="retry")
    with pytest.raises(ValueError, match="Retry"):
        source.sink(print, on_error=Retry(then="sometimes"))


# -- fused and unfused graphs give the same results ---------------------------------------
def _pipeline(on_error):
    source = Stream()
    out = (
        source.map(_inverse, on_error=on_error)
        .filter(lambda y: y != 5)
        .accumulate(lambda a, y: a + y, start=0)
        .sink_to_list()
    )
    return source, out


def test_fused_and_unfused_give_the_same_results():
    values = [1, 2, 3, 4, 6, 7]  # no error: the skip policy must not change anything
    fused_source, fused = _pipeline("raise")
    plain_source, plain = _pipeline("skip")
    assert fused_source._downstream_fully_fused()
    assert not plain_source._downstream_fully_fused()
    for x in values:
        fused_source.emit(x)
        plain_source.emit(x)
    assert fused == plain == [10, 13, 15, 16, 17]
    # batches too (a source's fast path), with errors on the unfused one
    fused_source, fused = _pipeline("raise")
    plain_source, plain = _pipeline("skip")
    for _ in fused_source._emit_batch([1, 2, 4]):
        pass
    for _ in plain_source._emit_batch([1, 0, 2, 0, 4]):
        pass
    assert fused == plain == [10, 12]


# -- refs: released as done, never failed ------------------------------------------------
def _emit_with_ref(source, x):
    done = []
    ref = RefCounter(initial=1, cb=lambda: done.append(True))
    source.emit(x, metadata=[{"ref": ref, "topic": "t", "partition": 0, "offset": 7}])
    ref.release()
    return ref, done


def test_skipped_and_dead_lettered_elements_release_their_refs_as_done():
    source = Stream()
    source.map(_inverse, on_error="skip").sink_to_list()
    ref, done = _emit_with_ref(source, 0)
    assert done == [True] and not ref.failed

    dead = Stream()
    letters = dead.sink_to_list()
    source = Stream()
    source.map(_inverse, on_error=dead).sink_to_list()
    ref, done = _emit_with_ref(source, 0)
    assert done == [True] and not ref.failed
    assert letters[0].positions == ({"topic": "t", "partition": 0, "offset": 7},)


def test_a_dead_letter_holds_the_refs_until_its_downstream_has_absorbed_it():
    dead = Stream()
    gate = asyncio.Event()
    seen = []

    async def slow_write(letter):
        await gate.wait()
        seen.append(letter.element)

    dead.sink(slow_write)
    source = Stream(asynchronous=True)
    source.map(_inverse, on_error=dead).sink_to_list()

    async def main():
        done = []
        ref = RefCounter(initial=1, cb=lambda: done.append(True))
        pending = source.emit(0, metadata=[{"ref": ref}])
        ref.release()
        await asyncio.sleep(0.01)
        assert done == []  # the dead letter is still being written
        gate.set()
        await pending
        assert done == [True] and not ref.failed and seen == [0]

    asyncio.run(main())


def test_an_error_raised_by_the_dead_letter_stream_fails_the_refs():
    dead = Stream()
    dead.sink(_inverse)  # a dead letter is no number: TypeError
    source = Stream()
    source.map(_inverse, on_error=dead).sink_to_list()
    ref = RefCounter(initial=1)
    with pytest.raises(TypeError):
        source.emit(0, metadata=[{"ref": ref}])
    assert ref.failed


# -- sinks ---------------------------------------------------------------------------------
class Flaky:
    """Fails the first ``failures`` calls of each element, recording the call times."""

    def __init__(self, failures):
        self.failures = failures
        self.calls: dict = {}
        self.times: list = []
        self.written: list = []

    def __call__(self, x):
        self.times.append(time.monotonic())
        self.calls[x] = self.calls.get(x, 0) + 1
        if self.calls[x] <= self.failures:
            raise ConnectionError(f"flaky write of {x}")
        self.written.append(x)


def test_sink_skip_and_dead_letters():
    flaky = Flaky(failures=1)
    source = Stream()
    node = source.sink(flaky, on_error="skip")
    source.emit(1)
    assert flaky.written == [] and node.errors.skipped == 1
    dead = Stream()
    letters = dead.sink_to_list()
    source = Stream()
    node = source.sink(Flaky(failures=1), on_error=dead)
    source.emit("x")
    assert [(d.element, d.error_type) for d in letters] == [("x", "ConnectionError")]


def test_sink_retry_with_backoff_succeeds():
    flaky = Flaky(failures=2)
    source = Stream()
    node = source.sink(flaky, on_error=Retry(retries=3, backoff=0.05, max_backoff=0.08))
    start = time.monotonic()
    source.emit("a")  # no loop: the retries run before emit returns
    elapsed = time.monotonic() - start
    assert flaky.written == ["a"] and flaky.calls == {"a": 3}
    assert node.errors.retried == 2 and node.errors.total == 0
    gaps = [b - a for a, b in zip(flaky.times, flaky.times[1:], strict=False)]
    assert gaps[0] >= 0.045 and gaps[1] >= 0.075  # 0.05, then min(0.1, 0.08)
    assert elapsed < 2


def test_sink_retry_then_raise_or_dead_letter():
    source = Stream()
    source.sink(Flaky(failures=10), on_error=Retry(retries=2, backoff=0.01))
    with pytest.raises(ConnectionError):
        source.emit("a")
    dead = Stream()
    letters = dead.sink_to_list()
    flaky = Flaky(failures=10)
    source = Stream()
    node = source.sink(flaky, on_error=Retry(retries=2, backoff=0.01, then=dead))
    ref = RefCounter(initial=1)
    source.emit("b", metadata=[{"ref": ref}])
    ref.release()
    assert flaky.calls == {"b": 3} and [d.element for d in letters] == ["b"]
    assert node.errors.retried == 2 and node.errors.dead_lettered == 1
    assert ref.count == 0 and not ref.failed


def test_async_sink_retry_and_refs_held_until_done():
    attempts = []

    async def write(x):
        attempts.append(x)
        await asyncio.sleep(0)
        if len(attempts) < 3:
            raise ConnectionError("not yet")

    source = Stream(asynchronous=True)
    node = source.sink(write, on_error="retry")

    async def main():
        done = []
        ref = RefCounter(initial=1, cb=lambda: done.append(True))
        pending = source.emit("a", metadata=[{"ref": ref}])
        ref.release()
        assert done == []
        await pending
        assert done == [True] and not ref.failed

    asyncio.run(main())
    assert attempts == ["a", "a", "a"] and node.errors.retried == 2


def test_dask_nodes_refuse_a_policy_at_construction():
    pytest.importorskip("distributed")
    from millstream.dask import DaskStream

    source = DaskStream()
    with pytest.raises(NotImplementedError, match="Dask nodes do not support on_error='skip'"):
        source.map(abs, on_error="skip")
    source.map(abs, on_error="raise")  # the default is accepted
