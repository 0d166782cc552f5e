"""The state contract: what every node that holds data between elements provides.

This page is the one place the contract is written down; ``docs/checkpoints.md`` explains
it to users and :mod:`millstream.checkpoint` relies on nothing else.

``snapshot() -> state``
    The node's state as plain data: built from ``dict``, ``list``, ``tuple``, ``set``,
    numbers, strings, bytes, ``None`` and the user's own picklable values, so that
    ``pickle`` can write it and a new process can read it. It never shares a mutable
    object with the live node: changing the node afterwards does not change a snapshot
    taken before (:func:`detached` copies what a node cannot copy cheaply itself). A node
    that holds elements (a window, a buffer's queue) lists them in its snapshot.

``restore(state)``
    Makes the node hold ``state`` (a value its ``snapshot()`` returned, possibly in
    another process). It checks ``state`` first and raises :class:`StateError` naming the
    node and what is wrong (``restore(None)`` included), and it is atomic: on an error the
    node is left as it was. A node checks everything before it changes anything
    (:func:`expect_fields` with the checks :data:`NUMBER`, :data:`COUNT`,
    :data:`SEQUENCE` or a :class:`Check`, :func:`dict_of_pairs`, :func:`bad_state` for
    the rest), or wraps its restore in :func:`restore_atomically`. It takes a copy: the
    node never changes ``state``.

``snapshot_version`` (class attribute, default 1)
    The format version of ``snapshot()``. A checkpoint records it next to each state; a
    node whose format changes raises the number and may define
    ``upgrade_state(version, state) -> state`` (a classmethod) to read older ones. A field
    added as optional (``restore`` reads a state without it, as ``closes_in`` of
    ``timed_window``) keeps the version: older states still restore.

Sources follow the same contract, their state being their *position*: what they emitted
so far, as needed to resume after it (Kafka: the next offset per partition; a file: the
byte offset; an iterable: the number of items emitted). ``restore(position)`` is called
while the source is stopped and it resumes there on ``start()``. Two optional methods let
a source take part in checkpoints:

* ``checkpoint_mode(on: bool, identity: str | None = None)``: from now on, commit
  positions only when told (Kafka's group offsets then follow completed checkpoints);
  ``identity`` names the checkpointed node, the same on every restart from the same
  checkpoints (the coordinator passes ``'<location>#<node id>'``);
* ``checkpoint_complete(position)``: a checkpoint holding ``position`` is durable.

Nodes that await in the middle of an element (sources, buffers, Dask nodes) get a
:class:`~millstream.core.hold.Hold` as ``node.hold`` while checkpoints run; see there.

Examples
--------
>>> from millstream import Stream
>>> source = Stream()
>>> total = source.accumulate(lambda acc, x: acc + [x], start=[])
>>> for i in range(3):
...     source.emit(i)
>>> state = total.snapshot()
>>> source.emit(3)
>>> state['state']          # not changed by the element after it
[0, 1, 2]
>>> total.restore({'state': 'oops'}) is None   # a str is a valid accumulator state
True
>>> total.restore(None)
Traceback (most recent call last):
...
millstream.exceptions.StateError: <accumulate: ...> cannot restore state None: expected a dict with keys 'state'
"""  # noqa: E501

from __future__ import annotations

import copy
import pickle
from collections.abc import Callable, Mapping
from typing import Any

from .._utils import short_repr
from ..exceptions import StateError

__all__ = [
    "COUNT",
    "IMMUTABLE",
    "NUMBER",
    "SEQUENCE",
    "Check",
    "StateError",
    "bad_state",
    "detached",
    "dict_of_pairs",
    "expect_fields",
    "restore_atomically",
    "snapshot_version_of",
]

#: The types whose values never change: a snapshot may hold them as they are.
IMMUTABLE = (int, float, complex, str, bytes, bool, type(None), frozenset)
_IMMUTABLE = IMMUTABLE


def detached(value: Any) -> Any:
    """A copy of ``value`` that shares no mutable object with it (fast for plain data).

    Numbers and strings come back as they are; flat ``dict``/``list``/``set``/``tuple``
    of them are copied in one step; anything else is copied through ``pickle`` (or
    ``copy.deepcopy`` when it cannot be pickled).

    >>> counts = {'a': 1}
    >>> copy = detached(counts)
    >>> counts['a'] = 2
    >>> copy
    {'a': 1}
    """
    kind = type(value)
    if kind in _IMMUTABLE:
        return value
    if kind is dict:
        if all(type(v) in _IMMUTABLE for v in value.values()) and all(
            type(k) in _IMMUTABLE or type(k) is tuple for k in value
        ):
            return dict(value)
    elif (kind is list or kind is set or kind is tuple) and all(
        type(v) in _IMMUTABLE for v in value
    ):
        return value if kind is tuple else kind(value)
    try:
        return pickle.loads(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))
    except Exception:
        return copy.deepcopy(value)


class Check:
    """A check for :func:`expect_fields` whose error says what was expected.

    >>> positive = Check('a number > 0', lambda v: isinstance(v, int) and v > 0)
    >>> expect_fields('<node>', {'n': 0}, {'n': positive})
    Traceback (most recent call last):
    ...
    millstream.exceptions.StateError: <node> cannot restore state {'n': 0}: field 'n' must be a number > 0, got 0
    """  # noqa: E501

    __slots__ = ("expected", "test")

    def __init__(self, expected: str, test: Callable[[Any], bool]):
        self.expected = expected
        self.test = test

    def __call__(self, value: Any) -> bool:
        return bool(self.test(value))

    def __repr__(self) -> str:
        return f"Check({self.expected!r})"


def _is_number(value: Any) -> bool:
    return type(value) in (int, float) and value == value


#: An ``int`` or ``float`` (not ``bool``, not NaN; ``inf`` is one).
NUMBER = Check("a number", _is_number)
#: An ``int >= 0`` (not ``bool``).
COUNT = Check("an int >= 0", lambda v: type(v) is int and v >= 0)
#: A ``list`` or ``tuple`` (what a snapshot's sequences read back as).
SEQUENCE = (list, tuple)


def bad_state(node: Any, state: Any, problem: str) -> StateError:
    """The :class:`StateError` of ``node`` for ``state``: ``problem`` says what is wrong.

    >>> raise bad_state('<node>', [1], 'expected a dict')
    Traceback (most recent call last):
    ...
    millstream.exceptions.StateError: <node> cannot restore state [1]: expected a dict
    """
    return StateError(f"{node} cannot restore state {short_repr(state)}: {problem}")


def dict_of_pairs(node: Any, state: Any, field: str, distinct: bool = True) -> dict[Any, Any]:
    """The ``[key, value]`` pairs of ``state[field]`` (a list) as a new dict.

    Raises :class:`StateError` naming ``node`` if an entry is not a pair, a key is not
    hashable, or, with ``distinct``, a key comes twice (without, the last one wins).

    >>> dict_of_pairs('<node>', {'seen': [['a', 1], ('b', 2)]}, 'seen')
    {'a': 1, 'b': 2}
    >>> dict_of_pairs('<node>', {'seen': [['a', 1], ['a', 2]]}, 'seen')
    Traceback (most recent call last):
    ...
    millstream.exceptions.StateError: <node> cannot restore state {'seen': [['a', 1], ['a', 2]]}: field 'seen' has the key 'a' twice
    """  # noqa: E501
    items = state[field]
    out: dict[Any, Any] = {}
    for item in items:
        if type(item) not in SEQUENCE or len(item) != 2:
            raise bad_state(
                node,
                state,
                f"each entry of field {field!r} must be a [key, value] pair, "
                f"got {short_repr(item)}",
            )
        key = item[0]
        try:
            if distinct and key in out:
                raise bad_state(node, state, f"field {field!r} has the key {short_repr(key)} twice")
            out[key] = item[1]
        except TypeError:
            raise bad_state(
                node, state, f"field {field!r} has an unhashable key {short_repr(key)}"
            ) from None
    return out


def expect_fields(node: Any, state: Any, checks: Mapping[str, Any]) -> Mapping[str, Any]:
    """Check that ``state`` is a mapping with the keys of ``checks``; return it.

    Each value of ``checks`` is ``None`` (any value), a type or tuple of types the value
    must be an instance of, or a callable returning true for a valid value (a
    :class:`Check` says in the error what it expected). Raises
    :class:`StateError` naming ``node``, the field and what arrived.

    >>> expect_fields('<node>', {'n': 'x'}, {'n': int})
    Traceback (most recent call last):
    ...
    millstream.exceptions.StateError: <node> cannot restore state {'n': 'x'}: field 'n' must be int, got 'x'
    """  # noqa: E501
    if not isinstance(state, Mapping):
        keys = ", ".join(repr(k) for k in checks)
        raise bad_state(node, state, f"expected a dict with keys {keys}")
    missing = [k for k in checks if k not in state]
    if missing:
        raise bad_state(node, state, "missing " + ", ".join(repr(k) for k in missing))
    for key, test in checks.items():
        if test is None:
            continue
        value = state[key]
        if isinstance(test, (type, tuple)):
            if not isinstance(value, test):
                names = (
                    " or ".join(t.__name__ for t in test)
                    if isinstance(test, tuple)
                    else test.__name__
                )
                raise bad_state(
                    node, state, f"field {key!r} must be {names}, got {short_repr(value)}"
                )
        elif not test(value):
            expected = getattr(test, "expected", None)
            problem = f"must be {expected}, got" if expected else "is not valid:"
            raise bad_state(node, state, f"field {key!r} {problem} {short_repr(value)}")
    return state


def restore_atomically(node: Any, restore: Callable[[Any], None], state: Any) -> None:
    """Call ``restore(state)``; if it raises, put ``node`` back as it was and raise
    :class:`StateError` naming the node (the original error is the cause)."""
    before = node.snapshot()
    try:
        restore(state)
    except Exception as e:
        try:
            restore(before)
        except Exception:  # pragma: no cover - the node's own snapshot must restore
            pass
        if isinstance(e, StateError):
            raise
        raise bad_state(node, state, str(e)) from e


def snapshot_version_of(node: Any) -> int:
    """The ``snapshot_version`` of ``node``'s class (1 unless it says otherwise)."""
    return int(getattr(type(node), "snapshot_version", 1))
