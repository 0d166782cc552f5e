"""from_mqtt and to_mqtt against a real Mosquitto broker (session fixture ``mosquitto``)."""

from __future__ import annotations

import itertools
import threading
import time

import paho.mqtt.client as mqtt
import pytest

from millstream import RefCounter, Stream
from millstream.testing import wait_for

from ._helpers import free_port

pytestmark = pytest.mark.mqtt

_topics = itertools.count()


@pytest.fixture
def topic():
    """A topic no other test uses."""
    return f"millstream/test/{next(_topics)}"


def paho_threads():
    return [t for t in threading.enumerate() if t.name.startswith("paho-mqtt-client")]


def publish(broker, topic, payloads, qos=1):
    """Publish with a plain paho client and wait for every acknowledgement."""
    host, port = broker
    client = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2)
    client.connect(host, port)
    client.loop_start()
    try:
        for payload in payloads:
            client.publish(topic, payload, qos=qos).wait_for_publish(2)
    finally:
        client.disconnect()
        client.loop_stop()


def test_from_mqtt_emits_messages(mosquitto, topic):
    host, port = mosquitto
    source = Stream.from_mqtt(host, port, topic)
    L = source.map(lambda m: (m.topic, m.payload)).sink_to_list()
    source.start()  # returns once the subscription is acknowledged
    publish(mosquitto, topic, [b"one", b"two", "three"])
    wait_for(lambda: len(L) == 3, 2)
    source.stop()
    assert [(topic, b"one"), (topic, b"two"), (topic, b"three")] == L


def test_from_mqtt_wildcard_and_message_type(mosquitto, topic):
    host, port = mosquitto
    source = Stream.from_mqtt(host, port, f"{topic}/#")
    L = source.sink_to_list()
    source.start()
    publish(mosquitto, f"{topic}/a/b", [b"x"])
    wait_for(lambda: len(L) == 1, 2)
    source.stop()
    assert isinstance(L[0], mqtt.MQTTMessage)
    assert (L[0].topic, L[0].payload) == (f"{topic}/a/b", b"x")


def test_from_mqtt_stop_disconnects_and_restart_resubscribes(mosquitto, topic):
    host, port = mosquitto
    before = len(paho_threads())
    source = Stream().from_mqtt(host, port, topic)  # static: works on an instance too
    L = source.map(lambda m: m.payload).sink_to_list()
    source.start()
    assert len(paho_threads()) == before + 1
    publish(mosquitto, topic, [b"1"])
    wait_for(lambda: L == [b"1"], 2)
    source.stop()
    assert source.client is None and source.work_task.done()
    assert len(paho_threads()) == before  # network thread ended
    publish(mosquitto, topic, [b"lost"])  # nobody subscribed (clean session)
    source.start()
    publish(mosquitto, topic, [b"2"])
    wait_for(lambda: len(L) == 2, 2)
    source.stop()
    assert L == [b"1", b"2"]
    assert len(paho_threads()) == before


def test_from_mqtt_connection_refused_is_raised_by_start():
    source = Stream.from_mqtt("127.0.0.1", free_port(), "t")
    with pytest.raises(
        ConnectionRefusedError, match="from_mqtt: cannot connect to the MQTT broker"
    ):
        source.start()
    assert source.stopped and source.client is None


@pytest.mark.parametrize("qos", [0, 1, 2])
def test_to_mqtt_publishes_and_waits_for_delivery(mosquitto, topic, qos):
    host, port = mosquitto
    receiver = Stream.from_mqtt(host, port, topic)
    got = receiver.map(lambda m: m.payload).sink_to_list()
    receiver.start()
    source = Stream()
    sink = source.to_mqtt(host, port, topic, qos=qos)
    refs = [RefCounter() for _ in range(3)]
    for i, ref in enumerate(refs):
        source.emit(f"m{i}".encode(), metadata=[{"ref": ref}])
        # emit() returned: the broker acknowledged (qos 1, 2) or the socket took it (qos 0)
        assert ref.count == 0 and not ref.failed
    wait_for(lambda: len(got) == 3, 2)
    assert got == [b"m0", b"m1", b"m2"]
    before = len(paho_threads())
    sink.destroy()
    assert sink.client is None and len(paho_threads()) == before - 1
    receiver.stop()


def test_to_mqtt_qos1_waits_for_the_puback(mosquitto, topic):
    host, port = mosquitto
    source = Stream()
    sink = source.to_mqtt(host, port, topic, qos=1)
    source.emit(b"first")  # connects
    original = sink._on_publish

    def late(*args):  # deliver paho's acknowledgement callback 0.3 s late
        threading.Timer(0.3, original, args).start()

    sink.client.on_publish = late
    t0 = time.monotonic()
    source.emit(b"second")
    assert time.monotonic() - t0 >= 0.3  # emit returned only after the acknowledgement
    sink.destroy()


def test_to_mqtt_broker_down_fails_the_element(topic):
    source = Stream()
    source.to_mqtt("127.0.0.1", free_port(), topic, qos=1)
    ref = RefCounter()
    with pytest.raises(ConnectionRefusedError, match="to_mqtt: cannot connect"):
        source.emit(b"x", metadata=[{"ref": ref}])
    assert ref.failed and ref.count == 0


def test_to_mqtt_bad_qos():
    with pytest.raises(ValueError, match="to_mqtt: qos must be 0, 1 or 2"):
        Stream().to_mqtt("127.0.0.1", 1883, "t", qos=3)
