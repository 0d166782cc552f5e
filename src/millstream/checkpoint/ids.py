"""Stable node ids: what a checkpoint files each node's state under.

A node's id is the user's name for it (``stream_name=``, ``Stream.name``) when it has one,
otherwise a path derived from the graph's shape: the chain of node types from a source
down to the node, each step with its position among the same-type downstreams of its
parent, e.g. ``from_iterable/map/flatten/frequencies`` or ``Stream#1/map#2``. The same
code builds the same graph, so it gets the same ids on every run; a graph changed by an
edit gets different ids for the nodes whose position changed, which is how a checkpoint
taken from another graph is told apart (:func:`check_same_graph`).

How the path is built, so that it does not depend on anything but the code:

* the graph is everything connected to the node(s) given, found by walking upstreams and
  downstreams in list order (the order in which the code wired them);
* sources (nodes without upstreams) are numbered by type in the order that walk meets
  them; a node's parent is its first upstream;
* among a parent's downstreams, nodes of the same type are numbered in creation order
  (``#1``, ``#2``... only when there are several);
* a named node's id is its name, and its descendants' paths start from that name, so
  naming a node keeps the ids below it stable when the graph above it changes.

Examples
--------
>>> from millstream import Stream
>>> source = Stream()
>>> counts = source.map(str.split).flatten().frequencies()
>>> sink = counts.sink(print)
>>> sorted(node_ids(source).values())
['Stream', 'Stream/map', 'Stream/map/flatten', 'Stream/map/flatten/frequencies', 'Stream/map/flatten/frequencies/sink']
>>> named = source.map(len, stream_name='lengths')
>>> node_ids(source)[named]
'lengths'
"""  # noqa: E501

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from ..core.stream import Stream
from ..exceptions import MillstreamError

__all__ = ["GraphMismatchError", "check_same_graph", "graph_nodes", "node_ids"]


class GraphMismatchError(MillstreamError, ValueError):
    """A checkpoint's node ids do not match the graph it is restored into."""


def graph_nodes(*nodes: Stream) -> list[Stream]:
    """Every node connected to ``nodes`` (upstream or downstream, and the dead-letter
    streams of their ``on_error`` policies), in the order of a walk that follows
    upstreams, then downstreams, in list order, then dead-letter streams."""
    seen: dict[int, Stream] = {}
    pending = list(reversed(nodes))
    while pending:
        node = pending.pop()
        if id(node) in seen:
            continue
        seen[id(node)] = node
        # pushed in reverse so that the first upstream is visited first
        nexts = [u for u in node.upstreams if u is not None] + list(node.downstreams)
        nexts += _dead_letter_streams(node)
        pending.extend(reversed(nexts))
    return list(seen.values())


def _dead_letter_streams(node: Stream) -> list[Stream]:
    """The streams ``node``'s ``on_error`` policy sends dead letters to (none usually)."""
    policy = getattr(node, "error_policy", None)
    if policy is None:
        return []
    found = [getattr(policy, "dead_letters", None)]
    retry = getattr(policy, "retry", None)
    found.append(getattr(retry, "then", None))
    return [s for s in found if isinstance(s, Stream)]


def node_ids(*nodes: Stream) -> dict[Stream, str]:
    """The stable id of every node of the graph(s) ``nodes`` belong to (see the module).

    Raises ``ValueError`` if two nodes of the graph have the same name.
    """
    walk = graph_nodes(*nodes)
    names = Counter(n.name for n in walk if n.name)
    twice = sorted(name for name, count in names.items() if count > 1)
    if twice:
        raise ValueError(
            f"node names must be unique within a graph to identify their state: {twice} "
            "name more than one node"
        )
    ids: dict[Stream, str] = {}
    roots = [n for n in walk if _first_upstream(n) is None]
    root_paths = _numbered((type(r).__name__, r) for r in roots)
    pending: list[tuple[Stream, str]] = [(r, root_paths[id(r)]) for r in reversed(roots)]
    while pending:
        node, path = pending.pop()
        if node in ids:
            continue
        ids[node] = node.name or path
        base = ids[node]
        children = [d for d in node.downstreams if d not in ids and _first_upstream(d) is node]
        child_paths = _numbered((type(d).__name__, d) for d in children)
        pending.extend((d, f"{base}/{child_paths[id(d)]}") for d in reversed(children))
    # nodes no source leads to through first upstreams (a loop of nodes): in walk order
    left = [n for n in walk if n not in ids]
    paths = _numbered((type(n).__name__, n) for n in left)
    for node in left:
        ids[node] = node.name or f"loop:{paths[id(node)]}"
    return ids


def _first_upstream(node: Stream) -> Stream | None:
    """The node's parent in the id tree (every upstream is in the walk: it follows them)."""
    return next((u for u in node.upstreams if u is not None), None)


def _numbered(items: Iterable[tuple[str, Stream]]) -> dict[int, str]:
    """``type`` for a type that occurs once, ``type#k`` (k from 1) for repeated ones."""
    items = list(items)
    totals = Counter(kind for kind, _ in items)
    seen: Counter[str] = Counter()
    out = {}
    for kind, node in items:
        seen[kind] += 1
        out[id(node)] = kind if totals[kind] == 1 else f"{kind}#{seen[kind]}"
    return out


def check_same_graph(saved: Iterable[str], current: Iterable[str]) -> None:
    """Refuse state saved from another graph: raise :class:`GraphMismatchError` naming the
    ids only one side has.

    >>> check_same_graph(['Stream/map', 'Stream'], ['Stream', 'Stream/map'])
    >>> check_same_graph(['Stream/accumulate'], ['Stream/map'])
    Traceback (most recent call last):
    ...
    millstream.checkpoint.ids.GraphMismatchError: the checkpoint was taken from another graph: state of ['Stream/accumulate'] has no node here, and ['Stream/map'] have no state in it
    """  # noqa: E501
    saved_set, current_set = set(saved), set(current)
    if saved_set == current_set:
        return
    raise GraphMismatchError(
        "the checkpoint was taken from another graph: state of "
        f"{sorted(saved_set - current_set)} has no node here, and "
        f"{sorted(current_set - saved_set)} have no state in it"
    )
