"""Running aggregations: ``accumulate`` (``scan``) and ``frequencies``."""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from .._utils import annotate_error, check_callable, no_default, short_repr
from ..core.errors import ErrorCounts, error_policy
from ..core.fusion import Stage
from ..core.state import bad_state, detached, expect_fields
from ..core.stream import Stream, fused_attribute

__all__ = ["FrequencyTable", "accumulate", "frequencies"]


@Stream.register_api()
class accumulate(Stream):
    """Fold the stream: ``state = func(state, x, **kwargs)``, emitting each new state.

    Without ``start`` the first element becomes the state and is emitted as is.
    With ``returns_state=True``, ``func`` returns ``(state, result)`` and ``result``
    is emitted. ``with_state=True`` emits ``(state, result)`` pairs. ``scan`` is an alias.

    Examples
    --------
    >>> source = Stream()
    >>> L = source.accumulate(lambda acc, x: acc + x, start=0).sink_to_list()
    >>> for i in range(4):
    ...     source.emit(i)
    >>> L
    [0, 1, 3, 6]
    >>> source = Stream()
    >>> L = source.scan(lambda n, x: (n + 1, (n, x)), start=0, returns_state=True).sink_to_list()
    >>> source.emit('a'); source.emit('b')
    >>> L
    [(0, 'a'), (1, 'b')]
    """

    _graphviz_shape = "box"
    func = fused_attribute()

    def __init__(
        self,
        upstream: Stream,
        func: Callable[..., Any],
        start: Any = no_default,
        returns_state: bool = False,
        **kwargs: Any,
    ):
        check_callable("accumulate", "func", func)
        self._func = func
        self.error_policy = error_policy("accumulate", kwargs.pop("on_error", "raise"))
        #: the elements this node gave up on (see :mod:`millstream.core.errors`)
        self.errors = self.error_policy.counts if self.error_policy else ErrorCounts()
        self.state = start
        self.returns_state = returns_state
        self.with_state = kwargs.pop("with_state", False)
        stream_name = kwargs.pop("stream_name", None)
        self.kwargs = kwargs
        Stream.__init__(self, upstream, stream_name=stream_name)

    def _step(self, x: Any) -> Any:
        if self.state is no_default:
            self.state = x
            return (x, x) if self.with_state else x
        try:
            result = self._func(self.state, x, **self.kwargs)
        except Exception as e:
            annotate_error(e, self, self._func, x)
            raise
        if self.returns_state:
            try:
                state, result = result
            except (TypeError, ValueError) as e:
                error = TypeError(
                    f"{self}: with returns_state=True the function must return a "
                    f"(state, result) pair, got {type(result).__name__}"
                )
                annotate_error(error, self, self._func, x)
                raise error from e
        else:
            state = result
        self.state = state
        return (state, result) if self.with_state else result

    def update(self, x: Any, who: Stream | None = None, metadata: list[dict] | None = None) -> Any:
        policy = self.error_policy
        if policy is None:
            return self._emit(self._step(x), metadata=metadata)
        try:
            result = self._step(x)  # the state is unchanged when the function raises
        except Exception as e:
            return policy.handle(self, e, x, metadata, self._func)
        return self._emit(result, metadata=metadata)

    _fusion_update = update

    def _fusion_stage(self) -> Stage | None:
        if self.error_policy is not None:
            return None  # the policy runs on the per-element path
        return Stage("step", self._step, user_func=self._func)

    def snapshot(self) -> dict[str, Any]:
        """``{'state': a copy of the state}`` (the no-state marker while no element has
        arrived)."""
        return {"state": detached(self.state)}

    def restore(self, state: dict[str, Any]) -> None:
        value = detached(expect_fields(self, state, {"state": None})["state"])
        # the marker is compared by identity: one read back from a file is an equal copy
        self.state = no_default if type(value) is str and value == no_default else value


_MISSING: Any = object()


class FrequencyTable(Mapping[Any, int]):
    """A read-only snapshot of the counts made by ``frequencies``, equal to the dict Streamz emits.

    Snapshots share storage: each one records only the key that changed after it
    and a link to the next snapshot, so emitting one costs O(1), not a copy of
    the table. Reading an old snapshot materializes it into its own dict once.
    ``dict(table)`` (or :meth:`copy`) gives a plain dict; pickling gives a dict too.

    >>> source = Stream()
    >>> L = source.frequencies().sink_to_list()
    >>> for word in ['a', 'b', 'a']:
    ...     source.emit(word)
    >>> L[0], L[2]
    ({'a': 1}, {'a': 2, 'b': 1})
    >>> L[1]['b'], len(L[2]), isinstance(L[2], Mapping)
    (1, 2, True)
    """

    __slots__ = ("__weakref__", "_base", "_key", "_live", "_old")

    def __init__(self, live: dict[Any, int]):
        self._live = live
        self._base: FrequencyTable | None = None
        self._key: Any = None
        self._old: Any = None

    def _chain(self) -> tuple[list[tuple[Any, Any]], FrequencyTable]:
        changes: list[tuple[Any, Any]] = []
        s = self
        while (base := s._base) is not None:
            changes.append((s._key, s._old))
            s = base
        return changes, s

    def _dict(self, copy: bool = True) -> dict[Any, int]:
        """This snapshot's contents as a new dict the caller may change (with ``copy=False``:
        the snapshot's own dict once it has one, not to be changed or handed out)."""
        while True:
            if self._base is None:
                live = self._live
                taken = dict(live)  # atomic under the GIL
                if self._base is None:
                    return taken
                continue
            changes, last = self._chain()
            d = last._dict()  # a new dict: ``last`` may have got its own meanwhile
            for key, old in reversed(changes):
                if old is _MISSING:
                    d.pop(key, None)
                else:
                    d[key] = old
            # Publish the own dict before unlinking; ``_key``/``_old`` stay as they are so a
            # reader on another thread that still sees the old ``_base`` reads a valid link.
            self._live = d
            self._base = None  # now standalone: the chain after it can be freed
            # never hand out the own dict: a caller changes what it gets (an older
            # snapshot applies its changes to it, ``copy()`` goes to the user)
            return dict(d) if copy else d

    def __getitem__(self, key: Any) -> int:
        s = self
        hops = 0
        while (base := s._base) is not None:
            if s._key == key:
                if s._old is _MISSING:
                    raise KeyError(key)
                return s._old
            s = base
            hops += 1
            if hops > 64:
                return self._dict()[key]
        value = s._live.get(key, _MISSING)
        if s._base is not None:  # frozen while we read: start again from this snapshot
            return self[key]
        if value is _MISSING:
            raise KeyError(key)
        return value

    def __iter__(self) -> Iterator[Any]:
        return iter(self._dict())

    def __len__(self) -> int:
        return len(self._dict())

    def copy(self) -> dict[Any, int]:
        """A plain dict of the counts."""
        return self._dict()

    def __eq__(self, other: object) -> bool:
        if isinstance(other, FrequencyTable):
            other = other._dict()
        if isinstance(other, Mapping):
            return self._dict() == dict(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return repr(self._dict())

    def __reduce__(self) -> tuple[Any, ...]:
        return (dict, (self._dict(),))


@Stream.register_api()
class frequencies(Stream):
    """Count occurrences of each element; emit the running counts after each element.

    Each emitted value is an independent snapshot (a :class:`FrequencyTable`, a
    read-only mapping equal to the dict Streamz emits), made in O(1): the table is
    not copied per element as in Streamz.

    Examples
    --------
    >>> source = Stream()
    >>> counts = source.frequencies()
    >>> L = counts.sink_to_list()
    >>> for word in 'the cat and the hat'.split():
    ...     source.emit(word)
    >>> L[-1]
    {'the': 2, 'cat': 1, 'and': 1, 'hat': 1}
    >>> L[0]
    {'the': 1}
    >>> counts.snapshot()
    {'counts': {'the': 2, 'cat': 1, 'and': 1, 'hat': 1}}
    """

    _COMPACT_EVERY = 1024
    _TRACK_EVERY = 64

    def __init__(self, upstream: Stream, **kwargs: Any):
        self._counts: dict[Any, int] = {}
        self._latest: FrequencyTable | None = None
        self._made = 0
        self._tracked: list[tuple[int, weakref.ReferenceType[FrequencyTable]]] = []
        super().__init__(upstream, **kwargs)

    def _step(self, x: Any) -> FrequencyTable:
        counts = self._counts
        try:
            old = counts.get(x, _MISSING)
        except TypeError as e:
            annotate_error(e, self, None, x)
            raise
        new = FrequencyTable(counts)
        latest = self._latest
        if latest is not None:
            latest._key = x
            latest._old = old
            latest._base = new  # set last: readers check it to know the table moved on
        counts[x] = 1 if old is _MISSING else old + 1
        self._latest = new
        self._made = made = self._made + 1
        if not made % self._TRACK_EVERY:
            self._tracked.append((made, weakref.ref(new)))
            if not made % self._COMPACT_EVERY:
                self._compact()
        return new

    def _compact(self) -> None:
        """Give old snapshots still held somewhere their own dict, freeing the chain behind them.

        A snapshot is copied once the chain behind it is a sixteenth of the table's size
        (and at least ``_COMPACT_EVERY`` long): a snapshot held for a while (the node's
        ``current_value`` during a batch) then costs at most 16 copied entries per element,
        not a copy of the whole table every ``_COMPACT_EVERY`` elements, and the chain
        kept alive stays short (long chains cost cache misses on every element).
        """
        keep = []
        limit = max(self._COMPACT_EVERY, len(self._counts) >> 4)
        for made, ref in self._tracked:
            table = ref()
            if table is None:
                continue
            if self._made - made >= limit:
                table._dict(copy=False)
            else:
                keep.append((made, ref))
        self._tracked = keep

    def update(self, x: Any, who: Stream | None = None, metadata: list[dict] | None = None) -> Any:
        return self._emit(self._step(x), metadata=metadata)

    _fusion_update = update

    def _fusion_stage(self) -> Stage:
        return Stage("step", self._step)

    def snapshot(self) -> dict[str, Any]:
        """``{'counts': {value: count}}`` (a copy of the table)."""
        return {"counts": dict(self._counts)}

    def restore(self, state: dict[str, Any]) -> None:
        """Take the counts of ``state`` (a copy; tables emitted before keep their counts)."""
        self._counts = self.counts_of(self, state)
        self._latest = None

    @staticmethod
    def counts_of(node: Any, state: Any) -> dict[Any, int]:
        """The table of a :meth:`snapshot` ``state``, checked and copied (a
        :class:`~millstream.exceptions.StateError` naming ``node`` if it is not one)."""
        counts = expect_fields(node, state, {"counts": Mapping})["counts"]
        if not all(type(n) is int and n > 0 for n in counts.values()):
            bad = next(n for n in counts.values() if not (type(n) is int and n > 0))
            raise bad_state(node, state, f"a count must be an int > 0, got {short_repr(bad)}")
        return dict(counts)
