"""librdkafka settings are checked when a Kafka node is made, and ``to_kafka`` fails within
a bound, naming the broker and the cause, when no broker can be reached."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from millstream import Stream
from millstream.exceptions import KafkaDeliveryError
from millstream.sinks.kafka import DEFAULT_MESSAGE_TIMEOUT_MS

BAD_SETTINGS = [
    ({"foo.bar": 1}, "'foo.bar'", 'No such configuration property: "foo.bar"'),
    (
        {"session.timeout.ms": "abc"},
        "'session.timeout.ms'",
        'Invalid value for configuration property "session.timeout.ms"',
    ),
]

NODES = {
    "from_kafka": lambda cfg: Stream.from_kafka("t", {"group.id": "g", **cfg}),
    "from_kafka_batched": lambda cfg: Stream.from_kafka_batched("t", cfg),
    "to_kafka": lambda cfg: Stream().to_kafka("t", cfg),
}
NAMES = {
    "from_kafka": "from_kafka",
    "from_kafka_batched": "from_kafka_batched",
    "to_kafka": "to_kafka(topic='t')",
}


@pytest.mark.parametrize("node", sorted(NODES))
@pytest.mark.parametrize(("bad", "setting", "message"), BAD_SETTINGS)
def test_a_setting_librdkafka_rejects_fails_at_construction(node, bad, setting, message):
    config = {"bootstrap.servers": "127.0.0.1:9", **bad}
    with pytest.raises(ValueError) as info:
        NODES[node](config)
    text = str(info.value)
    assert text.startswith(f"{NAMES[node]}: librdkafka rejected")
    assert setting in text and message in text


@pytest.mark.parametrize("node", sorted(NODES))
def test_an_alias_or_a_combination_is_named_by_librdkafka(node):
    config = {"bootstrap.servers": "127.0.0.1:9", "linger.ms": "soon"}
    with pytest.raises(ValueError, match=r"'linger.ms'.*queue\.buffering\.max\.ms"):
        NODES[node](config)


def test_a_producer_combination_is_rejected_at_construction():
    config = {"bootstrap.servers": "127.0.0.1:9", "enable.idempotence": True, "acks": 1}
    with pytest.raises(ValueError, match=r"to_kafka\(topic='t'\): librdkafka rejected .*acks"):
        Stream().to_kafka("t", config)


def test_a_callback_that_is_not_callable_is_rejected_at_construction():
    config = {"bootstrap.servers": "127.0.0.1:9", "error_cb": 5}
    with pytest.raises(ValueError, match=r"to_kafka\(topic='t'\).*'error_cb'"):
        Stream().to_kafka("t", config)


def test_checking_calls_none_of_the_users_callbacks():
    called = []
    config = {
        "bootstrap.servers": "127.0.0.1:9",
        "group.id": "g",
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": "OAUTHBEARER",
        "oauth_cb": lambda c: called.append("oauth") or ("token", time.time() + 60),
        "error_cb": lambda e: called.append("error"),
        "stats_cb": lambda s: called.append("stats"),
        "logger": None,
    }
    config.pop("logger")
    t0 = time.monotonic()
    Stream.from_kafka("t", config)
    Stream().to_kafka("t", {k: v for k, v in config.items() if k != "group.id"})
    assert time.monotonic() - t0 < 1.0
    assert called == []


def test_good_settings_are_accepted_and_not_modified():
    config = {"bootstrap.servers": "127.0.0.1:9", "group.id": "g", "session.timeout.ms": 6000}
    before = dict(config)
    Stream.from_kafka("t", config)
    Stream.from_kafka_batched("t", config)
    Stream().to_kafka("t", {"bootstrap.servers": "127.0.0.1:9", "linger.ms": 5})
    assert config == before


def test_without_confluent_kafka_the_install_error_comes_at_start(tmp_path: Path):
    shadow = tmp_path / "shadow" / "confluent_kafka"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text(
        "raise ImportError('No module named confluent_kafka (test shadow)', "
        "name='confluent_kafka')\n"
    )
    src = Path(__file__).resolve().parents[2] / "src"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(shadow.parent), str(src)])}
    code = (
        "from millstream import Stream\n"
        "cfg = {'bootstrap.servers': '127.0.0.1:9', 'group.id': 'g', 'foo.bar': 1}\n"
        "source = Stream.from_kafka('t', cfg)\n"
        "node = Stream().to_kafka('t', cfg)\n"
        "for call in (source.start, lambda: node.flush() or node.update(b'x')):\n"
        "    try:\n"
        "        call()\n"
        "    except ImportError as e:\n"
        "        print(e)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        "from_kafka needs confluent-kafka: pip install 'millstream[kafka]'",
        "to_kafka(topic='t') needs confluent-kafka: pip install 'millstream[kafka]'",
    ]


# -- a broker that cannot be reached ------------------------------------------------------------


def test_to_kafka_has_a_bounded_default_delivery_timeout():
    node = Stream().to_kafka("t", {"bootstrap.servers": "127.0.0.1:9"})
    assert node.producer_config["message.timeout.ms"] == DEFAULT_MESSAGE_TIMEOUT_MS == 30_000
    own = Stream().to_kafka("t", {"bootstrap.servers": "127.0.0.1:9", "message.timeout.ms": 5})
    assert own.producer_config["message.timeout.ms"] == 5
    alias = Stream().to_kafka("t", {"bootstrap.servers": "127.0.0.1:9", "delivery.timeout.ms": 7})
    assert "message.timeout.ms" not in alias.producer_config
    assert alias.producer_config["delivery.timeout.ms"] == 7


def test_to_kafka_to_a_host_that_does_not_resolve_fails_within_the_bound():
    source = Stream()
    node = source.to_kafka(
        "t", {"bootstrap.servers": "nonexistent.invalid:9092", "message.timeout.ms": 1000}
    )
    source.emit(b"x")
    t0 = time.monotonic()
    with pytest.raises(KafkaDeliveryError) as info:
        node.flush()
    took = time.monotonic() - t0
    assert took < 1.0 + 2
    text = str(info.value)
    assert "nonexistent.invalid:9092" in text  # the broker
    assert "Failed to resolve" in text  # the cause
    assert "message.timeout.ms=1000" in text  # the bound
    node.destroy()


def test_to_kafka_to_a_closed_port_names_the_broker_and_the_refusal(unused_port):
    source = Stream()
    servers = f"127.0.0.1:{unused_port}"
    node = source.to_kafka("t", {"bootstrap.servers": servers, "message.timeout.ms": 500})
    source.emit(b"x")
    with pytest.raises(KafkaDeliveryError, match="timed out") as info:
        node.flush()
    assert servers in str(info.value)
    assert "refused" in str(info.value).lower()
    node.destroy()
