"""The metrics of a whole graph, as plain data (what ``/metrics`` and the dashboard show).

Examples
--------
>>> from millstream import Stream
>>> source = Stream(stream_name='numbers')
>>> L = source.map(abs).sink_to_list()
>>> for x in (-1, 2):
...     source.emit(x)
>>> graph = collect(source)
>>> [(n['id'], n['upstreams'], n['elements_out']) for n in graph['nodes']]
[('numbers', [], 2), ('numbers/map', ['numbers'], 2), ('numbers/map/sink', ['numbers/map'], 0)]
>>> graph['checkpoints'] is None
True
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from ..checkpoint import Checkpoints, checkpoints_of, graph_nodes, node_ids
from ..core import Stream

__all__ = ["checkpoint_metrics", "collect", "metric_ids"]


def metric_ids(*nodes: Stream) -> dict[Stream, str]:
    """A stable id for every node of the graph(s) of ``nodes``: the checkpoint ids (the
    node's name, or its path from a source), made unique if two nodes share a name."""
    try:
        return node_ids(*nodes)
    except ValueError:  # two nodes with one name: fine for metrics, numbered
        walk = graph_nodes(*nodes)
        seen: Counter[str] = Counter()
        ids = {}
        for node in walk:
            base = node.name or type(node).__name__
            seen[base] += 1
            ids[node] = base if seen[base] == 1 else f"{base}#{seen[base]}"
        return ids


def checkpoint_metrics(checkpoints: Checkpoints | None) -> dict[str, Any] | None:
    """The last checkpoint's id, age, duration, hold and size, and how many were taken
    (None without checkpoints).

    >>> checkpoint_metrics(None) is None
    True
    """
    if checkpoints is None:
        return None
    last = checkpoints.last
    return {
        "location": str(checkpoints.store.location),
        "restored_from": checkpoints.restored,
        "taken": len(checkpoints.history),
        "last_id": last.id if last else None,
        "last_age_s": round(time.time() - last.completed_at, 3) if last else None,
        "last_duration_s": last.duration_s if last else None,
        "last_held_s": last.held_s if last else None,
        "last_size_bytes": last.size if last else None,
    }


def collect(*nodes: Stream, checkpoints: Checkpoints | None = None) -> dict[str, Any]:
    """Every node's metrics (:attr:`millstream.core.Stream.metrics`) with its ``id`` and
    the ids of its ``upstreams``, in graph order, and the graph's ``checkpoints`` (found
    with :func:`millstream.checkpoint.checkpoints_of` unless given); ``time`` is when."""
    ids = metric_ids(*nodes)
    entries = []
    for node, node_id in ids.items():
        entry: dict[str, Any] = {"id": node_id}
        entry["upstreams"] = [ids[u] for u in node.upstreams if u is not None and u in ids]
        entry.update(node.metrics)
        entries.append(entry)
    if checkpoints is None:
        for node in ids:
            checkpoints = checkpoints_of(node)
            if checkpoints is not None:
                break
    return {
        "time": time.time(),
        "nodes": entries,
        "checkpoints": checkpoint_metrics(checkpoints),
    }
