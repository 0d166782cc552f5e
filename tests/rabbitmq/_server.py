"""A RabbitMQ broker of its own, for the tests and the benchmark (no pytest here).

:class:`RabbitMQServer` starts Debian's ``rabbitmq-server`` (``scripts/test`` installs the
package) as a child process: node ``millstream-test-<pid>-<n>@localhost``, AMQP on a free
loopback port, its Erlang distribution port and its own ``epmd`` (started here, on another
free port) so nothing clashes with a system broker, its mnesia/log directories, Erlang
cookie (``$HOME``) and an empty plugin list in a temporary directory; no configuration
file of the system is read. The system service of the package is never used.
:meth:`~RabbitMQServer.stop` ends both processes by their pids (SIGTERM, then SIGKILL of
their process groups) and removes the directory. :func:`private_server` is a started
broker, stopped after.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator

__all__ = ["RabbitMQServer", "RabbitMQUnavailable", "private_server", "rabbitmq_bin"]

_count = itertools.count()


class RabbitMQUnavailable(RuntimeError):
    """No RabbitMQ broker could be started."""


def rabbitmq_bin() -> str:
    """The directory of ``rabbitmq-server`` and ``rabbitmqctl`` (not the /usr/sbin wrapper,
    which switches to the ``rabbitmq`` user)."""
    for directory in ("/usr/lib/rabbitmq/bin",):
        if os.path.exists(os.path.join(directory, "rabbitmq-server")):
            return directory
    found = shutil.which("rabbitmq-server")
    if found is None:
        raise RabbitMQUnavailable(
            "rabbitmq-server not found (install the Debian package 'rabbitmq-server': "
            "scripts/test does)"
        )
    return os.path.dirname(os.path.realpath(found))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RabbitMQServer:
    """A broker with its files in ``base``: :meth:`start`, :meth:`ctl`, :meth:`stop`."""

    def __init__(self, base: str):
        self.base = base
        self.bindir = rabbitmq_bin()
        self.port = free_port()
        self.dist_port = free_port()
        self.epmd_port = free_port()
        self.node = f"millstream-test-{os.getpid()}-{next(_count)}@localhost"
        self.url = f"amqp://guest:guest@127.0.0.1:{self.port}/"
        self.log = os.path.join(base, "server.log")
        self.server: subprocess.Popen[bytes] | None = None
        self.epmd: subprocess.Popen[bytes] | None = None
        with open(os.path.join(base, "enabled_plugins"), "w") as f:
            f.write("[].\n")

    @property
    def env(self) -> dict[str, str]:
        b = self.base
        env = {k: v for k, v in os.environ.items() if not k.startswith("RABBITMQ_")}
        env.update(
            HOME=b,  # the Erlang cookie: $HOME/.erlang.cookie, made by the first start
            ERL_EPMD_PORT=str(self.epmd_port),
            RABBITMQ_NODENAME=self.node,
            RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
            RABBITMQ_NODE_PORT=str(self.port),
            RABBITMQ_DIST_PORT=str(self.dist_port),
            RABBITMQ_MNESIA_BASE=os.path.join(b, "mnesia"),
            RABBITMQ_LOG_BASE=os.path.join(b, "log"),
            RABBITMQ_LOGS="-",  # to standard output: the log file
            RABBITMQ_PID_FILE=os.path.join(b, "rabbitmq.pid"),
            RABBITMQ_CONF_ENV_FILE=os.path.join(b, "rabbitmq-env.conf"),  # absent
            RABBITMQ_CONFIG_FILE=os.path.join(b, "rabbitmq"),  # absent: defaults
            RABBITMQ_ADVANCED_CONFIG_FILE=os.path.join(b, "advanced.config"),  # absent
            RABBITMQ_ENABLED_PLUGINS_FILE=os.path.join(b, "enabled_plugins"),
        )
        return env

    def start(self, timeout: float = 90) -> str:
        """Start the broker; return its URL once it accepts AMQP connections."""
        env = self.env
        epmd = shutil.which("epmd") or "epmd"
        self.epmd = subprocess.Popen(
            [epmd, "-port", str(self.epmd_port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        with open(self.log, "ab") as log:
            self.server = subprocess.Popen(
                [os.path.join(self.bindir, "rabbitmq-server")],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own group: erl and its helpers end with it
            )
        deadline = time.monotonic() + timeout
        while not _accepts(self.port):
            if self.server.poll() is not None:
                raise RabbitMQUnavailable(
                    f"rabbitmq-server exited with {self.server.returncode}:\n{self.log_tail()}"
                )
            if time.monotonic() > deadline:
                raise RabbitMQUnavailable(
                    f"rabbitmq-server does not listen on 127.0.0.1:{self.port} after "
                    f"{timeout:g} s:\n{self.log_tail()}"
                )
            time.sleep(0.1)
        self.ctl("await_startup", "--timeout", str(int(timeout)), timeout=timeout + 10)
        return self.url

    def ctl(self, *args: str, timeout: float = 60) -> str:
        """Run ``rabbitmqctl -n <node> args...`` against this broker; its standard output."""
        done = subprocess.run(
            [os.path.join(self.bindir, "rabbitmqctl"), "-n", self.node, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if done.returncode != 0:
            raise RabbitMQUnavailable(
                f"rabbitmqctl {' '.join(args)} failed (exit {done.returncode}): "
                f"{(done.stdout + done.stderr)[-2000:]}"
            )
        return done.stdout

    def log_tail(self) -> str:
        try:
            with open(self.log, errors="replace") as f:
                return f.read()[-3000:]
        except OSError:
            return ""

    def stop(self) -> None:
        """End the broker and its epmd (by their pids and process groups), remove the files."""
        try:
            for proc in (self.server, self.epmd):
                if proc is not None and proc.poll() is None:
                    _end(proc)
        finally:
            shutil.rmtree(self.base, ignore_errors=True)


def _end(proc: subprocess.Popen[bytes], grace: float = 20) -> None:
    """SIGTERM ``proc`` (rabbitmq-server stops the broker cleanly), then SIGKILL its group."""
    proc.terminate()
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        pass
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # its own group (start_new_session)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(10)


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def private_server() -> Iterator[RabbitMQServer]:
    """A started broker of its own, stopped and removed after (RabbitMQUnavailable,
    OSError or TimeoutExpired if it cannot start)."""
    base = tempfile.mkdtemp(prefix="millstream-rabbitmq-")
    server = None
    try:
        server = RabbitMQServer(base)
        server.start()
    except BaseException:
        if server is not None:
            server.stop()
        shutil.rmtree(base, ignore_errors=True)
        raise
    try:
        yield server
    finally:
        server.stop()
