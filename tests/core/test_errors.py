"""Errors from user functions: same type, with a note naming node, function and element."""

from __future__ import annotations

import functools

import pytest

from millstream import Stream
from millstream.operators.elementwise import filter as filter_node
from millstream.operators.elementwise import map as map_node
from millstream.sinks.core import sink as sink_node


def parse(x):
    return int(x)


def _note(error: BaseException) -> str:
    notes = [n for n in getattr(error, "__notes__", []) if n.startswith("millstream:")]
    assert len(notes) == 1, notes
    return notes[0]


@pytest.mark.parametrize("md", [None, [{"k": 1}]], ids=["fused", "plain"])
def test_note_names_node_function_and_element(md):
    source = Stream()
    source.map(parse).sink_to_list()
    with pytest.raises(ValueError) as info:
        source.emit("abc", metadata=md)
    note = _note(info.value)
    assert note.startswith("millstream: <map: parse> failed calling function 'parse' (")
    assert "test_errors.py line" in note
    assert note.endswith("on element of type str: 'abc'")


@pytest.mark.parametrize("md", [None, [{"k": 1}]], ids=["fused", "plain"])
def test_element_repr_is_truncated(md):
    source = Stream()
    source.map(parse).sink_to_list()
    with pytest.raises(ValueError) as info:
        source.emit("x" * 500, metadata=md)
    note = _note(info.value)
    assert note.endswith(" ...(502 chars)")
    assert len(note) < 400


def test_broken_repr_does_not_hide_error():
    class Weird:
        def __repr__(self):
            raise RuntimeError("no repr")

    source = Stream()
    source.map(lambda x: 1 / 0).sink_to_list()
    with pytest.raises(ZeroDivisionError) as info:
        source.emit(Weird())
    assert "<unrepresentable Weird" in _note(info.value)


def test_only_innermost_node_annotates():
    inner = Stream()
    inner.map(lambda x: x / 0).sink_to_list()
    outer = Stream()
    outer.map(lambda x: inner.emit(x * 100)).sink_to_list()
    with pytest.raises(ZeroDivisionError) as info:
        outer.emit(1)
    # one note, from the inner map, about the inner element
    assert _note(info.value).startswith("millstream: <map: <lambda>> failed calling function")
    assert _note(info.value).endswith("on element of type int: 100")


@pytest.mark.parametrize(
    "build, element, error, node",
    [
        (lambda s: s.filter(lambda x: x["k"]), {}, KeyError, "<filter: <lambda>>"),
        (lambda s: s.remove(lambda x: x.missing), 1, AttributeError, "<remove: <lambda>>"),
        (lambda s: s.starmap(lambda a, b: a + b), (1, "2"), TypeError, "<starmap: <lambda>>"),
        (lambda s: s.pluck("name"), {"age": 1}, KeyError, "<pluck: 'name'>"),
        (lambda s: s.flatten(), 3, TypeError, "<flatten>"),
        (lambda s: s.accumulate(lambda a, x: a / x, start=1), 0, ZeroDivisionError, None),
        (lambda s: s.frequencies(), [1], TypeError, "<frequencies>"),
        (lambda s: s.sink(lambda x: x.upper()), 1, AttributeError, "<sink: <lambda>>"),
    ],
)
@pytest.mark.parametrize("md", [None, [{"k": 1}]], ids=["fused", "plain"])
def test_each_core_node_annotates(build, element, error, node, md):
    source = Stream()
    built = build(source)
    if not isinstance(built, sink_node):
        built.sink_to_list()
    with pytest.raises(error) as info:
        source.emit(element, metadata=md)
    note = _note(info.value)
    if node is not None:
        assert note.startswith(f"millstream: {node} failed")
    assert f"on element of type {type(element).__name__}" in note


def test_partial_function_named():
    def scale(x, k):
        return x * k

    source = Stream()
    source.map(functools.partial(scale, k=None)).sink_to_list()
    with pytest.raises(TypeError) as info:
        source.emit(2)
    assert "calling partial of function 'test_partial_function_named.<locals>.scale'" in _note(
        info.value
    )


def test_error_in_thread_loop_mode_keeps_type_and_note():
    source = Stream(ensure_io_loop=True)
    source.map(parse).sink_to_list()
    with pytest.raises(ValueError) as info:
        source.emit("nope")
    assert "<map: parse>" in _note(info.value)


def test_returns_state_misuse_is_a_clear_type_error():
    source = Stream()
    source.accumulate(lambda s, x: s + x, start=0, returns_state=True).sink_to_list()
    with pytest.raises(TypeError, match="returns_state=True the function must return"):
        source.emit(1)


# -- constructor validation -------------------------------------------------------------


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda s: s.map(3), "map: func must be callable, got 3"),
        (lambda s: map_node(s, "f"), "map: func must be callable, got 'f'"),
        (lambda s: s.starmap(None), "starmap: func must be callable, got None"),
        (lambda s: s.filter(3), "filter: predicate must be callable, got 3"),
        (lambda s: filter_node(s, [1]), "filter: predicate must be callable, got [1]"),
        (lambda s: s.remove("x"), "filter: predicate must be callable"),
        (lambda s: s.sink("print"), "sink: func must be callable, got 'print'"),
        (lambda s: sink_node(s, 1), "sink: func must be callable, got 1"),
        (lambda s: s.accumulate(5), "accumulate: func must be callable, got 5"),
    ],
)
def test_constructor_rejects_non_callables(make, message):
    source = Stream()
    with pytest.raises(TypeError, match=message.replace("[", r"\[").replace("]", r"\]")):
        make(source)
    assert source.downstreams == []  # nothing half-built was wired in


def test_filter_none_keeps_truthy():
    source = Stream()
    L = source.filter(None).sink_to_list()
    for x in [0, 1, "", "a", None, [], [0]]:
        source.emit(x)
    assert L == [1, "a", [0]]


def test_map_error_reaches_the_caller_once_and_is_not_logged():
    """An error that propagates to the caller is raised with its note, not also logged
    (Streamz logs it and re-raises, so scripts print it twice); errors that cannot reach
    a caller (background sources, timers) are logged instead."""
    from millstream.testing import captured_logger

    source = Stream()
    source.map(lambda x: 1 / x).sink_to_list()
    with captured_logger("millstream") as log, pytest.raises(ZeroDivisionError) as info:
        source.emit(0)
    assert log.getvalue() == ""
    assert info.value.__notes__[0].startswith("millstream: <map: <lambda>> failed calling")
