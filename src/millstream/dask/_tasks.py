"""What the Dask nodes run on the workers, and the ``Batch`` marker they pass around.

A ``DaskStream`` element is one of:

* a distributed ``Future`` holding **one** element (what ``scatter`` and ``map`` emit, as
  in Streamz);
* a :class:`Batch`: a future whose value is a **sequence of elements**, in order, that
  are logically separate stream elements (what ``flatten`` and ``filter`` emit);
* a local value (a ``DaskStream()`` used as a source, or a tuple of futures made on
  the client by ``zip`` or ``partition``), which a task receives as an argument.

Every function here is a plain module-level function, so that Dask ships it to the
workers by reference. Functions that run user code over the elements of a batch name
the node, the function and the position of the failing element in a note on the error
(the note travels back with the exception), so ``gather`` raises it already annotated.

Steps of stateful nodes return ``(new_state, outputs, held_units, error)``, read by
:func:`state_of`, :func:`outputs_of` and :func:`held_of`; the core nodes run on the
workers through :func:`millstream.dask._detached.run_node`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from .._utils import add_note, annotate_error, no_default, short_repr

__all__ = [
    "Batch",
    "apply_loaded",
    "concat_units",
    "count_partial",
    "filter_items",
    "flatten_items",
    "fold",
    "held_of",
    "items_of",
    "key_of",
    "keys_of_items",
    "length",
    "load",
    "map_async_items",
    "map_async_one",
    "map_items",
    "merge_counts",
    "nth",
    "outputs_of",
    "pluck_items",
    "pluck_one",
    "star_apply_loaded",
    "starmap_items",
    "state_of",
    "unique_window",
]


class Batch:
    """A Dask future whose value is a sequence of stream elements, in order.

    ``flatten``, ``filter`` and the stateful nodes of a :class:`~millstream.dask.DaskStream`
    emit batches: the elements stay on the cluster, and each later node runs one task
    per batch. ``gather`` emits the elements one by one, each with the batch's metadata.

    ``source`` names the node that made the batch out of an element whose value
    may not be iterable (``flatten``): an error while iterating it names that node.
    """

    __slots__ = ("future", "source")

    def __init__(self, future: Any, source: str | None = None):
        self.future = future
        self.source = source

    def __repr__(self) -> str:
        key = getattr(self.future, "key", None)
        return f"<Batch {key!r}>" if key is not None else f"<Batch {short_repr(self.future)}>"


# -- elements of a unit --------------------------------------------------------------------
def items_of(value: Any, source: str | None) -> list[Any]:
    """The elements of a batch's value as a list (the value itself if it is a list)."""
    if type(value) is list:
        return value
    try:
        return list(value)
    except TypeError as e:
        if source is not None:
            annotate_error(e, source, None, value)
        raise


def _iterate(value: Any, label: str) -> Any:
    try:
        return iter(value)
    except TypeError as e:
        annotate_error(e, label, None, value)
        raise


def _failed(e: BaseException, label: str, func: Any, x: Any, i: int) -> None:
    annotate_error(e, label, func, x, what=f"element {i} of a batch")


def length(value: Any, source: str | None) -> int:
    """Number of elements in a batch."""
    return len(items_of(value, source))


def nth(value: Any, source: str | None, i: int) -> Any:
    """Element ``i`` of a batch (to split a batch into element futures)."""
    return items_of(value, source)[i]


def concat_units(kinds: list[str], values: list[Any], sources: list[str | None]) -> list[Any]:
    """The elements of several units (``'one'`` element or ``'many'``), in order, as a list."""
    out: list[Any] = []
    for kind, value, source in zip(kinds, values, sources, strict=True):
        if kind == "one":
            out.append(value)
        else:
            out.extend(items_of(value, source))
    return out


# -- elements sent by scatter, loaded by the task that uses them ----------------------------
def load(payload: bytes, scatter_label: str) -> Any:
    """The element ``scatter`` serialized (:func:`~millstream.dask.payloads.element_payload`)."""
    from distributed.protocol import deserialize_bytes

    try:
        return deserialize_bytes(payload)
    except Exception as e:
        add_note(
            e,
            f"millstream: the element sent by {scatter_label} could not be loaded on the worker",
            unless="millstream:",
        )
        raise


def apply_loaded(
    func: Callable[..., Any], payload: bytes, scatter_label: str, args: tuple, kwargs: dict
) -> Any:
    """``func(x, *args, **kwargs)`` for the element ``x`` in ``payload`` (scatter + map)."""
    return func(load(payload, scatter_label), *args, **kwargs)


def star_apply_loaded(
    func: Callable[..., Any], payload: bytes, scatter_label: str, args: tuple, kwargs: dict
) -> Any:
    """``func(*x, *args, **kwargs)`` for the element ``x`` in ``payload`` (scatter + starmap)."""
    return func(*load(payload, scatter_label), *args, **kwargs)


# -- stateless nodes over a batch -----------------------------------------------------------
def map_items(
    func: Callable[..., Any],
    value: Any,
    source: str | None,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    label: str,
) -> list[Any]:
    """``[func(x, *args, **kwargs) for x in batch]``."""
    out = []
    for i, x in enumerate(items_of(value, source)):
        try:
            out.append(func(x, *args, **kwargs))
        except Exception as e:
            _failed(e, label, func, x, i)
            raise
    return out


def starmap_items(
    func: Callable[..., Any],
    value: Any,
    source: str | None,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    label: str,
) -> list[Any]:
    """``[func(*x, *args, **kwargs) for x in batch]``."""
    out = []
    for i, x in enumerate(items_of(value, source)):
        try:
            out.append(func(*x, *args, **kwargs))
        except Exception as e:
            _failed(e, label, func, x, i)
            raise
    return out


def filter_items(
    predicate: Callable[..., Any],
    kind: str,
    value: Any,
    source: str | None,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    negate: bool,
    label: str,
) -> list[Any]:
    """The elements for which ``predicate`` is true (false with ``negate``)."""
    items = [value] if kind == "one" else items_of(value, source)
    out = []
    for i, x in enumerate(items):
        try:
            keep = predicate(x, *args, **kwargs)
        except Exception as e:
            if kind == "one":
                annotate_error(e, label, predicate, x)
            else:
                _failed(e, label, predicate, x, i)
            raise
        if bool(keep) is not negate:
            out.append(x)
    return out


def flatten_items(value: Any, source: str | None, label: str) -> list[Any]:
    """The items of every element of a batch, in order."""
    return [y for x in items_of(value, source) for y in _iterate(x, label)]


def pluck_one(picker: Callable[[Any], Any], x: Any, label: str) -> Any:
    """``picker(x)`` (``x[pick]``), with a note naming ``pluck`` if it fails."""
    try:
        return picker(x)
    except Exception as e:
        annotate_error(e, label, None, x)
        raise


def pluck_items(
    picker: Callable[[Any], Any], value: Any, source: str | None, label: str
) -> list[Any]:
    """``[picker(x) for x in batch]``."""
    out = []
    for i, x in enumerate(items_of(value, source)):
        try:
            out.append(picker(x))
        except Exception as e:
            _failed(e, label, None, x, i)
            raise
    return out


def _run(awaitable_or_value: Any) -> Any:
    if hasattr(awaitable_or_value, "__await__"):

        async def wait() -> Any:
            return await awaitable_or_value

        return asyncio.run(wait())
    return awaitable_or_value


def map_async_one(
    func: Callable[..., Any], x: Any, args: tuple[Any, ...], kwargs: dict[str, Any], label: str
) -> Any:
    """Run the coroutine ``func(x, *args, **kwargs)`` to completion on the worker."""
    try:
        return _run(func(x, *args, **kwargs))
    except Exception as e:
        annotate_error(e, label, func, x)
        raise


def map_async_items(
    func: Callable[..., Any],
    value: Any,
    source: str | None,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    parallelism: int,
    label: str,
) -> list[Any]:
    """Run ``func`` on every element of a batch, ``parallelism`` calls at a time, in order."""
    items = items_of(value, source)

    async def main() -> list[Any]:
        slots = asyncio.Semaphore(parallelism)

        async def call(i: int, x: Any) -> Any:
            async with slots:
                try:
                    result = func(x, *args, **kwargs)
                    if hasattr(result, "__await__"):
                        result = await result
                    return result
                except Exception as e:
                    _failed(e, label, func, x, i)
                    raise

        return list(await asyncio.gather(*(call(i, x) for i, x in enumerate(items))))

    return asyncio.run(main()) if items else []


def key_of(key: Any, x: Any, label: str) -> Any:
    """``key(x)``, or ``x[key]`` if ``key`` is not callable."""
    try:
        return key(x) if callable(key) else x[key]
    except Exception as e:
        annotate_error(e, label, key if callable(key) else None, x)
        raise


def keys_of_items(key: Any, value: Any, source: str | None, label: str) -> list[Any]:
    """The key of every element of a batch."""
    return [key_of(key, x, label) for x in items_of(value, source)]


def unique_window(
    key: Any,
    keep: str,
    kinds: list[str],
    values: list[Any],
    sources: list[str | None],
    label: str,
) -> tuple[Any, ...]:
    """The elements of a window with distinct keys, as ``timed_window_unique`` keeps them."""
    kept: dict[Any, Any] = {}
    for x in concat_units(kinds, values, sources):
        k = key_of(key, x, label)
        if k in kept:
            if keep == "first":
                continue
            del kept[k]
        kept[k] = x
    return tuple(kept.values())


# -- frequencies: a partial count per unit, merged into the running table -------------------
def count_partial(kind: str, value: Any, source: str | None, label: str) -> dict[Any, int]:
    """The counts of one unit's elements (runs where the unit is, in parallel)."""
    counts: dict[Any, int] = {}
    items = [value] if kind == "one" else items_of(value, source)
    get = counts.get
    try:
        for x in items:
            counts[x] = get(x, 0) + 1
    except TypeError as e:
        annotate_error(e, label, None, x)
        raise
    return counts


def merge_counts(state: dict[Any, int], partial: dict[Any, int]) -> dict[Any, int]:
    """A new table: ``state`` plus ``partial`` (``state`` is left as it was)."""
    table = dict(state)
    get = table.get
    for x, n in partial.items():
        table[x] = get(x, 0) + n
    return table


# -- accumulate over batches -------------------------------------------------------------------
def fold(
    func: Callable[..., Any],
    state: tuple[bool, Any],
    kind: str,
    value: Any,
    source: str | None,
    returns_state: bool,
    with_state: bool,
    kwargs: dict[str, Any],
    label: str,
) -> tuple[tuple[bool, Any], list[Any], None, BaseException | None]:
    """``accumulate`` over one unit: ``((has_state, state), outputs, None, error)``.

    An exception from ``func`` ends the unit; the state is the one before the failing
    element (as the local ``accumulate`` keeps it) and the error is returned, to be raised
    by :func:`outputs_of`, so that the next unit continues from a good state.
    """
    has, acc = state
    outputs: list[Any] = []
    items = [value] if kind == "one" else items_of(value, source)
    for i, x in enumerate(items):
        if not has:
            has, acc = True, x
            outputs.append((x, x) if with_state else x)
            continue
        try:
            result = func(acc, x, **kwargs)
            if returns_state:
                try:
                    new, result = result
                except (TypeError, ValueError) as e:
                    raise TypeError(
                        f"{label}: with returns_state=True the function must return a "
                        f"(state, result) pair, got {type(result).__name__}"
                    ) from e
            else:
                new = result
        except Exception as e:
            if kind == "one":
                annotate_error(e, label, func, x)
            else:
                _failed(e, label, func, x, i)
            return (has, acc), outputs, None, e
        acc = new
        outputs.append((new, result) if with_state else result)
    return (has, acc), outputs, None, None


def accumulate_start(start: Any) -> tuple[bool, Any]:
    """The fold state for ``start`` (``no_default``: no state yet)."""
    return (False, None) if start is no_default else (True, start)


# -- results of a step ---------------------------------------------------------------------
def state_of(result: tuple[Any, ...]) -> Any:
    """The new state of a step."""
    return result[0]


def outputs_of(result: tuple[Any, ...]) -> list[Any]:
    """The outputs of a step; raises the error of the step if it failed."""
    error = result[3]
    if error is not None:
        raise error
    outputs: list[Any] = result[1]
    return outputs


def first_output(result: tuple[Any, ...]) -> Any:
    """The only output of a step that emits exactly one (``collect.flush``)."""
    return outputs_of(result)[0]


def held_of(result: tuple[Any, ...]) -> list[int] | None:
    """Numbers of the units whose elements the node still holds after a step."""
    held: list[int] | None = result[2]
    return held
