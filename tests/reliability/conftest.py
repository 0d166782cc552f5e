"""Fixtures of the reliability suite: a broker of its own, the test's child processes.

The suite may also use the session broker of tests/conftest.py (``kafka_bootstrap``,
``kafka_admin``, ``kafka_topic``); tests that kill or restart a broker start their own.
"""

from __future__ import annotations

import pytest

from kafka._helpers import FAST_RESTART, start_broker, stop_broker

from .harness import Children, close_clients, halt_running

#: How often the broker looks for transactions past their ``transaction.timeout.ms`` and
#: aborts them (Kafka's default: every 10 s). A process killed inside a transaction
#: leaves it open until then, unless its successor's ``init_transactions`` aborts it first.
ABORT_CHECK_MS = 200
RELIABILITY_BROKER_SETTINGS = (
    *FAST_RESTART,
    f"transaction.abort.timed.out.transaction.cleanup.interval.ms={ABORT_CHECK_MS}",
)


@pytest.fixture(scope="package")
def reliability_broker(tmp_path_factory):
    """``host:port`` of a broker for this package only, started with
    :data:`RELIABILITY_BROKER_SETTINGS` (it aborts timed-out transactions within
    ``ABORT_CHECK_MS`` ms; a SIGKILLed broker restarts in ~4 s)."""
    state_dir = tmp_path_factory.mktemp("reliability-broker")
    bootstrap = start_broker(state_dir, RELIABILITY_BROKER_SETTINGS)
    try:
        yield bootstrap
    finally:
        close_clients(bootstrap)
        stop_broker(state_dir)


@pytest.fixture(scope="package", autouse=True)
def _harness_clients():
    """The harness's AdminClients go at the end of the package (before the session broker
    stops)."""
    yield
    close_clients()


@pytest.fixture(autouse=True)
def _halt_helper_threads():
    """Helper threads a test started (readers, writers, samplers, with their Kafka
    clients) stop at its end, also when it failed half way: none goes on using a client
    while the next test runs."""
    try:
        yield
    finally:
        halt_running()


@pytest.fixture
def children(tmp_path):
    """A :class:`~reliability.harness.Children` logging to ``tmp_path/children``; every
    child still running at the end of the test is killed (SIGKILL, by pid)."""
    started = Children(tmp_path / "children")
    try:
        yield started
    finally:
        started.close()
