"""``millstream run MODULE:ATTRIBUTE``: run a pipeline defined in a module, in production.

``ATTRIBUTE`` is a node of the pipeline (usually its source) or a function that builds
it and returns one, called with no arguments. The module is imported as ``python -m``
would: the current directory comes first on ``sys.path``. Every source of the graph
(:func:`millstream.checkpoint.graph_nodes`) is started; the command runs until they all
end (a bounded input) or a SIGTERM/SIGINT arrives. Then the sources stop (a Kafka source
finishes what is in flight and commits it), a last checkpoint is taken (with
``--checkpoint``) and the command exits 0. A pipeline error ends it with exit code 1 and
the error on stderr in one message (its traceback with ``--log-level DEBUG``).

Options (also from ``MILLSTREAM_*`` variables): ``--checkpoint LOCATION`` (restore the
newest checkpoint there, then take one every ``--checkpoint-interval``), ``--dashboard
PORT`` (the live dashboard and Prometheus ``/metrics``), ``--log-level LEVEL``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from ..core.stream import Stream
from ._args import duration, error
from ._dashboard import add_dashboard_arguments, start_dashboard

__all__ = [
    "LOG_LEVELS",
    "TargetError",
    "add_run_arguments",
    "load_target",
    "run_pipeline_command",
    "sources_of",
]

logger = logging.getLogger("millstream.cli")

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
#: how often the command checks whether the sources ended or a signal came (seconds)
CHECK_INTERVAL = 0.05
#: how long the command waits for the sources' runs to end after stop() (seconds)
STOP_TIMEOUT = 30.0


class TargetError(Exception):
    """``MODULE:ATTRIBUTE`` does not name a pipeline (the message says what was given)."""


def log_level(text: str) -> str:
    """argparse type: a logging level name, in any case.

    >>> log_level('debug')
    'DEBUG'
    """
    level = text.strip().upper()
    if level not in LOG_LEVELS:
        raise argparse.ArgumentTypeError(f"expected one of {', '.join(LOG_LEVELS)}, got {text!r}")
    return level


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the ``run`` command's arguments on ``parser``."""
    parser.add_argument(
        "target",
        metavar="MODULE:ATTRIBUTE",
        help=(
            "the pipeline: a node of it (e.g. its source) or a function returning one, "
            "called with no arguments; MODULE is imported from the current directory or "
            "sys.path (e.g. jobs.wordcount:build)"
        ),
    )
    parser.add_argument(
        "--checkpoint",
        metavar="LOCATION",
        default=None,
        help=(
            "keep the graph's state and the sources' positions in checkpoints at LOCATION "
            "(a directory or an fsspec URL); a run with the same LOCATION resumes from the "
            "newest one, and SIGTERM takes a last one"
        ),
    )
    parser.add_argument(
        "--checkpoint-interval",
        type=duration,
        default=10.0,
        metavar="DURATION",
        help="time between two checkpoints: seconds or e.g. 500ms, 10s, 1min (default 10s)",
    )
    add_dashboard_arguments(parser)
    parser.add_argument(
        "--log-level",
        type=log_level,
        default="WARNING",
        metavar="LEVEL",
        help=(
            "the log level of the root logger: DEBUG, INFO, WARNING (default), ERROR; "
            "tracebacks are shown with DEBUG only"
        ),
    )


# -- the target ----------------------------------------------------------------------------


def load_target(target: str) -> Stream:
    """Import ``MODULE:ATTRIBUTE`` and return the node it names (calling a function).

    >>> load_target('millstream')
    Traceback (most recent call last):
    ...
    millstream.cli.run.TargetError: expected MODULE:ATTRIBUTE, got 'millstream'
    >>> load_target('millstream:Stream')  # a class is a function returning a Stream
    <Stream>
    """
    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise TargetError(f"expected MODULE:ATTRIBUTE, got {target!r}")
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)  # as `python -m` does
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name is not None and (module_name + ".").startswith(e.name + "."):
            raise TargetError(
                f"no module named {module_name!r} (looked in the current directory {cwd} "
                "and sys.path)"
            ) from None
        raise TargetError(f"importing {module_name!r} failed: {_one_line(e)}") from e
    except Exception as e:
        raise TargetError(f"importing {module_name!r} failed: {_one_line(e)}") from e
    value: Any = module
    for name in attribute.split("."):
        try:
            value = getattr(value, name)
        except AttributeError:
            raise TargetError(f"module {module_name!r} has no attribute {attribute!r}") from None
    if isinstance(value, Stream):
        return value
    if not callable(value):
        raise TargetError(
            f"{target} is of type {type(value).__name__}, not a Stream nor a function returning one"
        )
    try:
        built = value()
    except Exception as e:
        raise TargetError(f"{target}() failed: {_one_line(e)}") from e
    if not isinstance(built, Stream):
        raise TargetError(
            f"{target}() returned type {type(built).__name__}, not a Stream (a node of the "
            "pipeline, e.g. its source)"
        )
    return built


def sources_of(node: Stream) -> list[Any]:
    """The sources of ``node``'s graph, in graph order."""
    from ..checkpoint import graph_nodes
    from ..sources import Source

    return [n for n in graph_nodes(node) if isinstance(n, Source)]


# -- logging and signals -------------------------------------------------------------------


class _OneLineFormatter(logging.Formatter):
    """Records in one line: an exception as its type and message, without the traceback."""

    def format(self, record: logging.LogRecord) -> str:
        saved = record.exc_info, record.exc_text, record.stack_info
        record.exc_info = record.exc_text = record.stack_info = None
        try:
            text = super().format(record)
        finally:
            record.exc_info, record.exc_text, record.stack_info = saved
        if saved[0] is not None and saved[0][1] is not None:
            text += f" ({_one_line(saved[0][1])})"
        return text


class _NotTheStoppingError(logging.Filter):
    """Drop the log record of a source stopped by an error: the command reports it."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (
            record.name == "millstream.sources" and record.msg.startswith("source %s stopped")
        )


def setup_logging(level: str) -> None:
    """Log at ``level`` on stderr, through the root logger (tracebacks with DEBUG only)."""
    handler = logging.StreamHandler(sys.stderr)
    fmt = "%(asctime)s %(levelname)s %(name)s: %(message)s"
    if level == "DEBUG":
        handler.setFormatter(logging.Formatter(fmt))
    else:
        handler.setFormatter(_OneLineFormatter(fmt))
        handler.addFilter(_NotTheStoppingError())
    logging.basicConfig(level=level, handlers=[handler], force=True)


@contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """Set ``stop`` on SIGTERM or SIGINT while the block runs (in the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        logger.info("%s received: stopping", signal.Signals(signum).name)
        stop.set()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for s, old in previous.items():
            signal.signal(s, old)


# -- the command ---------------------------------------------------------------------------


def run_pipeline_command(args: argparse.Namespace, stop: threading.Event | None = None) -> int:
    """Run ``millstream run``; return the exit code (``stop`` set: stop as on SIGTERM)."""
    setup_logging(args.log_level)
    try:
        node = load_target(args.target)
    except TargetError as e:
        error("run", str(e))
        if args.log_level == "DEBUG" and e.__cause__ is not None:
            logger.debug("the error", exc_info=e.__cause__)
        return 2
    sources = sources_of(node)
    if not sources:
        error("run", f"the graph of {args.target} has no source to start")
        return 2
    checkpoints = None
    if args.checkpoint is not None:
        from ..checkpoint import enable

        try:
            checkpoints = enable(node, args.checkpoint, interval=args.checkpoint_interval)
        except Exception as e:
            error("run", f"cannot use the checkpoints at {args.checkpoint}: {_one_line(e)}")
            return 1
        if checkpoints.restored is not None:
            logger.info("restored checkpoint %s from %s", checkpoints.restored, args.checkpoint)
    server = start_dashboard(args, "run", node) if args.dashboard is not None else None
    if server is False:
        return 1
    stop = stop if stop is not None else threading.Event()
    try:
        with stop_on_signals(stop):
            for source in sources:
                try:
                    source.start()
                except Exception as e:  # a setup error (a managed source raises it here)
                    source.error = source.error or e
                    break
            logger.info("running %s: %d source(s)", args.target, len(sources))
            while not stop.is_set() and not all(s.stopped for s in sources):
                if any(s.error is not None for s in sources):
                    break
                stop.wait(CHECK_INTERVAL)
            _stop_sources(sources)
            failed = next((s for s in sources if s.error is not None), None)
            if checkpoints is not None:
                # a last checkpoint of what was processed; none after an error
                info = checkpoints.close(final=failed is None) or checkpoints.last
                if info is not None:
                    logger.info("last checkpoint: %s at %s", info.id, args.checkpoint)
    finally:
        if server:
            server.stop()
    if failed is not None:
        report_pipeline_error(failed, failed.error, args.log_level)
        return 1
    return 0


def _stop_sources(sources: list[Any]) -> None:
    """Stop every source (a managed one drains what is in flight) and wait for their runs."""
    for source in sources:
        source.stop()
    deadline = time.monotonic() + STOP_TIMEOUT
    for source in sources:
        task = source.work_task
        while task is not None and not task.done() and time.monotonic() < deadline:
            time.sleep(CHECK_INTERVAL)


def report_pipeline_error(source: Any, failure: BaseException | None, level: str) -> None:
    """The pipeline's error on stderr: one message (its notes below), the traceback with
    DEBUG."""
    if failure is None:
        return
    notes = "".join(f"\n  {note}" for note in getattr(failure, "__notes__", ()))
    error("run", f"the pipeline stopped: {_one_line(failure)} (in the run of {source}){notes}")
    if level == "DEBUG":
        logger.debug("the pipeline's error", exc_info=failure)


def _one_line(failure: BaseException) -> str:
    """``Type: message`` of ``failure``, on one line."""
    text = str(failure).strip().splitlines()
    return f"{type(failure).__name__}: {text[0] if text else ''}".rstrip(": ")
