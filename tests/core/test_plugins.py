"""Plugins: nodes registered lazily from entry points."""

from __future__ import annotations

import warnings

import pytest

from millstream import Stream
from millstream.core import plugins
from millstream.sources import Source


class FakeEntryPoint:
    """What importlib.metadata gives: ``name``, ``module`` and ``load()``."""

    def __init__(self, name, module, obj):
        self.name = name
        self.module = module
        self.obj = obj
        self.loads = 0

    def load(self):
        self.loads += 1
        return self.obj


class triple(Stream):
    """Triple each element."""

    def update(self, x, who=None, metadata=None):
        return self._emit(3 * x, metadata=metadata)


class from_numbers(Source):
    def __init__(self, n, **kwargs):
        self.n = n
        super().__init__(**kwargs)


def make_class():
    class Sub(Stream):
        pass

    return Sub


def test_lazy_load_and_replacement():
    Sub = make_class()
    ep = FakeEntryPoint("triple", "some.module", triple)
    Sub.register_plugin_entry_point(ep)
    assert ep.loads == 0  # nothing imported yet
    assert Sub.triple.__name__ == "stub"
    source = Sub()
    node = source.triple()
    assert ep.loads == 1
    assert type(node) is triple
    assert Sub.triple.__name__ == "triple"  # the stub replaced itself
    assert Sub.triple.__doc__ == "Triple each element."
    L = node.sink_to_list()
    source.triple()
    assert ep.loads == 1
    source.emit(2)
    assert L == [6]
    assert not hasattr(Stream, "triple")


def test_source_entry_point_with_staticmethod():
    Sub = make_class()
    ep = FakeEntryPoint("from_numbers", "pkg.sources", from_numbers)
    Sub.register_plugin_entry_point(ep, staticmethod)
    node = Sub.from_numbers(5)
    assert type(node) is from_numbers and node.n == 5
    assert ep.loads == 1
    assert type(Sub.from_numbers(1)) is from_numbers
    assert ep.loads == 1


def test_non_stream_class_raises_type_error():
    Sub = make_class()
    ep = FakeEntryPoint("bad", "pkg.bad", lambda x: x)
    Sub.register_plugin_entry_point(ep)
    with pytest.raises(TypeError, match=r"Error loading bad from module pkg\.bad: .* subclass"):
        Sub().bad()
    ep2 = FakeEntryPoint("bad_class", "pkg.bad", int)
    Sub.register_plugin_entry_point(ep2)
    with pytest.raises(TypeError, match="must be a subclass of Stream"):
        Sub().bad_class()


def test_duplicate_name_raises_value_error():
    Sub = make_class()
    with pytest.raises(ValueError, match="Can't add map from pkg to Sub: duplicate method name"):
        Sub.register_plugin_entry_point(FakeEntryPoint("map", "pkg", triple))


def test_try_register_warns_on_duplicate():
    Sub = make_class()
    with pytest.warns(UserWarning, match="millstream plugin not registered: .*duplicate"):
        plugins.try_register(Sub, FakeEntryPoint("filter", "pkg", triple))


def test_load_plugins_from_entry_points(monkeypatch):
    groups = {
        "millstream.sources": [FakeEntryPoint("from_numbers", "pkg.s", from_numbers)],
        "millstream.nodes": [
            FakeEntryPoint("triple", "pkg.n", triple),
            FakeEntryPoint("map", "pkg.n", triple),  # clashes with a core node
        ],
        "millstream.sinks": [],
    }
    asked = []

    def fake_entry_points(group):
        asked.append(group)
        return groups.get(group, [])

    monkeypatch.setattr(plugins, "entry_points", fake_entry_points)
    Sub = make_class()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        plugins.load_plugins(Sub)
    assert asked == ["millstream.sources", "millstream.nodes", "millstream.sinks"]
    assert [str(w.message) for w in caught] == [
        "millstream plugin not registered: Can't add map from pkg.n to Sub: duplicate method name."
    ]
    assert type(Sub.from_numbers(3)) is from_numbers
    assert type(Sub().triple()) is triple
    assert Sub.map is Stream.map  # the core node is untouched
    for ep in groups["millstream.nodes"]:
        assert ep.loads == (1 if ep.name == "triple" else 0)


def test_no_entry_points_is_fine(monkeypatch):
    monkeypatch.setattr(plugins, "entry_points", lambda group: [])
    Sub = make_class()
    plugins.load_plugins(Sub)
    assert not hasattr(Sub, "triple")
