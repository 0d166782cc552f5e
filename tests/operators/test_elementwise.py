"""map, starmap, filter, remove, pluck, flatten: exact outputs, errors, metadata."""

from __future__ import annotations

import pytest

from millstream import RefCounter, Stream


def test_map_passes_extra_args_and_kwargs_to_func():
    source = Stream()
    out = source.map(lambda x, a, b=0: x * a + b, 3, b=1).sink_to_list()
    for i in range(3):
        source.emit(i)
    assert out == [1, 4, 7]


def test_map_keeps_stream_name_for_the_node():
    source = Stream()
    node = source.map(abs, stream_name="absolute")
    assert node.name == "absolute"
    assert str(node) == "<absolute; map: abs>"


def test_starmap_unpacks_tuples_and_rejects_lists_like_streamz():
    source = Stream()
    out = source.starmap(lambda a, b, c: a + b + c, 100).sink_to_list()
    source.emit((1, 2))
    assert out == [103]
    with pytest.raises(TypeError):
        source.emit([1, 2])


def test_filter_none_keeps_truthy_elements():
    source = Stream()
    out = source.filter(None).sink_to_list()
    for x in [0, 1, "", "a", None, [], [0]]:
        source.emit(x)
    assert out == [1, "a", [0]]


def test_filter_and_remove_are_complementary():
    source = Stream()
    kept = source.filter(lambda x, m: x % m == 0, 3).sink_to_list()
    dropped = source.remove(lambda x, m: x % m == 0, 3).sink_to_list()
    for i in range(7):
        source.emit(i)
    assert kept == [0, 3, 6]
    assert dropped == [1, 2, 4, 5]


def test_pluck_index_key_and_list():
    source = Stream()
    one = source.pluck(1).sink_to_list()
    source.emit((5, 6, 7))
    assert one == [6]
    source2 = Stream()
    many = source2.pluck(["a", "c"]).sink_to_list()
    source2.emit({"a": 1, "b": 2, "c": 3})
    assert many == [(1, 3)]


def test_pluck_missing_key_raises_with_note():
    source = Stream()
    source.pluck("missing").sink_to_list()
    with pytest.raises(KeyError) as info:
        source.emit({"a": 1})
    assert "pluck" in info.value.__notes__[0]
    assert "{'a': 1}" in info.value.__notes__[0]


def test_flatten_and_concat_alias():
    source = Stream()
    out = source.flatten().sink_to_list()
    out2 = source.concat().sink_to_list()
    source.emit([1, 2])
    source.emit(())
    source.emit(range(3, 5))
    assert out == [1, 2, 3, 4]
    assert out2 == out


def test_flatten_of_non_iterable_names_the_node_and_element():
    source = Stream()
    source.flatten().sink_to_list()
    with pytest.raises(TypeError) as info:
        source.emit(5)
    assert "<flatten>" in info.value.__notes__[0]
    assert "int: 5" in info.value.__notes__[0]


def test_flatten_holds_the_ref_until_every_item_is_done():
    seen = []
    ref = RefCounter(cb=lambda: seen.append("done"))
    source = Stream()

    def record(x):
        seen.append((x, ref.count))

    source.flatten().sink(record)
    source.emit([1, 2, 3], metadata=[{"ref": ref}])
    # every item is processed while the ref is still held; it is released after the last one
    assert seen == [(1, 2), (2, 2), (3, 2), "done"]
    assert ref.count == 0


@pytest.mark.parametrize("bad", [None, 3, "name"])
def test_non_callable_functions_fail_at_construction(bad):
    source = Stream()
    with pytest.raises(TypeError, match="map: func must be callable"):
        source.map(bad)
    with pytest.raises(TypeError, match="starmap: func must be callable"):
        source.starmap(bad)
    if bad is not None:
        with pytest.raises(TypeError, match="filter: predicate must be callable"):
            source.filter(bad)
    with pytest.raises(TypeError, match="sink: func must be callable"):
        source.sink(bad)


def test_error_in_user_function_keeps_type_and_names_node_function_element():
    def parse(x):
        return int(x)

    source = Stream()
    source.map(parse).sink_to_list()
    with pytest.raises(ValueError) as info:
        source.emit("not a number" * 20)
    note = info.value.__notes__[0]
    assert note.startswith("millstream: <map: parse> failed calling function '")
    assert "<locals>.parse' (" in note and "test_elementwise.py line " in note
    assert "on element of type str: 'not a numbernot a number" in note
    assert "chars)" in note  # the element is truncated


def test_stateless_nodes_have_no_state():
    source = Stream()
    node = source.map(abs)
    assert node.snapshot() is None
    node.restore(None)
    with pytest.raises(ValueError):
        node.restore({"x": 1})


def test_a_repeated_connect_makes_one_edge_as_in_streamz():
    a, b = Stream(), Stream()
    out = b.sink_to_list()
    a.connect(b)
    a.connect(b)
    a.emit(1)
    assert out == [1]
    assert len(a.downstreams) == 1
