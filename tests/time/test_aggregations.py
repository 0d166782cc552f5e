"""Aggregations: the protocol, each built-in, names, copies and bad arguments."""

from __future__ import annotations

import copy
import pickle

import pytest

from millstream.time.aggregations import (
    AGGREGATIONS,
    Aggregation,
    Collect,
    Count,
    Fold,
    Max,
    Mean,
    Min,
    Reduce,
    Sum,
    as_aggregation,
)


def run(agg, values):
    acc = agg.create()
    for v in values:
        acc = agg.add(acc, v)
    return acc


@pytest.mark.parametrize(
    "agg, values, expected",
    [
        (Sum(), [1, 2, 3.5], 6.5),
        (Sum(), [], 0),
        (Count(), ["a", None, 3], 3),
        (Count(), [], 0),
        (Min(), [3, 1, 2], 1),
        (Min(), [], None),
        (Max(), [3, 1, 2], 3),
        (Max(), [], None),
        (Mean(), [1, 2, 3, 6], 3.0),
        (Mean(), [], None),
        (Collect(), [3, 1, 3], [3, 1, 3]),
        (Reduce(lambda a, b: a * 10 + b), [1, 2, 3], 123),
        (Reduce(max), [], None),
        (Fold("", lambda acc, v: acc + str(v)), [1, 2], "12"),
    ],
)
def test_results(agg, values, expected):
    assert agg.result(run(agg, values)) == expected


@pytest.mark.parametrize(
    "agg, left, right",
    [
        (Sum(), [1, 2], [3]),
        (Count(), [1, 2], [3]),
        (Min(), [5, 2], [3]),
        (Min(), [], [3]),
        (Min(), [3], []),
        (Max(), [5, 2], [9]),
        (Max(), [], [1]),
        (Max(), [1], []),
        (Mean(), [1, 2], [6]),
        (Collect(), [1, 2], [3]),
        (Reduce(lambda a, b: a + b), [1, 2], [3]),
        (Reduce(lambda a, b: a + b), [], [3]),
        (Reduce(lambda a, b: a + b), [3], []),
        (Fold(0, lambda a, v: a + v, merge=lambda a, b: a + b), [1, 2], [3]),
    ],
)
def test_merge_equals_aggregating_everything(agg, left, right):
    merged = agg.merge(run(agg, left), run(agg, right))
    assert agg.result(merged) == agg.result(run(agg, left + right))


def test_min_max_keep_the_first_of_equal_values():
    low = Min().result(run(Min(), [1.0, 1]))
    high = Max().result(run(Max(), [2, 2.0]))
    assert (low, type(low)) == (1.0, float)
    assert (high, type(high)) == (2, int)


def test_collect_result_is_a_copy():
    c = Collect()
    acc = run(c, [1])
    out = c.result(acc)
    c.add(acc, 2)
    assert out == [1] and c.result(acc) == [1, 2]


def test_fold_gives_each_window_its_own_start():
    f = Fold([], lambda acc, v: (acc.append(v), acc)[1])
    a, b = f.create(), f.create()
    f.add(a, 1)
    assert a == [1] and b == [] and f.start == []


def test_empty_marker_survives_copies_and_pickle():
    acc = Min().create()
    assert copy.copy(acc) is acc and copy.deepcopy(acc) is acc
    assert pickle.loads(pickle.dumps(acc)) is acc
    assert Min().add(copy.deepcopy([acc])[0], 4) == 4


def test_mergeable_flags():
    assert all(cls().mergeable for cls in AGGREGATIONS.values())
    assert Reduce(min).mergeable
    assert not Fold(0, lambda a, v: a).mergeable
    assert Fold(0, lambda a, v: a, merge=lambda a, b: a).mergeable
    with pytest.raises(TypeError, match="merge"):
        Fold(0, lambda a, v: a).merge(1, 2)


def test_names():
    assert {name: type(as_aggregation(name)) for name in AGGREGATIONS} == {
        "sum": Sum,
        "count": Count,
        "min": Min,
        "max": Max,
        "mean": Mean,
        "collect": Collect,
    }
    r = Reduce(min)
    assert as_aggregation(r) is r


def test_duck_typed_aggregation_accepted():
    class Last:
        def create(self):
            return None

        def add(self, acc, v):
            return v

        def result(self, acc):
            return acc

    last = Last()
    assert as_aggregation(last) is last


def test_user_subclass():
    class Product(Aggregation):
        def create(self):
            return 1

        def add(self, acc, v):
            return acc * v

        def merge(self, a, b):
            return a * b

    p = Product()
    assert p.result(run(p, [2, 3, 4])) == 24
    assert repr(p) == "Product()"


@pytest.mark.parametrize(
    "agg, error, words",
    [
        ("median", ValueError, ["window", "agg", "median", "'sum'"]),
        (sum, TypeError, ["window", "agg", "Reduce"]),
        (42, TypeError, ["window", "agg", "42"]),
        (Sum, TypeError, ["window", "agg", "Sum(...)"]),
    ],
)
def test_bad_aggregations(agg, error, words):
    with pytest.raises(error) as info:
        as_aggregation(agg)
    for word in words:
        assert word in str(info.value)


def test_bad_functions():
    with pytest.raises(TypeError, match="Reduce: func must be callable"):
        Reduce(3)
    with pytest.raises(TypeError, match="Fold: func must be callable"):
        Fold(0, None)
    with pytest.raises(TypeError, match="Fold: merge must be callable"):
        Fold(0, max, merge="x")


def test_reprs():
    assert repr(Sum()) == "Sum()"
    assert repr(Reduce(max)) == "Reduce(max)"
    assert repr(Fold(0, max)) == "Fold(0, max)"
    assert Sum() == Sum() and Sum() != Count()
