"""Checkpoints: node ids, snapshots with source positions, stores, recovery.

This package grows with issue 11 of the project; today it holds the stable node ids a
checkpoint files state under (:mod:`.ids`).
"""

from .ids import GraphMismatchError, check_same_graph, graph_nodes, node_ids

__all__ = ["GraphMismatchError", "check_same_graph", "graph_nodes", "node_ids"]
