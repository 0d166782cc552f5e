"""Notebook display: _repr_html_ and the live-updating widget of _ipython_display_."""

from __future__ import annotations

import builtins
import sys

import pytest

from millstream import Stream
from millstream.core import display as display_mod
from millstream.testing import wait_for

widgets = pytest.importorskip("ipywidgets")
ipy_display = pytest.importorskip("IPython.display")


@pytest.fixture
def shown(monkeypatch):
    """Capture what would be displayed in a notebook."""
    out = []
    monkeypatch.setattr(ipy_display, "display", lambda obj, **kw: out.append(obj))
    return out


def test_repr_html_before_and_after_values():
    s = Stream(stream_name="prices")
    html = s._repr_html_()
    assert "&lt;prices; Stream&gt;" in html and "no value yet" in html
    s.emit({"a": 1})
    html = s._repr_html_()
    assert "{&#x27;a&#x27;: 1}" in html
    assert "no value yet" not in html


def test_repr_html_escapes_and_truncates():
    s = Stream()
    m = s.map(lambda x: x)
    s.emit("<script>" + "x" * 1000)
    html = m._repr_html_()
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "...(1010 chars)" in html
    assert len(html) < 700


def test_repr_html_of_fused_node_after_emit():
    s = Stream()
    m = s.map(lambda x: x * 2)
    m.sink_to_list()
    s.emit(21)
    assert "<pre>42</pre>" in m._repr_html_()


def test_ipython_display_widget_updates_and_closes(shown):
    s = Stream()
    m = s.map(lambda x: x * 10)
    m.sink_to_list()
    s.emit(1)
    m._ipython_display_()
    assert len(shown) == 1
    widget = shown[0]
    assert isinstance(widget, widgets.HTML)
    assert "<pre>10</pre>" in widget.value
    assert len(m.downstreams) == 2
    updater = m.downstreams[-1]
    assert updater in display_mod._live_displays

    s.emit(2)  # fused path: the widget shows the new value, not the stale one
    assert "<pre>20</pre>" in widget.value
    s.emit(3, metadata=[{"k": 1}])  # per-element path
    assert "<pre>30</pre>" in widget.value

    widget.close()
    assert len(m.downstreams) == 1
    assert updater not in display_mod._live_displays
    s.emit(4)
    assert "<pre>30</pre>" in widget.value  # no longer updated
    widget.close()  # closing twice is harmless


def test_ipython_display_detaches_when_last_view_goes(shown):
    s = Stream()
    s._ipython_display_()
    widget = shown[0]
    assert "no value yet" in widget.value
    s.emit("a")
    assert "&#x27;a&#x27;" in widget.value
    widget._view_count = 1
    widget._view_count = 0
    assert s.downstreams == []
    widget.close()


def test_ipython_display_updates_from_loop_thread(shown):
    s = Stream(ensure_io_loop=True)
    s._ipython_display_()
    widget = shown[0]
    s.emit(5)
    wait_for(lambda: "<pre>5</pre>" in widget.value, 5)
    widget.close()


def test_ipython_display_without_ipywidgets(shown, monkeypatch):
    real_import = builtins.__import__

    def no_widgets(name, *args, **kwargs):
        if name == "ipywidgets":
            raise ImportError("no ipywidgets")
        return real_import(name, *args, **kwargs)

    monkeypatch.delitem(sys.modules, "ipywidgets", raising=False)
    monkeypatch.setattr(builtins, "__import__", no_widgets)
    s = Stream(stream_name="plain")
    s.emit(7)
    s._ipython_display_()
    assert len(shown) == 1
    assert type(shown[0]).__name__ == "HTML"
    assert "<pre>7</pre>" in shown[0].data
    assert s.downstreams == []
