"""from_websocket and to_websocket with websockets 17 (asyncio implementation)."""

from __future__ import annotations

import socket
import threading
import time

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from millstream import RefCounter, Stream
from millstream.testing import wait_for

from ._helpers import port_is_open


def test_from_websocket_emits_text_and_binary_messages(port):
    source = Stream.from_websocket("127.0.0.1", port)
    L = source.sink_to_list()
    source.start()
    assert source.server is not None
    with connect(f"ws://127.0.0.1:{port}") as ws:
        ws.send("hello")
        ws.send(b"\x00\x01")
        wait_for(lambda: len(L) == 2, 2)
    source.stop()
    assert L == ["hello", b"\x00\x01"]


def test_from_websocket_several_clients(port):
    source = Stream.from_websocket("127.0.0.1", port)
    L = source.sink_to_list()
    source.start()
    with connect(f"ws://127.0.0.1:{port}") as a, connect(f"ws://127.0.0.1:{port}/any") as b:
        a.send("a1")
        wait_for(lambda: L == ["a1"], 2)
        b.send("b1")
        wait_for(lambda: L == ["a1", "b1"], 2)
    source.stop()


def test_from_websocket_processes_one_message_at_a_time(port):
    source = Stream.from_websocket("127.0.0.1", port)
    L = source.sink_to_list()
    gate = threading.Event()

    async def hold(x):
        import asyncio

        if x == "1":
            await asyncio.to_thread(gate.wait, 5)

    source.sink(hold)
    source.start()
    with connect(f"ws://127.0.0.1:{port}") as ws:
        for m in "123":
            ws.send(m)
        wait_for(lambda: L == ["1"], 2)
        time.sleep(0.05)
        assert L == ["1"]
        gate.set()
        wait_for(lambda: len(L) == 3, 2)
    source.stop()
    assert L == ["1", "2", "3"]


def test_from_websocket_stop_closes_server_and_connections(port):
    source = Stream.from_websocket("127.0.0.1", port)
    L = source.sink_to_list()
    source.start()
    with connect(f"ws://127.0.0.1:{port}") as ws:
        ws.send("x")
        wait_for(lambda: L == ["x"], 2)
        source.stop()
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=2)
        assert info.value.rcvd.code == 1001  # going away
    assert source.server is None and source.stopped and source.work_task.done()
    assert not port_is_open(port)


def test_from_websocket_port_in_use(port):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        source = Stream.from_websocket("127.0.0.1", port)
        with pytest.raises(OSError, match=f"from_websocket: cannot listen on port {port}"):
            source.start()


def test_from_websocket_is_a_static_method():
    source = Stream().from_websocket("127.0.0.1", 1234)
    assert (source.host, source.port) == ("127.0.0.1", 1234)


def test_to_websocket_round_trip_and_refs(port):
    server = Stream.from_websocket("127.0.0.1", port)
    received = server.sink_to_list()
    server.start()
    source = Stream()
    sink = source.to_websocket(f"ws://127.0.0.1:{port}")
    done = []
    ref = RefCounter(cb=lambda: done.append(True))
    source.emit("a", metadata=[{"ref": ref}])  # blocks until sent
    assert done == [True] and not ref.failed
    source.emit(b"b")
    wait_for(lambda: len(received) == 2, 2)
    assert received == ["a", b"b"]
    ws = sink.ws
    sink.destroy()
    assert sink.ws is None and ws.state.name == "CLOSED"
    server.stop()


def test_to_websocket_connection_error_releases_refs_as_failed(port):
    source = Stream()
    source.to_websocket(f"ws://127.0.0.1:{port}")  # nothing listens there
    ref = RefCounter()
    with pytest.raises(OSError):
        source.emit("a", metadata=[{"ref": ref}])
    assert ref.failed and ref.count == 0
