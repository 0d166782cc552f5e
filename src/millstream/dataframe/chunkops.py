"""Per-chunk operations of streaming frames with fast paths for pandas chunks.

Each function gives exactly what the plain pandas expression in its docstring gives
(the same values, bit for bit, the same index and names), taking a shorter way for
the common case of pandas chunks backed by numpy arrays, and the plain expression
for every other case (cudf chunks, extension dtypes, mixed dtypes, unaligned keys).
With 100-row chunks pandas' own bookkeeping costs more than the arithmetic, so these
shortcuts are what makes a chunk's trip through a frame pipeline cheap.

>>> import pandas as pd
>>> df = pd.DataFrame({'x': [1.0, -2.0, 3.0], 'y': [10, 20, 30]})
>>> getitem(df, df.x > 0).y.tolist()
[10, 30]
>>> last = pd.Series([5.0], index=[9])
>>> continue_cumulative(last, pd.Series([1.0, 2.0], index=[10, 11]), 'cumsum').tolist()
[6.0, 8.0]
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "Compare",
    "carried_row",
    "chunk_sum",
    "columns_equal",
    "continue_cumulative",
    "filtered_getitem",
    "getitem",
    "take_rows",
]

#: operation -> (numpy accumulation, the value a missing float counts as): pandas' own
#: choices (``pandas.core.nanops.na_accum_func``)
_ACCUMULATE: dict[str, tuple[Any, float]] = {
    "cumsum": (np.cumsum, 0.0),
    "cumprod": (np.cumprod, 1.0),
    "cummax": (np.maximum.accumulate, -np.inf),
    "cummin": (np.minimum.accumulate, np.inf),
}
#: the same operation between the carried row and a chunk's first row
_COMBINE: dict[str, Any] = {
    "cumsum": np.add,
    "cumprod": np.multiply,
    "cummax": np.maximum,
    "cummin": np.minimum,
}


def getitem(x: Any, key: Any) -> Any:
    """``x[key]``; for a pandas DataFrame and a boolean numpy-backed Series on the same
    index (``sdf[sdf.x > 0]``), pandas' own filtering without its alignment checks.

    >>> s = pd.Series([3, 4, 5])
    >>> getitem(s, s > 3).tolist(), getitem(s, 0)
    ([4, 5], np.int64(3))
    """
    if _same_rows(x, key):
        return take_rows(x, key.to_numpy())
    return x[key]


def _same_rows(x: Any, mask: Any) -> bool:
    """A pandas DataFrame ``x`` and a boolean numpy-backed Series ``mask`` on its index."""
    return (
        type(mask) is pd.Series
        and type(x) is pd.DataFrame
        and mask.dtype == np.bool_
        and (mask.index is x.index or mask.index.equals(x.index))
    )


def take_rows(x: Any, mask: np.ndarray) -> Any:
    """``x[mask]`` for a pandas DataFrame or Series ``x`` and a boolean numpy array
    ``mask`` of its length, as pandas filters (``x.take`` of the rows kept); for a
    Series of a numpy bool or number dtype, the values taken with numpy.

    >>> take_rows(pd.Series([1.0, 2.0, 3.0], name='y'), np.array([True, False, True]))
    0    1.0
    2    3.0
    Name: y, dtype: float64
    """
    positions = mask.nonzero()[0]
    if len(positions) == len(mask):
        return x.copy(deep=False)  # what pandas does when every row is kept
    if (
        type(x) is pd.Series
        and isinstance(dtype := x.dtype, np.dtype)
        and dtype.kind in "biufc"
        and not x.attrs
        and x.flags.allows_duplicate_labels
    ):
        values = x.to_numpy()[positions]
        return pd.Series(values, index=x.index.take(positions), name=x.name, copy=False)
    return x.take(positions)


def filtered_getitem(x: Any, mask: Any, key: Any) -> Any:
    """``x[mask][key]``: the column(s) ``key`` of the rows of ``x`` where ``mask`` is true
    (``sdf[sdf.x > 0].y``). For a pandas DataFrame and a boolean numpy-backed Series on
    the same index, the column(s) are selected first and only their rows taken, not
    every column's; the result is the same. ``key`` must select columns (a label or a
    list of labels), which is what makes the two orders equal.

    >>> df = pd.DataFrame({'x': [1.0, -2.0, 3.0], 'y': [10, 20, 30]})
    >>> filtered_getitem(df, df.x > 0, 'y').tolist()
    [10, 30]
    """
    if _same_rows(x, mask):
        return take_rows(x[key], mask.to_numpy())
    return getitem(getitem(x, mask), key)


class Compare:
    """``op(a, b)`` for a comparison ``op`` (``operator.gt``...); for a pandas Series of a
    numpy int, uint or float dtype and an int or float, numpy's comparison in a Series on
    the same index, as pandas does it, without pandas' dispatch. Picklable.

    >>> import operator
    >>> Compare(operator.gt)(pd.Series([1.0, float('nan'), 3.0], name='x'), 2).tolist()
    [False, False, True]
    """

    __slots__ = ("op",)

    def __init__(self, op: Any):
        self.op = op

    def __call__(self, a: Any, b: Any) -> Any:
        if (
            type(a) is pd.Series
            and type(b) in _NUMBERS
            and isinstance(a.dtype, np.dtype)
            and a.dtype.kind in "iuf"
            and not a.attrs
        ):
            return pd.Series(self.op(a.to_numpy(), b), index=a.index, name=a.name, copy=False)
        return self.op(a, b)

    def __repr__(self) -> str:
        return f"Compare({self.op.__name__})"


_NUMBERS = (int, float, np.int64, np.float64)


def chunk_sum(x: Any) -> Any:
    """``x.sum()``; for a pandas float64 or int64 Series, pandas' own sum (missing values
    counted as 0, numpy's sum) without pandas' dispatch.

    >>> chunk_sum(pd.Series([1.5, None, 2.0]))
    np.float64(3.5)
    """
    if type(x) is pd.Series and (x.dtype == _FLOAT64 or x.dtype == _INT64):
        values = x.to_numpy()
        total = values.sum(dtype=values.dtype)
        if total != total:  # NaN: a missing value (or inf - inf), which pandas counts as 0
            total = np.where(np.isnan(values), 0.0, values).sum(dtype=values.dtype)
        return total
    return x.sum()


_FLOAT64 = np.dtype(np.float64)
_INT64 = np.dtype(np.int64)


def columns_equal(a: Any, b: Any) -> bool:
    """``list(a) == list(b)`` for two column indexes, taking a shorter way for pandas.

    >>> columns_equal(pd.Index(['x', 'y']), pd.Index(['x', 'y'])), columns_equal(
    ...     pd.Index(['x']), pd.Index(['y']))
    (True, False)
    """
    if a is b:
        return True
    if type(a) is pd.Index and type(b) is pd.Index:
        return a.tolist() == b.tolist()  # (list() boxes each label: slower)
    return list(a) == list(b)


def carried_row(state: Any, result: Any) -> Any:
    """The row a cumulative operation carries to the next chunk: ``result``'s last row,
    where a missing value (a row whose value was missing: pandas skips it and goes on
    from the value before) is replaced by the last value before it, in ``result`` or in
    ``state`` (the row carried so far).

    >>> prev = pd.Series([5.0], index=[0])
    >>> carried_row(prev, pd.Series([6.0, float('nan')], index=[1, 2])).tolist()
    [6.0]
    >>> carried_row(prev, pd.Series([float('nan')], index=[1])).tolist()
    [5.0]
    """
    last = result.iloc[-1:]
    if not _has_missing(last):
        return last
    concat = sys.modules[type(result).__module__.partition(".")[0]].concat
    filled = (result if state is None else concat([state, result])).ffill().iloc[-1:]
    filled.index = last.index
    return filled


def _has_missing(row: Any) -> bool:
    if type(row) is pd.Series:
        if row.dtype.kind in "iub":
            return False
        if row.dtype.kind == "f":
            return bool(np.isnan(row.to_numpy()).any())
    elif type(row) is pd.DataFrame and all(t.kind in "iubf" for t in row.dtypes):
        values = row.to_numpy()
        return values.dtype.kind == "f" and bool(np.isnan(values).any())
    return bool(row.isna().to_numpy().any())


def continue_cumulative(last: Any, new: Any, operation: str) -> Any:
    """The rows of ``new`` in ``operation`` (``cumsum``, ``cumprod``, ``cummin`` or
    ``cummax``) over ``last`` (the carried row: a one-row frame) followed by ``new``:
    ``getattr(concat([last, new]), operation)().iloc[1:]``.

    For pandas Series and DataFrames of one numpy float or 64-bit int dtype (the same in
    ``last`` and ``new``), the carried row is folded into ``new``'s first row and the
    chunk accumulated with numpy as pandas does it (missing values skipped), instead of
    concatenating: the same result, bit for bit, several times faster.

    >>> last = pd.DataFrame({'a': [4.0], 'b': [float('nan')]}, index=[1])
    >>> new = pd.DataFrame({'a': [1.0, None], 'b': [2.0, 3.0]}, index=[2, 3])
    >>> continue_cumulative(last, new, 'cummax')
         a    b
    2  4.0  2.0
    3  NaN  3.0
    """
    fast = _numpy_cumulative(last, new, operation)
    if fast is not None:
        return fast
    concat = sys.modules[type(new).__module__.partition(".")[0]].concat
    return getattr(concat([last, new]), operation)().iloc[1:]


def _numpy_cumulative(last: Any, new: Any, operation: str) -> Any:
    """:func:`continue_cumulative` with numpy, or None where that is not exact."""
    kind = type(new)
    if kind is not type(last) or not len(new) or len(last) != 1 or new.attrs or last.attrs:
        return None
    if kind is pd.Series:
        dtype = new.dtype
        if last.dtype != dtype or not (last.name is new.name or last.name == new.name):
            return None
    elif kind is pd.DataFrame:
        dtypes = set(new.dtypes)
        columns = new.columns
        if (
            len(dtypes) != 1
            or set(last.dtypes) != dtypes
            or not last.columns.equals(columns)
            or last.columns.names != columns.names
        ):
            return None
        (dtype,) = dtypes
    else:
        return None
    if (
        not isinstance(dtype, np.dtype)
        or not (dtype.kind == "f" or (dtype.kind in "iu" and dtype.itemsize == 8))
        or last.index.dtype != new.index.dtype
        or last.index.names != new.index.names
    ):
        return None
    accumulate, missing_as = _ACCUMULATE[operation]
    values = new.to_numpy(copy=True)
    carried = last.to_numpy()[0]
    if dtype.kind == "f":
        missing = np.isnan(values)
        values[missing] = missing_as
        carried = np.where(np.isnan(carried), missing_as, carried)
    else:
        missing = None
    values[0] = _COMBINE[operation](carried, values[0])
    result = accumulate(values, axis=0)
    if missing is not None:
        result[missing] = np.nan
    if kind is pd.Series:
        return pd.Series(result, index=new.index, name=new.name, copy=False)
    return pd.DataFrame(result, index=new.index, columns=new.columns, copy=False)
