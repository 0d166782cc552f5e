"""Graph drawing: networkx graphs, labels, and files rendered by the real ``dot`` program."""

from __future__ import annotations

import shutil
from operator import add

import pytest

from millstream import Stream
from millstream.core.graph import _clean_text, build_node_set, create_graph, readable_graph

nx = pytest.importorskip("networkx")
pytest.importorskip("graphviz")
needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="graphviz 'dot' not installed")


def sample():
    source = Stream(stream_name="source")
    m = source.map(add, 1)
    f = source.filter(bool)
    L = m.sink_to_list()
    return source, m, f, L


def test_clean_text():
    assert _clean_text("<map: add>") == " map; add "
    assert _clean_text("a  b!!c:d") == "a b c;d"
    assert _clean_text("<map: add>", match="[<>]") == " map; add "
    assert _clean_text("plain_name") == "plain_name"


def test_build_node_set_reaches_up_and_down():
    source, m, f, _ = sample()
    nodes = build_node_set(m)
    assert source in nodes and f in nodes and len(nodes) == 4


def test_create_graph_labels_and_edges():
    _, m, _, _ = sample()
    g = nx.DiGraph()
    create_graph(m, g)
    labels = {data["label"] for _, data in g.nodes(data=True)}
    assert labels == {" source Stream ", " map; add ", " filter; bool ", " sink; append "}
    attrs = g.nodes[hash(m.downstreams[0])]
    assert attrs["shape"] == "trapezium"
    assert attrs["style"] == "rounded,filled" and attrs["fillcolor"] == "white"
    assert attrs["orientation"] == "0"
    edges = {(g.nodes[u]["label"], g.nodes[v]["label"]): d for u, v, d in g.edges(data=True)}
    # several downstreams: edges carry the order in which they receive elements
    assert edges == {
        (" source Stream ", " map; add "): {"label": "0"},
        (" source Stream ", " filter; bool "): {"label": "1"},
        (" map; add ", " sink; append "): {},
    }


def test_readable_graph_takes_networkx_graph_as_streamz():
    source = Stream(stream_name="source")
    source.map(str).sink_to_list()
    source.map(str)
    g = nx.DiGraph()
    create_graph(source, g)
    rg = readable_graph(g)
    assert sorted(rg.nodes()) == [" map; str ", " map; str -1", " sink; append ", " source Stream "]
    assert len(rg.edges()) == 3
    # a node is accepted as well
    assert sorted(readable_graph(source).nodes()) == sorted(rg.nodes())


@needs_dot
@pytest.mark.parametrize(
    "ext, magic", [("png", b"\x89PNG"), ("svg", b"<?xml"), ("dot", b"digraph")]
)
def test_visualize_writes_files(tmp_path, ext, magic):
    source, *_ = sample()
    target = tmp_path / f"graph.{ext}"
    result = source.visualize(str(target))
    data = target.read_bytes()
    assert data.startswith(magic)
    if ext == "dot":
        text = data.decode()
        assert "map; add" in text and "sink; append" in text and "->" in text
        assert result is None
    if ext == "svg":
        assert b"<svg" in data
        assert type(result).__name__ == "SVG"
    if ext == "png":
        assert type(result).__name__ == "Image"


@needs_dot
def test_visualize_without_extension_defaults_to_png(tmp_path):
    source, *_ = sample()
    source.visualize(str(tmp_path / "mystream"), rankdir="LR")
    assert (tmp_path / "mystream.png").read_bytes().startswith(b"\x89PNG")


@needs_dot
def test_visualize_graph_attributes_reach_dot(tmp_path):
    source, *_ = sample()
    source.visualize(str(tmp_path / "g.dot"), rankdir="LR")
    assert "rankdir=LR" in (tmp_path / "g.dot").read_text()


@needs_dot
def test_visualize_without_filename_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    source, *_ = sample()
    result = source.visualize(None)
    assert list(tmp_path.iterdir()) == []
    assert type(result).__name__ == "Image"


@needs_dot
def test_visualize_writes_no_file_unless_asked(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    source, *_ = sample()
    result = source.visualize(rankdir="LR")
    assert list(tmp_path.iterdir()) == []  # Streamz wrote mystream.png here
    assert type(result).__name__ == "Image" and result.data.startswith(b"\x89PNG")
    source.visualize("mystream.png")  # a file name given is written as before
    assert [p.name for p in tmp_path.iterdir()] == ["mystream.png"]


@needs_dot
def test_visualize_leaves_out_display_sinks(tmp_path):
    pytest.importorskip("ipywidgets")
    from millstream.core.display import live_widget

    source, m, *_ = sample()
    source.visualize(str(tmp_path / "before.dot"))
    widget = live_widget(m)
    assert len(m.downstreams) == 2
    source.visualize(str(tmp_path / "after.dot"))
    text = (tmp_path / "after.dot").read_text()
    assert text == (tmp_path / "before.dot").read_text()
    assert "redraw" not in text and text.count("->") == 3
    widget.close()
