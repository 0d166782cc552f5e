"""Third-party nodes from entry points, loaded lazily.

A package declares, in its ``pyproject.toml``::

    [project.entry-points."millstream.nodes"]
    my_node = "my_package.nodes:MyNode"

Groups: ``millstream.sources`` (registered as static methods, like
``Stream.from_iterable``), ``millstream.nodes`` and ``millstream.sinks``. The class
is imported on first use; a name that already exists is skipped with a warning.
"""

from __future__ import annotations

import warnings
from importlib.metadata import entry_points
from typing import Any

__all__ = ["GROUPS", "load_plugins", "try_register"]

GROUPS = (
    ("millstream.sources", staticmethod),
    ("millstream.nodes", None),
    ("millstream.sinks", None),
)


def try_register(cls: Any, entry_point: Any, modifier: Any = None) -> None:
    """Register one entry point on ``cls``, warning instead of failing on a name clash."""
    try:
        if modifier is None:
            cls.register_plugin_entry_point(entry_point)
        else:
            cls.register_plugin_entry_point(entry_point, modifier)
    except ValueError as e:
        warnings.warn(f"millstream plugin not registered: {e}", stacklevel=2)


def load_plugins(cls: Any) -> None:
    """Register every node declared under the millstream entry-point groups on ``cls``."""
    for group, modifier in GROUPS:
        for entry_point in entry_points(group=group):
            try_register(cls, entry_point, modifier)
