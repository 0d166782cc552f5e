"""/metrics: Prometheus' text format, parsed back, equals the nodes' metrics."""

from __future__ import annotations

import urllib.request

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from millstream import Stream
from millstream.checkpoint import enable
from millstream.core import Stream as CoreStream
from millstream.metrics import GraphCollector, collect, exposition, serve
from millstream.testing import run_pipeline


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def node_sample(found: dict, name: str, node: str) -> float:
    matches = [v for (n, labels), v in found.items() if n == name and ("node", node) in labels]
    assert len(matches) == 1, (name, node, matches)
    return matches[0]


def test_metrics_endpoint_equals_node_metrics(tmp_path):
    source = Stream.from_iterable(range(-5, 10), stream_name="numbers")
    inverse = source.map(lambda x: 1 / x, on_error="skip")
    words = inverse.map(lambda x: [x, x]).flatten()
    out = words.sink_to_list()
    checkpoints = enable(source, tmp_path / "ckpt", interval=None)
    run_pipeline(source)
    assert checkpoints.checkpoint() is not None
    with serve(source) as server, urllib.request.urlopen(server.url + "metrics") as reply:
        assert reply.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = reply.read().decode()
    found = samples(text)
    for node, node_id in (
        (source, "numbers"),
        (inverse, "numbers/map"),
        (words, "numbers/map/map/flatten"),
    ):
        m = node.metrics
        assert node_sample(found, "millstream_elements_total", node_id) == m["elements_out"]
        assert node_sample(found, "millstream_errors_total", node_id) == m["errors"]
        assert node_sample(found, "millstream_dead_letters_total", node_id) == m["dead_letters"]
    assert node_sample(found, "millstream_elements_total", "numbers") == 15
    assert node_sample(found, "millstream_elements_in_total", "numbers/map") == 15
    assert node_sample(found, "millstream_errors_total", "numbers/map") >= 1  # 1 / 0
    assert node_sample(found, "millstream_elements_total", "numbers/map/map/flatten") == len(out)
    assert not [
        k for k in found if k[0] == "millstream_elements_in_total" and ("node", "numbers") in k[1]
    ]  # a source has no elements in
    map_labels = [k[1] for k in found if k[0] == "millstream_elements_total"]
    assert (("node", "numbers/map"), ("type", "map")) in map_labels
    info = checkpoints.last
    assert found[("millstream_checkpoint_last_id", ())] == info.id
    assert found[("millstream_checkpoints_total", ())] == 1
    assert found[("millstream_checkpoint_size_bytes", ())] == info.size
    assert found[("millstream_checkpoint_duration_seconds", ())] == info.duration_s
    assert 0 <= found[("millstream_checkpoint_age_seconds", ())] < 60
    checkpoints.close()


class Lagging(CoreStream):
    """A node reporting a watermark, a lag per partition and something unknown."""

    def extra_metrics(self):
        return {
            "watermark": 1_700_000_000.5,
            "lag_by_partition": {0: 4, 1: 6},
            "lag": 10,
            "backlog": 3,
            "colour": "blue",
            "position": {"0": 12},
        }


def test_watermark_lag_backlog_and_unknown_fields():
    node = Lagging(stream_name="source")
    found = samples(exposition(collect(node)).decode())
    assert (
        found[("millstream_watermark_seconds", (("node", "source"), ("type", "Lagging")))]
        == 1_700_000_000.5
    )
    lag = {labels: v for (name, labels), v in found.items() if name == "millstream_source_lag"}
    assert lag == {
        (("node", "source"), ("partition", "0"), ("type", "Lagging")): 4,
        (("node", "source"), ("partition", "1"), ("type", "Lagging")): 6,
        (("node", "source"), ("partition", ""), ("type", "Lagging")): 10,
    }
    assert node_sample(found, "millstream_backlog", "source") == 3
    assert not [k for k in found if "colour" in k[0] or "position" in k[0]]


def test_a_non_finite_watermark_is_left_out_and_a_collector_registers():
    class Early(CoreStream):
        def extra_metrics(self):
            return {"watermark": float("-inf")}

    registry = CollectorRegistry()
    registry.register(GraphCollector(Early(stream_name="early")))
    text = generate_latest(registry).decode()
    assert "millstream_watermark_seconds" not in text
    assert 'millstream_elements_total{node="early",type="Early"} 0.0' in text
