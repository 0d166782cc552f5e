"""from_tcp, from_http_server and from_q: exact outputs, backpressure, errors, stop().

Expected outputs where Streamz is right were checked against streamz 0.6.6:
the tcp word count and the HTTP status codes (200 OK / 404 / 405, anchored path, query ignored).
"""

from __future__ import annotations

import asyncio
import http.client
import logging
import queue
import re
import socket
import threading
import time

import pytest
import requests

from millstream import Stream
from millstream.testing import wait_for

from ._helpers import free_port, port_is_open

LOCAL = {"host": "127.0.0.1"}


def connect(port):
    sock = socket.create_connection(("127.0.0.1", port), timeout=2)
    return sock


async def eventually(predicate, timeout=2.0):
    """Yield to the loop until ``predicate()`` holds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.001)


def gated_sink(source, gate, first):
    """A sink that blocks on ``first`` until ``gate`` is set."""

    async def hold(x):
        if x == first:
            await asyncio.to_thread(gate.wait, 5)

    source.sink(hold)


# -- from_tcp -----------------------------------------------------------------------------
def test_tcp_word_count_example(port):
    source = Stream.from_tcp(port, server_kwargs=LOCAL)
    out = source.map(bytes.split).flatten().frequencies().sink_to_list()
    source.start()
    assert source.server is not None  # start() returns once listening
    with connect(port) as sock:
        sock.sendall(b"data\n")
        time.sleep(0.02)  # two separate packets on one socket
        sock.sendall(b"data\n")
        wait_for(lambda: out and out[-1] == {b"data": 2}, 2)
    source.stop()
    assert out == [{b"data": 1}, {b"data": 2}]


def test_tcp_chunks_include_the_delimiter_and_tail_is_dropped(port):
    source = Stream.from_tcp(port, delimiter=b"\r\n", server_kwargs=LOCAL)
    L = source.sink_to_list()
    source.start()
    with connect(port) as sock:
        sock.sendall(b"one\r\ntwo\r")
        sock.sendall(b"\nthree\r\nunfinished")
        wait_for(lambda: len(L) == 3, 2)
    time.sleep(0.05)
    source.stop()
    assert L == [b"one\r\n", b"two\r\n", b"three\r\n"]


def test_tcp_connections_are_read_concurrently(port):
    source = Stream.from_tcp(port, server_kwargs=LOCAL)
    L = source.sink_to_list()
    source.start()
    with connect(port) as a, connect(port) as b:
        a.sendall(b"a1\n")
        wait_for(lambda: L == [b"a1\n"], 2)
        b.sendall(b"b1\n")
        wait_for(lambda: L == [b"a1\n", b"b1\n"], 2)
        a.sendall(b"a2\n")
        wait_for(lambda: len(L) == 3, 2)
    source.stop()
    assert L == [b"a1\n", b"b1\n", b"a2\n"]


def test_tcp_chunk_longer_than_the_stream_limit(port):
    source = Stream.from_tcp(port, server_kwargs={**LOCAL, "limit": 16})
    L = source.sink_to_list()
    source.start()
    line = b"x" * 1000 + b"\n"
    with connect(port) as sock:
        sock.sendall(line + b"short\n")
        wait_for(lambda: len(L) == 2, 2)
    source.stop()
    assert [line, b"short\n"] == L


def test_tcp_awaits_downstream_before_reading_on(port):
    source = Stream.from_tcp(port, server_kwargs=LOCAL)
    L = source.sink_to_list()
    gate = threading.Event()
    gated_sink(source, gate, b"1\n")
    source.start()
    with connect(port) as sock:
        sock.sendall(b"1\n2\n3\n")
        wait_for(lambda: L == [b"1\n"], 2)
        time.sleep(0.05)
        assert L == [b"1\n"]  # 2 and 3 wait for the first to be absorbed
        gate.set()
        wait_for(lambda: len(L) == 3, 2)
    source.stop()
    assert L == [b"1\n", b"2\n", b"3\n"]


def test_tcp_downstream_error_closes_that_connection_only(port, caplog):
    source = Stream.from_tcp(port, server_kwargs=LOCAL)
    L = source.map(lambda x: 1 // int(x)).sink_to_list()
    source.start()
    with caplog.at_level(logging.ERROR, logger="millstream"), connect(port) as bad:
        bad.sendall(b"0\n")
        assert bad.recv(10) == b""  # closed by the server
    with connect(port) as good:
        good.sendall(b"1\n")
        wait_for(lambda: L == [1], 2)
    source.stop()
    assert "closing the connection" in caplog.text
    assert source.error is None


def test_tcp_oversized_chunk_is_refused(port, caplog):
    source = Stream.from_tcp(port, server_kwargs={**LOCAL, "limit": 8, "max_buffer_size": 32})
    L = source.sink_to_list()
    source.start()
    with caplog.at_level(logging.ERROR, logger="millstream"), connect(port) as sock:
        sock.sendall(b"y" * 100)
        assert sock.recv(10) == b""
    source.stop()
    assert L == []
    assert "more than 32 bytes without a delimiter" in caplog.text


def test_tcp_stop_closes_the_server_and_the_connections(port):
    source = Stream.from_tcp(port, server_kwargs=LOCAL)
    L = source.sink_to_list()
    source.start()
    assert port_is_open(port)
    with connect(port) as sock:
        sock.sendall(b"x\n")
        wait_for(lambda: L == [b"x\n"], 2)
        source.stop()
        assert sock.recv(10) == b""  # the open connection was closed too
    assert source.server is None and source.work_task.done()
    assert not port_is_open(port)
    source.start()  # and it can listen again
    with connect(port) as sock:
        sock.sendall(b"y\n")
        wait_for(lambda: len(L) == 2, 2)
    source.stop()
    assert L == [b"x\n", b"y\n"]
    assert not port_is_open(port)


def test_tcp_port_in_use_raises_a_clear_error(port):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        source = Stream.from_tcp(port, server_kwargs=LOCAL)
        with pytest.raises(OSError, match=f"from_tcp: cannot listen on port {port}: .*in use"):
            source.start()
        assert source.stopped and source.server is None


def test_tcp_bad_arguments():
    with pytest.raises(ValueError, match="from_tcp: port must be an int"):
        Stream.from_tcp("8080")
    with pytest.raises(TypeError, match="from_tcp: delimiter must be non-empty bytes"):
        Stream.from_tcp(8080, delimiter="\n")
    with pytest.raises(TypeError, match=r"from_tcp: unsupported server_kwargs \['xheaders'\]"):
        Stream.from_tcp(8080, server_kwargs={"xheaders": True})


def test_tcp_asynchronous_on_the_callers_loop():
    port = free_port()

    async def main():
        source = Stream.from_tcp(port, server_kwargs=LOCAL, asynchronous=True)
        L = source.sink_to_list()
        source.start()
        await eventually(lambda: source.server is not None)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"a\nb\n")
        await writer.drain()
        await eventually(lambda: len(L) == 2)
        source.stop()
        await source.work_task
        assert await reader.read() == b""
        writer.close()
        return L

    assert asyncio.run(main()) == [b"a\n", b"b\n"]
    assert not port_is_open(port)


# -- from_http_server ---------------------------------------------------------------------
@pytest.fixture
def http_source(port):
    source = Stream.from_http_server(port, path="/data", server_kwargs=LOCAL)
    L = source.sink_to_list()
    source.start()
    yield source, L, port
    source.stop()


def request(port, method, path, body=None, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read(), dict(response.getheaders())
    finally:
        conn.close()


def test_http_post_emits_the_body_and_replies_ok(http_source):
    _source, L, port = http_source
    assert request(port, "POST", "/data", b"hello")[:2] == (200, b"OK")
    response = requests.post(f"http://127.0.0.1:{port}/data?id=7", data=b"\x00bytes", timeout=2)
    assert (response.status_code, response.text) == (200, "OK")
    assert L == [b"hello", b"\x00bytes"]


def test_http_paths_and_methods(http_source):
    _source, L, port = http_source
    assert request(port, "POST", "/other", b"x")[0] == 404
    assert request(port, "POST", "/data/more", b"x")[0] == 404  # the pattern is anchored
    status, _body, headers = request(port, "GET", "/data")
    assert (status, headers["Allow"]) == (405, "POST")
    assert request(port, "PUT", "/data", b"x")[0] == 405
    assert request(port, "GET", "/nothing")[0] == 404
    assert L == []


def test_http_keep_alive_and_chunked_bodies(http_source):
    _source, L, port = http_source
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    conn.request("POST", "/data", body=b"first")
    assert conn.getresponse().read() == b"OK"
    conn.request("POST", "/data", body=iter([b"sec", b"ond"]), encode_chunked=True)
    response = conn.getresponse()
    assert (response.status, response.read()) == (200, b"OK")
    conn.request("POST", "/data")  # no body
    assert conn.getresponse().status == 200
    conn.close()
    assert L == [b"first", b"second", b""]


def test_http_expect_100_continue(http_source):
    _source, L, port = http_source
    with connect(port) as sock:
        sock.sendall(
            b"POST /data HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
            b"Expect: 100-continue\r\nConnection: close\r\n\r\n"
        )
        assert sock.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(b"body")
        reply = b""
        while chunk := sock.recv(1000):
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 200 OK\r\n") and reply.endswith(b"\r\n\r\nOK")
    assert L == [b"body"]


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"NONSENSE\r\n\r\n", 400),
        (b"POST /data HTTP/2.0\r\n\r\n", 505),
        (b"POST /data HTTP/1.1\r\nContent-Length: abc\r\n\r\n", 400),
        (b"POST /data HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
        (b"POST /data HTTP/1.1\r\nContent-Length: 999999999999\r\n\r\n", 413),
    ],
)
def test_http_bad_requests(http_source, raw, status):
    _source, L, port = http_source
    with connect(port) as sock:
        sock.sendall(raw)
        reply = b""
        while chunk := sock.recv(1000):
            reply += chunk
    assert reply.startswith(f"HTTP/1.1 {status} ".encode())
    assert b"Connection: close" in reply
    assert L == []


def test_http_downstream_error_gives_500_and_server_goes_on(port, caplog):
    source = Stream.from_http_server(port, server_kwargs=LOCAL)
    L = source.map(int).sink_to_list()
    source.start()
    with caplog.at_level(logging.ERROR, logger="millstream"):
        assert request(port, "POST", "/", b"x")[0] == 500
    assert request(port, "POST", "/any/path", b"12")[:2] == (200, b"OK")
    source.stop()
    assert L == [12]
    assert "error processing a request to /" in caplog.text


def test_http_replies_after_downstream_absorbed_the_body(port):
    source = Stream.from_http_server(port, server_kwargs=LOCAL)
    gate = threading.Event()
    gated_sink(source, gate, b"slow")
    replies = []
    source.start()
    t = threading.Thread(target=lambda: replies.append(request(port, "POST", "/", b"slow")[0]))
    t.start()
    time.sleep(0.1)
    assert replies == []
    gate.set()
    t.join(2)
    source.stop()
    assert replies == [200]


def test_http_stop_closes_the_port_and_port_in_use(port):
    source = Stream.from_http_server(port, server_kwargs=LOCAL)
    source.start()
    assert port_is_open(port)
    other = Stream.from_http_server(port, server_kwargs=LOCAL)
    with pytest.raises(OSError, match=f"from_http_server: cannot listen on port {port}"):
        other.start()
    source.stop()
    assert not port_is_open(port) and source.server is None


def test_http_bad_arguments():
    with pytest.raises(ValueError, match="from_http_server: path is not a valid regular"):
        Stream.from_http_server(8000, path="/(")
    with pytest.raises(ValueError, match="from_http_server: port must be an int"):
        Stream.from_http_server(-1)


def test_http_large_bodies_with_length_and_chunked(http_source):
    _source, L, port = http_source
    big = bytes(range(256)) * 4096  # 1 MiB, past every read buffer
    assert request(port, "POST", "/data", big)[:2] == (200, b"OK")
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    pieces = (big[i : i + 65536] for i in range(0, len(big), 65536))
    conn.request("POST", "/data", body=pieces, encode_chunked=True)
    assert conn.getresponse().read() == b"OK"
    conn.close()
    assert [big, big] == L


def test_http_body_over_max_body_size_gets_413(port):
    source = Stream.from_http_server(port, server_kwargs={**LOCAL, "max_body_size": 1000})
    L = source.sink_to_list()
    source.start()
    assert request(port, "POST", "/", b"x" * 1000)[0] == 200
    assert request(port, "POST", "/", b"x" * 1001)[0] == 413
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    conn.request("POST", "/", body=iter([b"x" * 600, b"x" * 600]), encode_chunked=True)
    assert conn.getresponse().status == 413
    conn.close()
    source.stop()
    assert L == [b"x" * 1000]


def test_http_pipelined_requests_are_answered_in_order(http_source):
    _source, L, port = http_source
    one = b"POST /data HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\none"
    two = b"POST /nowhere HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\ntwo"
    three = b"POST /data HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 5\r\n\r\nthree"
    with connect(port) as sock:
        sock.sendall(one + two + three)
        reply = b""
        while chunk := sock.recv(1000):
            reply += chunk
    statuses = [int(status) for status in re.findall(rb"HTTP/1\.1 (\d{3}) ", reply)]
    assert statuses == [200, 404, 200]
    assert L == [b"one", b"three"]


# -- from_q -------------------------------------------------------------------------------
def reader_threads():
    return [t for t in threading.enumerate() if t.name.startswith("millstream-from_q")]


def test_q_emits_in_order_and_is_a_static_method():
    q = queue.Queue()
    source = Stream().from_q(q)  # registered as a staticmethod: works on instances too
    assert source.q is q
    L = source.sink_to_list()
    source.start()
    for i in range(2000):
        q.put(i)
    wait_for(lambda: len(L) == 2000, 2)
    source.stop()
    assert list(range(2000)) == L


def test_q_no_polling_delay():
    q = queue.Queue()
    source = Stream.from_q(q, sleep_time=0.5)
    arrived = []
    source.sink(lambda x: arrived.append(time.monotonic() - x))
    source.start()
    time.sleep(0.05)  # the reader is blocked in q.get()
    q.put(time.monotonic())
    wait_for(lambda: arrived, 2)
    source.stop()
    assert arrived[0] < 0.1


def test_q_leaves_items_in_the_queue_while_downstream_is_busy():
    q = queue.Queue()
    source = Stream.from_q(q)
    L = source.sink_to_list()
    gate = threading.Event()
    gated_sink(source, gate, "a")
    source.start()
    q.put("a")
    wait_for(lambda: L == ["a"], 2)
    q.put("b")
    q.put("c")
    time.sleep(0.05)
    assert q.qsize() == 2  # not taken while "a" is still being processed
    gate.set()
    wait_for(lambda: len(L) == 3, 2)
    source.stop()
    assert L == ["a", "b", "c"]


def test_q_stop_ends_the_reader_thread_and_leaves_later_items():
    q = queue.Queue()
    source = Stream.from_q(q)
    L = source.sink_to_list()
    source.start()
    q.put(1)
    wait_for(lambda: L == [1], 2)
    assert len(reader_threads()) == 1
    t0 = time.monotonic()
    source.stop()
    assert time.monotonic() - t0 < 0.5
    assert reader_threads() == [] and source.work_task.done()
    q.put(2)
    time.sleep(0.02)
    assert L == [1] and q.qsize() == 1
    source.start()  # restart picks up where it left
    wait_for(lambda: L == [1, 2], 2)
    source.stop()
    assert reader_threads() == []


def test_q_bad_argument():
    with pytest.raises(TypeError, match=r"from_q: q must be a queue\.Queue"):
        Stream.from_q([1, 2])


def test_http_head_gets_headers_only(http_source):
    _source, L, port = http_source
    with connect(port) as sock:
        sock.sendall(b"HEAD /data HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        reply = b""
        while chunk := sock.recv(1000):
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 405 Method Not Allowed\r\n")
    assert reply.endswith(b"\r\n\r\n")  # no body after the headers
    assert L == []
