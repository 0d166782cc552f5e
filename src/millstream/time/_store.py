"""The contract between the ``window`` node and the stores that hold its windows.

The node (:class:`millstream.time.operators.window`) reads each element: its timestamp
(event-time windows), its key and its value. It keeps the watermark, the late policies,
the counters, and it alone emits. A **store** holds the windows of one family of
assigners and decides, for each element, which windows it goes to and when a window
fires:

* :class:`~millstream.time._buckets.TimeBuckets` (``Tumbling``, ``Sliding``);
* :class:`~millstream.time._sessions.SessionWindows` (``Session``);
* :class:`~millstream.time._counts.CountWindows` (``CountTumbling``, ``CountSliding``,
  ``Global``).

What a store gets, once, at construction: a :class:`StoreContext`, which is all it
knows of the node:

* the assigner and the settings of the node (``allowed_lateness``, ``update_for``,
  ``early``, whether fired windows are kept for late updates);
* ``agg``: the aggregation (:class:`Accumulators`: ``create``, ``fold``, ``merge``,
  ``value``), whose errors name the node, the user's function and what arrived;
* ``keys``: the keys' open windows (:class:`KeyOrder`): the store says when a key gets
  a window (:meth:`KeyOrder.opened`) and when one closes (:meth:`KeyOrder.closed`); the
  first-seen rank of a key (:meth:`KeyOrder.rank`, :meth:`KeyOrder.sort`) orders the
  results of windows that end together;
* ``out``: the way to hand results back to the node, which emits them
  (:class:`WindowOutput`), each with its metadata: ``final(result, held)`` (the metadata
  of the window's elements, whose refs the store retained and hands over),
  ``result(result, metadata)`` (early and update results, and final ones holding no
  metadata), ``late(window, element, metadata)`` and ``dropped()``.

What a store gives (:class:`WindowStore`): :meth:`~WindowStore.add` places one element
(read by the node) in its windows, :meth:`~WindowStore.advance` fires the windows a
watermark closed, ``next_close`` / ``next_purge`` say which watermark will next close
or forget a window, and :meth:`~WindowStore.snapshot` / :meth:`~WindowStore.restore` /
:meth:`~WindowStore.release_held` carry its part of the node's state. ``add`` and
``advance`` return what the node must hand on upstream: the awaitables downstream gave
back for the results handed to ``out`` (a list, or ``None`` for none). A store keeps its
own state and touches nothing else of the node; it imports nothing of the node's module.
"""

from __future__ import annotations

import math
import operator
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .._utils import short_repr
from ..core.refs import Metadata
from ..core.state import COUNT, NUMBER
from ._results import WindowResult
from .aggregations import Count, Sum
from .windows import Window, WindowAssigner

__all__ = [
    "Accumulators",
    "KeyOrder",
    "StoreContext",
    "WindowOutput",
    "WindowStore",
    "checked_entries",
]

#: ``note_error(error, func, arrived, what)``: add to ``error`` a note naming the node,
#: the user's function ``func`` (or ``None``) and what arrived (``what``: ``'element'``
#: or ``'accumulator'``).
NoteError = Callable[[BaseException, Any, Any, str], None]


class KeyOrder:
    """The keys that have open windows, each with its first-seen rank.

    Results of windows that end together come out in the order their keys were first
    seen; a key whose windows have all closed is new when it comes back.

    Examples
    --------
    >>> keys = KeyOrder()
    >>> keys.opened('b'); keys.opened('a'); keys.opened('b')
    >>> keys.keys(), keys.rank('a'), keys.rank('b')
    (['b', 'a'], 1, 0)
    >>> keys.closed('b'); keys.closed('b'); keys.keys()
    ['a']
    """

    __slots__ = ("_ranks", "_seq")

    def __init__(self) -> None:
        self._ranks: dict[Any, list[int]] = {}  # key -> [first-seen rank, open windows]
        self._seq = 0

    def opened(self, key: Any) -> None:
        """``key`` has one more open window (and a rank, the first time)."""
        r = self._ranks.get(key)
        if r is None:
            self._ranks[key] = [self._seq, 1]
            self._seq += 1
        else:
            r[1] += 1

    def closed(self, key: Any) -> None:
        """One window of ``key`` closed; with none left, the key loses its rank."""
        r = self._ranks.get(key)
        if r is not None:
            r[1] -= 1
            if r[1] <= 0:
                del self._ranks[key]

    def rank(self, key: Any) -> int:
        """First-seen rank of ``key`` (a key with no open window ranks after all)."""
        r = self._ranks.get(key)
        return r[0] if r is not None else self._seq

    def sort(self, keys: list[Any]) -> None:
        """Sort ``keys``, each with an open window, in first-seen order (in place)."""
        keys.sort(key=self._ranks.__getitem__)  # [rank, open windows]: ranks differ

    def keys(self) -> list[Any]:
        """The keys with open windows, in first-seen order."""
        return sorted(self._ranks, key=self.rank)

    def restore(self, keys: list[Any]) -> None:
        """Rank ``keys`` in this order, none with an open window yet: the store's
        ``restore`` then counts each of its windows (:meth:`opened`), and
        :meth:`forget_unused` drops the keys left without one (``TypeError`` for an
        unhashable key)."""
        self._ranks.clear()
        self._seq = 0
        for key in keys:
            self._ranks[key] = [self._seq, 0]
            self._seq += 1

    def forget_unused(self) -> None:
        """Drop the keys without an open window (after a restore)."""
        for key in [key for key, r in self._ranks.items() if r[1] <= 0]:
            del self._ranks[key]


def checked_entries(
    entries: Any, field: str, names: tuple[str, ...], numbers: str = "", counts: str = ""
) -> list[tuple[Any, ...]]:
    """The entries of ``field`` of a store's snapshot, each a tuple of ``names``; the
    fields named in ``numbers`` (space-separated) must be numbers, those in ``counts``
    ints >= 0. A ``ValueError`` says which entry is wrong (the node names itself).

    >>> checked_entries([(0, 'a', 3)], 'kept', ('bucket', 'key', 'accumulator'), 'bucket')
    [(0, 'a', 3)]
    >>> checked_entries([('x', 'a', 3)], 'kept', ('bucket', 'key', 'accumulator'), 'bucket')
    Traceback (most recent call last):
    ...
    ValueError: field 'kept': bucket must be a number in ('x', 'a', 3)
    """
    if type(entries) not in (list, tuple):
        raise ValueError(f"field {field!r} must be a list, got {short_repr(entries)}")
    checks = [(names.index(n), n, NUMBER) for n in numbers.split()]
    checks += [(names.index(n), n, COUNT) for n in counts.split()]
    out = []
    for entry in entries:
        if type(entry) not in (list, tuple) or len(entry) != len(names):
            raise ValueError(
                f"field {field!r}: each entry must be ({', '.join(names)}), got {short_repr(entry)}"
            )
        for i, name, check in checks:
            if not check(entry[i]):
                raise ValueError(
                    f"field {field!r}: {name} must be {check.expected} in {short_repr(entry)}"
                )
        out.append(tuple(entry))
    return out


class Accumulators:
    """An aggregation as the stores use it: errors name the node, the user's function
    and what arrived (through ``note_error``).

    ``create()`` starts an accumulator. ``fast_add`` is a plain two-argument function
    adding a value to an accumulator when the aggregation is one (``'sum'``), else
    ``None``; ``result_is_identity`` is true when an accumulator is its own result.
    """

    __slots__ = ("_add", "_func", "_merge", "_note", "_result", "create", "fast_add",
                 "result_is_identity")  # fmt: skip

    def __init__(self, agg: Any, note_error: NoteError):
        self.create: Callable[[], Any] = agg.create
        self._add = agg.add
        self._merge: Callable[[Any, Any], Any] | None = getattr(agg, "merge", None)
        self._result = agg.result
        self._func = getattr(agg, "func", None)  # the user's function, named in errors
        self._note = note_error
        self.fast_add: Callable[[Any, Any], Any] | None = operator.add if type(agg) is Sum else None
        self.result_is_identity = type(agg) in (Sum, Count)

    def fold(self, acc: Any, v: Any, x: Any) -> Any:
        """``acc`` with the value ``v`` of element ``x`` added."""
        try:
            return self._add(acc, v)
        except Exception as e:
            self._note(e, self._func, x, "element")
            raise

    def merge(self, a: Any, b: Any, x: Any) -> Any:
        """Accumulators ``a`` and ``b`` merged (element ``x`` joined their windows)."""
        try:
            return self._merge(a, b)  # type: ignore[misc]
        except Exception as e:
            self._note(e, self._func, x, "element")
            raise

    def value(self, acc: Any) -> Any:
        """The result of accumulator ``acc``."""
        try:
            return self._result(acc)
        except Exception as e:
            self._note(e, self._func, acc, "accumulator")
            raise


@dataclass(frozen=True)
class WindowOutput:
    """How a store hands its results back to the node, which emits them at once.

    Each returns the awaitables downstream gave back, for the store to return (``late``
    returns ``None`` when the late policy is ``'update'``: the store then adds the
    element to the kept window and hands back an ``'update'`` result, or calls
    ``dropped`` when that window is no longer kept).
    """

    #: ``final(result, held)``: a window closed; ``held`` is the metadata of its elements
    #: (or ``None``), whose refs the store retained: the node takes them over and
    #: releases them once downstream is done with the result.
    final: Callable[[WindowResult, Metadata | None], list[Any]]
    #: ``result(result, metadata=None)``: any other result (``'early'``, ``'update'``
    #: with the late element's metadata, or ``'final'`` holding no metadata); the refs
    #: of ``metadata`` stay the caller's.
    result: Callable[..., list[Any]]
    #: ``late(window, element, metadata)``: ``element`` arrived after ``window`` closed.
    late: Callable[[Window, Any, Metadata | None], list[Any] | None]
    #: ``dropped()``: a late element was dropped (its window no longer kept).
    dropped: Callable[[], None]


@dataclass(frozen=True)
class StoreContext:
    """All a store knows of its node (see the module's docstring)."""

    assigner: WindowAssigner
    agg: Accumulators
    keys: KeyOrder
    out: WindowOutput
    #: ``note_error(error, func, element, 'element')``: name the node in an error raised
    #: by ``func`` on ``element``.
    note_error: NoteError
    allowed_lateness: float = 0
    update_for: float = math.inf
    early: int | None = None
    #: ``late='update'``: fired windows are kept (for ``update_for``) for late elements.
    keep_fired: bool = False


class WindowStore(ABC):
    """The windows of one ``window`` node (see the module's docstring for the contract).

    ``next_close``: the watermark at which the next window closes; ``next_purge``: the
    one at which the next window kept for updates is forgotten (``inf``: none). The node
    calls :meth:`advance` only once the watermark reaches one of them.
    """

    next_close: float = math.inf
    next_purge: float = math.inf
    #: Where the accumulator is in each entry of ``open`` and ``kept`` of a snapshot.
    accumulator_index = 2

    def __init__(self, context: StoreContext):
        self.context = context

    @abstractmethod
    def add(
        self, ts: Any, key: Any, v: Any, x: Any, metadata: Metadata | None, wm: float
    ) -> list[Any] | None:
        """Place element ``x`` (timestamp ``ts``, ``None`` for count windows; key
        ``key``; value ``v``) in its windows at watermark ``wm``; hand back the results
        it makes (early, update, count windows that fill up) and late elements.

        The store retains the refs of ``metadata`` it holds (``retain_refs``); it never
        keeps a reference to ``metadata`` itself, which the caller may reuse.
        """

    @abstractmethod
    def advance(self, wm: float) -> list[Any]:
        """Fire the windows closed at watermark ``wm`` (as ``final`` results, in order of
        window end, then of key rank); forget the kept windows expired at ``wm``."""

    @abstractmethod
    def snapshot(self) -> tuple[list[Any], list[Any], dict[Any, int]]:
        """``(open, kept, positions)`` of the node's snapshot, as plain data (the node
        copies it)."""

    @abstractmethod
    def restore(self, open_: list[Any], kept: list[Any], positions: dict[Any, int]) -> None:
        """Fill this new store with the windows of a :meth:`snapshot`; count each open
        window for its key (``keys.opened``), whose ranks the node has restored. A
        ``ValueError`` or ``TypeError`` says what is wrong with the data (the node then
        drops this store and names itself in the error)."""

    @abstractmethod
    def release_held(self, error: BaseException) -> None:
        """Release the refs held for the elements of the open windows, marked failed."""
