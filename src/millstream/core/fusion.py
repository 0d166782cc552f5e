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
import operator
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .._utils import annotate_error
from .sampling import TIMING

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
_FLUSH_EVERY = 1024  # a batch of unknown size adds up its counts every so many elements


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


_SIZED_ITERATORS: tuple[type, ...] = (type(iter([])), type(iter(())), type(iter(range(0))))


class CompiledGraph:
    """The fused functions for one head node's downstream graph."""

    def __init__(
        self,
        one: Callable[[Any], list[Any]],
        batch_counted: Callable[..., Any],
        batch_sized: Callable[..., Any],
        pends: bool,
        complete: bool = False,
    ):
        self.one = one
        self._batch_counted = batch_counted
        self._batch_sized = batch_sized
        self._pends = pends
        #: True when every node below the head runs inside the fused code: no node there
        #: can hold an element past its ``update``, so an element's refs need no counting
        #: (it is done once ``one`` returned and its awaitables finished).
        self.complete = complete

    def batch(self, head: Stream, xs: Iterable[Any], until: Any = None) -> Iterable[list[Any]]:
        """Run ``xs`` through the graph; stop after the element during which ``until.stopped``
        became true (``xs`` should then be an iterator, which keeps the rest).

        A list, a tuple or an iterator over one knows how many elements it has left, so the
        head's elements are counted from that after the batch, not one by one."""
        if until is None:
            until = _NEVER
        if TIMING[0]:  # a sampling window: the per-element path, timed
            return head._emit_each(xs, until)
        if type(xs) in (list, tuple):
            xs = iter(xs)
        run = self._batch_sized if type(xs) in _SIZED_ITERATORS else self._batch_counted
        if self._pends:
            return run(head, xs, until)
        run(head, xs, until)
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
        # element counting: one counter per block of the generated code (the top block
        # ``_c0`` holds the head's elements; a filter, a skipping step and a flatten each
        # open one), and the nodes whose emitted elements a counter counts
        self.block_parent: dict[str, str | None] = {"_c0": None}
        self.counted: list[tuple[str, str, int]] = []  # (node const, counter, position)
        self.line_block: dict[int, str] = {}  # body line -> its block's counter
        self.current_block = "_c0"

    def block(self, indent: int, parent: str) -> str:
        """Open a counted block below ``parent``: its first line counts an element in."""
        counter = f"_c{len(self.block_parent)}"
        self.block_parent[counter] = parent
        self.line(indent, f"{counter} += 1", block=counter)
        self.current_block = counter
        return counter

    def const(self, prefix: str, value: Any) -> str:
        name = f"_{prefix}{next(self._names)}"
        self.consts[name] = value
        return name

    def var(self) -> str:
        name = f"x{len(self.vars) + 1}"
        self.vars.append(name)
        return name

    def line(
        self,
        indent: int,
        text: str,
        info: tuple[Any, Any, str] | None = None,
        block: str | None = None,
    ) -> None:
        self.lines.append("    " * indent + text)
        if info is not None:
            self.line_info[len(self.lines)] = info  # 1-based line numbers
        self.line_block[len(self.lines)] = self.current_block if block is None else block


def _call_args(w: _Writer, stage: Stage) -> str:
    text = ""
    if stage.args:
        text += f", *{w.const('a', tuple(stage.args))}"
    if stage.kwargs:
        text += f", **{w.const('k', dict(stage.kwargs))}"
    return text


def _write_node(
    w: _Writer, node: Stream, invar: str, indent: int, block: str, shared: bool = False
) -> None:
    w.current_block = block
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
        block = w.block(indent, block)
        w.line(indent, f"{out} = {invar}")
    elif stage.kind == "step":
        w.line(indent, f"{out} = {fn}({invar})", info)
        if stage.may_skip:
            w.line(indent, f"if {out} is not _SKIP:")
            indent += 1
            block = w.block(indent, block)
    elif stage.kind == "flatten":
        w.line(indent, f"for {out} in {invar}:", (node, None, invar))
        indent += 1
        block = w.block(indent, block)
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
    position = len(w.lines)  # the line after which this node has emitted the element
    node_const = w.const("n", node)
    shared = shared or len(node.upstreams) > 1
    if shared:
        # written more than once (below a diamond or a cycle): the last path taken wins,
        # as in the per-element path, so record the value where it is emitted
        w.line(indent, f"{node_const}.current_value = {out}; {node_const}.current_metadata = None")
    else:
        w.tracked.append((node_const, out))
    if _write_children(w, node, out, indent, block, shared):
        w.counted.append((node_const, block, position))


def _write_children(
    w: _Writer, node: Stream, var: str, indent: int, block: str, shared: bool = False
) -> bool:
    """Write ``node``'s downstreams below it; return False if they are reached through
    ``node._emit`` (which then counts ``node``'s elements itself)."""
    children = list(node.downstreams)
    w.current_block = block
    if not children:
        w.line(indent, "pass")  # a may_skip step (or filter/flatten) may have opened a block
        return True
    if indent < _MAX_NESTING and all(is_fusible(c) for c in children):
        for child in children:
            _write_node(w, child, var, indent, block, shared)
        return True
    w.pends = True
    w.complete = False
    r = w.var()
    w.current_block = block
    w.line(indent, f"{r} = {w.const('n', node)}._emit({var})")
    w.line(indent, f"if {r}:")
    w.line(indent + 1, f"_pend.extend({r})")
    return False


def _annotator(
    code_holder: list[Any],
    line_info: dict[int, tuple[Any, Any, str]],
    body_lines: dict[int, int],
    w: _Writer,
    nodes: dict[str, Any],
) -> Callable[[BaseException], None]:
    def failing_line(error: BaseException) -> Any:
        tb = error.__traceback__
        found = None
        while tb is not None:
            if tb.tb_frame.f_code in code_holder:
                found = tb
            tb = tb.tb_next
        return found

    def uncount(body_line: int) -> None:
        # The block counters counted this element into every node of the failing line's
        # block (and the blocks around it) on entry: the nodes at or after the failing
        # line did not emit it.
        blocks = set()
        block: str | None = w.line_block.get(body_line)
        while block is not None:
            blocks.add(block)
            block = w.block_parent[block]
        for name, counter, position in w.counted:
            if counter in blocks and position >= body_line:
                nodes[name].elements_emitted -= 1

    def annotate(error: BaseException) -> None:
        found = failing_line(error)
        if found is None:
            return
        body_line = body_lines.get(found.tb_lineno)
        if body_line is not None:
            uncount(body_line)
        if not isinstance(error, Exception) or isinstance(error, RecursionError):
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
    # The body is written once at indent 0 and re-indented for each of the functions.
    _write_children(w, head, "x0", 0, "_c0")
    body = list(w.lines)
    body_info = dict(w.line_info)
    tracked = [(n, v) for n, v in w.tracked]
    init = " = ".join(w.vars) + " = _UNSET" if w.vars else "pass"
    counters = list(w.block_parent)
    zero = " = ".join(counters) + " = 0"
    finish = [
        f"if {v} is not _UNSET: {n}.current_value = {v}; {n}.current_metadata = None"
        for n, v in tracked
    ]

    def flush(include_head: bool) -> list[str]:
        """Add the counters to the nodes they count (the head counts itself in ``one``)."""
        lines = []
        for counter in counters:
            targets = [n for n, c, _ in w.counted if c == counter]
            if include_head and counter == "_c0":
                targets.insert(0, "_head")
            if targets:
                lines.append(f"if {counter}:")
                lines.extend(f"    {t}.elements_emitted += {counter}" for t in targets)
        return lines

    src: list[str] = []
    info: dict[int, tuple[Any, Any, str]] = {}
    body_lines: dict[int, int] = {}

    def add(indent: int, *texts: str) -> None:
        src.extend("    " * indent + text for text in texts)

    def add_body(indent: int) -> None:
        for i, text in enumerate(body, start=1):
            src.append("    " * indent + text)
            body_lines[len(src)] = i
            if i in body_info:
                info[len(src)] = body_info[i]

    def add_handlers(head_value: bool, include_head: bool) -> None:
        add(1, "except BaseException as _e:")
        add(2, "_annotate(_e)", "raise")
        add(1, "finally:")
        if head_value:
            add(2, "if x0 is not _UNSET: _head.current_value = x0")
            add(2, "if x0 is not _UNSET: _head.current_metadata = None")
        add(2, *finish)
        if not include_head:
            add(2, *flush(include_head))
        if not (finish or flush(include_head)) and not head_value:
            add(2, "pass")

    # single element (the head counted it in ``_emit``)
    add(0, "def one(x0):")
    add(1, "_pend = []", init, zero, "_c0 = 1", "try:")
    add_body(2)
    add_handlers(head_value=False, include_head=False)
    add(1, "return _pend")
    # batches: counted one by one, or from what a sized iterator has left
    for name, sized in (("batch_counted", False), ("batch_sized", True)):
        add(0, f"def {name}(_head, xs, _until):")
        add(1, "_pend = []", init, zero, "x0 = _UNSET")
        if sized:
            add(1, "_left = _length_hint(xs)")
        add(1, "try:", "    for x0 in xs:")
        if not sized:
            add(3, "_c0 += 1")
        add_body(3)
        if w.pends:
            add(3, "if _pend:")
            if sized:
                add(4, "_c0 = _left - _length_hint(xs); _left -= _c0")
            add(4, *flush(True), zero, "yield _pend", "_pend = []")
        if not sized:
            add(3, f"if _c0 >= {_FLUSH_EVERY}:")
            add(4, *flush(True), zero)
        add(3, "if _until.stopped:", "    break")
        add_handlers(head_value=True, include_head=True)
        if sized:
            add(2, "_c0 = _left - _length_hint(xs)")
        add(2, *flush(True))

    code_holder: list[Any] = []
    namespace = dict(w.consts)
    namespace["_length_hint"] = operator.length_hint
    namespace["_annotate"] = _annotator(code_holder, info, body_lines, w, namespace)
    filename = f"<millstream fused graph below {head}>"
    exec(compile("\n".join(src), filename, "exec"), namespace)
    one = namespace["one"]
    counted, sized = namespace["batch_counted"], namespace["batch_sized"]
    code_holder.extend([one.__code__, counted.__code__, sized.__code__])
    return CompiledGraph(one, counted, sized, w.pends, w.complete)
