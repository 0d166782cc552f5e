"""``node.metrics`` and ``millstream.metrics.collect``: what a running graph reports."""

from __future__ import annotations

import time

import pytest

from millstream import Stream
from millstream.checkpoint import checkpoints_of, enable
from millstream.core.sampling import seconds_per_element, timing
from millstream.metrics import collect, metric_ids
from millstream.testing import wait_for


def test_a_running_graph_reports_every_node_with_its_upstreams():
    source = Stream.from_iterable(range(1000))
    words = source.map(lambda x: ["w"] * (x % 3)).flatten()
    words.sink_to_list()
    odd = source.filter(lambda x: x % 2)
    odd.sink_to_list()
    source.start()
    wait_for(lambda: source.stopped, 10)
    graph = collect(source)
    by_id = {n["id"]: n for n in graph["nodes"]}
    assert set(by_id) == {
        "from_iterable",
        "from_iterable/map",
        "from_iterable/map/flatten",
        "from_iterable/map/flatten/sink",
        "from_iterable/filter",
        "from_iterable/filter/sink",
    }
    assert by_id["from_iterable"]["elements_in"] is None
    assert by_id["from_iterable"]["elements_out"] == 1000
    assert by_id["from_iterable/map/flatten"]["elements_in"] == 1000
    assert by_id["from_iterable/map/flatten"]["elements_out"] == sum(x % 3 for x in range(1000))
    assert by_id["from_iterable/filter"]["elements_out"] == 500
    assert by_id["from_iterable/filter/sink"]["elements_in"] == 500
    assert by_id["from_iterable/filter"]["upstreams"] == ["from_iterable"]
    assert all(n["errors"] == 0 for n in graph["nodes"])
    assert graph["checkpoints"] is None
    assert abs(graph["time"] - time.time()) < 5


def test_errors_and_dead_letters_are_counted_per_node():
    source = Stream()
    dead = Stream(stream_name="dead")
    letters = dead.sink_to_list()
    parsed = source.map(int, on_error=dead, stream_name="parse")
    parsed.sink_to_list()
    for x in ["1", "x", "2", "y", "3"]:
        source.emit(x)
    by_id = {n["id"]: n for n in collect(source)["nodes"]}
    assert by_id["parse"]["errors"] == 2
    assert by_id["parse"]["dead_letters"] == 2
    assert by_id["parse"]["elements_out"] == 3
    assert by_id["dead"]["elements_out"] == len(letters) == 2


def test_an_error_that_stops_the_source_is_counted_where_it_was_raised():
    source = Stream.from_iterable([1, 2, 0, 4])
    inverse = source.map(lambda x: 1 / x)
    inverse.sink_to_list()
    source.start()
    wait_for(lambda: source.stopped, 10)
    assert isinstance(source.error, ZeroDivisionError)
    assert inverse.metrics["errors"] == 1
    assert inverse.metrics["elements_in"] == 3
    assert inverse.metrics["elements_out"] == 2


def test_two_nodes_with_one_name_get_numbered_ids():
    source = Stream()
    a = source.map(abs, stream_name="same")
    b = source.map(str, stream_name="same")
    ids = metric_ids(source)
    assert sorted([ids[a], ids[b]]) == ["same", "same#2"]


def test_sampled_time_per_element_is_each_nodes_own_work():
    source = Stream()
    slow = source.map(lambda x: time.sleep(0.003) or x)
    fast = slow.map(lambda x: x)
    fast.sink_to_list()
    for x in range(3):
        source.emit(x)  # not timed
    assert slow.metrics["seconds_per_element"] is None
    with timing():
        for x in range(5):
            source.emit(x)
    assert 0.003 <= slow.metrics["seconds_per_element"] < 0.05
    assert fast.metrics["seconds_per_element"] < 0.003  # the slow node's time is not its
    assert slow.timed_elements == fast.timed_elements == 5
    assert seconds_per_element(source) is None  # a source's own work is not timed
    assert slow.metrics["elements_out"] == 8  # counted on both paths


def test_checkpoints_of_a_graph_are_in_its_metrics(tmp_path):
    source = Stream.from_iterable(range(100))
    source.map(abs).sink_to_list()
    checkpoints = enable(source, tmp_path / "cp", interval=None)
    assert checkpoints_of(source.downstreams[0]) is checkpoints
    source.start()
    wait_for(lambda: source.stopped, 10)
    checkpoints.checkpoint()
    graph = collect(source)
    assert graph["checkpoints"]["last_id"] == checkpoints.last.id
    assert graph["checkpoints"]["taken"] >= 1
    assert graph["checkpoints"]["last_size_bytes"] > 0
    assert graph["checkpoints"]["last_age_s"] >= 0
    checkpoints.close(final=False)
    assert checkpoints_of(source) is None


@pytest.mark.parametrize("every", [0.05])
def test_the_sampler_times_a_running_graph(every):
    """The real sampler (a thread opening windows), in a child process: the suite keeps
    it off (tests/conftest.py)."""
    import subprocess
    import sys

    code = (
        "import itertools\n"
        "from millstream import Stream\n"
        "from millstream.testing import wait_for\n"
        "source = Stream.from_iterable(itertools.count())\n"
        "work = source.map(lambda x: sum(range(50)))\n"
        "work.sink(lambda x: None)\n"
        "source.start()\n"
        "wait_for(lambda: work.timed_elements > 0 and work.elements_emitted > 100000, 60)\n"
        "source.stop()\n"
        "m = work.metrics\n"
        "assert m['elements_out'] == work.elements_emitted > 100000, m\n"
        "assert m['seconds_per_element'] is not None and 0 < m['seconds_per_element'] < 1e-3, m\n"
        "assert 0 < work.timed_elements < work.elements_emitted, work.timed_elements\n"
        "print('ok', work.timed_elements)\n"
    )
    env = {**__import__("os").environ, "MILLSTREAM_SAMPLE_EVERY": str(every)}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ok")
