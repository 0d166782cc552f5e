"""Third-party nodes from entry points, loaded lazily.

A package declares, in its ``pyproject.toml``::

    [project.entry-points."millstream.nodes"]
    my_node = "my_package.nodes:MyNode"

Groups: ``millstream.sources`` (registered as static methods, like
``Stream.from_iterable``), ``millstream.nodes`` and ``millstream.sinks``. Plugins
written for Streamz, under ``streamz.sources``, ``streamz.nodes`` and ``streamz.sinks``,
are registered the same way (their classes must subclass millstream's ``Stream``: a
class built on ``streamz.Stream`` gives a clear error when first used). The class is
imported on first use; a name that already exists is skipped with a warning, and so is
a name declared under both a millstream and a Streamz group (the millstream one wins).
"""

from __future__ import annotations

import sys
import warnings
from importlib.metadata import entry_points
from typing import Any

__all__ = ["GROUPS", "load_plugin_class", "load_plugins", "try_register"]

GROUPS = (
    ("millstream.sources", staticmethod),
    ("millstream.nodes", None),
    ("millstream.sinks", None),
    ("streamz.sources", staticmethod),
    ("streamz.nodes", None),
    ("streamz.sinks", None),
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
    """Register every node declared under the millstream and Streamz entry-point groups on
    ``cls`` (nothing is imported until a node is used)."""
    registered: dict[str, tuple[str, Any]] = {}  # name -> (group, entry point) read so far
    for group, modifier in GROUPS:
        for entry_point in entry_points(group=group):
            first = registered.get(entry_point.name)
            if first is not None and first[0].split(".")[0] != group.split(".")[0]:
                warnings.warn(
                    f"millstream plugin {entry_point.name!r} is declared under both "
                    f"{first[0]!r} (module {first[1].module}) and {group!r} (module "
                    f"{entry_point.module}): registered once, from {first[0]!r}",
                    stacklevel=2,
                )
                continue
            try_register(cls, entry_point, modifier)
            registered.setdefault(entry_point.name, (group, entry_point))


def load_plugin_class(entry_point: Any, base: type) -> type:
    """Import the class ``entry_point`` names and check that it is a ``base`` subclass.

    A class built on ``streamz.Stream`` (a Streamz plugin not ported yet) is refused
    with an error that says what to change.
    """
    node = entry_point.load()
    if isinstance(node, type) and issubclass(node, base):
        return node
    group = getattr(entry_point, "group", None)
    where = f"plugin {entry_point.name!r}" + (f" (entry point group {group!r})" if group else "")
    streamz = sys.modules.get("streamz")
    streamz_base = getattr(streamz, "Stream", None)
    if isinstance(node, type) and isinstance(streamz_base, type) and issubclass(node, streamz_base):
        raise TypeError(
            f"Error loading {entry_point.name} from module {entry_point.module}: {where} is "
            f"{node.__module__}.{node.__qualname__}, a subclass of streamz.Stream; millstream "
            f"needs a subclass of millstream's Stream. In module {entry_point.module}, import "
            "Stream from millstream instead of streamz (`from millstream import Stream`)."
        )
    kind = node.__qualname__ if isinstance(node, type) else type(node).__name__
    raise TypeError(
        f"Error loading {entry_point.name} from module {entry_point.module}: {where} gives "
        f"{kind}, which must be a subclass of Stream (`from millstream import Stream`)"
    )
