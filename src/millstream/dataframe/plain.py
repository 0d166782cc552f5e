"""pandas values as plain data, for the snapshots of frame nodes (see
:mod:`millstream.core.state`): a snapshot holds lists, dicts and numbers, never a pandas
object, so it compares with ``==`` and pickles anywhere.

>>> import pandas as pd
>>> data = to_plain(pd.Series([1, 2], index=['a', 'b'], name='x'))
>>> data
{'series': {'name': 'x', 'index': ['a', 'b'], 'values': [1, 2], 'dtype': 'int64'}}
>>> from_plain(data).equals(pd.Series([1, 2], index=['a', 'b'], name='x'))
True
>>> from_plain((1, None, 2.5))
(1, None, 2.5)
"""

from __future__ import annotations

from typing import Any

import pandas as pd

__all__ = ["from_plain", "to_plain"]

_SCALARS = (int, float, complex, str, bytes, bool, type(None))


def to_plain(value: Any) -> Any:
    """``value`` (a number, ``None``, a pandas Series or DataFrame, or a tuple of these) as
    plain data that :func:`from_plain` turns back into an equal value."""
    if isinstance(value, _SCALARS):
        return value
    if isinstance(value, tuple):
        return tuple(to_plain(v) for v in value)
    if isinstance(value, pd.DataFrame):
        return {
            "frame": {
                "columns": list(value.columns),
                "index": list(value.index),
                "rows": value.to_numpy(dtype=object).tolist(),
                "dtypes": [str(t) for t in value.dtypes],
            }
        }
    if isinstance(value, pd.Series):
        return {
            "series": {
                "name": value.name,
                "index": list(value.index),
                "values": value.tolist(),
                "dtype": str(value.dtype),
            }
        }
    if hasattr(value, "item"):  # a numpy scalar
        return value.item()
    raise TypeError(f"cannot keep a {type(value).__name__} in a frame node's state")


def from_plain(data: Any) -> Any:
    """The value :func:`to_plain` made ``data`` from; raises ``TypeError``/``ValueError``
    on anything else."""
    if isinstance(data, (str, bytes)):
        raise TypeError(f"not a frame node's state: {data!r:.80}")
    if isinstance(data, _SCALARS):
        return data
    if isinstance(data, tuple):
        return tuple(from_plain(v) for v in data)
    if isinstance(data, dict) and len(data) == 1:
        if "frame" in data:
            f = data["frame"]
            frame = pd.DataFrame(list(f["rows"]), index=list(f["index"]), columns=f["columns"])
            if len(f["dtypes"]) != len(frame.columns):
                raise ValueError("one dtype per column expected")
            return frame.astype(dict(zip(frame.columns, f["dtypes"], strict=True)))
        if "series" in data:
            s = data["series"]
            return pd.Series(list(s["values"]), index=list(s["index"]), name=s["name"]).astype(
                s["dtype"]
            )
    raise TypeError(f"not a frame node's state: {data!r:.80}")
