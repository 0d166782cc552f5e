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
    node and what is wrong, and it is atomic: on an error the node is left as it was
    (:func:`restore_atomically` gives any node this, and :func:`expect_fields` the usual
    checks).

``snapshot_version`` (class attribute, default 1)
    The format version of ``snapshot()``. A checkpoint records it next to each state; a
    node whose format changes raises the number and may define
    ``upgrade_state(version, state) -> state`` (a classmethod) to read older ones.

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

__all__ = ["StateError", "detached", "expect_fields", "restore_atomically", "snapshot_version_of"]

_IMMUTABLE = (int, float, complex, str, bytes, bool, type(None), frozenset)


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


def expect_fields(node: Any, state: Any, checks: Mapping[str, Any]) -> Mapping[str, Any]:
    """Check that ``state`` is a mapping with the keys of ``checks``; return it.

    Each value of ``checks`` is ``None`` (any value), a type or tuple of types the value
    must be an instance of, or a callable returning true for a valid value. Raises
    :class:`StateError` naming ``node``, the field and what arrived.

    >>> expect_fields('<node>', {'n': 'x'}, {'n': int})
    Traceback (most recent call last):
    ...
    millstream.exceptions.StateError: <node> cannot restore state {'n': 'x'}: field 'n' must be int, got 'x'
    """  # noqa: E501
    if not isinstance(state, Mapping):
        keys = ", ".join(repr(k) for k in checks)
        raise StateError(
            f"{node} cannot restore state {short_repr(state)}: expected a dict with keys {keys}"
        )
    missing = [k for k in checks if k not in state]
    if missing:
        raise StateError(
            f"{node} cannot restore state {short_repr(state)}: missing "
            + ", ".join(repr(k) for k in missing)
        )
    for key, check in checks.items():
        if check is None:
            continue
        value = state[key]
        if isinstance(check, (type, tuple)):
            if not isinstance(value, check):
                names = (
                    " or ".join(t.__name__ for t in check)
                    if isinstance(check, tuple)
                    else check.__name__
                )
                raise StateError(
                    f"{node} cannot restore state {short_repr(state)}: field {key!r} must be "
                    f"{names}, got {short_repr(value)}"
                )
        elif not check(value):
            raise StateError(
                f"{node} cannot restore state {short_repr(state)}: field {key!r} is not "
                f"valid: {short_repr(value)}"
            )
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
        raise StateError(f"{node} cannot restore state {short_repr(state)}: {e}") from e


def snapshot_version_of(node: Any) -> int:
    """The ``snapshot_version`` of ``node``'s class (1 unless it says otherwise)."""
    return int(getattr(type(node), "snapshot_version", 1))
