"""A private ``redis-server`` for the tests: a child process on a free loopback port, its
files in a temporary directory, no persistence, stopped by pid (never a system service).
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["RedisServer", "RedisUnavailable", "private_server"]


class RedisUnavailable(RuntimeError):
    """No ``redis-server`` could be started (the reason is the message)."""


@dataclass
class RedisServer:
    process: subprocess.Popen[bytes]
    port: int
    directory: str

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@contextlib.contextmanager
def private_server(*extra: str) -> Iterator[RedisServer]:
    """Start ``redis-server`` (``extra``: more options, ``--appendonly yes``...); stop it after."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RedisUnavailable(
            "redis-server is not installed (scripts/test installs the Debian package redis-server)"
        )
    with tempfile.TemporaryDirectory(prefix="millstream-redis-") as directory:
        port = _free_port()
        args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", directory]
        args += ["--save", "", "--appendonly", "no", "--daemonize", "no", "--protected-mode", "no"]
        args += list(extra)
        log = open(f"{directory}/redis.log", "wb")
        process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 15
            while not _answers(port):
                if process.poll() is not None or time.monotonic() > deadline:
                    log.flush()
                    with open(f"{directory}/redis.log", "rb") as f:
                        tail = f.read()[-2000:].decode(errors="replace")
                    raise RedisUnavailable(
                        f"redis-server on 127.0.0.1:{port} did not start "
                        f"(exit code {process.poll()}): {tail}"
                    )
                time.sleep(0.05)
            yield RedisServer(process, port, directory)
        finally:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(10)
            log.close()
