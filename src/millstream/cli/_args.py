"""What the ``millstream`` commands share about their arguments and input: argument
types, opening the input text, and the one-line error message."""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
from collections.abc import Iterable, Iterator
from importlib import resources
from typing import IO, Any

from .._utils import convert_interval

__all__ = [
    "DEFAULT_TEXT",
    "duration",
    "enable_checkpoints",
    "error",
    "open_input",
    "positive_int",
    "read_error",
    "seconds",
]

DEFAULT_TEXT = "opticks.txt"
"""The text counted when no ``PATH`` is given: Newton's *Opticks* (1730), public domain."""


def positive_int(text: str) -> int:
    """argparse type: a whole number >= 1.

    Examples
    --------
    >>> positive_int('3')
    3
    >>> positive_int('0')
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: expected a whole number >= 1, got 0
    """
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {value}")
    return value


def seconds(text: str) -> float:
    """argparse type: a finite number of seconds > 0.

    Examples
    --------
    >>> seconds('0.5')
    0.5
    >>> seconds('soon')
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: expected a number of seconds > 0, got 'soon'
    """
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds > 0, got {text!r}")
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number of seconds > 0, got {text}")
    return value


def duration(text: str) -> float:
    """argparse type: a duration > 0, in seconds or with a unit (``500ms``, ``2s``, ``1min``).

    Examples
    --------
    >>> duration('500ms'), duration('2')
    (0.5, 2.0)
    >>> duration('later')
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: expected a duration > 0 such as 2, 500ms or 1s, got 'later'
    """
    try:
        value = float(convert_interval(text if not _is_number(text) else float(text)))
    except (ValueError, TypeError):
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(
            f"expected a duration > 0 such as 2, 500ms or 1s, got {text!r}"
        )
    return value


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def enable_checkpoints(source: Any, args: argparse.Namespace) -> Any:
    """Turn checkpoints on for ``source``'s graph at ``--checkpoint`` (restoring the newest
    one); print a one-line error and return None when the checkpoints cannot be used."""
    from ..checkpoint import enable
    from ..exceptions import CheckpointError, StateError

    try:
        return enable(
            source,
            args.checkpoint,
            interval=args.checkpoint_interval,
            exactly_once=bool(getattr(args, "exactly_once", False)),
        )
    except (CheckpointError, StateError, ValueError, OSError) as e:
        error("wordcount", f"cannot use the checkpoints at {args.checkpoint}: {e}")
        return None


@contextlib.contextmanager
def open_input(path: str | None) -> Iterator[tuple[Iterable[str], str]]:
    """Yield ``(lines, display name)`` for ``path`` (None: the shipped text, '-': stdin)."""
    if path is None:
        resource = resources.files("millstream") / "data" / DEFAULT_TEXT
        with resource.open("r", encoding="utf-8") as f:
            yield f, "Newton's Opticks"
    elif path == "-":
        stdin: IO[str] = sys.stdin
        buffer = getattr(stdin, "buffer", None)
        if buffer is None:  # already text (e.g. replaced by a StringIO)
            yield stdin, "<stdin>"
            return
        text = io.TextIOWrapper(buffer, encoding="utf-8", errors="replace")
        try:
            yield text, "<stdin>"
        finally:
            text.detach()  # leave sys.stdin's buffer open
    else:
        with open(path, encoding="utf-8", errors="replace") as f:
            yield f, path


def read_error(path: str | None, error: OSError) -> str:
    """What went wrong opening or reading the input ``path``, in a few words.

    Examples
    --------
    >>> read_error('a.txt', FileNotFoundError(2, 'No such file or directory'))
    'no such file: a.txt'
    >>> read_error('/tmp', IsADirectoryError(21, 'Is a directory'))
    'cannot read /tmp: Is a directory'
    """
    if isinstance(error, FileNotFoundError):
        return f"no such file: {path}"
    return f"cannot read {path}: {error.strerror or error}"


def error(command: str, message: str) -> None:
    """Print the one-line error ``millstream COMMAND: error: MESSAGE`` on stderr."""
    print(f"millstream {command}: error: {message}", file=sys.stderr)
