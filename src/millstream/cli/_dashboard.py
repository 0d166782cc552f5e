"""``--dashboard PORT`` of ``millstream wordcount`` and ``millstream run``: the live
dashboard and Prometheus ``/metrics`` of the running graph (:func:`millstream.metrics.serve`)."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterator
from typing import Any

from ..core.stream import Stream
from ._args import error

__all__ = ["add_dashboard_arguments", "dashboard_of", "dashboard_port", "start_dashboard"]


def dashboard_port(text: str) -> int:
    """argparse type: a TCP port, 0 for a free one.

    >>> dashboard_port('8080'), dashboard_port('0')
    (8080, 0)
    """
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number 0-65535, got {text!r}")
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port number 0-65535, got {port}")
    return port


def add_dashboard_arguments(parser: Any) -> None:
    """Declare ``--dashboard PORT`` and ``--dashboard-host HOST`` on ``parser``."""
    parser.add_argument(
        "--dashboard",
        type=dashboard_port,
        default=None,
        metavar="PORT",
        help=(
            "serve the live dashboard (/) and the Prometheus metrics (/metrics) on PORT "
            "while it runs (0: a free port); the URL is printed on stderr"
        ),
    )
    parser.add_argument(
        "--dashboard-host",
        default="127.0.0.1",
        metavar="HOST",
        help="the address the dashboard listens on (default 127.0.0.1; 0.0.0.0 in a container)",
    )


def start_dashboard(args: argparse.Namespace, command: str, *nodes: Stream) -> Any:
    """Serve the dashboard of ``nodes``' graph on ``--dashboard``; print its URL on
    stderr. Returns the server, or False (after a one-line error) when it cannot start."""
    from ..metrics import serve

    try:
        server = serve(*nodes, port=args.dashboard, host=args.dashboard_host)
    except OSError as e:
        error(command, f"cannot serve the dashboard on {args.dashboard_host}:{args.dashboard}: {e}")
        return False
    print(f"millstream {command}: dashboard at {server.url} (metrics at {server.url}metrics)",
          file=sys.stderr, flush=True)  # fmt: skip
    return server


@contextlib.contextmanager
def dashboard_of(
    args: argparse.Namespace, *nodes: Stream, command: str = "wordcount"
) -> Iterator[Any]:
    """While the block runs, serve the dashboard of ``nodes``' graph when ``--dashboard``
    was given; yields the server, None (no ``--dashboard``) or False (it could not start:
    the error is printed)."""
    if getattr(args, "dashboard", None) is None:
        yield None
        return
    server = start_dashboard(args, command, *nodes)
    try:
        yield server
    finally:
        if server:
            server.stop()
