"""Stable node ids (millstream.checkpoint.ids): the same code gives the same ids, in this
process and in another one; an edited graph is told apart."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from millstream import Stream
from millstream.checkpoint import GraphMismatchError, check_same_graph, graph_nodes, node_ids

BUILD = textwrap.dedent(
    """
    from millstream import Stream

    def build():
        source = Stream()
        words = source.map(str.split).flatten()
        counts = words.frequencies()
        counts.sink(print)
        lengths = words.map(len).accumulate(lambda a, b: a + b, start=0)
        lengths.sink(print)
        other = Stream()
        pairs = source.zip(other)
        pairs.sink(print)
        return source
    """
)


def build() -> Stream:
    namespace: dict = {}
    exec(BUILD, namespace)
    return namespace["build"]()


def by_id(source: Stream) -> dict[str, str]:
    return {i: type(n).__name__ for n, i in node_ids(source).items()}


def test_every_node_gets_a_unique_path_of_types():
    source = build()
    ids = node_ids(source)
    assert len(ids) == len(graph_nodes(source)) == 11
    assert len(set(ids.values())) == len(ids)
    assert set(ids.values()) == {
        "Stream#1",
        "Stream#1/map",
        "Stream#1/map/flatten",
        "Stream#1/map/flatten/frequencies",
        "Stream#1/map/flatten/frequencies/sink",
        "Stream#1/map/flatten/map",
        "Stream#1/map/flatten/map/accumulate",
        "Stream#1/map/flatten/map/accumulate/sink",
        "Stream#1/zip",  # under its first upstream only
        "Stream#1/zip/sink",
        "Stream#2",  # the zip's second input: a source of its own
    }


def test_the_same_code_gives_the_same_ids_from_any_node_and_in_another_process():
    first, second = build(), build()
    assert by_id(first) == by_id(second)
    # walking from a node further down finds the same graph and the same ids
    leaf = first.downstreams[0].downstreams[0].downstreams[0]  # frequencies
    assert sorted(node_ids(leaf).values()) == sorted(node_ids(first).values())
    code = BUILD + (
        "\nfrom millstream.checkpoint import node_ids\nimport json\n"
        "print(json.dumps(sorted(node_ids(build()).values())))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "123", **os.environ},
    )
    assert json.loads(out.stdout) == sorted(node_ids(first).values())


def test_same_type_siblings_are_numbered_in_creation_order():
    source = Stream()
    a = source.map(abs)
    b = source.map(str)
    c = source.filter(bool)
    ids = node_ids(source)
    assert (ids[a], ids[b], ids[c]) == ("Stream/map#1", "Stream/map#2", "Stream/filter")


def test_a_named_node_is_its_name_and_anchors_the_ids_below_it():
    source = Stream()
    counts = source.map(str.split, stream_name="split").flatten().frequencies()
    ids = node_ids(source)
    assert ids[counts] == "split/flatten/frequencies"
    # a node added above the named one does not move the ids below it
    source2 = Stream()
    counts2 = source2.filter(bool).map(str.split, stream_name="split").flatten().frequencies()
    assert node_ids(source2)[counts2] == "split/flatten/frequencies"


def test_duplicate_names_are_refused():
    source = Stream()
    source.map(abs, stream_name="x")
    source.map(str, stream_name="x")
    with pytest.raises(ValueError, match=r"unique.*\['x'\]"):
        node_ids(source)


def test_a_loop_without_source_still_gets_distinct_ids():
    a, b = Stream(), Stream()
    a.connect(b)
    b.connect(a)
    ids = node_ids(a)
    assert sorted(ids.values()) == ["loop:Stream#1", "loop:Stream#2"]


def test_state_from_another_graph_is_refused_with_the_ids_that_differ():
    saved = node_ids(build()).values()
    check_same_graph(saved, node_ids(build()).values())
    edited = Stream()
    edited.map(str.split).map(len)  # not the saved graph
    with pytest.raises(GraphMismatchError) as caught:
        check_same_graph(saved, node_ids(edited).values())
    message = str(caught.value)
    assert "'Stream#1/map/flatten/frequencies'" in message  # state with no node
    assert "'Stream/map/map'" in message  # node with no state
    assert isinstance(caught.value, ValueError)
