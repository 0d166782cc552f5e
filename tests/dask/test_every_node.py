"""Every node registered on ``Stream`` works on a ``DaskStream`` and gives the local results.

Each case runs one node three ways: on a local stream, on a ``DaskStream`` of element
futures (``source.scatter().node(...)``), and on a ``DaskStream`` of batches
(``source.scatter().flatten().node(...)``, compared with ``source.flatten().node(...)``),
driving both with the same script of emits, clock steps and calls, then compares what
comes out after ``gather`` (or what a sink received). The list of nodes is read from
``Stream``'s registry: a node added later without a Dask version, or without a case
here, fails ``test_every_registered_node_has_a_dask_version_and_a_case``.
"""

from __future__ import annotations

import asyncio
import itertools
import operator
import types
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from distributed import Future

from millstream import Stream
from millstream.core.clock import ManualClock, SystemClock, use_clock
from millstream.dask import DaskStream, gather
from millstream.testing import wait_for
from millstream.time import CountTumbling

# the modules of millstream.dask that define its nodes (border, task nodes, client nodes)
DASK_NODE_MODULES = {
    "millstream.dask.border",
    "millstream.dask.stateless",
    "millstream.dask.stateful",
    "millstream.dask.multi_input",
    "millstream.dask.on_client",
}


def inc(x):
    return x + 1


def odd(x):
    return x % 2 == 1


def parity(x):
    return x % 2


async def double(x):
    await asyncio.sleep(0)
    return 2 * x


Step = tuple  # ("emit", input, value) | ("advance", seconds) | ("call", method) | ("settle",)


@dataclass
class Case:
    """``build(*inputs) -> node`` (kind ``node``), ``build(input, L)`` (kind ``sink``: the
    sink appends to ``L``), ``build(input) -> list`` (kind ``list``) or ``build(input,
    path)`` (kind ``file``); scripts for element inputs and for batch inputs."""

    build: Callable[..., Any]
    elements: list[Step]
    batches: list[Step]
    inputs: int = 1
    kind: str = "node"
    batch_outputs: str = "same"  # 'ends': one output per batch (the local output at its end)


def emits(*values: Any, to: int = 0) -> list[Step]:
    return [("emit", to, v) for v in values]


E = [3, 1, 4, 1, 5, 9, 2, 6]
B = [[3, 1, 4], [], [1, 5], [9, 2, 6]]
PAIRS = [(i, 10 * i) for i in range(5)]
PAIR_BATCHES = [PAIRS[:2], [], PAIRS[2:]]
TWO = [("emit", 0, 1), ("emit", 1, "a"), ("emit", 0, 2), ("emit", 0, 3), ("emit", 1, "b")]
TWO += [("emit", 1, "c"), ("emit", 0, 4)]
TWO_B = [("emit", 0, [1, 2]), ("emit", 1, ["a"]), ("emit", 0, []), ("emit", 0, [3])]
TWO_B += [("emit", 1, ["b", "c"]), ("emit", 0, [4, 5])]


def settle_each(values: list[Any]) -> list[Step]:
    return [s for v in values for s in (("emit", 0, v), ("settle",))]


CASES: dict[str, Case] = {
    "accumulate": Case(lambda s: s.accumulate(operator.add), emits(*E), emits(*B)),
    "accumulate-start-returns_state": Case(
        lambda s: s.accumulate(lambda n, x: (n + 1, (n, x)), start=0, returns_state=True),
        emits(*E),
        emits(*B),
    ),
    "buffer": Case(lambda s: s.buffer(2), emits(*E), emits(*B)),
    "collect": Case(
        lambda s: s.collect(),
        emits(1, 2) + [("call", "flush")] + emits(3) + [("call", "flush"), ("call", "flush")],
        emits([1, 2], []) + [("call", "flush")] + emits([3]) + [("call", "flush")],
    ),
    "combine_latest": Case(lambda a, b: a.combine_latest(b), TWO, TWO_B, inputs=2),
    "combine_latest-emit_on": Case(
        lambda a, b: a.combine_latest(b, emit_on=0), TWO, TWO_B, inputs=2
    ),
    "delay": Case(
        lambda s: s.delay(1),
        emits(1, 2) + [("advance", 0.5)] + emits(3) + [("advance", 0.5), ("advance", 1)],
        emits([1, 2]) + [("advance", 0.5)] + emits([3]) + [("advance", 0.5), ("advance", 1)],
    ),
    "filter": Case(lambda s: s.filter(odd), emits(*E), emits(*B)),
    "flatten": Case(
        lambda s: s.flatten(),
        emits([1, 2], [], [3]),
        emits([[1, 2], [3]], [], [[], [4]]),
    ),
    "frequencies": Case(lambda s: s.frequencies(), emits(*E), emits(*B), batch_outputs="ends"),
    "latest": Case(lambda s: s.latest(), settle_each(E[:4]), settle_each(B)),
    "map": Case(lambda s: s.map(inc), emits(*E), emits(*B)),
    "map_async": Case(lambda s: s.map_async(double, parallelism=2), emits(*E), emits(*B)),
    "partition": Case(lambda s: s.partition(3), emits(*E), emits(*B)),
    "partition-key": Case(lambda s: s.partition(2, key=parity), emits(*E), emits(*B)),
    "partition-timeout": Case(
        lambda s: s.partition(3, timeout=1),
        emits(*E[:4]) + [("settle",), ("advance", 1)] + emits(*E[4:]) + [("settle",)],
        emits(*B[:2]) + [("settle",), ("advance", 1)] + emits(*B[2:]) + [("settle",)],
    ),
    "partition-timeout-key": Case(
        lambda s: s.partition(2, timeout=1, key=parity),
        emits(*E[:5]) + [("settle",), ("advance", 1)] + emits(*E[5:]) + [("settle",)],
        emits(*B[:3]) + [("settle",), ("advance", 1)] + emits(*B[3:]) + [("settle",)],
    ),
    "partition_unique": Case(lambda s: s.partition_unique(2), emits(*E), emits(*B)),
    "partition_unique-last": Case(
        lambda s: s.partition_unique(2, key=parity, keep="last"), emits(*E), emits(*B)
    ),
    "pluck": Case(lambda s: s.pluck(1), emits(*PAIRS), emits(*PAIR_BATCHES)),
    "pluck-list": Case(lambda s: s.pluck([1, 0]), emits(*PAIRS), emits(*PAIR_BATCHES)),
    "rate_limit": Case(lambda s: s.rate_limit(0.02, clock=SystemClock()), emits(*E[:4]), emits(*B)),
    "remove": Case(lambda s: s.remove(odd), emits(*E), emits(*B)),
    "sink": Case(lambda s, L: s.sink(L.append), emits(*E), emits(*B), kind="sink"),
    "sink_to_list": Case(lambda s: s.sink_to_list(), emits(*E), emits(*B), kind="list"),
    "sink_to_textfile": Case(
        lambda s, path: s.map(str).sink_to_textfile(path), emits(*E), emits(*B), kind="file"
    ),
    "slice": Case(lambda s: s.slice(1, None, 2), emits(*E), emits(*B)),
    "slice-end": Case(lambda s: s.slice(0, 4), emits(*E), emits(*B)),
    "sliding_window": Case(lambda s: s.sliding_window(3), emits(*E), emits(*B)),
    "sliding_window-full": Case(
        lambda s: s.sliding_window(2, return_partial=False), emits(*E), emits(*B)
    ),
    "starmap": Case(lambda s: s.starmap(operator.add), emits(*PAIRS), emits(*PAIR_BATCHES)),
    "timed_window": Case(
        lambda s: s.timed_window(1),
        emits(1, 2) + [("advance", 1)] + emits(3) + [("advance", 1), ("advance", 1)],
        emits([1, 2], []) + [("advance", 1)] + emits([3]) + [("advance", 1), ("advance", 1)],
    ),
    "timed_window_unique": Case(
        lambda s: s.timed_window_unique(1, key=parity, keep="last"),
        emits(1, 2, 3) + [("advance", 1)] + emits(4) + [("advance", 1), ("advance", 1)],
        emits([1, 2], [3]) + [("advance", 1)] + emits([4]) + [("advance", 1), ("advance", 1)],
    ),
    "union": Case(lambda a, b: a.union(b), TWO, TWO_B, inputs=2),
    "unique": Case(lambda s: s.unique(), emits(*E), emits(*B)),
    "unique-maxsize": Case(lambda s: s.unique(maxsize=1), emits(*E), emits(*B)),
    "zip": Case(lambda a, b: a.zip(b, "lit"), TWO, TWO_B, inputs=2),
    "zip_latest": Case(lambda a, b: a.zip_latest(b), TWO, TWO_B, inputs=2),
}

# Sinks that write elsewhere, and event-time nodes: on a DaskStream they are the local node
# after a gather.
GATHERED_SINKS = {
    "with_timestamps": (abs,),
    "window": (CountTumbling(2), "sum"),
    "to_kafka": ("topic", {"bootstrap.servers": "127.0.0.1:9"}),
    "to_kafka_dead_letters": ("topic.dead", {"bootstrap.servers": "127.0.0.1:9"}),
    "to_mqtt": ("127.0.0.1", 1, "topic"),
    "to_parquet": ("memory://dask-gathered/out",),
    "to_postgres": ("rows", "postgresql://127.0.0.1:9/none"),
    "to_pulsar": ("pulsar://127.0.0.1:9", "topic"),
    "to_rabbitmq": ("amqp://guest:guest@127.0.0.1:9/", "", "queue"),
    "to_redis_stream": ("redis://127.0.0.1:9", "stream"),
    "to_websocket": ("ws://127.0.0.1:1",),
}


def registered_nodes() -> set[str]:
    """Every node name registered on ``Stream`` (sources, static methods, excepted), but
    ``scatter``: the way into a ``DaskStream``, and ``to_dataframe`` / ``to_batch``, which
    wrap a stream in a collection (``DataFrame(stream=DaskStream(), ...)`` is the Dask
    route for frames) instead of adding a node; all three are registered on ``Stream``
    (lazily, by ``register_lazy``) once first called."""
    names = {
        name
        for name, value in vars(Stream).items()
        if isinstance(value, types.FunctionType) and hasattr(value, "__wrapped__")
    }
    return (names - {"scatter", "to_dataframe", "to_batch"}) | {"sink_to_list"}


def test_every_registered_node_has_a_dask_version_and_a_case():
    nodes = registered_nodes()
    cased = {name.split("-")[0] for name in CASES} | set(GATHERED_SINKS)
    assert nodes - cased == set(), "nodes without a local-vs-Dask case"
    assert cased - nodes == set()
    missing = {name for name in nodes if name not in vars(DaskStream)}
    assert missing == set(), "nodes without a DaskStream version"


@pytest.mark.parametrize("name", sorted(GATHERED_SINKS))
def test_sinks_writing_elsewhere_get_gathered_values(name):
    node = getattr(Stream().scatter(), name)(*GATHERED_SINKS[name])
    assert type(node) is getattr(Stream, name).__wrapped__
    assert type(node.upstream) is gather


def _inputs(sources: list[Stream], mode: str, dask: bool) -> list[Stream]:
    out = []
    for s in sources:
        node = s.scatter() if dask else s
        out.append(node.flatten() if mode == "batches" else node)
    return out


def _settle(node: Any) -> None:
    """Wait until no element waits in a Dask node (split batches, keys on the workers)."""
    wait_for(lambda: not getattr(node, "_jobs", None), 10)


def _run(
    case: Case, mode: str, dask: bool, clock: Any, tmp_path: Any, tag: str, marks: list[int]
) -> list[Any]:
    """Run the script; locally, record after each step how much has come out (``marks``),
    on Dask wait after each step until as much has come out (so that clock steps find the
    same state: a window is not closed while the previous one is still being gathered)."""
    sources = [Stream() for _ in range(case.inputs)]
    inputs = _inputs(sources, mode, dask)
    collected: list[Any] = []
    path = tmp_path / f"{tag}.txt"
    node: Any = None
    if case.kind == "node":
        node = case.build(*inputs)
        if dask:
            assert isinstance(node, DaskStream)
            assert type(node).__module__ in DASK_NODE_MODULES
            collected = node.gather().sink_to_list()
        else:
            collected = node.sink_to_list()
    elif case.kind == "sink":
        node = case.build(inputs[0], collected)
    elif case.kind == "list":
        collected = case.build(inputs[0])
    else:
        node = case.build(inputs[0], str(path))
    script = case.batches if mode == "batches" else case.elements
    out: Any = _Lines(path) if case.kind == "file" else collected
    for i, step in enumerate(script):
        if step[0] == "emit":
            sources[step[1]].emit(step[2])
        elif step[0] == "advance":
            clock.advance(step[1])
        elif step[0] == "call":
            getattr(node, step[1])()
        elif dask:
            _settle(node)
        clock.advance(0)  # let the loop run what the step started
        if not dask:
            marks.append(len(out))
        elif case.batch_outputs == "same" or mode == "elements":
            wait_for(lambda i=i: len(out) >= marks[i], 10)
    return out  # type: ignore[no-any-return]


class _Lines:
    """The lines of a file, read afresh each time (a sink behind ``gather`` writes later)."""

    def __init__(self, path: Any):
        self.path = path

    def read(self) -> list[str]:
        return self.path.read_text().split() if self.path.exists() else []

    def __len__(self) -> int:
        return len(self.read())


def _values(out: Any, client: Any) -> list[Any]:
    """What came out so far, as values (a sink of futures: gathered once all have finished)."""
    if isinstance(out, _Lines):
        return out.read()
    values = list(out)
    if values and isinstance(values[0], Future):
        if not all(f.status == "finished" for f in values):
            return []
        values = client.gather(values)
    return values


def _expected_per_batch(case: Case, local: list[Any]) -> list[Any]:
    """The local output at the end of each batch (``frequencies``: one table per batch)."""
    out, seen, last = [], 0, {}
    for step in case.batches:
        if step[0] == "emit":
            seen += len(step[2])
            last = local[seen - 1] if seen else {}
            out.append(last)
    return out


@pytest.mark.parametrize("mode", ["elements", "batches"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_local_and_dask_give_the_same_results(name, mode, client, manual_clock, tmp_path):
    case = CASES[name]
    marks: list[int] = []
    local = _run(case, mode, False, manual_clock, tmp_path, "local", marks)
    dask_clock = ManualClock()  # a clock of its own: its steps must not move the local graph
    with use_clock(dask_clock):
        remote = _run(case, mode, True, dask_clock, tmp_path, "dask", marks)
    if case.kind in ("sink", "list"):
        assert all(isinstance(f, Future) for f in remote)

    def expected() -> list[Any]:
        values = _values(local, client)
        if mode == "batches" and case.batch_outputs == "ends":
            return _expected_per_batch(case, values)
        return values

    # local nodes may still be emitting (buffer, latest…): compare once both have caught up
    try:
        wait_for(lambda: expected() and _values(remote, client) == expected(), 10)
    finally:
        assert expected(), "the case must produce something"
        assert _values(remote, client) == expected()


def test_element_futures_keep_streamz_shapes(client):
    """On element futures, client-side nodes emit futures or tuples of futures, as in Streamz."""
    source = Stream()
    scattered = source.scatter()
    outputs = {
        "partition": scattered.partition(2).sink_to_list(),
        "sliding_window": scattered.sliding_window(2).sink_to_list(),
        "zip": scattered.zip(scattered).sink_to_list(),
        "map": scattered.map(inc).sink_to_list(),
        "accumulate": scattered.accumulate(operator.add).sink_to_list(),
    }
    for i in range(4):
        source.emit(i)
    for name in ("partition", "sliding_window", "zip"):
        assert outputs[name] and all(isinstance(f, Future) for t in outputs[name] for f in t), name
    assert all(isinstance(f, Future) for f in itertools.chain(outputs["map"]))
    assert client.gather(outputs["accumulate"]) == [0, 1, 3, 6]
