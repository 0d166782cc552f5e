"""Helpers shared by windows and groupby: the frame package of a chunk, and pandas values
as plain data that keep their index (names, dtype, levels), for snapshots.

:func:`~.plain.to_plain` keeps a frame's values and index labels; a window's chunks and a
groupby's tables also need the index's name and dtype back (a ``DatetimeIndex`` in the
right unit, the key name of a groupby, a ``MultiIndex`` of several keys).

>>> import pandas as pd
>>> s = pd.Series([1.5, 2.5], index=pd.DatetimeIndex(['2026-01-01', '2026-01-02'], name='t'))
>>> back = from_plain_indexed(to_plain_indexed(s))
>>> back.equals(s), back.index.name, str(back.index.dtype) == str(s.index.dtype)
(True, 't', True)
>>> from_plain_indexed(to_plain_indexed((1, s)))[0]
1
"""

from __future__ import annotations

import sys
from types import ModuleType
from typing import Any

import pandas as pd

from .plain import from_plain, to_plain

__all__ = ["frame_package", "from_plain_indexed", "to_plain_indexed"]


def frame_package(x: Any) -> ModuleType:
    """The package a chunk comes from (``pandas`` or ``cudf``), for ``concat``.

    >>> import pandas as pd
    >>> frame_package(pd.Series([1])).__name__
    'pandas'
    """
    return sys.modules[type(x).__module__.split(".")[0]]


def _index_to_plain(index: Any) -> dict[str, Any]:
    levels = [index.get_level_values(i) for i in range(index.nlevels)]
    return {
        "names": list(index.names),
        "levels": [{"values": level.tolist(), "dtype": str(level.dtype)} for level in levels],
    }


def _index_from_plain(data: dict[str, Any]) -> Any:
    names = list(data["names"])
    levels = [pd.Index(list(level["values"]), dtype=level["dtype"]) for level in data["levels"]]
    if len(levels) == 1:
        return levels[0].rename(names[0])
    return pd.MultiIndex.from_arrays(levels, names=names)


def to_plain_indexed(value: Any) -> Any:
    """``value`` (a number, ``None``, a pandas Series or DataFrame, or a tuple, list or
    dict of these) as plain data; frames keep their index's names, dtypes and levels."""
    if isinstance(value, tuple):
        return tuple(to_plain_indexed(v) for v in value)
    if isinstance(value, list):
        return {"list": [to_plain_indexed(v) for v in value]}
    if hasattr(value, "index") and hasattr(value, "reset_index"):  # a Series or DataFrame
        if hasattr(value, "to_pandas"):  # cudf: kept as pandas
            value = value.to_pandas()
        flat = value.reset_index(drop=True)
        return {"indexed": {"value": to_plain(flat), "index": _index_to_plain(value.index)}}
    return to_plain(value)


def from_plain_indexed(data: Any) -> Any:
    """The value :func:`to_plain_indexed` made ``data`` from (pandas objects); raises
    ``TypeError``, ``ValueError`` or ``KeyError`` on anything else."""
    if isinstance(data, tuple):
        return tuple(from_plain_indexed(v) for v in data)
    if isinstance(data, dict) and len(data) == 1 and "list" in data:
        return [from_plain_indexed(v) for v in data["list"]]
    if isinstance(data, dict) and len(data) == 1 and "indexed" in data:
        inner = data["indexed"]
        value = from_plain(inner["value"])
        if not hasattr(value, "index"):
            raise TypeError(f"not a frame: {inner['value']!r:.80}")
        index = _index_from_plain(inner["index"])
        if len(index) != len(value):
            raise ValueError(f"an index of {len(index)} labels for {len(value)} rows")
        value.index = index
        return value
    return from_plain(data)
