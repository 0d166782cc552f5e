"""Every node counts the elements it emits, on the fused path and on the per-element path
alike (``elements_emitted``, and ``errors_raised`` for errors that propagate)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from millstream import Stream


def build(source: Stream) -> list[Stream]:
    """A graph with every kind of fused block: maps, a filter, a flatten, two branches."""
    inc = source.map(lambda x: x + 1)
    even = inc.filter(lambda x: x % 2 == 0)
    pairs = even.map(lambda x: [x] * (x % 3)).flatten()
    pairs.sink_to_list()
    other = inc.map(str)
    other.sink(lambda _: None)
    return [source, inc, even, pairs, other]


def counts(nodes: list[Stream]) -> list[int]:
    return [n.elements_emitted for n in nodes]


def expected(xs: list[int]) -> list[int]:
    inc = [x + 1 for x in xs]
    even = [x for x in inc if x % 2 == 0]
    return [len(xs), len(inc), len(even), sum(x % 3 for x in even), len(inc)]


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(-50, 50), max_size=40))
def test_fused_batches_and_per_element_path_count_the_same(xs: list[int]) -> None:
    # a sized batch (counted from what the iterator has left)
    sized = build(Stream())
    for _ in sized[0]._emit_batch(iter(xs)):
        pass
    # a batch of unknown size (counted one by one)
    counted = build(Stream())
    for _ in counted[0]._emit_batch(x for x in xs):
        pass
    # one element at a time through the fused function
    one = build(Stream())
    for x in xs:
        one[0].emit(x)
    # the per-element path (metadata turns fusion off)
    per_element = build(Stream())
    for x in xs:
        per_element[0].emit(x, metadata=[{}])
    want = expected(xs)
    assert counts(sized) == want
    assert counts(counted) == want
    assert counts(one) == want
    assert counts(per_element) == want


def test_counts_of_a_long_unsized_batch_appear_while_it_runs() -> None:
    source = Stream()
    seen: list[int] = []
    doubled = source.map(lambda x: 2 * x)
    doubled.sink(lambda _: seen.append(doubled.elements_emitted))
    for _ in source._emit_batch(x for x in range(5000)):
        pass
    assert doubled.elements_emitted == 5000
    # added up every 1,024 elements, not only at the end
    assert 1024 <= seen[2000] <= 2048


@pytest.mark.parametrize("path", ["one", "batch", "per_element"])
def test_an_error_counts_where_it_was_raised_and_nothing_after(path: str) -> None:
    source = Stream()
    inverse = source.map(lambda x: 1 / x)
    text = inverse.map(str)
    later = inverse.map(abs)
    out = text.sink_to_list()
    later.sink_to_list()
    with pytest.raises(ZeroDivisionError):
        if path == "batch":
            for _ in source._emit_batch(iter([1, 2, 0, 3])):
                pass
        else:
            for x in [1, 2, 0, 3]:
                source.emit(x, metadata=[{}] if path == "per_element" else None)
    assert out == ["1.0", "0.5"]
    assert source.elements_emitted == 3
    assert [inverse.elements_emitted, text.elements_emitted, later.elements_emitted] == [2, 2, 2]
    assert inverse.errors_raised == 1
    assert text.errors_raised == later.errors_raised == 0


def test_an_error_in_a_flatten_loop_uncounts_the_rest_of_the_item() -> None:
    source = Stream()
    items = source.flatten()
    first = items.map(lambda x: 10 // x)
    second = items.map(str)
    with pytest.raises(ZeroDivisionError):
        source.emit([1, 2, 0, 4])
    assert items.elements_emitted == 3
    assert first.elements_emitted == 2
    assert second.elements_emitted == 2  # the third item never reached it
    assert first.errors_raised == 1


def test_from_iterable_counts_every_element() -> None:
    source = Stream.from_iterable(range(3000))
    squares = source.map(lambda x: x * x)
    L = squares.sink_to_list()
    source.start()
    from millstream.testing import wait_for

    wait_for(lambda: len(L) == 3000, 10)
    wait_for(lambda: squares.elements_emitted == 3000, 10)
    assert source.elements_emitted == 3000
