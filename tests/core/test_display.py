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
    bundle = shown[0]._repr_mimebundle_()
    assert set(bundle) == {"text/html", "text/plain"}
    assert "<pre>7</pre>" in bundle["text/html"] and "<pre>7</pre>" in shown[0].data
    assert bundle["text/plain"] == "<plain; Stream>: 7"
    assert s.downstreams == []


class Counted(Stream):
    """A node with metrics (as the metrics layer gives every node), counting what it saw."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.seen = 0

    def update(self, x, who=None, metadata=None):
        self.seen += 1
        return self._emit(x, metadata=metadata)

    @property
    def metrics(self):
        return {"elements_in": self.seen, "errors": 0}


def test_a_dataframe_value_is_shown_as_its_table(shown):
    pd = pytest.importorskip("pandas")
    s = Stream(stream_name="frames")
    s.emit(pd.DataFrame({"price": [1.5, 2.5]}))
    assert "<table" in s._repr_html_() and "2.5" in s._repr_html_()
    s.display()
    widget = shown[0]
    s.emit(pd.DataFrame({"price": [99.25]}))
    assert "<table" in widget.value and "99.25" in widget.value and "2.5" not in widget.value
    widget.close()


def test_the_displayed_output_carries_html_and_text_next_to_the_widget_view(shown):
    s = Stream(stream_name="prices")
    s.emit(41)
    s.display()
    widget = shown[0]
    s.emit(42)
    bundle = widget._repr_mimebundle_()
    assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"] == widget.model_id
    assert "<pre>42</pre>" in bundle["text/html"] and "prices" in bundle["text/html"]
    assert bundle["text/plain"] == "<prices; Stream>: 42"
    widget.close()


def test_metrics_are_shown_and_follow_the_values(shown):
    source = Stream()
    s = Counted(source, stream_name="counted")
    s.display(metrics=True)
    widget = shown[0]
    assert "no value yet" in widget.value
    assert "<th>elements_in</th><td>0</td>" in widget.value
    source.emit("a")
    source.emit("b")
    assert "<th>elements_in</th><td>2</td>" in widget.value
    assert "<th>errors</th><td>0</td>" in widget.value
    assert widget._repr_mimebundle_()["text/plain"] == (
        "<counted; Counted>: 'b'\nelements_in=2, errors=0"
    )
    widget.close()
    s.display()  # metrics only when asked
    assert "millstream-metrics" not in shown[1].value
    shown[1].close()


def test_metrics_of_a_node_without_metrics_show_nothing(shown):
    class Unmeasured(Stream):
        metrics = None  # type: ignore[assignment]

    s = Unmeasured()
    s.emit(1)
    s.display(metrics=True)
    assert "<pre>1</pre>" in shown[0].value and "<table" not in shown[0].value
    shown[0].close()


def test_a_nodes_own_metrics_are_shown_without_its_type_name_or_empty_fields(shown):
    s = Stream()
    s.emit(1)
    s.emit(2)
    s.display(metrics=True)
    assert "<th>elements_out</th><td>2</td>" in shown[0].value
    assert "<th>type</th>" not in shown[0].value and "None" not in shown[0].value
    shown[0].close()


def test_display_sinks_are_display_only_and_left_out_of_graphs(shown):
    nx = pytest.importorskip("networkx")
    from millstream.core.graph import build_node_set, create_graph

    s = Stream(stream_name="source")
    m = s.map(str)
    f = s.filter(bool)
    s.display()
    m.display()
    sinks = [s.downstreams[-1], m.downstreams[-1]]
    assert all(display_mod.is_display_only(n) for n in sinks)
    assert build_node_set(s) == {s, m, f}
    g = nx.DiGraph()
    create_graph(s, g)
    assert len(g) == 3
    # the edge labels count the drawn downstreams only
    assert sorted(d["label"] for *_, d in g.edges(data=True)) == ["0", "1"]
    for w in shown:
        w.close()
