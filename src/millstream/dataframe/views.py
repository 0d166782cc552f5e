"""What ``window(...)``, ``rolling(...)``, ``expanding()`` and ``ewm(...)`` return before an
aggregation is picked: an operation pending on a frame (its ``root``). Picking columns
first (``w['x']``, ``w.x``) gives the same operation on those columns.

>>> import pandas as pd
>>> from millstream.dataframe import DataFrame
>>> sdf = DataFrame(example=pd.DataFrame({'x': [0.0], 'y': [0.0]}))
>>> w = sdf.window(n=3)
>>> w.x.root.example.name, list(w[['y']].columns)
('x', ['y'])
>>> w.z
Traceback (most recent call last):
...
AttributeError: Window has no attribute or column 'z'
"""

from __future__ import annotations

from typing import Any

__all__ = ["ColumnView", "FrameView"]


class ColumnView:
    """Column selection on a pending operation: subclasses set ``root`` and implement
    ``_like(root)`` (the same operation on another frame); ``_fields`` names their own
    attributes, which are never taken for columns."""

    root: Any
    _fields: tuple[str, ...] = ("root",)

    def _like(self, root: Any) -> Any:
        raise NotImplementedError

    def __getitem__(self, key: Any) -> Any:
        return self._like(self.root[key])

    def __getattr__(self, key: str) -> Any:
        if key.startswith("_") or key in self._fields:
            raise AttributeError(key)
        if key in getattr(self.root.example, "columns", ()):
            return self[key]
        raise AttributeError(f"{type(self).__name__} has no attribute or column {key!r}")

    def __dir__(self) -> list[str]:
        columns = getattr(self.root.example, "columns", ())
        return sorted({*object.__dir__(self), *(c for c in columns if isinstance(c, str))})


class FrameView(ColumnView):
    """A :class:`ColumnView` that also answers for its frame: ``example``, ``columns``,
    ``dtypes``, and the operation over the frame's ``index`` or ``reset_index()``."""

    @property
    def example(self) -> Any:
        return self.root.example

    @property
    def columns(self) -> Any:
        return self.root.columns

    @property
    def dtypes(self) -> Any:
        return self.root.dtypes

    @property
    def index(self) -> Any:
        return self._like(self.root.index)

    def reset_index(self) -> Any:
        return self._like(self.root.reset_index())
