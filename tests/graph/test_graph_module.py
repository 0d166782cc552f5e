"""millstream.graph: Streamz's import path, the same graphs as streamz.graph builds."""

from __future__ import annotations

import shutil

import pytest

import millstream.core.graph as core_graph
import millstream.graph as graph
from millstream import Stream

nx = pytest.importorskip("networkx")
pytest.importorskip("graphviz")
needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="graphviz 'dot' not installed")


def pipeline(stream_cls):
    source = stream_cls(stream_name="source")
    source.map(abs).sink_to_list()
    source.map(abs).filter(bool).sink(print)
    return source


def readable(module, stream_cls):
    g = nx.DiGraph()
    module.create_graph(pipeline(stream_cls), g)
    rg = module.readable_graph(g)
    return sorted(rg.nodes), sorted((u, v, d.get("label")) for u, v, d in rg.edges(data=True))


def test_same_functions_as_core():
    for name in ("create_graph", "readable_graph", "visualize", "to_graphviz", "build_node_set"):
        assert getattr(graph, name) is getattr(core_graph, name)


def test_readable_graph_names_duplicates():
    nodes, edges = readable(graph, Stream)
    assert nodes == [
        " filter; bool ",
        " map; abs ",
        " map; abs -1",
        " sink; append ",
        " sink; print ",
        " source Stream ",
    ]
    assert {label for *_, label in edges} == {"0", "1", None}


def test_same_graph_as_streamz():
    streamz = pytest.importorskip("streamz")
    streamz_graph = pytest.importorskip("streamz.graph")

    mine, theirs = readable(graph, Stream), readable(streamz_graph, streamz.Stream)
    assert mine[0] == theirs[0]

    # which of two equal labels gets "-1" depends on set order, in Streamz too
    def strip(edges):
        return sorted((u.split("-")[0], v.split("-")[0], label or "") for u, v, label in edges)

    assert strip(mine[1]) == strip(theirs[1])


def test_to_graphviz_digraph_keywords():
    g = nx.DiGraph()
    graph.create_graph(pipeline(Stream), g)
    assert graph.to_graphviz(g, rankdir="LR").graph_attr == {"rankdir": "LR"}
    assert graph.to_graphviz(g, name="pipe", graph_attr={"rankdir": "LR"}).name == "pipe"


@needs_dot
def test_visualize_dot_file_uses_labels(tmp_path):
    target = tmp_path / "pipe.dot"
    assert graph.visualize(pipeline(Stream), filename=str(target)) is None
    text = target.read_text()
    assert '" source Stream "' in text and '" map; abs -1"' in text
