"""Streamz's ``streamz.graph``: draw a stream graph with networkx and graphviz.

The code lives in :mod:`millstream.core.graph` (``Stream.visualize`` uses it); this
module is the Streamz import path. Drawing needs ``pip install 'millstream[viz]'`` and
the graphviz ``dot`` program.

>>> import networkx as nx
>>> from millstream import Stream
>>> from millstream.graph import create_graph, readable_graph
>>> source = Stream(stream_name="numbers")
>>> doubled = source.map(abs)
>>> g = nx.DiGraph()
>>> create_graph(source, g)
>>> sorted(readable_graph(g).edges)
[(' numbers Stream ', ' map; abs ')]
"""

from __future__ import annotations

from millstream.core.graph import (
    build_node_set,
    create_graph,
    readable_graph,
    to_graphviz,
    visualize,
)

__all__ = ["build_node_set", "create_graph", "readable_graph", "to_graphviz", "visualize"]
