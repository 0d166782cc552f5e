"""The metrics server: JSON, server-sent events with current rates, the page and its
files, and stop() freeing the port."""

from __future__ import annotations

import asyncio
import json
import socket
import urllib.request

import aiohttp
import pytest

from millstream import Stream
from millstream.metrics import MetricsServer, serve


def graph() -> tuple[Stream, Stream, list[int]]:
    source = Stream(stream_name="numbers")
    doubled = source.map(lambda x: 2 * x)
    out = doubled.filter(lambda x: x % 3 == 0).sink_to_list()
    return source, doubled, out


def get(url: str) -> tuple[str, bytes]:
    with urllib.request.urlopen(url, timeout=10) as reply:
        return reply.headers["Content-Type"], reply.read()


def by_id(data: dict) -> dict[str, dict]:
    return {node["id"]: node for node in data["nodes"]}


def test_json_endpoint_has_every_node_with_totals_and_rates():
    source, doubled, out = graph()
    for i in range(30):
        source.emit(i)
    with serve(source, interval=0.2) as server:
        assert isinstance(server, MetricsServer)
        assert server.port > 0 and server.url == f"http://127.0.0.1:{server.port}/"
        content_type, body = get(server.url + "api/metrics")
    assert content_type.startswith("application/json")
    data = json.loads(body)
    nodes = by_id(data)
    assert set(nodes) == {"numbers", "numbers/map", "numbers/map/filter", "numbers/map/filter/sink"}
    assert nodes["numbers/map"]["elements_out"] == doubled.metrics["elements_out"] == 30
    assert nodes["numbers/map"]["upstreams"] == ["numbers"]
    assert nodes["numbers/map/filter"]["elements_out"] == len(out) == 10
    assert "rate" in nodes["numbers/map"] and "rate_in" in nodes["numbers/map"]
    assert data["checkpoints"] is None and data["interval_s"] == 0.2


def test_events_show_the_current_rate_not_the_average():
    source, doubled, _ = graph()
    with serve(source, interval=0.25) as server:
        # read events until the map moved, then two more: the rate drops to 0
        async def run() -> list[dict]:
            loop = asyncio.get_running_loop()
            moving = loop.create_future()
            events: list[dict] = []

            async def feed() -> None:
                i = 0
                while not moving.done():
                    for _ in range(50):
                        source.emit(i)
                        i += 1
                    await asyncio.sleep(0.01)

            feeding = asyncio.ensure_future(feed())
            async with (
                aiohttp.ClientSession() as session,
                session.get(server.url + "events") as r,
            ):
                assert r.headers["Content-Type"].startswith("text/event-stream")
                async for raw in r.content:
                    line = raw.decode().strip()
                    if not line.startswith("data: "):
                        continue
                    events.append(json.loads(line[6:]))
                    if not moving.done() and by_id(events[-1])["numbers/map"]["rate"]:
                        moving.set_result(len(events) - 1)
                        await feeding
                    elif moving.done() and len(events) >= moving.result() + 3:
                        break
                    assert len(events) < 80, "the rate never moved"
            return events[moving.result() :]

        events = asyncio.run(asyncio.wait_for(run(), 30))
    moving, after = events[0], events[-1]
    assert by_id(moving)["numbers/map"]["rate"] > 0
    assert by_id(moving)["numbers/map"]["rate_in"] > 0
    total = doubled.metrics["elements_out"]
    assert by_id(after)["numbers/map"]["rate"] == 0
    assert by_id(after)["numbers/map"]["elements_out"] == total > 0
    assert by_id(after)["numbers"]["elements_out"] == total
    assert after["time"] > moving["time"]


def test_page_static_files_and_prometheus_are_served():
    source, _, _ = graph()
    with serve(source) as server:
        content_type, page = get(server.url)
        assert content_type.startswith("text/html")
        assert b"dashboard.js" in page and b"dashboard.css" in page
        for name, kind in (("dashboard.js", "javascript"), ("dashboard.css", "text/css")):
            content_type, body = get(server.url + "static/" + name)
            assert kind in content_type and body
        content_type, text = get(server.url + "metrics")
        assert content_type.startswith("text/plain; version=0.0.4")
        assert b'millstream_elements_total{node="numbers"' in text


def test_stop_frees_the_port_and_a_taken_port_fails():
    source, _, _ = graph()
    server = serve(source, port=0)
    port = server.port
    with pytest.raises(OSError):
        serve(source, port=port)
    server.stop()
    assert not server._thread.is_alive()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))  # free again
    server.stop()  # twice is fine
    with pytest.raises(ValueError, match="interval"):
        serve(source, interval=0)
