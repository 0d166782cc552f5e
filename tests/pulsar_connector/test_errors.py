"""Clear errors: unreachable service, missing namespace, bad arguments, missing library."""

from __future__ import annotations

import sys

import pytest

from millstream import Stream
from millstream.exceptions import PulsarConnectError, UnknownTopicError


def test_unreachable_service_url_raises_at_start():
    source = Stream.from_pulsar("pulsar://127.0.0.1:9", "t", "s", connect_timeout=1.0)
    with pytest.raises(PulsarConnectError, match=r"from_pulsar.*127\.0\.0\.1:9"):
        source.start()


def test_unreachable_service_url_in_to_pulsar_names_the_node():
    source = Stream()
    source.to_pulsar("pulsar://127.0.0.1:9", "t", connect_timeout=1.0)
    with pytest.raises(PulsarConnectError, match=r"to_pulsar: t.*no Pulsar broker answered"):
        source.emit(b"x")


def test_missing_namespace_is_an_unknown_topic(pulsar_url):
    source = Stream.from_pulsar(pulsar_url, "persistent://nope/nope/t", "s")
    with pytest.raises(UnknownTopicError, match="does not exist"):
        source.start()


def test_to_pulsar_refuses_what_is_not_bytes(pulsar_url, topic):
    source = Stream()
    sink = source.to_pulsar(pulsar_url, topic)
    with pytest.raises(TypeError, match="bytes or str"):
        source.emit(12)
    sink.close()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"subscription_type": "Fanout"}, "subscription_type"),
        ({"initial_position": "middle"}, "initial_position"),
        ({"on_failure": "ignore"}, "on_failure"),
        ({"max_in_flight": 0}, "max_in_flight"),
        ({"start_time": 1.0, "start_message_id": "earliest"}, "not both"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Stream.from_pulsar("pulsar://127.0.0.1:6650", "t", "s", **kwargs)


def test_missing_library_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "pulsar", None)
    source = Stream()
    source.to_pulsar("pulsar://127.0.0.1:6650", "t")
    with pytest.raises(ImportError, match=r"pip install 'millstream\[pulsar\]'"):
        source.emit(b"x")


def test_import_millstream_does_not_import_pulsar():
    import subprocess

    code = "import sys, millstream; print('pulsar' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
