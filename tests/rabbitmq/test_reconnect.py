"""``from_rabbitmq`` after a lost connection: the broker closes every client connection
(``rabbitmqctl close_all_connections``) while the source consumes; it connects again and
goes on, and nothing is lost (what was in flight is delivered again)."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from millstream import Stream
from millstream.exceptions import RabbitMQConnectError
from millstream.testing import wait_for

from .helpers import counts, declare_queue, publish

pytestmark = pytest.mark.timeout(180)


def bodies(n: int, start: int = 0) -> list[bytes]:
    return [f"m-{i}".encode() for i in range(start, start + n)]


def close_client_connections(rabbitmq) -> None:
    rabbitmq.ctl("close_all_connections", "test: connection lost")


def test_the_source_connects_again_and_loses_nothing(rabbitmq, caplog):
    url = rabbitmq.url
    queue = declare_queue(url)
    publish(url, queue, bodies(200))
    seen: list[bytes] = []
    gate = threading.Event()

    def slow(x):
        seen.append(x)
        if len(seen) == 50:
            gate.set()  # 50 processed: the connection is closed under the source now
        return x

    source = Stream.from_rabbitmq(url, queue, prefetch=20)
    source.map(slow).sink(lambda x: None)
    source.start()
    try:
        assert gate.wait(30)
        with caplog.at_level(logging.WARNING, logger="millstream.sources"):
            close_client_connections(rabbitmq)
            wait_for(lambda: source.reconnects == 1, 30, period=0.05)
        publish(url, queue, bodies(100, 200))
        wait_for(lambda: set(seen) >= set(bodies(300)), 60, period=0.05)
        wait_for(lambda: counts(url, queue) == 0 and source.metrics["backlog"] == 0, 30)
        assert not source.stopped and source.error is None
        assert source.metrics["reconnects"] == 1
    finally:
        source.stop()
    # at-least-once: every message, some of those in flight at the loss twice
    assert set(seen) == set(bodies(300))
    assert len(seen) - 300 <= 20 + 1  # at most the prefetch window comes again
    assert "connecting again" in caplog.text
    assert "consuming again" in caplog.text


def test_reconnect_timeout_zero_stops_the_source_with_the_error(rabbitmq):
    url = rabbitmq.url
    queue = declare_queue(url)
    source = Stream.from_rabbitmq(url, queue, reconnect_timeout=0)
    source.sink(lambda x: None)
    source.start()
    try:
        close_client_connections(rabbitmq)
        wait_for(lambda: source.stopped, 30, period=0.05)
        assert isinstance(source.error, RabbitMQConnectError)
        assert "closed" in str(source.error) and source.reconnects == 0
    finally:
        source.stop()


def test_a_broker_gone_for_longer_than_reconnect_timeout_stops_the_source(rabbitmq):
    url = rabbitmq.url
    queue = declare_queue(url)
    source = Stream.from_rabbitmq(url, queue, reconnect_timeout=1.5, connect_timeout=1)
    source.sink(lambda x: None)
    source.start()
    try:
        # the vhost refuses connections while the source tries: it gives up after 1.5 s
        rabbitmq.ctl("set_permissions", "guest", "^$", "^$", "^$")
        lost = time.monotonic()
        close_client_connections(rabbitmq)
        wait_for(lambda: source.stopped, 30, period=0.05)
        assert time.monotonic() - lost >= 1.5  # it kept trying for reconnect_timeout
        assert source.error is not None and source.reconnects == 0
    finally:
        rabbitmq.ctl("set_permissions", "guest", ".*", ".*", ".*")
        source.stop()
