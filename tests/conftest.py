"""Shared fixtures for the millstream test suite."""

from __future__ import annotations

import logging
import os

import pytest
from confluent_kafka.admin import AdminClient

from kafka._helpers import (  # tests/kafka: the broker script, unique topics
    KafkaUnavailable,
    create_topic,
    delete_topics,
    resolve_bootstrap,
    start_broker,
    stop_broker,
    unique_topic_name,
)
from millstream.core.clock import ManualClock, use_clock

# No sampling windows (millstream.core.sampling) unless a test asks for them: a window
# sends elements down the per-element path, which tests of fusion tell apart.
os.environ.setdefault("MILLSTREAM_SAMPLE_EVERY", "0")


@pytest.fixture
def manual_clock():
    """A ManualClock installed as the default clock for nodes built in the test."""
    clock = ManualClock()
    with use_clock(clock):
        yield clock


# -- a real Kafka broker: $MILLSTREAM_KAFKA_BOOTSTRAP, or one started for the session ------
# Without $MILLSTREAM_KAFKA_BOOTSTRAP the session starts a single-node broker on a free
# loopback port through scripts/kafka-broker (Java 17; the jars are fetched with Maven the
# first time) and stops it at the end. When no broker can be had the tests FAIL with the
# reason: they never skip.


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory):
    """``host:port`` of the session's Kafka broker."""
    state_dir = tmp_path_factory.mktemp("kafka-broker")
    try:
        bootstrap, started = resolve_bootstrap(os.environ, lambda: start_broker(state_dir))
    except KafkaUnavailable as error:
        pytest.fail(f"no Kafka broker for the tests: {error}", pytrace=False)
    try:
        yield bootstrap
    finally:
        if started:
            stop_broker(state_dir)


@pytest.fixture(scope="session")
def kafka_admin(kafka_bootstrap):
    """An AdminClient connected to the session's broker."""
    return AdminClient(
        {"bootstrap.servers": kafka_bootstrap, "logger": logging.getLogger("millstream.kafka")}
    )


@pytest.fixture
def kafka_topic(kafka_admin):
    """``kafka_topic(partitions=1) -> name``: a fresh topic, deleted after the test."""
    created: list[str] = []

    def make(partitions: int = 1) -> str:
        name = create_topic(kafka_admin, unique_topic_name(), partitions)
        created.append(name)
        return name

    yield make
    delete_topics(kafka_admin, created)


@pytest.fixture
def unused_port():
    """A loopback port that nothing listens on."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- a real Dask LocalCluster, one per session (tests/dask, tests/dataframe/test_on_dask.py) ----
# distributed is imported when a test asks for the cluster, not in every session.


@pytest.fixture(scope="session")
def dask_cluster():
    """A real ``LocalCluster``: a scheduler and 2 worker processes of 1 thread each."""
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        # the scheduler's HTTP endpoints (always served) on a free loopback port, not :8787
        scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
    ) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def session_client(dask_cluster):
    from distributed import Client

    # not ``with Client(...)``: that would also make it the *current* client of this
    # thread's context for the whole session, which wins over any newer client
    client = Client(dask_cluster)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def client(session_client):
    """The session's client; ``distributed.default_client()`` returns it (the most recent
    open client) unless the test opens another one."""
    return session_client
