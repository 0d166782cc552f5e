"""Checkpoints: consistent snapshots of a running graph, and recovery from them.

``millstream.checkpoint.enable(graph, location, interval='1s')`` before ``start()`` is the
one call: see :mod:`.coordinator` for the protocol, :mod:`millstream.core.state` for the
contract of node state, :mod:`.ids` for node ids and :mod:`.store` for the files; the
user's guide is docs/checkpoints.md.
"""

from .coordinator import FAILPOINTS, CheckpointInfo, Checkpoints, checkpoints_of, enable
from .ids import GraphMismatchError, check_same_graph, graph_nodes, node_ids
from .store import CheckpointStore

__all__ = [
    "FAILPOINTS",
    "CheckpointInfo",
    "CheckpointStore",
    "Checkpoints",
    "GraphMismatchError",
    "check_same_graph",
    "checkpoints_of",
    "enable",
    "graph_nodes",
    "node_ids",
]
