"""A node's metrics: what it counted while it ran, read on demand.

The counts cost the hot path next to nothing: ``_emit`` adds one to the node's
``elements_emitted`` and fused code adds up its per-block counts after each batch
(:mod:`millstream.core.fusion`); a node's ``elements_in`` is the sum of what its
upstreams emitted, so nothing counts twice. Errors are counted where they are handled
(an ``on_error`` policy's :class:`~millstream.core.errors.ErrorCounts`) or raised
(``errors_raised``). Processing time is sampled (:mod:`millstream.core.sampling`): a
few milliseconds every second, elements take the per-element path, each ``update`` timed.

A node class adds what only it knows by overriding ``Stream.extra_metrics()`` (a dict
merged into its metrics): a buffer its ``backlog``, a source its ``position`` and ``lag``,
an event-time node its ``watermark``.

Examples
--------
>>> from millstream import Stream
>>> source = Stream()
>>> evens = source.filter(lambda x: x % 2 == 0)
>>> L = evens.sink_to_list()
>>> for i in range(5):
...     source.emit(i)
>>> m = evens.metrics
>>> m['elements_in'], m['elements_out'], m['errors']
(5, 3, 0)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import ErrorCounts
from .sampling import seconds_per_element

if TYPE_CHECKING:
    from .stream import Stream

__all__ = ["FIELDS", "node_metrics"]

#: The fields every node's metrics have, and what they mean.
FIELDS: dict[str, str] = {
    "type": "the node's class name",
    "name": "the node as str() shows it",
    "elements_in": "elements that arrived from its upstreams (None for a source)",
    "elements_out": "elements it emitted downstream",
    "errors": "elements its function failed on (raised, skipped, dead-lettered or retried)",
    "dead_letters": "elements it sent to its dead-letter stream",
    "seconds_per_element": "mean time of the node's own work per element, sampled "
    "(its downstreams' excluded; None until one of its elements was timed)",
    "backlog": "elements it holds or has in flight (buffers, Dask futures, async writes)",
}


def node_metrics(node: Stream) -> dict[str, Any]:
    """``node``'s metrics now, as a dict of plain values (see :data:`FIELDS`), plus what
    its class adds in ``extra_metrics()``."""
    errors = getattr(node, "errors", None)
    handled = errors if isinstance(errors, ErrorCounts) else None
    upstreams = [u for u in node.upstreams if u is not None]
    metrics: dict[str, Any] = {
        "type": type(node).__name__,
        "name": str(node),
        "elements_in": sum(u.elements_emitted for u in upstreams) if upstreams else None,
        "elements_out": node.elements_emitted,
        # an error the policy handled was annotated (counted in errors_raised) first
        "errors": node.errors_raised if handled is None else max(node.errors_raised, handled.total),
        "dead_letters": handled.dead_lettered if handled is not None else 0,
        "seconds_per_element": seconds_per_element(node),
        "backlog": None,
    }
    metrics.update(node.extra_metrics())
    return metrics
