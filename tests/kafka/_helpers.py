"""Helpers for tests against a real Kafka broker: the broker script, unique topics."""

from __future__ import annotations

import itertools
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

ROOT = Path(__file__).resolve().parents[2]
BROKER_SCRIPT = ROOT / "scripts" / "kafka-broker"
BOOTSTRAP_ENV = "MILLSTREAM_KAFKA_BOOTSTRAP"

_names = itertools.count()
_run_id = uuid.uuid4().hex[:8]


class KafkaUnavailable(Exception):
    """No broker to test against; the message says why and what to do."""


def bootstrap_from_env(environ: Mapping[str, str]) -> str | None:
    """The broker named by $MILLSTREAM_KAFKA_BOOTSTRAP, or None when unset or blank."""
    value = environ.get(BOOTSTRAP_ENV, "").strip()
    return value or None


def resolve_bootstrap(environ: Mapping[str, str], start: Callable[[], str]) -> tuple[str, bool]:
    """(bootstrap address, whether ``start`` was called to start a broker for it)."""
    configured = bootstrap_from_env(environ)
    if configured is not None:
        check_reachable(configured)
        return configured, False
    return start(), True


def check_reachable(bootstrap: str, timeout: float = 10.0) -> None:
    """Raise KafkaUnavailable unless a broker at ``bootstrap`` answers a metadata request."""
    addresses = [a.strip() for a in bootstrap.split(",") if a.strip()]
    if not any(_connects(address) for address in addresses):
        raise KafkaUnavailable(
            f"{BOOTSTRAP_ENV}={bootstrap!r}: nothing accepts connections there; start a broker "
            f"or unset {BOOTSTRAP_ENV} to let the tests start one"
        )
    try:
        AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=timeout)
    except Exception as error:
        raise KafkaUnavailable(
            f"{BOOTSTRAP_ENV}={bootstrap!r} does not answer a metadata request: {error}"
        ) from error


def _connects(address: str) -> bool:
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=2):
            return True
    except (OSError, ValueError):
        return False


def broker_script(*args: str, env: Mapping[str, str] | None = None, timeout: float = 180):
    """Run scripts/kafka-broker with this interpreter (it has confluent-kafka)."""
    return subprocess.run(
        [sys.executable, str(BROKER_SCRIPT), *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=dict(os.environ if env is None else env),
        check=False,
    )


#: Broker settings for a private broker that a test restarts: after a SIGKILL the KRaft
#: controller refuses the broker's new registration until the old one's session expires
#: (``broker.session.timeout.ms``, 9 s by default); 3 s makes a crash restart take ~4 s.
FAST_RESTART = ("broker.session.timeout.ms=3000", "broker.heartbeat.interval.ms=500")


def start_broker(state_dir: Path, overrides: tuple[str, ...] = ()) -> str:
    """Start a broker with scripts/kafka-broker; it stops by itself if this process dies.

    ``overrides`` are ``KEY=VALUE`` broker settings (kept across restarts).
    """
    settings = [arg for setting in overrides for arg in ("--override", setting)]
    result = broker_script(
        "start", "--state-dir", str(state_dir), "--owner-pid", str(os.getpid()), *settings
    )
    if result.returncode != 0:
        raise KafkaUnavailable(
            f"scripts/kafka-broker start failed (exit {result.returncode}):\n"
            f"{result.stderr.strip()}"
        )
    return result.stdout.strip()


def stop_broker(state_dir: Path, keep_data: bool = False, kill: bool = False) -> None:
    """Stop the broker; with ``keep_data`` it stays resumable (``start_broker`` brings it back
    on the same port with the same data); ``kill`` sends SIGKILL (a crash)."""
    flags = [*(["--keep-data"] if keep_data else []), *(["--kill"] if kill else [])]
    result = broker_script("stop", "--state-dir", str(state_dir), *flags)
    if result.returncode != 0:
        raise RuntimeError(f"scripts/kafka-broker stop failed:\n{result.stderr.strip()}")


def restart_broker(state_dir: Path, kill: bool = False, down: float = 0.0) -> str:
    """Stop the broker of ``state_dir`` (SIGTERM, or SIGKILL with ``kill``), keep its data,
    wait ``down`` seconds and start it again on the same port; return its address."""
    args = ["restart", "--state-dir", str(state_dir), "--down", str(down)]
    result = broker_script(*args, *(["--kill"] if kill else []))
    if result.returncode != 0:
        raise RuntimeError(f"scripts/kafka-broker restart failed:\n{result.stderr.strip()}")
    return result.stdout.strip()


def unique_topic_name(prefix: str = "millstream-test") -> str:
    """A topic name no other test, session or machine sharing the broker uses."""
    return f"{prefix}-{_run_id}-{next(_names)}"


def create_topic(admin: AdminClient, name: str, partitions: int = 1, timeout: float = 10.0) -> str:
    """Create ``name`` and wait until the metadata shows a leader for every partition."""
    futures = admin.create_topics(
        [NewTopic(name, num_partitions=partitions, replication_factor=1)],
        operation_timeout=timeout,
    )
    futures[name].result(timeout=timeout)
    deadline = time.monotonic() + timeout
    while True:
        topic = admin.list_topics(topic=name, timeout=timeout).topics.get(name)
        if (
            topic is not None
            and topic.error is None
            and len(topic.partitions) == partitions
            and all(p.leader >= 0 for p in topic.partitions.values())
        ):
            return name
        if time.monotonic() > deadline:
            raise TimeoutError(f"topic {name!r}: a partition has no leader after {timeout} s")
        time.sleep(0.05)


def delete_topics(admin: AdminClient, names: list[str], timeout: float = 10.0) -> None:
    """Delete ``names`` (those still there); wait until the metadata no longer lists them."""
    if not names:
        return
    for future in admin.delete_topics(names, operation_timeout=timeout).values():
        try:
            future.result(timeout=timeout)
        except KafkaException as error:
            if error.args[0].code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
                raise  # a topic that is already gone is fine
    deadline = time.monotonic() + timeout
    while set(names) & set(admin.list_topics(timeout=timeout).topics):
        if time.monotonic() > deadline:
            raise TimeoutError(f"topics {names} still listed {timeout} s after deletion")
        time.sleep(0.05)
