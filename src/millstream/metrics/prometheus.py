"""The Prometheus exposition of a graph's metrics (what ``/metrics`` serves).

:func:`families` turns one :func:`~millstream.metrics.collect` snapshot into
prometheus_client metric families; :func:`exposition` writes them in the text format
(version 0.0.4), and :class:`GraphCollector` registers a live graph on a
``CollectorRegistry`` of the caller's (each scrape collects anew).

Every family has the labels ``node`` (the node's stable id) and ``type`` (its class):

=====================================  =======  ============================================
name                                   kind     from
=====================================  =======  ============================================
``millstream_elements_total``          counter  ``elements_out``: elements the node emitted
``millstream_elements_in_total``       counter  ``elements_in`` (not for sources)
``millstream_errors_total``            counter  ``errors``
``millstream_dead_letters_total``      counter  ``dead_letters``
``millstream_backlog``                 gauge    ``backlog`` (when the node reports one)
``millstream_seconds_per_element``     gauge    ``seconds_per_element`` (once sampled)
``millstream_watermark_seconds``       gauge    ``watermark`` (event time, epoch seconds)
``millstream_source_lag``              gauge    ``lag_by_partition`` (label ``partition``)
                                                and ``lag`` (the total, no ``partition``)
``millstream_source_position``         gauge    ``position`` when it is a number
=====================================  =======  ============================================

and for the graph's checkpoints (no labels): ``millstream_checkpoint_last_id``,
``millstream_checkpoint_age_seconds``, ``millstream_checkpoint_duration_seconds``,
``millstream_checkpoint_size_bytes``, ``millstream_checkpoints_total``. Other fields a
node class adds in ``extra_metrics()`` are not exported (their meaning and kind are
unknown here); they are in the JSON of ``/api/metrics``.

Examples
--------
>>> from millstream import Stream
>>> source = Stream(stream_name='numbers')
>>> L = source.map(abs).sink_to_list()
>>> source.emit(-3)
>>> text = exposition(collect(source)).decode()
>>> print([line for line in text.splitlines() if line.startswith('millstream_elements_total')][0])
millstream_elements_total{node="numbers",type="Stream"} 1.0
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .collect import collect

__all__ = ["CONTENT_TYPE", "GraphCollector", "exposition", "families"]

#: The content type of the text format :func:`exposition` writes.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

NODE_LABELS = ["node", "type"]

#: (name, kind, field, help) of the per-node families.
NODE_FAMILIES: list[tuple[str, str, str, str]] = [
    ("millstream_elements", "counter", "elements_out", "Elements the node emitted"),
    ("millstream_elements_in", "counter", "elements_in", "Elements that arrived at the node"),
    ("millstream_errors", "counter", "errors", "Elements the node's function failed on"),
    ("millstream_dead_letters", "counter", "dead_letters", "Elements sent to dead letters"),
    ("millstream_backlog", "gauge", "backlog", "Elements the node holds or has in flight"),
    (
        "millstream_seconds_per_element",
        "gauge",
        "seconds_per_element",
        "Sampled mean seconds of the node's own work per element",
    ),
    (
        "millstream_watermark_seconds",
        "gauge",
        "watermark",
        "The node's event-time watermark (seconds since the epoch)",
    ),
    ("millstream_source_position", "gauge", "position", "The source's position"),
]

#: (name, kind, field, help) of the checkpoint families.
CHECKPOINT_FAMILIES: list[tuple[str, str, str, str]] = [
    ("millstream_checkpoint_last_id", "gauge", "last_id", "Id of the last checkpoint"),
    (
        "millstream_checkpoint_age_seconds",
        "gauge",
        "last_age_s",
        "Seconds since the last checkpoint completed",
    ),
    (
        "millstream_checkpoint_duration_seconds",
        "gauge",
        "last_duration_s",
        "Seconds the last checkpoint took",
    ),
    (
        "millstream_checkpoint_size_bytes",
        "gauge",
        "last_size_bytes",
        "Bytes the last checkpoint wrote",
    ),
    ("millstream_checkpoints", "counter", "taken", "Checkpoints taken by this process"),
]


def number(value: Any) -> float | None:
    """``value`` as a finite float (a datetime as its timestamp), or None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, (int, float)) and math.isfinite(value):
        return float(value)
    return None


def _family(
    name: str, kind: str, help_text: str, labels: list[str]
) -> CounterMetricFamily | GaugeMetricFamily:
    if kind == "counter":
        return CounterMetricFamily(name, help_text, labels=labels)
    return GaugeMetricFamily(name, help_text, labels=labels)


def families(snapshot: dict[str, Any]) -> list[Metric]:
    """The metric families of one :func:`~millstream.metrics.collect` snapshot; a family
    no node has a value for is left out."""
    out: list[Metric] = []
    nodes = snapshot.get("nodes", [])
    for name, kind, field, help_text in NODE_FAMILIES:
        family = _family(name, kind, help_text, NODE_LABELS)
        for node in nodes:
            value = number(node.get(field))
            if value is not None:
                family.add_metric([node["id"], node.get("type", "")], value)
        if family.samples:
            out.append(family)
    lag = GaugeMetricFamily(
        "millstream_source_lag",
        "Elements the source is behind (per partition, and the total without one)",
        labels=["node", "type", "partition"],
    )
    for node in nodes:
        labels = [node["id"], node.get("type", "")]
        per_partition = node.get("lag_by_partition")
        if isinstance(per_partition, dict):
            for partition, value in per_partition.items():
                lag_value = number(value)
                if lag_value is not None:
                    lag.add_metric([*labels, str(partition)], lag_value)
        total = number(node.get("lag"))
        if total is not None:
            lag.add_metric([*labels, ""], total)
    if lag.samples:
        out.append(lag)
    checkpoints = snapshot.get("checkpoints")
    if checkpoints:
        for name, kind, field, help_text in CHECKPOINT_FAMILIES:
            value = number(checkpoints.get(field))
            if value is not None:
                family = _family(name, kind, help_text, [])
                family.add_metric([], value)
                out.append(family)
    return out


class _Snapshot(Collector):
    def __init__(self, snapshot: dict[str, Any]) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterable[Metric]:
        return families(self.snapshot)


def exposition(snapshot: dict[str, Any]) -> bytes:
    """``snapshot`` (from :func:`~millstream.metrics.collect`) in Prometheus' text format
    (:data:`CONTENT_TYPE`)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot(snapshot))
    return generate_latest(registry)


class GraphCollector(Collector):
    """A prometheus_client collector of the graph(s) of ``nodes``: register it on a
    registry (``registry.register(GraphCollector(source))``) to export the graph from a
    server of your own. ``snapshot`` replaces :func:`~millstream.metrics.collect`
    (e.g. a cached one)."""

    def __init__(self, *nodes: Any, snapshot: Callable[[], dict[str, Any]] | None = None) -> None:
        self.nodes = nodes
        self.snapshot = snapshot or (lambda: collect(*self.nodes))

    def collect(self) -> Iterator[Metric]:
        yield from families(self.snapshot())
