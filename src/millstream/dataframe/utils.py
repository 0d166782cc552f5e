"""Telling frames apart by what they look like (Streamz's ``streamz.dataframe.utils``).

Duck typing lets the same code run on pandas and cudf chunks: a frame is whatever has
the attributes of one, and :func:`get_dataframe_package` gives the package the chunks
come from, for the few calls that need one (``concat``).

>>> import pandas as pd
>>> df = pd.DataFrame({'x': [1, 2]})
>>> is_dataframe_like(df), is_series_like(df.x), is_index_like(df.index)
(True, True, True)
>>> get_dataframe_package(df).__name__
'pandas'
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any

__all__ = [
    "get_base_frame_type",
    "get_dataframe_package",
    "is_dataframe_like",
    "is_index_like",
    "is_series_like",
]


def is_dataframe_like(x: Any) -> bool:
    """Looks like a DataFrame (pandas or cudf): columns and dtypes, no single dtype or name."""
    kind = type(x)
    return (
        hasattr(kind, "groupby")
        and hasattr(kind, "head")
        and hasattr(kind, "merge")
        and hasattr(kind, "mean")
        and hasattr(x, "columns")
        and hasattr(x, "dtypes")
        and not (hasattr(kind, "name") or hasattr(kind, "dtype"))
    )


def is_series_like(x: Any) -> bool:
    """Looks like a Series: a name and a dtype, groupby and head; not an index."""
    kind = type(x)
    return (
        hasattr(kind, "groupby")
        and hasattr(kind, "head")
        and hasattr(kind, "mean")
        and hasattr(x, "name")
        and hasattr(x, "dtype")
        and "index" not in kind.__name__.lower()
    )


def is_index_like(x: Any) -> bool:
    """Looks like an Index: a name and a dtype, and a type named like an index."""
    return hasattr(x, "name") and hasattr(x, "dtype") and "index" in type(x).__name__.lower()


def get_base_frame_type(
    name: str, is_frame_like: Callable[[Any], bool], example: Any = None
) -> type:
    """The chunk type of a streaming ``name`` (``'DataFrame'``, ``'Series'``, ``'Index'``)
    built from ``example``.

    An example that is not frame-like is turned into a ``pandas.DataFrame`` when ``name``
    is ``'DataFrame'`` (as Streamz does); otherwise it must pass ``is_frame_like``.

    >>> import pandas as pd
    >>> get_base_frame_type('DataFrame', is_dataframe_like, {'x': [1]}).__name__
    'DataFrame'
    >>> get_base_frame_type('Series', is_series_like, pd.DataFrame({'x': [1]}))
    Traceback (most recent call last):
    ...
    TypeError: Streaming Series expects an example of Series like objects, got DataFrame
    >>> get_base_frame_type('Series', is_series_like)
    Traceback (most recent call last):
    ...
    TypeError: Missing required argument:'example'
    """
    if example is None:
        raise TypeError("Missing required argument:'example'")
    if name == "DataFrame" and not is_frame_like(example):
        import pandas as pd

        example = pd.DataFrame(example)
    if not is_frame_like(example):
        raise TypeError(
            f"Streaming {name} expects an example of {name} like objects, "
            f"got {type(example).__name__}"
        )
    return type(example)


def get_dataframe_package(df: Any) -> ModuleType:
    """The top-level package of ``df``'s type: ``pandas`` for pandas frames, ``cudf`` for
    cudf ones (use it instead of ``pd`` on chunks: ``get_dataframe_package(x).concat``).

    >>> import pandas as pd
    >>> get_dataframe_package(pd.Series([1.0])) is pd
    True
    """
    return sys.modules[type(df).__module__.split(".")[0]]
