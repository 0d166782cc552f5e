"""sdf.expanding() and sdf.ewm(...): per chunk, pandas' result over every row so far,
keeping only the aggregation's state."""

from __future__ import annotations

import itertools
import pickle
from fractions import Fraction
from typing import Any

import numpy as np
import pandas as pd
import pytest
from frames_testing import (
    assert_frame_equal,
    assert_series_equal,
    resumed_outputs,
    run,
    streamz_outputs,
    to_pandas,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from millstream.dataframe import (
    EWM,
    DataFrame,
    DataFrames,
    EWMAggregation,
    Expanding,
    Series,
    Seriess,
    Streaming,
    ewm_alpha,
)


def make_chunks(xd: Any, sizes: list[int], seed: int = 0, nans: float = 0.2) -> list[Any]:
    rng = np.random.default_rng(seed)
    n = sum(sizes)
    x = rng.normal(loc=3.0, size=n)
    x[rng.random(n) < nans] = np.nan
    whole = pd.DataFrame({"x": x, "y": rng.integers(-5, 5, size=n)}, index=pd.RangeIndex(n))
    bounds = np.cumsum([0, *sizes])
    return [xd.DataFrame(whole.iloc[a:b]) for a, b in itertools.pairwise(bounds)]


def so_far(xd: Any, chunks: list[Any]) -> list[pd.DataFrame]:
    return [to_pandas(xd.concat(chunks[: i + 1])) for i in range(len(chunks))]


@pytest.mark.parametrize("name", ["sum", "count", "mean", "var", "std"])
@pytest.mark.parametrize("numbers", [True, False])
def test_expanding_equals_pandas_on_the_rows_so_far(xd: Any, name: str, numbers: bool) -> None:
    chunks = make_chunks(xd, [3, 1, 5, 2, 4])
    if not numbers:  # a bool column: the pandas way rather than numpy's
        chunks = [c.assign(y=c.y > 0) for c in chunks]
    out, results = run(chunks, lambda s: getattr(s.expanding(), name)())
    assert isinstance(out, Seriess)
    for got, whole in zip(results, so_far(xd, chunks), strict=True):
        want = getattr(whole.expanding(), name)().iloc[-1]
        assert_series_equal(to_pandas(got), want, check_dtype=False, check_names=False)
    out, results = run(chunks, lambda s: getattr(s.expanding().x, name)())
    assert type(out) is Streaming and out.stream_type == "updating"
    wants = [getattr(w.x.expanding(), name)().iloc[-1] for w in so_far(xd, chunks)]
    assert pytest.approx(wants) == [float(r) for r in results]


def test_size_and_value_counts(xd: Any) -> None:
    chunks = make_chunks(xd, [3, 1, 5], nans=0)
    _out, sizes = run(chunks, lambda s: s.x.expanding().size)
    assert sizes == [3, 4, 9]
    chunks = [xd.DataFrame({"k": ["a", "b", "a"]}), xd.DataFrame({"k": ["c", "a"]}, index=[3, 4])]
    _out, counts = run(chunks, lambda s: s.k.expanding().value_counts())
    assert to_pandas(counts[-1]).sort_index().to_dict() == {"a": 3, "b": 1, "c": 1}


@settings(max_examples=40, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 7), min_size=1, max_size=8).filter(lambda s: s[0] > 0),
    name=st.sampled_from(["sum", "count", "mean", "var"]),
    seed=st.integers(0, 1000),
)
def test_expanding_any_chunking(sizes: list[int], name: str, seed: int) -> None:
    import pandas as xd  # hypothesis does not take function-scoped fixtures

    chunks = make_chunks(xd, sizes, seed=seed)
    _out, results = run(chunks, lambda s: getattr(s.expanding(), name)())
    for got, whole in zip(results, so_far(xd, chunks), strict=True):
        want = getattr(whole, name)()
        assert_series_equal(got, want, check_dtype=False, rtol=1e-9, atol=1e-9)


def test_expanding_equals_streamz() -> None:
    chunks = make_chunks(pd, [3, 1, 5, 2], nans=0)
    for build in [
        lambda s: s.expanding().sum(),
        lambda s: s.expanding().mean(),
        lambda s: s.expanding().var(),  # Streamz's Series var divides 0 by 0 at build time
        lambda s: s.expanding().count(),
        lambda s: s.expanding().x.sum(),
    ]:
        _out, ours = run(chunks, build)
        for a, b in zip(ours, streamz_outputs(chunks, build), strict=True):
            np.testing.assert_allclose(np.asarray(a, float), np.asarray(b, float), rtol=1e-12)


def test_expanding_keeps_only_the_state_and_refuses_whole_history(xd: Any) -> None:
    sdf = DataFrame(example=xd.DataFrame({"x": [0.0]}).iloc[:0])
    expanding = sdf.expanding()
    assert isinstance(expanding, Expanding) and isinstance(expanding.x, Expanding)
    node = expanding.mean().stream
    for i in range(100):
        sdf.emit(xd.DataFrame({"x": [float(i)] * 5}))
    counts, means, squares = node.state  # ExpandingMoments: per column only
    assert counts.tolist() == [500] and means.shape == squares.shape == (1,)
    with pytest.raises(NotImplementedError, match="every row ever seen"):
        expanding.full()
    with pytest.raises(NotImplementedError, match="every row ever seen"):
        expanding.apply(len)
    with pytest.raises(NotImplementedError, match="groupby"):
        expanding.groupby("x")
    with pytest.raises(AttributeError, match="'nope'"):
        expanding.nope


@pytest.mark.parametrize("kind", ["expanding_mean", "ewm_var"])
def test_snapshot_restore_mid_stream(xd: Any, kind: str) -> None:
    chunks = make_chunks(xd, [4, 2, 5, 1, 6], seed=5)

    def build(s: Any) -> Any:
        return s.expanding().mean() if kind == "expanding_mean" else s.ewm(span=4).var()

    _out, whole = run(chunks, build)
    for a, b in zip(resumed_outputs(chunks, build, 2, same_snapshot=False), whole[2:], strict=True):
        if kind == "ewm_var":
            assert_frame_equal(a, b)
        else:
            assert_series_equal(a, b)


# -- ewm --

EWM_PARAMS = [{"alpha": 0.1}, {"alpha": 1.0}, {"com": 0.5}, {"span": 3}, {"halflife": 2.5}]


@pytest.mark.parametrize("params", EWM_PARAMS, ids=str)
@pytest.mark.parametrize("name", ["mean", "sum", "var", "std"])
def test_ewm_equals_pandas_last_row_per_chunk(xd: Any, params: dict, name: str) -> None:
    chunks = make_chunks(xd, [3, 1, 5, 2, 4, 1, 1])
    out, results = run(chunks, lambda s: getattr(s.ewm(**params), name)())
    assert isinstance(out, DataFrames)
    for got, whole in zip(results, so_far(xd, chunks), strict=True):
        want = getattr(whole.ewm(**params), name)().iloc[-1:]
        assert_frame_equal(got, want, check_dtype=False, rtol=1e-9, atol=1e-12)
    out, results = run(chunks, lambda s: getattr(s.x.ewm(**params), name)())
    assert isinstance(out, Seriess)
    for got, whole in zip(results, so_far(xd, chunks), strict=True):
        want = getattr(whole.x.ewm(**params), name)().iloc[-1:]
        assert_series_equal(got, want, check_dtype=False, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("bias", [False, True])
def test_ewm_var_bias(xd: Any, bias: bool) -> None:
    chunks = make_chunks(xd, [2, 3, 1, 4], seed=9)
    _out, results = run(chunks, lambda s: s.ewm(alpha=0.3).std(bias=bias))
    for got, whole in zip(results, so_far(xd, chunks), strict=True):
        want = whole.ewm(alpha=0.3).std(bias=bias).iloc[-1:]
        assert_frame_equal(got, want, check_dtype=False, rtol=1e-9)


def exact_ewm_var(values: list[float], alpha: float) -> float:
    """pandas' ``ewm(alpha=alpha).var()`` of the last value, in exact fractions."""
    decay = 1 - Fraction(alpha)
    last = len(values) - 1
    points = [(decay ** (last - i), Fraction(v)) for i, v in enumerate(values) if v == v]
    if len(points) < 2:
        return float("nan")
    total = sum(w for w, _ in points)
    if not total:  # alpha=1 and the last value missing: every weight 0
        return float("nan")
    mean = sum(w * v for w, v in points) / total
    biased = sum(w * (v - mean) ** 2 for w, v in points) / total
    cross = total**2 - sum(w * w for w, _ in points)
    return float(biased * total**2 / cross) if cross > 0 else float("nan")


@settings(max_examples=50, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 9), min_size=1, max_size=8).filter(lambda s: s[0] > 0),
    alpha=st.sampled_from([0.05, 0.3, 0.5, 0.99, 1.0]),
    name=st.sampled_from(["mean", "var"]),
    seed=st.integers(0, 1000),
)
def test_ewm_any_chunking(sizes: list[int], alpha: float, name: str, seed: int) -> None:
    """mean: as pandas; var: as exact fractions (with alpha near 1 and gaps, a value's
    deviation from a mean it dominates cancels, and pandas' own recursion is then off
    by up to ~1e-6 relative; this fold stays within ~1e-14)."""
    import pandas as xd  # hypothesis does not take function-scoped fixtures

    chunks = make_chunks(xd, sizes, seed=seed, nans=0.3)
    _out, results = run(chunks, lambda s: getattr(s.ewm(alpha=alpha), name)())
    for got, whole, chunk in zip(results, so_far(xd, chunks), chunks, strict=True):
        if name == "mean":
            want = whole.ewm(alpha=alpha).mean().iloc[-1:]
        else:
            exact = [exact_ewm_var(whole[c].tolist(), alpha) for c in whole.columns]
            want = pd.DataFrame([exact], index=whole.index[-1:], columns=whole.columns)
        if not len(chunk):  # an empty chunk repeats the last result
            want = want.set_axis(got.index)
        assert_frame_equal(got, want, check_dtype=False, rtol=1e-9, atol=1e-12)


def test_ewm_mean_equals_streamz_values() -> None:
    """Streamz's ``EWMean`` gives the same values without missing data (its result keeps
    the first row's label; ours is labelled with the last row, like pandas')."""
    chunks = make_chunks(pd, [3, 1, 5, 2], nans=0)
    _out, ours = run(chunks, lambda s: s.ewm(com=2).mean())
    theirs = streamz_outputs(chunks, lambda s: s.ewm(com=2).mean())
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(a.to_numpy(float), b.to_numpy(float), rtol=1e-12)


def test_ewm_state_is_per_column(xd: Any) -> None:
    sdf = DataFrame(example=xd.DataFrame({"x": [0.0], "y": [0.0]}).iloc[:0])
    node = sdf.ewm(alpha=0.1).var().stream
    for i in range(200):
        sdf.emit(xd.DataFrame({"x": [float(i)] * 10, "y": [1.0] * 10}))
    assert all(np.shape(a) == (2,) for a in node.state[:5])
    assert pickle.loads(pickle.dumps(EWMAggregation(0.1, "var"))).alpha == 0.1


@pytest.mark.parametrize(
    "params",
    [
        {"com": -1},
        {"span": 0.5},
        {"halflife": 0},
        {"alpha": 0},
        {"alpha": 1.5},
        {},
        {"com": 1, "span": 2},
    ],
    ids=str,
)
def test_ewm_checks_its_parameters_as_pandas(params: dict) -> None:
    with pytest.raises(ValueError) as theirs:
        pd.Series([1.0]).ewm(**params)
    sdf = DataFrame(example=pd.DataFrame({"x": [0.0]}).iloc[:0])
    with pytest.raises(ValueError) as ours:
        sdf.ewm(**params)
    assert str(ours.value) == str(theirs.value)


def test_ewm_errors_and_types(xd: Any) -> None:
    sdf = DataFrame(example=xd.DataFrame({"x": [0.0]}).iloc[:0])
    ewm = sdf.ewm(alpha=0.5)
    assert isinstance(ewm, EWM) and isinstance(ewm.x, EWM) and ewm.x.smoothing == 0.5
    assert ewm_alpha(span=1) == 1.0
    for name in ["count", "value_counts", "full"]:
        with pytest.raises(NotImplementedError, match=rf"EWM\.{name}"):
            getattr(ewm, name)()
    with pytest.raises(NotImplementedError, match=r"EWM\.size"):
        ewm.size
    with pytest.raises(NotImplementedError, match=r"EWM\.apply"):
        ewm.apply(len)
    with pytest.raises(ValueError, match="statistic"):
        EWMAggregation(0.5, "median")
    with pytest.raises(NotImplementedError, match="times"):
        sdf.ewm(halflife="2s")
    with pytest.raises(TypeError):
        EWMAggregation(0.5).restore([1.0])


def test_ewm_first_chunk_empty(xd: Any) -> None:
    sdf = DataFrame(example=xd.DataFrame({"x": [0.0]}).iloc[:0])
    out = sdf.x.ewm(alpha=0.5).mean()
    assert isinstance(out, Seriess) and not isinstance(out, Series)
    results = out.stream.sink_to_list()
    sdf.emit(xd.DataFrame({"x": []}, dtype=float))
    sdf.emit(xd.DataFrame({"x": [2.0, np.nan]}))
    assert len(results[0]) == 0
    assert to_pandas(results[1]).tolist() == [2.0] and list(results[1].index) == [1]
