"""Building frames out of other streaming frames, chunk by chunk, as Streamz does:
``DataFrame({'a': sdf.x, 'b': sdf.y * 2})`` (columns zipped into one frame),
``sdf[['c', 'd']] = sdf[['x', 'y']]`` (several columns set at once) and
``sdf.set_index(sdf.y + 1)`` (an index from a streaming Series). The callables here are
module-level classes, so they pickle for Dask workers, and use the chunks' own package
(pandas or cudf).

>>> import pandas as pd
>>> from millstream.dataframe import DataFrame
>>> sdf = DataFrame(example=pd.DataFrame({'x': [0], 'y': [0]}))
>>> both = DataFrame({'a': sdf.x, 'b': sdf.y * 2})
>>> L = both.stream.sink_to_list()
>>> sdf.emit(pd.DataFrame({'x': [1, 2], 'y': [3, 4]}))
>>> L[0]
   a  b
0  1  6
1  2  8
"""

from __future__ import annotations

from typing import Any

from ..collection import Streaming
from .utils import get_dataframe_package

__all__ = ["AssignColumns", "ColumnsFrame", "SetIndex", "columns_frame"]


class ColumnsFrame:
    """``package.concat(columns, axis=1)`` with the columns renamed to ``names``: one
    frame from a tuple of Series chunks (and scalars, broadcast by the package).

    >>> import pandas as pd
    >>> ColumnsFrame(['a', 'b'])((pd.Series([1, 2]), pd.Series([3, 4]))).to_dict('list')
    {'a': [1, 2], 'b': [3, 4]}
    """

    __slots__ = ("names",)

    def __init__(self, names: list[Any]):
        self.names = names

    def __call__(self, columns: tuple[Any, ...]) -> Any:
        chunks = [c for c in columns if hasattr(c, "index")]
        if len(chunks) == len(columns):
            result = get_dataframe_package(chunks[0]).concat(list(columns), axis=1)
            result.columns = self.names
            return result
        # scalars among the columns: the frame's constructor broadcasts them on the index
        package = get_dataframe_package(chunks[0])
        return package.DataFrame(dict(zip(self.names, columns, strict=True)), index=chunks[0].index)


def columns_frame(columns: dict[Any, Any]) -> tuple[Any, Any]:
    """``(stream, example)`` of the frame whose columns are the streaming Series (or
    constants) of ``columns``: Streamz's ``DataFrame({'a': sdf.x, ...})``. The Series
    are zipped chunk by chunk, so they must come from the same source."""
    names = list(columns)
    values = list(columns.values())
    streams = [v for v in values if isinstance(v, Streaming)]
    if not streams:
        raise TypeError("DataFrame({...}): at least one value must be a streaming Series")
    examples = tuple(v.example if isinstance(v, Streaming) else v for v in values)
    example = ColumnsFrame(names)(examples)
    inputs = [v.stream if isinstance(v, Streaming) else v for v in values]
    if len(streams) == 1 and len(values) == 1:
        stream = streams[0].stream.map(_one_tuple).map(ColumnsFrame(names))
    else:
        stream = type(streams[0].stream).zip(*inputs).map(ColumnsFrame(names))
    return stream, example


def _one_tuple(x: Any) -> tuple[Any]:
    return (x,)


class AssignColumns:
    """``frame`` with the columns ``names`` set to the columns of ``values`` in order
    (``frame[names] = values`` on a copy); ``values`` may be a scalar for every name.

    >>> import pandas as pd
    >>> df = pd.DataFrame({'x': [1, 2]})
    >>> AssignColumns(['c', 'd'])(df, df.assign(y=[5, 6])).to_dict('list')
    {'x': [1, 2], 'c': [1, 2], 'd': [5, 6]}
    """

    __slots__ = ("names",)

    def __init__(self, names: list[Any]):
        self.names = names

    def __call__(self, frame: Any, values: Any) -> Any:
        if hasattr(values, "columns"):
            new = {name: values[c] for name, c in zip(self.names, values.columns, strict=True)}
        else:
            new = dict.fromkeys(self.names, values)
        return frame.assign(**new)


class SetIndex:
    """``frame.set_index(index, **kwargs)``; ``index`` a column name or list of names,
    or a Series chunk (then zipped with the frame).

    >>> import pandas as pd
    >>> df = pd.DataFrame({'x': [1, 2], 'y': [3, 4]})
    >>> SetIndex({})(df, df.y + 1).index.tolist()
    [4, 5]
    """

    __slots__ = ("kwargs",)

    def __init__(self, kwargs: dict[str, Any]):
        self.kwargs = kwargs

    def __call__(self, frame: Any, index: Any) -> Any:
        return frame.set_index(index, **self.kwargs)
