"""Duration strings (``convert_interval``): what ``pandas.Timedelta`` reads, parsed exactly
without pandas. The comparisons with pandas need it installed (the ``test`` extra has it)."""

from __future__ import annotations

import datetime
import warnings
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from millstream import Stream
from millstream._utils import convert_interval, parse_duration

# (string, seconds as an exact Fraction)
CASES = [
    ("10us", Fraction(1, 100_000)),
    ("10 us", Fraction(1, 100_000)),
    ("10µs", Fraction(1, 100_000)),
    ("1ns", Fraction(1, 10**9)),
    ("500ms", Fraction(1, 2)),
    ("2s", 2),
    (" 2 s ", 2),
    ("1.5h", 5400),
    ("1min 30s", 90),
    ("1h30m", 5400),
    ("1h 30m 10s", 5410),
    ("1 day 2 hours 3 minutes", 93780),
    ("1 days, 02:00:00", 93600),
    ("1day2h", 93600),
    ("2 weeks", 1_209_600),
    ("1W", 604_800),
    ("1D", 86_400),
    ("1 HOUR", 3600),
    ("1 Min", 60),
    ("5 minutes", 300),
    ("1 second", 1),
    ("3 millis", Fraction(3, 1000)),
    ("7 micros", Fraction(7, 10**6)),
    ("9 nanoseconds", Fraction(9, 10**9)),
    ("+1s", 1),
    ("- 1s", -1),
    ("-1h30m", -5400),
    ("00:01:00", 60),
    ("1:2:3", 3723),
    ("00:00:01.5", Fraction(3, 2)),
    ("-00:00:01", -1),
    ("+00:00:01", 1),
    ("1 days 02:03:04.5", 93784.5),
    ("1 days 00:00:00.000000001", 86400 + Fraction(1, 10**9)),
    ("-1 days +02:00:00", -79200),  # pandas' own form for -22 hours
    ("1s 01:00:00", 3601),
    ("PT1S", 1),
    ("P1DT2H3M4.5S", 93784.5),
    ("PT0.5S", Fraction(1, 2)),
    ("P0DT0H0M0.000001S", Fraction(1, 10**6)),
    ("P1W1D", 691_200),
    ("P1DT", 86400),
    ("PT90M", 5400),
    ("-PT1.5S", Fraction(-3, 2)),
    ("P-1D", -86400),
    ("PT1.5M", 90),  # pandas reads 301 s here
    ("1.5ns", Fraction(3, 2 * 10**9)),  # exact; pandas truncates to 1 ns
    ("1e3ms", 1),  # also accepted (pandas does not): exponents, '.5s', 'secs', 'week'
    (".5s", Fraction(1, 2)),
    ("3 secs", 3),
    ("1 week", 604_800),
]

# read differently by pandas (see the comments above), or not at all
NOT_PANDAS = {"PT1.5M", "1.5ns", "1e3ms", ".5s", "3 secs", "1 week", "2 weeks"}


@pytest.mark.parametrize(("text", "seconds"), CASES)
def test_parse_duration_table(text, seconds):
    assert parse_duration(text) == Fraction(seconds)


@pytest.mark.parametrize(("text", "seconds"), [c for c in CASES if c[1] >= 0])
def test_convert_interval_rounds_once_to_float(text, seconds):
    assert convert_interval(text) == float(Fraction(seconds))


def test_exact_small_units():
    assert convert_interval("10us") == 1e-05 == float(Fraction(10, 10**6))
    assert convert_interval("3ms") == 0.003
    assert convert_interval("100 ns") == 1e-07
    assert convert_interval("0.1s") == 0.1
    assert convert_interval("1 days 00:00:00.1") == 86400.1


BAD = [
    "soon",
    "",
    "   ",
    "1ss",
    "1 s s",
    "s",
    "1M",  # months
    "2Y",
    "P1M",
    "P1Y",
    "P",
    "PT",
    "pt1s s",
    "12:00",
    "1 day 00:01",
    "01:00:00 1s",
    "3 days 4",
    "1h-30m",
    "1 day -1s",
    "1 days -02:00:00",
    "--1s",
    "nan",
    "NaT",
    "1_000s",
    "1,5s",
]


@pytest.mark.parametrize("text", BAD)
def test_bad_strings_name_the_string_and_the_accepted_forms(text):
    with pytest.raises(ValueError) as info:
        convert_interval(text)
    message = str(info.value)
    assert f"cannot read interval {text!r}" in message
    assert "'500ms'" in message or "ISO 8601" in message


def test_months_and_years_are_refused_with_a_reason():
    with pytest.raises(ValueError, match="months or years"):
        convert_interval("1M")
    with pytest.raises(ValueError, match="months and years are not fixed durations"):
        convert_interval("P1M")


def test_negative_durations_are_refused_like_negative_numbers():
    for value in (-1, "-1s", "-00:00:01", "-PT1S", "-1"):
        with pytest.raises(ValueError, match="must not be negative"):
            convert_interval(value)


def test_numbers_and_timedeltas_as_before():
    assert convert_interval(2) == 2.0 and type(convert_interval(2)) is float
    assert convert_interval(0.25) == 0.25
    assert convert_interval("2") == 2.0  # a bare number string is seconds (pandas: ns)
    assert convert_interval("1.5") == 1.5
    assert convert_interval(datetime.timedelta(milliseconds=1500)) == 1.5
    with pytest.raises(TypeError):
        convert_interval(True)
    with pytest.raises(TypeError):
        convert_interval(None)
    with pytest.raises(ValueError, match="too large"):
        convert_interval("1e400s")


def test_nodes_take_the_new_forms():
    source = Stream()
    assert source.timed_window("00:00:01.5").interval == 1.5
    assert source.rate_limit("PT0.25S").interval == 0.25
    assert source.delay("10us").interval == 1e-05
    with pytest.raises(ValueError, match="timed_window: bad interval: cannot read interval 'x'"):
        source.timed_window("x")


# -- the same values as pandas -------------------------------------------------------------

# unit names pandas reads without a deprecation warning, with their size in nanoseconds
PANDAS_UNITS = {
    "ns": 1,
    "nanoseconds": 1,
    "us": 1_000,
    "µs": 1_000,
    "micros": 1_000,
    "ms": 10**6,
    "milliseconds": 10**6,
    "s": 10**9,
    "sec": 10**9,
    "seconds": 10**9,
    "m": 60 * 10**9,
    "min": 60 * 10**9,
    "minutes": 60 * 10**9,
    "h": 3600 * 10**9,
    "hr": 3600 * 10**9,
    "hours": 3600 * 10**9,
    "D": 86400 * 10**9,
    "days": 86400 * 10**9,
    "W": 604800 * 10**9,
}


@st.composite
def unit_part(draw):
    unit = draw(st.sampled_from(sorted(PANDAS_UNITS)))
    whole = draw(st.integers(0, 500))
    if PANDAS_UNITS[unit] <= 10**9:
        # decimals that stay whole nanoseconds (pandas rounds anything finer)
        decimals = draw(st.integers(0, min(3, len(str(PANDAS_UNITS[unit])) - 1)))
        digits = draw(st.integers(0, 10**decimals - 1))
        fraction = f".{digits:0{decimals}d}" if decimals else ""
    else:  # pandas goes through floats: '64.1W' gives 38767679999999993 ns
        fraction = draw(st.sampled_from(["", ".", ".5", ".25", ".75", ".125"]))
    number = f"{whole}{fraction}"
    space = draw(st.sampled_from(["", " "]))
    return f"{number}{space}{unit}"


@st.composite
def clock(draw):
    h, m, s = draw(st.integers(0, 99)), draw(st.integers(0, 59)), draw(st.integers(0, 59))
    text = f"{h:02d}:{m:02d}:{s:02d}"
    decimals = draw(st.integers(0, 9))
    if decimals:
        text += "." + "".join(
            draw(st.lists(st.sampled_from("0123456789"), min_size=decimals, max_size=decimals))
        )
    return text


@st.composite
def pandas_style(draw):
    sign = draw(st.sampled_from(["", "-", "+", "- "]))
    parts = draw(st.lists(unit_part(), min_size=0, max_size=3))
    separator = draw(st.sampled_from([" ", "", ", "]))
    text = separator.join(parts)
    if not parts or draw(st.booleans()):
        text += (" " + draw(st.sampled_from(["", "+"])) if parts else "") + draw(clock())
    return sign + text


@st.composite
def iso_8601(draw):
    sign = draw(st.sampled_from(["", "-"]))
    w, d, h, m = (draw(st.one_of(st.none(), st.integers(0, 99))) for _ in range(4))
    s = draw(st.one_of(st.none(), st.integers(0, 99), st.decimals(0, 99, places=6)))
    if all(v is None for v in (w, d, h, m, s)):
        d = 1
    text = f"{sign}P" + (f"{w}W" if w is not None else "") + (f"{d}D" if d is not None else "")
    if (h, m, s) != (None, None, None):
        text += "T" + (f"{h}H" if h is not None else "") + (f"{m}M" if m is not None else "")
        text += f"{s}S" if s is not None else ""
    return text


def pandas_nanoseconds(text):
    import pandas as pd  # needed: the test extra installs it; a missing pandas fails here

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # these forms must be current pandas, not deprecated
        return pd.Timedelta(text).value


def check_same_as_pandas(text):
    ns = pandas_nanoseconds(text)
    assert parse_duration(text) * 10**9 == ns, text
    if ns >= 0:
        assert convert_interval(text) == float(Fraction(ns, 10**9)), text
        if ns < 2**53:
            assert convert_interval(text) == ns / 1e9, text


@pytest.mark.parametrize(
    "text",
    [c[0] for c in CASES if c[0] not in NOT_PANDAS],
)
def test_table_agrees_with_pandas(text):
    check_same_as_pandas(text)


@settings(max_examples=300, deadline=None)
@given(pandas_style())
def test_pandas_style_strings_agree_with_pandas(text):
    check_same_as_pandas(text)


@settings(max_examples=200, deadline=None)
@given(iso_8601())
def test_iso_8601_strings_agree_with_pandas(text):
    check_same_as_pandas(text)


# pandas reads these, as NaT or as something else than written ('P1M' as one minute, '1,5s'
# as 15 seconds); millstream refuses them
PANDAS_READS = {"", "nan", "NaT", "P1M", "1,5s"}


@pytest.mark.parametrize("text", [t for t in BAD if t not in PANDAS_READS])
def test_strings_pandas_refuses_are_refused(text):
    import pandas as pd

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError):
            pd.Timedelta(text)
