"""Fixtures for the source tests: free loopback ports and a real Mosquitto broker."""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import pytest

from ._helpers import free_port, port_is_open

MOSQUITTO_CANDIDATES = ("/usr/sbin/mosquitto", "/usr/bin/mosquitto", "/usr/local/sbin/mosquitto")


@pytest.fixture
def port() -> int:
    return free_port()


def _find_mosquitto() -> str | None:
    found = shutil.which("mosquitto")
    if found:
        return found
    for candidate in MOSQUITTO_CANDIDATES:
        if os.access(candidate, os.X_OK):
            return candidate
    return None


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory):
    """A Mosquitto broker on 127.0.0.1:<free port> for the whole session; yields (host, port).

    Fails (never skips) when the broker binary is missing.
    """
    binary = _find_mosquitto()
    if binary is None:
        pytest.fail(
            "the MQTT tests need the Mosquitto broker: install it with "
            "`apt-get install mosquitto` (Debian/Ubuntu) so that /usr/sbin/mosquitto exists",
            pytrace=False,
        )
    directory = tmp_path_factory.mktemp("mosquitto")
    broker_port = free_port()
    conf = directory / "mosquitto.conf"
    conf.write_text(
        f"listener {broker_port} 127.0.0.1\n"
        "allow_anonymous true\n"
        "persistence false\n"
        "log_dest stderr\n"
    )
    log = open(directory / "mosquitto.log", "wb")
    process = subprocess.Popen([binary, "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while not port_is_open(broker_port):
            if process.poll() is not None or time.monotonic() > deadline:
                log.flush()
                text = (directory / "mosquitto.log").read_text(errors="replace")
                pytest.fail(f"mosquitto did not start (exit {process.poll()}):\n{text}")
            time.sleep(0.02)
        yield "127.0.0.1", broker_port
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
