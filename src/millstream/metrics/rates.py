"""Current rates: elements per second between two snapshots of a graph, and snapshots as
plain JSON.

A rate is the difference of a node's totals between two
:func:`~millstream.metrics.collect` snapshots over the time between them: what the node
does now, not its average since it started.

Examples
--------
>>> before = {"time": 10.0, "nodes": [{"id": "a", "elements_in": None, "elements_out": 100}]}
>>> now = {"time": 12.0, "nodes": [{"id": "a", "elements_in": None, "elements_out": 150}]}
>>> with_rates(now, before)["nodes"][0]["rate"]
25.0
>>> with_rates(now, None)["nodes"][0]["rate"] is None
True
>>> plain({"watermark": float("-inf"), "lag_by_partition": {0: 3}})
{'watermark': None, 'lag_by_partition': {'0': 3}}
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

__all__ = ["plain", "with_rates"]


def _rate(now: Any, before: Any, seconds: float) -> float | None:
    if not isinstance(now, (int, float)) or not isinstance(before, (int, float)):
        return None
    return round(max(now - before, 0) / seconds, 3)


def with_rates(snapshot: dict[str, Any], previous: dict[str, Any] | None) -> dict[str, Any]:
    """``snapshot`` with each node's current ``rate`` (elements emitted per second) and
    ``rate_in`` (elements arrived per second) since ``previous`` (None for a node that
    was not in ``previous``, or without one), and ``rate_interval_s``, the seconds between
    them. ``snapshot`` is changed in place and returned."""
    before = {n["id"]: n for n in previous["nodes"]} if previous else {}
    seconds = snapshot["time"] - previous["time"] if previous else 0.0
    snapshot["rate_interval_s"] = round(seconds, 3) if previous else None
    for node in snapshot["nodes"]:
        old = before.get(node["id"])
        if old is None or seconds <= 0:
            node["rate"] = node["rate_in"] = None
            continue
        node["rate"] = _rate(node.get("elements_out"), old.get("elements_out"), seconds)
        node["rate_in"] = _rate(node.get("elements_in"), old.get("elements_in"), seconds)
    return snapshot


def plain(value: Any) -> Any:
    """``value`` as strict JSON data: non-finite floats become None (JSON has no
    infinity), dict keys strings, tuples and sets lists, datetimes ISO strings, anything
    else its ``str``."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [plain(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)
