"""Small helpers shared by every layer: sentinels, interval parsing, readable reprs.

Nothing here imports pandas, dask or any other optional dependency.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = [
    "add_note",
    "annotate_error",
    "check_callable",
    "check_positive_int",
    "convert_interval",
    "func_repr",
    "identity",
    "no_default",
    "short_repr",
]

#: Sentinel for "no value given" (the same string Streamz uses, so comparisons keep working).
no_default = "--no-default--"


def identity(x: Any) -> Any:
    """Return ``x`` unchanged.

    >>> identity(3)
    3
    """
    return x


_UNITS = {
    "ns": 1e-9,
    "nanosecond": 1e-9,
    "nanoseconds": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "microsecond": 1e-6,
    "microseconds": 1e-6,
    "ms": 1e-3,
    "millisecond": 1e-3,
    "milliseconds": 1e-3,
    "s": 1.0,
    "sec": 1.0,
    "secs": 1.0,
    "second": 1.0,
    "seconds": 1.0,
    "m": 60.0,
    "min": 60.0,
    "mins": 60.0,
    "minute": 60.0,
    "minutes": 60.0,
    "h": 3600.0,
    "hr": 3600.0,
    "hour": 3600.0,
    "hours": 3600.0,
    "d": 86400.0,
    "day": 86400.0,
    "days": 86400.0,
}
_PART = re.compile(r"\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([a-zA-Zµ]+)\s*")


def convert_interval(interval: Any) -> float:
    """Convert an interval to seconds.

    Numbers are taken as seconds. Strings use pandas-style units (``'500ms'``,
    ``'2s'``, ``'1min 30s'``) and are parsed without importing pandas.
    ``datetime.timedelta`` and ``pandas.Timedelta`` are accepted too.

    >>> convert_interval(0.5)
    0.5
    >>> convert_interval('500ms')
    0.5
    >>> convert_interval('1min 30s')
    90.0
    >>> convert_interval('soon')
    Traceback (most recent call last):
    ...
    ValueError: cannot read interval 'soon': use seconds or a duration like '500ms', '2s', '1min'
    """
    if isinstance(interval, bool):
        raise TypeError(
            f"interval must be a number of seconds or a duration string, got {interval!r}"
        )
    if isinstance(interval, (int, float)):
        if interval < 0:
            raise ValueError(f"interval must not be negative, got {interval!r}")
        return float(interval)
    total_seconds = getattr(interval, "total_seconds", None)
    if callable(total_seconds):
        return float(total_seconds())
    if isinstance(interval, str):
        text = interval.strip()
        pos, total, matched = 0, 0.0, False
        while pos < len(text):
            m = _PART.match(text, pos)
            if not m or (m.group(2).lower() not in _UNITS and m.group(2) not in _UNITS):
                break
            unit = m.group(2) if m.group(2) in _UNITS else m.group(2).lower()
            total += float(m.group(1)) * _UNITS[unit]
            pos = m.end()
            matched = True
        if matched and pos == len(text):
            return total
        try:
            value = float(text)
        except ValueError:
            pass
        else:
            if value >= 0:
                return value
        raise ValueError(
            f"cannot read interval {interval!r}: "
            "use seconds or a duration like '500ms', '2s', '1min'"
        )
    raise TypeError(f"interval must be a number of seconds or a duration string, got {interval!r}")


def func_repr(func: Any) -> str:
    """A readable name for a user function, with its module and line where known.

    >>> def parse(x):
    ...     return x
    >>> func_repr(parse)  # doctest: +ELLIPSIS
    "function 'parse' (...line ...)"
    >>> func_repr(str.split)
    "function 'str.split'"
    """
    target = getattr(func, "func", None) if type(func).__name__ == "partial" else None
    name = getattr(func, "__qualname__", None) or getattr(func, "__name__", None)
    if name is None:
        name = type(func).__name__ + " instance" if target is None else "partial"
    code = getattr(func, "__code__", None)
    if target is not None:
        return f"partial of {func_repr(target)}"
    if code is not None:
        module = getattr(func, "__module__", None) or ""
        where = f"{module}, " if module and module != "__main__" else ""
        return f"function {name!r} ({where}{code.co_filename} line {code.co_firstlineno})"
    return f"function {name!r}"


def short_repr(x: Any, limit: int = 120) -> str:
    """``repr(x)`` cut to ``limit`` characters, never raising.

    >>> short_repr('x' * 500, limit=20)
    "'xxxxxxxxxxxxxx ...(502 chars)"
    """
    try:
        text = repr(x)
    except Exception as e:  # a broken __repr__ must not hide the real error
        text = f"<unrepresentable {type(x).__name__}: {e!r}>"
    if len(text) > limit:
        return f"{text[: limit - 5]} ...({len(text)} chars)"
    return text


def add_note(error: BaseException, note: str, unless: str | None = None) -> None:
    """Attach ``note`` to ``error`` (shown in its traceback; ``error.__notes__``).

    With ``unless``, nothing is added if a note starting with it is there already (so the
    innermost place that knows most names the error, once).

    >>> e = ValueError('bad')
    >>> add_note(e, 'millstream: first', unless='millstream:')
    >>> add_note(e, 'millstream: second', unless='millstream:')
    >>> e.__notes__
    ['millstream: first']
    """
    notes = getattr(error, "__notes__", None) or []
    if unless is not None and any(n.startswith(unless) for n in notes):
        return
    add = getattr(error, "add_note", None)
    if add is not None:
        add(note)
    else:  # Python 3.10
        try:
            error.__notes__ = [*notes, note]  # type: ignore[attr-defined]
        except Exception:
            pass


def annotate_error(
    error: BaseException, node: Any, func: Any, x: Any, what: str = "element"
) -> None:
    """Attach a note to ``error`` naming the node, the user's function and the element.

    The exception keeps its type, so ``except ZeroDivisionError`` still works as in Streamz;
    the note appears in the traceback (and in ``error.__notes__``). Only the innermost
    node annotates an error.
    """
    calling = f" calling {func_repr(func)}" if func is not None else ""
    note = (
        f"millstream: {node} failed{calling} on {what} of type {type(x).__name__}: {short_repr(x)}"
    )
    add_note(error, note, unless="millstream:")


def check_callable(node_name: str, name: str, func: Any) -> None:
    """Fail at construction when a function argument is not callable."""
    if not callable(func):
        raise TypeError(f"{node_name}: {name} must be callable, got {short_repr(func)}")


def check_positive_int(node_name: str, name: str, n: Any) -> int:
    """Fail at construction unless ``n`` is an int >= 1."""
    if isinstance(n, bool) or not isinstance(n, int) or n <= 0:
        raise ValueError(f"{node_name}: {name} must be a positive integer, got {short_repr(n)}")
    return n
