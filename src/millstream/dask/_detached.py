"""Stateful core nodes on a worker: one step of a detached copy of the node per unit.

Stateful nodes run on the workers through :func:`run_node`: a detached copy of the
core node (built once per worker process from a picklable :class:`NodeSpec`) is
restored from the state it receives, fed the unit's elements, and snapshotted again;
the task returns ``(new_state, outputs, held_units, error)``. The state is a value that
no task mutates (``restore`` and ``snapshot`` copy), so tasks stay pure: a task Dask
runs again after losing a worker gives the same result. While the client tracks the refs
a node holds, elements are tagged with their unit's number inside the state.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from .._utils import annotate_error, identity
from ..core import Metadata, Stream
from ._tasks import items_of

__all__ = ["NodeSpec", "checked_state", "run_node", "untag"]


class _Tagged:
    """An element of unit number ``unit`` inside a node's state (to tell which refs it holds)."""

    __slots__ = ("unit", "x")

    def __init__(self, unit: int, x: Any):
        self.unit = unit
        self.x = x

    def __reduce__(self) -> tuple[Any, ...]:
        return (_Tagged, (self.unit, self.x))

    def __repr__(self) -> str:
        return repr(self.x)


class _TagKey:
    """A node's ``key`` applied to the element inside a :class:`_Tagged`."""

    __slots__ = ("key", "label")

    def __init__(self, key: Any, label: str):
        self.key = key
        self.label = label

    def __call__(self, v: Any) -> Any:
        x = v.x if type(v) is _Tagged else v
        key = self.key
        try:
            return key(x) if callable(key) else x[key]
        except Exception as e:
            annotate_error(e, self.label, key if callable(key) else None, x)
            raise


# Tags sit at most this deep in a node's snapshot ({'buffers': [[key, [x, ...]]]}); the
# elements themselves, which may be large nested structures, are not walked.
_TAG_DEPTH = 5


def untag(value: Any, depth: int = _TAG_DEPTH) -> Any:
    """A node's snapshot with every tagged element replaced by the element."""
    t = type(value)
    if t is _Tagged:
        return value.x
    if depth == 0:
        return value
    if t is list:
        return [untag(v, depth - 1) for v in value]
    if t is tuple:
        return tuple(untag(v, depth - 1) for v in value)
    if t is dict:
        return {k: untag(v, depth - 1) for k, v in value.items()}
    return value


def _untag_output(y: Any) -> Any:
    """An output of a holding node (a flat tuple of elements) without its tags."""
    if type(y) is tuple:
        return tuple(v.x if type(v) is _Tagged else v for v in y)
    return y


def _tags_in(value: Any, found: set[int], depth: int = _TAG_DEPTH) -> set[int]:
    t = type(value)
    if t is _Tagged:
        found.add(value.unit)
    elif depth == 0:
        pass
    elif t is list or t is tuple:
        for v in value:
            _tags_in(v, found, depth - 1)
    elif t is dict:
        for v in value.values():
            _tags_in(v, found, depth - 1)
    return found


class NodeSpec:
    """How to build a detached copy of a core node on a worker.

    ``cls(head, *args, **kwargs)``, or with ``layout`` (multi-input nodes)
    ``cls(*inputs, **kwargs)`` where each layout entry is ``('s', i)`` (the i-th distinct
    input stream) or ``('l', value)`` (a literal, as ``zip`` takes). ``key_arg`` names the
    keyword holding a key function, wrapped while elements carry tags.
    """

    def __init__(
        self,
        uid: str,
        cls: type[Stream],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        label: str,
        layout: list[tuple[str, Any]] | None = None,
        key_arg: str | None = None,
    ):
        self.uid = uid
        self.cls = cls
        self.args = args
        self.kwargs = kwargs
        self.label = label
        self.layout = layout
        self.key_arg = key_arg

    @property
    def n_inputs(self) -> int:
        if self.layout is None:
            return 1
        return 1 + max((v for k, v in self.layout if k == "s"), default=0)


class _Collector(Stream):
    """The downstream of a detached node: keeps what it emits."""

    def __init__(self, upstream: Stream):
        self.out: list[Any] = []
        super().__init__(upstream)

    def update(self, x: Any, who: Stream | None = None, metadata: Metadata | None = None) -> Any:
        self.out.append(x)
        return None


class _Detached:
    __slots__ = ("collector", "heads", "lock", "node")

    def __init__(self, spec: NodeSpec, tracking: bool):
        kwargs = dict(spec.kwargs)
        if tracking and spec.key_arg is not None:
            key = kwargs.get(spec.key_arg, identity)
            kwargs[spec.key_arg] = _TagKey(identity if key is None else key, spec.label)
        self.heads = [Stream() for _ in range(spec.n_inputs)]
        if spec.layout is None:
            self.node = spec.cls(self.heads[0], *spec.args, **kwargs)
        else:
            inputs = [self.heads[v] if k == "s" else v for k, v in spec.layout]
            self.node = spec.cls(*inputs, *spec.args, **kwargs)
        self.collector = _Collector(self.node)
        self.lock = threading.Lock()


def checked_state(spec: NodeSpec, state: Any) -> Any:
    """``state`` restored into a new copy of the node and snapshotted again: the node's
    checks run (a :class:`~millstream.exceptions.StateError` naming it), and the result is
    a copy of ``state`` that shares nothing with it."""
    node = _Detached(spec, False).node
    node.restore(state)
    return node.snapshot()


_detached: OrderedDict[tuple[str, bool], _Detached] = OrderedDict()
_detached_lock = threading.Lock()
_MAX_DETACHED = 256


def _get_detached(spec: NodeSpec, tracking: bool) -> _Detached:
    """This worker's copy of the node (built once, kept for the following steps)."""
    key = (spec.uid, tracking)
    with _detached_lock:
        entry = _detached.get(key)
        if entry is not None:
            _detached.move_to_end(key)
            return entry
    entry = _Detached(spec, tracking)
    with _detached_lock:
        _detached[key] = entry
        while len(_detached) > _MAX_DETACHED:
            _detached.popitem(last=False)
    return entry


def run_node(
    spec: NodeSpec,
    state: tuple[Any, bool],
    kind: str,
    value: Any,
    source: str | None,
    who: int,
    tag: int | None,
    action: str = "push",
) -> tuple[tuple[Any, bool], list[Any], list[int] | None, BaseException | None]:
    """One step of a stateful node: restore ``state``, push the unit, snapshot.

    ``state`` is ``(snapshot, tagged)``; ``tag`` (a unit number) marks the unit's
    elements while the client tracks the refs they hold. Returns ``((snapshot, tagged),
    outputs, held, error)``, ``held`` being the numbers of the units still in the state
    when tags are in use. An exception from the node ends the unit: the state after the
    elements before it is kept, and the error goes to :func:`outputs_of`.
    """
    snapshot, tagged = state
    tracking = tagged or tag is not None
    entry = _get_detached(spec, tracking)
    with entry.lock:
        node = entry.node
        out = entry.collector.out
        out.clear()
        node.restore(snapshot)
        error: BaseException | None = None
        try:
            if action == "flush":
                node.flush()  # type: ignore[attr-defined]
            else:
                items = [value] if kind == "one" else items_of(value, source)
                if tag is not None:
                    items = [_Tagged(tag, x) for x in items]
                head = entry.heads[who]
                update = node.update
                for x in items:
                    update(x, head, None)
        except Exception as e:
            error = e
        outputs = [_untag_output(y) for y in out] if tracking else list(out)
        out.clear()
        new = node.snapshot()
        node.current_value = None
        held = sorted(_tags_in(new, set())) if tracking else None
    return (new, bool(held)), outputs, held, error
