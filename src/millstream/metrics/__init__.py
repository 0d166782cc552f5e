"""See a running pipeline: the metrics of every node of a graph in one call, the
Prometheus exposition of them, and the server of the live dashboard.

``node.metrics`` (:mod:`millstream.core.metrics`) is one node's; :func:`collect` is the
whole graph's, with each node's stable id (:func:`millstream.checkpoint.node_ids`), its
upstreams, and the graph's checkpoints.
"""

from .collect import checkpoint_metrics, collect, metric_ids

__all__ = ["checkpoint_metrics", "collect", "metric_ids"]
