"""Plugins: nodes registered lazily from entry points."""

from __future__ import annotations

import importlib.metadata
import sys
import textwrap
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
    assert asked == [
        "millstream.sources",
        "millstream.nodes",
        "millstream.sinks",
        "streamz.sources",
        "streamz.nodes",
        "streamz.sinks",
    ]
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


# -- a real installed distribution, found by importlib.metadata ---------------------------

PLUGIN_MODULE = """
from millstream import Stream
from millstream.sources import Source


class quadruple(Stream):
    \"""Multiply each element by four.\"""

    def update(self, x, who=None, metadata=None):
        return self._emit(4 * x, metadata=metadata)


class halve(Stream):
    def update(self, x, who=None, metadata=None):
        return self._emit(x / 2, metadata=metadata)


class from_count(Source):
    def __init__(self, n, **kwargs):
        self.n = n
        super().__init__(**kwargs)


class sink_to_set(Stream):
    def __init__(self, upstream, **kwargs):
        self.seen = set()
        super().__init__(upstream, **kwargs)

    def update(self, x, who=None, metadata=None):
        self.seen.add(x)
"""

OLD_STREAMZ_MODULE = """
import streamz


class old_node(streamz.Stream):
    def update(self, x, who=None, metadata=None):
        return self._emit(x, metadata=metadata)
"""

ENTRY_POINTS = """
[millstream.nodes]
ms_quadruple = {mod}:quadruple
both_groups = {mod}:quadruple

[streamz.nodes]
sz_halve = {mod}:halve
both_groups = {mod}:halve
sz_old_node = {old}:old_node

[streamz.sources]
sz_from_count = {mod}:from_count

[streamz.sinks]
sz_sink_to_set = {mod}:sink_to_set
"""


@pytest.fixture
def installed_plugin(tmp_path, monkeypatch, request):
    """Install (on sys.path) a distribution declaring plugins in both kinds of groups."""
    suffix = request.node.name.replace("[", "_").replace("]", "_").replace("-", "_")
    mod, old = f"msplug_{suffix}", f"msplug_old_{suffix}"
    (tmp_path / f"{mod}.py").write_text(PLUGIN_MODULE)
    (tmp_path / f"{old}.py").write_text(OLD_STREAMZ_MODULE)
    info = tmp_path / "msplug-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: msplug\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(textwrap.dedent(ENTRY_POINTS.format(mod=mod, old=old)))
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    yield mod, old
    for name in (mod, old):
        sys.modules.pop(name, None)


def load_quietly(cls):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        plugins.load_plugins(cls)
    return [str(w.message) for w in caught]


def test_the_distribution_is_installed(installed_plugin):
    names = {ep.name for ep in importlib.metadata.entry_points(group="streamz.nodes")}
    assert {"sz_halve", "both_groups", "sz_old_node"} <= names


def test_streamz_and_millstream_groups_are_loaded_lazily(installed_plugin):
    mod, _ = installed_plugin
    Sub = make_class()
    load_quietly(Sub)
    assert mod not in sys.modules  # nothing imported until a node is used
    assert Sub.sz_halve.__name__ == "stub" and Sub.ms_quadruple.__name__ == "stub"
    source = Sub()
    quadrupled = source.ms_quadruple()
    L = Sub.sz_halve(quadrupled).sink_to_list()  # the plugin classes subclass Stream, not Sub
    assert mod in sys.modules
    assert type(Sub.sz_from_count(3)).__name__ == "from_count"
    assert Sub.sz_from_count(3).n == 3  # a source: registered as a static method
    sink = source.sz_sink_to_set()
    for x in (1, 2, 2):
        source.emit(x)
    assert L == [2.0, 4.0, 4.0]
    assert sink.seen == {1, 2}
    assert Sub.ms_quadruple.__doc__ == "Multiply each element by four."
    assert not hasattr(Stream, "sz_halve")


def test_a_name_in_both_kinds_of_group_is_registered_once_with_a_warning(installed_plugin):
    mod, _ = installed_plugin
    Sub = make_class()
    messages = load_quietly(Sub)
    clash = [m for m in messages if "both_groups" in m]
    assert clash == [
        "millstream plugin 'both_groups' is declared under both 'millstream.nodes' "
        f"(module {mod}) and 'streamz.nodes' (module {mod}): registered once, from "
        "'millstream.nodes'"
    ]
    source = Sub()
    L = source.both_groups().sink_to_list()
    source.emit(1)
    assert L == [4]  # the millstream one


def test_a_streamz_plugin_built_on_streamz_stream_says_what_to_change(installed_plugin):
    pytest.importorskip("streamz")
    _, old = installed_plugin
    Sub = make_class()
    load_quietly(Sub)
    assert old not in sys.modules
    with pytest.raises(TypeError) as info:
        Sub().sz_old_node()
    message = str(info.value)
    assert f"Error loading sz_old_node from module {old}" in message
    assert "plugin 'sz_old_node' (entry point group 'streamz.nodes')" in message
    assert f"{old}.old_node, a subclass of streamz.Stream" in message
    assert f"In module {old}, import Stream from millstream instead of streamz" in message
