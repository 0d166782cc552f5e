"""Draw a stream graph with graphviz (``pip install millstream[viz]`` and the ``dot`` program)."""

from __future__ import annotations

import os
import re
from typing import Any

from .display import is_display_only

__all__ = [
    "DIGRAPH_KEYWORDS",
    "build_node_set",
    "create_graph",
    "readable_graph",
    "to_graphviz",
    "visualize",
]


def _clean_text(text: str, match: str | None = None) -> str:
    """Make a label safe for graphviz: runs of odd characters become one space, ':' becomes ';'.

    >>> _clean_text('<map: add>')
    ' map; add '
    """
    if match is None:
        match = r"[^a-zA-Z0-9_:]+"
    return re.sub(match, " ", text).replace(":", ";")


def build_node_set(node: Any, seen: set[Any] | None = None) -> set[Any]:
    """Every node connected to ``node``, upstream or downstream, except the ones that only
    feed notebook displays (:func:`millstream.core.display.is_display_only`)."""
    seen = set() if seen is None else seen
    pending = [node]
    while pending:
        n = pending.pop()
        if n is None or n in seen or (n is not node and is_display_only(n)):
            continue
        seen.add(n)
        pending.extend(n.upstreams)
        pending.extend(n.downstreams)
    return seen


def create_graph(node: Any, graph: Any) -> None:
    """Add every node connected to ``node`` and its edges to a networkx ``graph``.

    Node ids are ``hash(node)``; labels are cleaned ``str(node)``; when a node has
    several downstreams, each edge is labelled with the execution order. Nodes that only
    feed notebook displays are left out.
    """
    nodes = build_node_set(node)
    for n in nodes:
        graph.add_node(
            hash(n),
            label=_clean_text(str(n)),
            shape=n._graphviz_shape,
            orientation=str(n._graphviz_orientation),
            style=n._graphviz_style,
            fillcolor=n._graphviz_fillcolor,
        )
    for n in nodes:
        for u in n.upstreams:
            if u is None:
                continue
            attrs = {}
            shown = [d for d in u.downstreams if d in nodes]
            if len(shown) > 1:
                attrs["label"] = str(shown.index(n))
            graph.add_edge(hash(u), hash(n), **attrs)


def readable_graph(graph: Any) -> Any:
    """A copy of a networkx ``graph`` made by :func:`create_graph`, named by labels.

    Duplicate labels get ``-N`` suffixes. A stream node is accepted too (its graph is
    built first).
    """
    import networkx as nx

    if hasattr(graph, "downstreams"):
        g = nx.DiGraph()
        create_graph(graph, g)
    else:
        g = graph
    mapping: dict[Any, str] = {}
    counts: dict[str, int] = {}
    for k, attrs in g.nodes(data=True):
        label = attrs["label"]
        counts[label] = counts.get(label, 0) + 1
        mapping[k] = label if counts[label] == 1 else f"{label}-{counts[label] - 1}"
    return nx.relabel_nodes(g, mapping)


#: Keywords of ``graphviz.Digraph`` itself: when one is given, all go to ``Digraph``.
DIGRAPH_KEYWORDS = frozenset(
    {
        "name",
        "comment",
        "filename",
        "format",
        "engine",
        "encoding",
        "graph_attr",
        "node_attr",
        "edge_attr",
        "body",
        "strict",
        "directory",
    }
)


def to_graphviz(graph: Any, **graph_attr: Any) -> Any:
    """A ``graphviz.Digraph`` of a networkx graph.

    As in Streamz, the keywords are graph attributes (``rankdir='LR'``) unless one of them
    is a ``Digraph`` keyword (:data:`DIGRAPH_KEYWORDS`); then they all go to ``Digraph``.
    """
    import graphviz

    if DIGRAPH_KEYWORDS.intersection(graph_attr):
        gv = graphviz.Digraph(**graph_attr)
    else:
        gv = graphviz.Digraph(graph_attr=graph_attr)
    for node, attrs in graph.nodes(data=True):
        gv.node(str(node), **{k: str(v) for k, v in attrs.items()})
    for u, v, attrs in graph.edges(data=True):
        gv.edge(str(u), str(v), **{k: str(v) for k, v in attrs.items()})
    return gv


def visualize(node: Any, filename: str | None = None, **kwargs: Any) -> Any:
    """Render the graph around ``node`` (without the nodes that only feed displays).

    By default nothing is written: an IPython PNG image is returned (the PNG bytes without
    IPython). With a ``filename`` (Streamz's default was ``'mystream.png'``) the file is
    written too; its format comes from the extension (png, pdf, dot, svg, jpeg, jpg; png
    by default) and an IPython image is returned for png/jpeg/svg, else ``None``.
    Keyword arguments become graphviz graph attributes (e.g. ``rankdir='LR'``).
    """
    try:
        import graphviz  # noqa: F401
        import networkx as nx
    except ImportError as e:
        raise ImportError(
            "visualize() needs graphviz and networkx: pip install 'millstream[viz]' "
            "(and the graphviz 'dot' program)"
        ) from e
    g = nx.DiGraph()
    create_graph(node, g)
    gv = to_graphviz(readable_graph(g), **kwargs)
    fmt = "png"
    if filename is not None:
        name, ext = os.path.splitext(filename)
        if ext.lower().lstrip(".") in {"png", "pdf", "dot", "svg", "jpeg", "jpg"}:
            fmt = ext.lower().lstrip(".")
        else:
            name = filename
    data = gv.pipe(format=fmt)
    if filename is not None:
        with open(f"{name}.{fmt}", "wb") as f:
            f.write(data)
    try:
        from IPython.display import SVG, Image
    except ImportError:
        return data if filename is None else None
    if fmt == "svg":
        return SVG(data)
    if fmt in {"png", "jpeg", "jpg"}:
        return Image(data)
    return None
