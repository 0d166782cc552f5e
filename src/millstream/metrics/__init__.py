"""See a running pipeline: the metrics of every node of a graph in one call, the
Prometheus exposition of them, and the server of the live dashboard.

``node.metrics`` (:mod:`millstream.core.metrics`) is one node's; :func:`collect` is the
whole graph's, with each node's stable id (:func:`millstream.checkpoint.node_ids`), its
upstreams, and the graph's checkpoints. :func:`serve` starts the server of the dashboard,
Prometheus' ``/metrics`` and the JSON/SSE API (:mod:`millstream.metrics.server`).
"""

from .collect import checkpoint_metrics, collect, metric_ids
from .prometheus import GraphCollector, exposition
from .rates import with_rates
from .server import MetricsServer, serve

__all__ = [
    "GraphCollector",
    "MetricsServer",
    "checkpoint_metrics",
    "collect",
    "exposition",
    "metric_ids",
    "serve",
    "with_rates",
]
