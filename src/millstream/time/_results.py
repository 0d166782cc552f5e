"""What the ``window`` node emits.

Shared by the node (:mod:`millstream.time.operators`, the public home of
:class:`WindowResult`) and the stores holding each assigner family's windows
(:mod:`._store`, :mod:`._buckets`, :mod:`._sessions`, :mod:`._counts`).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from .windows import Window

__all__ = ["WindowResult"]


class WindowResult(NamedTuple):
    """What the ``window`` node emits: the result of one window of one key.

    ``kind`` is ``'final'`` (the window closed), ``'early'`` (a result while it is still
    open, with ``early=``) or ``'update'`` (a corrected result after late data, with
    ``late='update'``; it replaces the earlier result of the same key and window).

    Examples
    --------
    >>> r = WindowResult('a', Window(0, 10), 3, 'final')
    >>> r.key, r.window.end, r.value, r.kind
    ('a', 10, 3, 'final')
    """

    key: Any
    window: Window
    value: Any
    kind: str


# Public (and pickled) under the module where it has always been.
WindowResult.__module__ = "millstream.time.operators"
