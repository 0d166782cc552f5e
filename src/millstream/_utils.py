"""Small helpers shared by every layer: sentinels, interval parsing, readable reprs.

Nothing here imports pandas, dask or any other optional dependency.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fractions import Fraction

__all__ = [
    "add_note",
    "annotate_error",
    "check_callable",
    "check_positive_int",
    "convert_interval",
    "func_repr",
    "identity",
    "no_default",
    "parse_duration",
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


_NS_PER_UNIT = {
    "ns": 1,
    "us": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
    "d": 86_400_000_000_000,
    "w": 604_800_000_000_000,
}
#: Unit names (lower case) accepted in duration strings: pandas' names, plus a few plurals.
_UNITS = {
    **dict.fromkeys(["ns", "nano", "nanos", "nanosecond", "nanoseconds"], "ns"),
    **dict.fromkeys(
        ["us", "\u00b5s", "\u03bcs", "micro", "micros", "microsecond", "microseconds"], "us"
    ),
    **dict.fromkeys(["ms", "milli", "millis", "millisecond", "milliseconds"], "ms"),
    **dict.fromkeys(["s", "sec", "secs", "second", "seconds"], "s"),
    **dict.fromkeys(["m", "min", "mins", "minute", "minutes"], "m"),
    **dict.fromkeys(["h", "hr", "hrs", "hour", "hours"], "h"),
    **dict.fromkeys(["d", "day", "days"], "d"),
    **dict.fromkeys(["w", "week", "weeks"], "w"),
}
_NUMBER = r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]{1,4})?"
_UNIT_PART = re.compile(rf"[\s,]*({_NUMBER})\s*([^\W\d_]+)")
_CLOCK = re.compile(r"[\s,]*(\+?)\s*([0-9]+):([0-9]+):([0-9]+)(?:\.([0-9]*))?\s*")
_ISO_NUMBER = r"([-+]?[0-9]+(?:\.[0-9]+)?)"
_ISO = re.compile(
    rf"([-+]?)P(?:{_ISO_NUMBER}W)?(?:{_ISO_NUMBER}D)?"
    rf"(?:T(?:{_ISO_NUMBER}H)?(?:{_ISO_NUMBER}M)?(?:{_ISO_NUMBER}S)?)?",
    re.IGNORECASE,
)
_ACCEPTED = (
    "use a number of seconds, or a duration such as '500ms', '2 s', '1min 30s', '1h30m', "
    "'1.5 hours', '00:01:30', '1 days 02:03:04.5' or the ISO 8601 'PT1M30S' "
    "(units: ns, us, ms, s, m/min, h/hr, d/day, w, and their long names)"
)


def parse_duration(text: str) -> Fraction:
    """The duration ``text`` names, in seconds, exactly (what ``pandas.Timedelta`` reads).

    Accepted: numbers with units (``'10us'``, ``'1.5 hours'``, ``'1h30m'``,
    ``'1 day, 2 hours'``), an ``hh:mm:ss[.fff]`` clock, after units or alone
    (``'1 days 02:03:04.5'``, ``'00:01:00'``), ISO 8601 durations (``'PT1S'``,
    ``'P1DT2H3M4.5S'``, ``'P2W'``), a leading sign, spaces and commas. As in pandas'
    own form ``'-1 days +02:00:00'``, a clock after a negative count of units is added.
    Unit names ignore case, except ``'M'`` (months, not a fixed duration).

    >>> parse_duration('10us'), parse_duration('1 days 02:03:04.5'), parse_duration('PT1S')
    (Fraction(1, 100000), Fraction(187569, 2), Fraction(1, 1))
    >>> parse_duration('-1 days +02:00:00')
    Fraction(-79200, 1)
    """
    from fractions import Fraction  # here: importing it costs 2 ms, most graphs never need it

    stripped = text.strip()
    iso = _ISO.fullmatch(stripped)
    if iso is not None:
        return _iso_seconds(text, iso)
    if stripped.lstrip("+-")[:1] in ("P", "p"):
        raise ValueError(
            f"cannot read duration {text!r}: an ISO 8601 duration here has weeks, days, hours, "
            "minutes and seconds only, in that order ('P1W', 'P1DT2H', 'PT1M30.5S'); months and "
            "years are not fixed durations"
        )
    sign, pos = 1, 0
    if stripped[:1] in ("+", "-"):
        sign, pos = (-1 if stripped[0] == "-" else 1), 1
    if stripped[pos : pos + 1].isspace():
        pos = len(stripped) - len(stripped[pos:].lstrip())
    units_ns, parts = Fraction(0), 0
    while True:
        m = _UNIT_PART.match(stripped, pos)
        if m is None:
            break
        units_ns += Fraction(m.group(1)) * _unit_ns(text, m.group(2))
        parts += 1
        pos = m.end()
    clock_ns = Fraction(0)
    clock = _CLOCK.fullmatch(stripped, pos)
    if clock is not None and clock.group(1) and not parts:
        clock = None  # '+' only between units and the clock
    if clock is not None:
        hours, minutes, seconds, fraction = clock.group(2, 3, 4, 5)
        whole = (int(hours) * 60 + int(minutes)) * 60 + int(seconds)
        clock_ns = whole * Fraction(10**9) + (Fraction(f"0.{fraction}") * 10**9 if fraction else 0)
        pos = len(stripped)
    if pos != len(stripped) or not (parts or clock is not None):
        raise ValueError(f"cannot read duration {text!r}: {_ACCEPTED}")
    if parts:  # pandas: the sign is the units'; a clock after them is added
        return (sign * units_ns + clock_ns) / 10**9
    return sign * clock_ns / 10**9


def _unit_ns(text: str, unit: str) -> int:
    if unit in ("M", "Y", "y"):
        raise ValueError(
            f"cannot read duration {text!r}: {unit!r} (months or years) is not a fixed duration; "
            f"{_ACCEPTED}"
        )
    name = _UNITS.get(unit.lower())
    if name is None:
        raise ValueError(f"cannot read duration {text!r}: unknown unit {unit!r}; {_ACCEPTED}")
    return _NS_PER_UNIT[name]


def _iso_seconds(text: str, m: re.Match[str]) -> Fraction:
    from fractions import Fraction

    values = m.group(2, 3, 4, 5, 6)
    if all(v is None for v in values):
        raise ValueError(f"cannot read duration {text!r}: {_ACCEPTED}")
    total = Fraction(0)
    for value, unit in zip(values, ("w", "d", "h", "m", "s"), strict=True):
        if value is not None:
            total += Fraction(value) * _NS_PER_UNIT[unit]
    return (-total if m.group(1) == "-" else total) / 10**9


def convert_interval(interval: Any) -> float:
    """Convert an interval to seconds.

    Numbers are taken as seconds, and so are strings holding just a number. Other
    strings are durations as ``pandas.Timedelta`` reads them (see :func:`parse_duration`;
    pandas is not imported), computed exactly and rounded to a float once.
    ``datetime.timedelta`` and ``pandas.Timedelta`` are accepted too.

    >>> convert_interval(0.5)
    0.5
    >>> convert_interval('500ms'), convert_interval('1min 30s'), convert_interval('10us')
    (0.5, 90.0, 1e-05)
    >>> convert_interval('00:01:00'), convert_interval('PT1S'), convert_interval('1h30m')
    (60.0, 1.0, 5400.0)
    >>> convert_interval('soon')  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: cannot read interval 'soon': use a number of seconds, or a duration such as ...
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
        try:
            value = float(interval)
        except ValueError:
            pass
        else:
            if value >= 0:
                return value
            if value < 0:
                raise ValueError(f"interval must not be negative, got {interval!r}")
        try:
            seconds = parse_duration(interval)
        except ValueError as e:
            raise ValueError(str(e).replace("cannot read duration", "cannot read interval", 1))
        if seconds < 0:
            raise ValueError(f"interval must not be negative, got {interval!r}")
        try:
            return float(seconds)
        except OverflowError:
            raise ValueError(f"interval {interval!r} is too large") from None
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


def add_note(error: BaseException, note: str, unless: str | None = None) -> bool:
    """Attach ``note`` to ``error`` (shown in its traceback; ``error.__notes__``); return
    whether it was added.

    With ``unless``, nothing is added if a note starting with it is there already (so the
    innermost place that knows most names the error, once).

    >>> e = ValueError('bad')
    >>> add_note(e, 'millstream: first', unless='millstream:')
    True
    >>> add_note(e, 'millstream: second', unless='millstream:')
    False
    >>> e.__notes__
    ['millstream: first']
    """
    notes = getattr(error, "__notes__", None) or []
    if unless is not None and any(n.startswith(unless) for n in notes):
        return False
    add = getattr(error, "add_note", None)
    if add is not None:
        add(note)
    else:  # Python 3.10
        try:
            error.__notes__ = [*notes, note]  # type: ignore[attr-defined]
        except Exception:
            return False
    return True


def annotate_error(
    error: BaseException, node: Any, func: Any, x: Any, what: str = "element"
) -> None:
    """Attach a note to ``error`` naming the node, the user's function and the element.

    The exception keeps its type, so ``except ZeroDivisionError`` still works as in Streamz;
    the note appears in the traceback (and in ``error.__notes__``). Only the innermost
    node annotates an error, and counts it in its ``errors_raised`` (a node's metrics).
    """
    calling = f" calling {func_repr(func)}" if func is not None else ""
    note = (
        f"millstream: {node} failed{calling} on {what} of type {type(x).__name__}: {short_repr(x)}"
    )
    if add_note(error, note, unless="millstream:") and hasattr(node, "errors_raised"):
        try:
            node.errors_raised += 1
        except AttributeError:  # a node class with slots or a read-only attribute
            pass


def check_callable(node_name: str, name: str, func: Any) -> None:
    """Fail at construction when a function argument is not callable."""
    if not callable(func):
        raise TypeError(f"{node_name}: {name} must be callable, got {short_repr(func)}")


def check_positive_int(node_name: str, name: str, n: Any) -> int:
    """Fail at construction unless ``n`` is an int >= 1."""
    if isinstance(n, bool) or not isinstance(n, int) or n <= 0:
        raise ValueError(f"{node_name}: {name} must be a positive integer, got {short_repr(n)}")
    return n
