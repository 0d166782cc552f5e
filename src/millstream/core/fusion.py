"""Fusion: compile a node's downstream graph into one Python function.

A node class opts in by defining ``_fusion_stage()`` (returning a :class:`Stage`)
and ``_fusion_update = update`` (so that a subclass overriding ``update`` is never
fused with its parent's stage). :func:`compile_downstreams` walks the graph below
a node and writes the code a hand-written loop would have::

    map(f).filter(p).map(g).sink(L.append)   becomes

    def one(x0):
        x1 = f(x0)
        if p(x1):
            x2 = x1
            x3 = g(x2)
            append(x3)

Why the result is exact, not merely equivalent:

* one statement per stage, nested in graph order, so each element still goes
  through the whole graph (branches in creation order, depth first) before the next
  one starts: user functions are called in the same order, with the same values;
* a node whose downstreams are not all fusible ends the fused region with a call to
  its ordinary ``_emit``;
* an exception stops processing where the per-element path would, and the failing
  line of the generated code tells which node and function raised, so the error is
  annotated as the per-element node would annotate it;
* each node's ``current_value`` is set to the last value it emitted;
* only elements without metadata are fused (no refs to count). When every node
  below the head is fused (``CompiledGraph.complete``), none of them can hold an
  element past its ``update``: a source that tracks completion itself (Kafka) then
  emits without metadata and counts the element done once its emit has finished.

The batch form (``batch(head, xs)``) wraps the same body in ``for x0 in xs:`` and
yields the awaitables gathered for an element before going on to the next one.
"""

from __future__ import annotations

import inspect
import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .._utils import annotate_error

if TYPE_CHECKING:
    from .stream import Stream

__all__ = ["SKIP", "CompiledGraph", "Stage", "compile_downstreams", "is_fusible"]


class _Skip:
    """Returned by a ``step`` stage that emits nothing for this element."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "SKIP"


SKIP: Any = _Skip()


class _Never:
    """An ``until`` that never stops."""

    stopped = False


_NEVER = _Never()


class _Unset:
    __slots__ = ()


_UNSET = _Unset()

_MAX_NESTING = 40  # generated blocks nest; Python caps indentation and static loop blocks


@dataclass
class Stage:
    """How a node runs inside fused code.

    kinds: ``call`` (``y = func(x, *args, **kwargs)``), ``starcall``
    (``y = func(*(x + args), **kwargs)``), ``filter`` (pass ``x`` on if
    ``func(x, *args, **kwargs)`` is true, or false with ``negate``), ``step``
    (``y = func(x)``; with ``may_skip``, ``SKIP`` means emit nothing), ``flatten``
    (emit each item of ``x``), ``sink`` (call ``func(x, *args, **kwargs)``, keep an
    awaitable result unless ``returns_none``), ``push`` (``func(x)`` is the node's own
    ``update``: it emits downstream by itself, annotates its own errors and may hold
    elements, and returns the awaitables downstream gave back, which are kept).

    A ``sink`` with ``exact_type`` calls ``func(x, ...)`` only when ``type(x) is
    exact_type`` and ``otherwise(x, ...)`` for every other element: the test is inline, so
    a C function (``list.append``) as ``func`` costs no Python call for the common type,
    and ``otherwise`` checks or converts the rest.
    """

    kind: str
    func: Callable[..., Any] | None = None
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    negate: bool = False
    may_skip: bool = False
    returns_none: bool = False
    user_func: Any = None  # the function named in errors (defaults to ``func``)
    exact_type: type | None = None  # sink: ``func`` for this exact type, ``otherwise`` else
    otherwise: Callable[..., Any] | None = None


def is_fusible(node: Stream) -> bool:
    """True if ``node`` can run inside fused code."""
    cls = type(node)
    stage = getattr(cls, "_fusion_stage", None)
    if stage is None or cls.update is not getattr(cls, "_fusion_update", None):
        return False
    from .stream import Stream

    return cls._emit is Stream._emit and node._fusion_stage() is not None  # type: ignore[attr-defined]


class CompiledGraph:
    """The fused functions for one head node's downstream graph."""

    def __init__(
        self,
        one: Callable[[Any], list[Any]],
        batch: Callable[..., Any],
        pends: bool,
        complete: bool = False,
    ):
        self.one = one
        self._batch = batch
        self._pends = pends
        #: True when every node below the head runs inside the fused code: no node there
        #: can hold an element past its ``update``, so an element's refs need no counting
        #: (it is done once ``one`` returned and its awaitables finished).
        self.complete = complete

    def batch(self, head: Stream, xs: Iterable[Any], until: Any = None) -> Iterable[list[Any]]:
        """Run ``xs`` through the graph; stop after the element during which ``until.stopped``
        became true (``xs`` should then be an iterator, which keeps the rest)."""
        if until is None:
            until = _NEVER
        if self._pends:
            return self._batch(head, xs, until)
        self._batch(head, xs, until)
        return ()


class _Writer:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.consts: dict[str, Any] = {
            "_UNSET": _UNSET,
            "_SKIP": SKIP,
            "_isawaitable": inspect.isawaitable,
        }
        self.line_info: dict[int, tuple[Any, Any, str]] = {}
        self.tracked: list[tuple[str, str]] = []  # (node const, variable)
        self.vars: list[str] = []
        self.pends = False
        self.complete = True
        self._names = itertools.count()

    def const(self, prefix: str, value: Any) -> str:
        name = f"_{prefix}{next(self._names)}"
        self.consts[name] = value
        return name

    def var(self) -> str:
        name = f"x{len(self.vars) + 1}"
        self.vars.append(name)
        return name

    def line(self, indent: int, text: str, info: tuple[Any, Any, str] | None = None) -> None:
        self.lines.append("    " * indent + text)
        if info is not None:
            self.line_info[len(self.lines)] = info  # 1-based line numbers


def _call_args(w: _Writer, stage: Stage) -> str:
    text = ""
    if stage.args:
        text += f", *{w.const('a', tuple(stage.args))}"
    if stage.kwargs:
        text += f", **{w.const('k', dict(stage.kwargs))}"
    return text


def _write_node(w: _Writer, node: Stream, invar: str, indent: int, shared: bool = False) -> None:
    stage: Stage = node._fusion_stage()  # type: ignore[attr-defined]
    user = stage.user_func if stage.user_func is not None else stage.func
    if stage.kind != "flatten":
        fn = w.const("f", stage.func)
    info = (node, user, invar)
    emits = stage.kind not in ("sink", "push")
    out = w.var() if emits else ""
    if stage.kind == "call":
        w.line(indent, f"{out} = {fn}({invar}{_call_args(w, stage)})", info)
    elif stage.kind == "starcall":
        star = f"*({invar} + {w.const('a', tuple(stage.args))})"
        kw = f", **{w.const('k', dict(stage.kwargs))}" if stage.kwargs else ""
        w.line(indent, f"{out} = {fn}({star}{kw})", info)
    elif stage.kind == "filter":
        plain = Stage("call", args=stage.args, kwargs=stage.kwargs)
        test = f"{fn}({invar}{_call_args(w, plain)})"
        w.line(indent, f"if {'not ' if stage.negate else ''}{test}:", info)
        indent += 1
        w.line(indent, f"{out} = {invar}")
    elif stage.kind == "step":
        w.line(indent, f"{out} = {fn}({invar})", info)
        if stage.may_skip:
            w.line(indent, f"if {out} is not _SKIP:")
            indent += 1
    elif stage.kind == "flatten":
        w.line(indent, f"for {out} in {invar}:", (node, None, invar))
        indent += 1
    elif stage.kind == "sink":
        r = w.var()
        if stage.exact_type is not None:
            exact = w.const("t", stage.exact_type)
            w.line(indent, f"if type({invar}) is {exact}:")
            w.line(indent + 1, f"{r} = {fn}({invar}{_call_args(w, stage)})", info)
            w.line(indent, "else:")
            other = w.const("o", stage.otherwise)
            named = stage.user_func if stage.user_func is not None else stage.otherwise
            call = f"{r} = {other}({invar}{_call_args(w, stage)})"
            w.line(indent + 1, call, (node, named, invar))
        else:
            w.line(indent, f"{r} = {fn}({invar}{_call_args(w, stage)})", info)
        if not stage.returns_none:
            w.pends = True
            w.line(indent, f"if {r} is not None and _isawaitable({r}):")
            w.line(indent + 1, f"_pend.append({r})")
        return
    elif stage.kind == "push":
        r = w.var()
        w.line(indent, f"{r} = {fn}({invar})")  # no line info: the node annotates itself
        w.line(indent, f"if {r}:")
        w.line(indent + 1, f"_pend.extend({r})")
        w.pends = True
        w.complete = False  # the node may hold the element (a window): refs are needed
        return
    else:  # pragma: no cover - a programming error in a node class
        raise ValueError(f"unknown fusion stage {stage.kind!r} for {node}")
    node_const = w.const("n", node)
    shared = shared or len(node.upstreams) > 1
    if shared:
        # written more than once (below a diamond or a cycle): the last path taken wins,
        # as in the per-element path, so record the value where it is emitted
        w.line(indent, f"{node_const}.current_value = {out}; {node_const}.current_metadata = None")
    else:
        w.tracked.append((node_const, out))
    _write_children(w, node, out, indent, shared)


def _write_children(w: _Writer, node: Stream, var: str, indent: int, shared: bool = False) -> None:
    children = list(node.downstreams)
    if not children:
        w.line(indent, "pass")  # a may_skip step (or filter/flatten) may have opened a block
        return
    if indent < _MAX_NESTING and all(is_fusible(c) for c in children):
        for child in children:
            _write_node(w, child, var, indent, shared)
        return
    w.pends = True
    w.complete = False
    r = w.var()
    w.line(indent, f"{r} = {w.const('n', node)}._emit({var})")
    w.line(indent, f"if {r}:")
    w.line(indent + 1, f"_pend.extend({r})")


def _annotator(
    code_holder: list[Any], line_info: dict[int, tuple[Any, Any, str]]
) -> Callable[[BaseException], None]:
    def annotate(error: BaseException) -> None:
        if not isinstance(error, Exception) or isinstance(error, RecursionError):
            return
        tb = error.__traceback__
        found = None
        while tb is not None:
            if tb.tb_frame.f_code in code_holder:
                found = tb
            tb = tb.tb_next
        if found is None:
            return
        info = line_info.get(found.tb_lineno)
        if info is None:
            return
        node, func, var = info
        annotate_error(error, node, func, found.tb_frame.f_locals.get(var))

    return annotate


def compile_downstreams(head: Stream) -> CompiledGraph | None:
    """Fuse ``head``'s downstream graph, or return ``None`` if it cannot be fused."""
    children = list(head.downstreams)
    if not children or not all(is_fusible(c) for c in children):
        return None
    w = _Writer()
    body_start = len(w.lines)
    # The body is written once at indent 0 and re-indented for each of the two functions.
    _write_children(w, head, "x0", 0)
    body = w.lines[body_start:]
    body_info = dict(w.line_info)
    tracked = [(n, v) for n, v in w.tracked]
    head_const = "_head"
    init = " = ".join(w.vars) + " = _UNSET" if w.vars else "pass"
    finish = [
        f"if {v} is not _UNSET: {n}.current_value = {v}; {n}.current_metadata = None"
        for n, v in tracked
    ]

    src: list[str] = []
    info: dict[int, tuple[Any, Any, str]] = {}

    def add(indent: int, text: str) -> None:
        src.append("    " * indent + text)

    def add_body(indent: int) -> None:
        for i, text in enumerate(body, start=1):
            src.append("    " * indent + text)
            if i in body_info:
                info[len(src)] = body_info[i]

    # single element
    add(0, "def one(x0):")
    add(1, "_pend = []")
    add(1, init)
    add(1, "try:")
    add_body(2)
    add(1, "except BaseException as _e:")
    add(2, "_annotate(_e)")
    add(2, "raise")
    add(1, "finally:")
    for line in finish or ["pass"]:
        add(2, line)
    add(1, "return _pend")
    # batch
    add(0, "def batch(_head, xs, _until):")
    add(1, "_pend = []")
    add(1, init)
    add(1, "x0 = _UNSET")
    add(1, "try:")
    add(2, "for x0 in xs:")
    add_body(3)
    if w.pends:
        add(3, "if _pend:")
        add(4, "yield _pend")
        add(4, "_pend = []")
    add(3, "if _until.stopped:")
    add(4, "break")
    add(1, "except BaseException as _e:")
    add(2, "_annotate(_e)")
    add(2, "raise")
    add(1, "finally:")
    add(2, f"if x0 is not _UNSET: {head_const}.current_value = x0")
    add(2, f"if x0 is not _UNSET: {head_const}.current_metadata = None")
    for line in finish:
        add(2, line)

    code_holder: list[Any] = []
    namespace = dict(w.consts)
    namespace["_annotate"] = _annotator(code_holder, info)
    filename = f"<millstream fused graph below {head}>"
    exec(compile("\n".join(src), filename, "exec"), namespace)
    one, batch = namespace["one"], namespace["batch"]
    code_holder.extend([one.__code__, batch.__code__])
    return CompiledGraph(one, batch, w.pends, w.complete)
