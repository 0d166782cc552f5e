"""A real standalone Apache Pulsar for the tests of ``from_pulsar`` and ``to_pulsar``.

Without ``$MILLSTREAM_PULSAR_URL`` the session starts one of its own through
``scripts/pulsar-standalone`` (Java 17+; the jars are fetched with Maven the first time:
``scripts/test`` does it) on free loopback ports, in a temporary state directory, and
stops it at the end (by its pid, also if the session dies: ``--owner-pid``). When no
Pulsar can be had the tests FAIL with the reason: they never skip.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "pulsar-standalone"
URL_ENV = "MILLSTREAM_PULSAR_URL"
ADMIN_ENV = "MILLSTREAM_PULSAR_ADMIN_URL"
#: the admin (web) URL of the session's Pulsar, once started
_admin: list[str] = []

_names = itertools.count()
_run = uuid.uuid4().hex[:8]


def unique_topic(prefix: str = "t") -> str:
    return f"persistent://public/default/{prefix}-{_run}-{next(_names)}"


@pytest.fixture(scope="session")
def pulsar_url(tmp_path_factory):
    """The service URL (``pulsar://127.0.0.1:PORT``) of the session's Pulsar."""
    try:
        import pulsar  # noqa: F401
    except ImportError:
        pytest.fail(
            "pulsar-client is not installed: pip install 'millstream[pulsar]'", pytrace=False
        )
    if os.environ.get(URL_ENV):
        yield os.environ[URL_ENV]
        return
    state_dir = tmp_path_factory.mktemp("pulsar")
    command = [sys.executable, str(SCRIPT), "--state-dir", str(state_dir)]
    result = subprocess.run(
        [*command[:2], "start", *command[2:], "--owner-pid", str(os.getpid())],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(
            f"no Pulsar for the tests: scripts/pulsar-standalone start failed "
            f"(exit {result.returncode}):\n{result.stderr[-4000:]}",
            pytrace=False,
        )
    state = json.loads((state_dir / "pulsar.json").read_text())
    _admin.append(state["web_url"])
    try:
        yield result.stdout.strip().splitlines()[-1]
    finally:
        subprocess.run([*command[:2], "stop", *command[2:]], capture_output=True, timeout=60)


@pytest.fixture(scope="session")
def pulsar_admin_url(pulsar_url):
    """The admin REST URL (``http://127.0.0.1:PORT``) of the session's Pulsar."""
    if os.environ.get(URL_ENV):
        if not os.environ.get(ADMIN_ENV):
            pytest.fail(f"${URL_ENV} is set: set ${ADMIN_ENV} too", pytrace=False)
        return os.environ[ADMIN_ENV]
    return _admin[-1]


@pytest.fixture(scope="session")
def pulsar_client(pulsar_url):
    """A plain ``pulsar.Client`` to produce test input and read output."""
    import pulsar

    client = pulsar.Client(pulsar_url, logger=logging.getLogger("tests.pulsar"))
    yield client
    client.close()


@pytest.fixture
def topic():
    """A fresh topic name (created on first use)."""
    return unique_topic()
