"""Comparisons that work for pandas and cudf results alike (cudf values are moved to
pandas first)."""

from __future__ import annotations

import pickle
from typing import Any

import pandas as pd


def to_pandas(x: Any) -> Any:
    """``x`` as a pandas object (cudf frames, series and indexes have ``to_pandas``)."""
    return x.to_pandas() if hasattr(x, "to_pandas") else x


def assert_frame_equal(a: Any, b: Any, **kwargs: Any) -> None:
    pd.testing.assert_frame_equal(to_pandas(a), to_pandas(b), **kwargs)


def assert_series_equal(a: Any, b: Any, **kwargs: Any) -> None:
    pd.testing.assert_series_equal(to_pandas(a), to_pandas(b), **kwargs)


def chunks_of(xd: Any, whole: pd.DataFrame, sizes: list[int]) -> list[Any]:
    """``whole`` cut into chunks of ``sizes`` rows, as frames of package ``xd``."""
    out, at = [], 0
    for size in sizes:
        part = whole.iloc[at : at + size]
        out.append(part if xd is pd else xd.from_pandas(part))
        at += size
    return out


def run(chunks: list[Any], build: Any, example: Any = None) -> tuple[Any, list[Any]]:
    """``build`` applied to a millstream frame fed ``chunks``: the collection it returned
    and every element its stream emitted. ``example``: the frame's example (default: the
    first chunk's, empty)."""
    from millstream.dataframe import DataFrame

    sdf = DataFrame(example=chunks[0].iloc[:0] if example is None else example)
    out = build(sdf)
    emitted = out.stream.sink_to_list()
    for chunk in chunks:
        sdf.emit(chunk)
    return out, emitted


def streamz_outputs(chunks: list[Any], build: Any, example: Any = None) -> list[Any]:
    """What the same ``build`` emits on Streamz 0.6.6's frames fed ``chunks`` (the
    reference for results where Streamz is right); ``example`` as for :func:`run`."""
    import streamz.dataframe

    sdf = streamz.dataframe.DataFrame(example=chunks[0].iloc[:0] if example is None else example)
    emitted = build(sdf).stream.sink_to_list()
    for chunk in chunks:
        sdf.emit(chunk)
    return emitted


def resumed_outputs(
    chunks: list[Any], build: Any, cut: int, same_snapshot: bool = True
) -> list[Any]:
    """What a frame pipeline emits for ``chunks[cut:]`` after its stateful node was
    snapshotted (pickled) having seen ``chunks[:cut]`` and restored into a fresh build:
    callers compare it with the uninterrupted run's outputs from ``cut`` on. With
    ``same_snapshot`` also checks that the restored node snapshots as it was saved (not
    for states holding NaN, which is unequal to itself)."""
    from millstream.dataframe import DataFrame

    sdf = DataFrame(example=chunks[0].iloc[:0])
    first = build(sdf)
    for chunk in chunks[:cut]:
        sdf.emit(chunk)
    saved = pickle.loads(pickle.dumps(first.stream.snapshot()))
    fresh = DataFrame(example=chunks[0].iloc[:0])
    second = build(fresh)
    second.stream.restore(saved)
    if same_snapshot:
        assert second.stream.snapshot() == saved
    out = second.stream.sink_to_list()
    for chunk in chunks[cut:]:
        fresh.emit(chunk)
    return out
