"""Frames in notebooks: _repr_html_ (the example as a table), the live table of
_ipython_display_ (an ipywidgets HTML widget redrawn as chunks arrive), and ``plot``."""

from __future__ import annotations

import pytest

from millstream.dataframe import DataFrame
from millstream.testing import wait_for

widgets = pytest.importorskip("ipywidgets")
ipy_display = pytest.importorskip("IPython.display")


@pytest.fixture
def shown(monkeypatch):
    """Capture what would be displayed in a notebook."""
    out = []
    monkeypatch.setattr(ipy_display, "display", lambda obj, **kw: out.append(obj))
    return out


def test_repr_html_is_the_example_head_as_a_table(xd):
    sdf = DataFrame(example=xd.DataFrame({"price": [1.5, 2.5, 3.5], "qty": [1, 2, 3]}))
    html = sdf._repr_html_()
    assert "<table" in html and "price" in html and "qty" in html
    assert "2.5" in html and "3.5" not in html  # head(2)


def test_the_live_table_shows_each_new_chunk_as_html(xd):
    sdf = DataFrame(example=xd.DataFrame({"price": [0.0]}))
    before = len(sdf.stream.downstreams)
    view = sdf.live_widget(interval=0.05)
    assert isinstance(view, widgets.HTML) and "no value yet" in view.value
    sdf.emit(xd.DataFrame({"price": [11.25, 12.5]}))
    wait_for(lambda: "11.25" in view.value, 5)
    assert "<table" in view.value and "DataFrame" in view.value
    sdf.emit(xd.DataFrame({"price": [99.75]}))
    wait_for(lambda: "99.75" in view.value, 5)
    assert "11.25" not in view.value
    view.close()
    assert len(sdf.stream.downstreams) == before  # latest, rate_limit and the sink are gone
    sdf.emit(xd.DataFrame({"price": [7.0]}))
    assert "99.75" in view.value


def test_ipython_display_shows_a_live_widget_and_results_update_too(shown, xd):
    sdf = DataFrame(example=xd.DataFrame({"x": [0]}))
    total = sdf.x.sum()
    total._ipython_display_()
    sdf._ipython_display_()
    assert len(shown) == 2 and all(isinstance(w, widgets.HTML) for w in shown)
    sdf.emit(xd.DataFrame({"x": [40, 2]}))
    wait_for(lambda: "42" in shown[0].value and "<table" in shown[1].value, 5)
    for w in shown:
        w.close()


def test_plot_without_hvplot_is_a_one_line_import_error(monkeypatch, xd):
    monkeypatch.setitem(__import__("sys").modules, "hvplot", None)
    sdf = DataFrame(example=xd.DataFrame({"x": [0]}))
    with pytest.raises(ImportError) as info:
        sdf.plot
    assert "pip install hvplot" in str(info.value) and "\n" not in str(info.value)


def test_plot_line_is_a_live_holoviews_plot_of_the_rows(xd):
    pytest.importorskip("hvplot")
    import holoviews as hv

    sdf = DataFrame(example=xd.DataFrame({"x": [0.0], "y": [0.0]}))
    plot = sdf.plot.line(x="x", y="y")
    assert isinstance(plot, hv.DynamicMap)
    series_plot = sdf.y.plot.line()
    sdf.emit(xd.DataFrame({"x": [1.0, 2.0], "y": [3.0, 4.0]}))
    sdf.emit(xd.DataFrame({"x": [3.0], "y": [5.0]}))
    curve = plot[()]  # what the plot draws now
    assert list(curve.data["x"]) == [1.0, 2.0, 3.0] and list(curve.data["y"]) == [3.0, 4.0, 5.0]
    assert list(series_plot[()].data["y"]) == [3.0, 4.0, 5.0]


def test_plot_of_an_updating_frame_shows_the_latest_element(xd):
    pytest.importorskip("hvplot")
    from millstream.dataframe import DataFrames

    sdfs = DataFrames(example=xd.DataFrame({"x": [0.0], "y": [0.0]}))
    plot = sdfs.plot.scatter(x="x", y="y")
    sdfs.emit(xd.DataFrame({"x": [1.0, 2.0], "y": [3.0, 4.0]}))
    sdfs.emit(xd.DataFrame({"x": [9.0], "y": [8.0]}))
    assert list(plot[()].data["x"]) == [9.0]


def test_the_live_table_nodes_are_display_only_and_can_show_metrics(shown, xd):
    from millstream.core.display import is_display_only
    from millstream.core.graph import build_node_set

    sdf = DataFrame(example=xd.DataFrame({"x": [0]}))
    sdf.emit(xd.DataFrame({"x": [5, 6]}))
    before = build_node_set(sdf.stream)
    sdf.display(metrics=True, interval=0.05)
    widget = shown[0]
    # the frame's latest chunk is shown at once (the new nodes have seen nothing yet)
    assert "<table" in widget.value and "6" in widget.value
    added = [n for n in sdf.stream.downstreams if n not in before]
    assert added and all(is_display_only(n) for n in added)
    assert build_node_set(sdf.stream) == before
    # the metrics shown are the frame's stream's (what it emitted), not the view node's
    assert "<th>elements_out</th><td>1</td>" in widget.value
    widget.close()
