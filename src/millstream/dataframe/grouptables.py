"""Per-group totals of chunks and their running tables, for groupby aggregations.

:func:`group_totals` groups a chunk once: for pandas with one key and int64/float64
values by factorizing the keys and ``numpy.bincount``, otherwise with the frame's own
``groupby`` (pandas or cudf). :func:`add_to_known_groups` adds a chunk's totals straight
into running tables when all its groups are known (binary search on the sorted keys);
:func:`combine_tables` aligns and adds tables in the general case.

>>> import pandas as pd
>>> keys, values = pd.Series([1, 2, 1]), pd.Series([1.0, 2.0, 3.0], name='x')
>>> table = group_totals(values, keys, ('sum',))['sum']
>>> table.to_dict()
{1: 4.0, 2: 2.0}
>>> add_to_known_groups((table,), ('sum',), values, keys, 1)[0].to_dict()
{1: 8.0, 2: 4.0}
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = [
    "add_to_known_groups",
    "aligned_table",
    "combine_tables",
    "group_totals",
    "ints_back",
    "is_pandas",
]

_FAST_DTYPES = ("float64", "int64")


def is_pandas(x: Any) -> bool:
    return type(x).__module__.startswith("pandas")


def group_totals(values: Any, keys: Any, stats: tuple[str, ...]) -> dict[str, Any]:
    """Per-group totals of ``values`` (a Series or DataFrame) grouped by ``keys`` (a
    Series, array, Index or a list of Series): ``'sum'``, ``'count'`` (non-missing
    values), ``'size'`` (rows), ``'mean'`` and ``'m2'`` (sum of squared deviations from
    the group's mean; 0 for a group without values), each a Series or DataFrame indexed
    by the sorted group keys, as ``values.groupby(keys)`` gives them.

    >>> import pandas as pd
    >>> t = group_totals(pd.Series([1.0, None, 3.0], name='x'), pd.Series([2, 1, 2]),
    ...                  ('sum', 'count', 'size'))
    >>> t['sum'].to_dict(), t['count'].to_dict(), t['size'].to_dict()
    ({1: 0.0, 2: 4.0}, {1: 0, 2: 2}, {1: 1, 2: 2})
    """
    if _fast_path(values, keys):
        return _fast_totals(values, keys, stats)
    grouped = values.groupby(keys)
    out: dict[str, Any] = {}
    for stat in stats:
        if stat == "sum":
            out[stat] = grouped.sum()
        elif stat == "count":
            out[stat] = grouped.count()
        elif stat == "size":
            out[stat] = grouped.size()
        elif stat == "mean":
            out[stat] = grouped.mean().fillna(0.0)
        elif stat == "m2":
            out[stat] = (grouped.var(ddof=0) * grouped.count()).fillna(0.0)
        else:
            raise ValueError(f"group_totals: unknown total {stat!r}")
    return out


def _fast_path(values: Any, keys: Any) -> bool:
    if not is_pandas(values) or isinstance(keys, list):
        return False
    if not (hasattr(keys, "factorize") or isinstance(keys, np.ndarray)):
        return False
    if len(keys) != len(values):
        return False
    if hasattr(keys, "index") and not keys.index.equals(values.index):
        return False  # pandas aligns a Series grouper on the index
    if hasattr(values, "columns"):
        return all(str(t) in _FAST_DTYPES for t in values.dtypes)
    return str(values.dtype) in _FAST_DTYPES


def _fast_totals(values: Any, keys: Any, stats: tuple[str, ...]) -> dict[str, Any]:
    """:func:`group_totals` for pandas, one numeric key: factorize, then bincount."""
    import pandas as pd  # this path runs only on pandas chunks

    if isinstance(keys, np.ndarray):
        keys = pd.Index(keys)
    codes, uniques = keys.factorize(sort=True)
    uniques = uniques.rename(getattr(keys, "name", None))
    size = len(uniques)
    valid = codes >= 0
    all_valid = bool(valid.all())
    if not all_valid:
        codes = codes[valid]
    frame = hasattr(values, "columns")
    columns = list(values.columns) if frame else [values.name]
    arrays = [values[c].to_numpy() for c in columns] if frame else [values.to_numpy()]
    if not all_valid:
        arrays = [a[valid] for a in arrays]
    sizes = np.bincount(codes, minlength=size)
    per_stat = {
        stat: [_group_stat(stat, a, codes, size, sizes) for a in arrays]
        for stat in stats
        if stat != "size"
    }
    out: dict[str, Any] = {}
    for stat in stats:
        if stat == "size":
            out[stat] = pd.Series(sizes, index=uniques, name=None if frame else values.name)
        elif frame:
            out[stat] = pd.DataFrame(dict(zip(columns, per_stat[stat], strict=True)), index=uniques)
        else:
            out[stat] = pd.Series(per_stat[stat][0], index=uniques, name=values.name)
    return out


def add_to_known_groups(
    state: tuple[Any, ...], stats: tuple[str, ...], values: Any, keys: Any, sign: int
) -> tuple[Any, ...] | None:
    """The state tables plus (``sign=1``) or minus (``-1``) the totals of ``values`` by
    ``keys``, with numpy, when every key is a group of the state already (or missing);
    None when this shortcut does not apply (then :func:`group_totals` and alignment).
    For pandas tables, one numeric key and int64/float64 values."""
    if not state or not len(state[0]) or not _fast_path(values, keys):
        return None
    if "mean" in stats or "m2" in stats:
        return None  # not sums: merged by GroupbyVar
    if values.ndim == 2 and len(set(values.dtypes)) > 1:
        return None  # int and float columns: one array per table would mix them
    import pandas as pd  # pandas tables only here

    index = state[0].index
    if index.nlevels != 1:
        return None
    positions = _positions(index, keys)
    missing = positions < 0
    frame = values.ndim == 2
    arrays = [values[c].to_numpy() for c in values.columns] if frame else [values.to_numpy()]
    if missing.any():
        key_values = keys.to_numpy() if hasattr(keys, "to_numpy") else np.asarray(keys)
        if not pd.isna(key_values[missing]).all():
            return None  # a new group
        present = ~missing
        positions = positions[present]
        arrays = [a[present] for a in arrays]
    groups = len(index)
    sizes = np.bincount(positions, minlength=groups)
    out = []
    for stat, table in zip(stats, state, strict=True):
        if stat == "size":
            delta: Any = sizes
        else:
            delta = (
                np.column_stack([_group_stat(stat, a, positions, groups, sizes) for a in arrays])
                if frame
                else _group_stat(stat, arrays[0], positions, groups, sizes)
            )
        current = table.to_numpy()
        updated = current + delta if sign > 0 else current - delta
        if updated.dtype != current.dtype and current.dtype.kind == "i":
            updated = updated.astype(current.dtype)
        if table.ndim == 2:
            out.append(pd.DataFrame(updated, index=index, columns=table.columns))
        else:
            out.append(pd.Series(updated, index=index, name=table.name))
    return tuple(out)


def _positions(index: Any, keys: Any) -> Any:
    """Where each key is in ``index`` (-1: not there); numpy's binary search for a
    sorted numeric index."""
    key_values = keys.to_numpy() if hasattr(keys, "to_numpy") else np.asarray(keys)
    dtype = index.dtype
    if (
        isinstance(dtype, np.dtype)
        and dtype.kind in "iuf"
        and key_values.dtype == dtype
        and index.is_monotonic_increasing
    ):
        values = index.to_numpy()
        positions = np.searchsorted(values, key_values)
        found = positions < len(values)
        found[found] = values[positions[found]] == key_values[found]
        return np.where(found, positions, -1)
    return index.get_indexer(key_values)


def _group_stat(stat: str, array: Any, positions: Any, groups: int, sizes: Any) -> Any:
    """Per-group ``stat`` of ``array``, rows at group ``positions``."""
    counts = sizes
    missing = None
    if array.dtype.kind == "f":
        missing = np.isnan(array)
        if missing.any():
            array = np.where(missing, 0.0, array)
            counts = np.bincount(positions[~missing], minlength=groups)
        else:
            missing = None
    if stat in ("mean", "m2"):
        totals = np.bincount(positions, weights=array.astype("float64"), minlength=groups)
        with np.errstate(divide="ignore", invalid="ignore"):
            means = np.where(counts > 0, totals / counts, 0.0)
        if stat == "mean":
            return means
        deviations = array - means[positions]
        if missing is not None:
            deviations[missing] = 0.0
        return np.bincount(positions, weights=deviations * deviations, minlength=groups)
    if stat == "count":
        return counts
    if stat == "sum":
        if array.dtype.kind == "i":
            total = np.zeros(groups, dtype="int64")
            np.add.at(total, positions, array)
            return total
        return np.bincount(positions, weights=array, minlength=groups).astype(array.dtype)
    raise ValueError(f"group_totals: unknown total {stat!r}")


def combine_tables(table: Any, other: Any, subtract: bool = False) -> Any:
    """``table`` plus (minus) ``other``, aligned on the group keys (missing ones are 0)."""
    if not len(table):
        return -other if subtract else other
    result = table.sub(other, fill_value=0) if subtract else table.add(other, fill_value=0)
    result = ints_back(result, table)
    if result.index.names != table.index.names:
        result.index.names = table.index.names
    return result


def aligned_table(table: Any, index: Any) -> Any:
    """``table`` on ``index`` (groups it lacks are 0)."""
    if table.index.equals(index):
        return table
    return table.reindex(index, fill_value=0)


def ints_back(result: Any, like: Any) -> Any:
    """Alignment turns int tables into floats; turn them back."""
    if hasattr(result, "columns"):
        ints = {
            c: "int64"
            for c in result.columns
            if c in like.columns
            and str(like[c].dtype) == "int64"
            and str(result[c].dtype) != "int64"
        }
        return result.astype(ints) if ints else result
    if str(like.dtype) == "int64" and str(result.dtype) != "int64":
        return result.astype("int64")
    return result
