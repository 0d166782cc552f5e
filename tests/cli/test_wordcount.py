"""``millstream wordcount``: counts checked against an independent ``collections.Counter``."""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from importlib import resources
from pathlib import Path

import pytest
from rich.console import Console

from millstream import __version__
from millstream.cli import main
from millstream.cli._display import is_interactive
from millstream.cli.main import build_parser
from millstream.cli.wordcount import WordCount, count_words, run

ROW = re.compile(r"^│\s*(\d+)\s*│\s*(\S+)\s*│\s*(\d+)\s*│\s*[\d.]+%\s*│$", re.MULTILINE)

TEXT = """\
The quick brown fox -- jumps over the lazy dog.
THE DOG sleeps; the fox doesn't sleep, 'tis said.
  Dog's day: dog, Dog, DOG!   fox_fox \u2019tis

a a a b b b c c
"""


def expected_words(line: str) -> list[str]:
    """An oracle written apart from the CLI: words are runs of letters/digits joined by '."""
    return re.findall(r"[^\W_]+(?:'[^\W_]+)*", line.lower().replace("\u2019", "'"))


def top_n(counter: Counter[str], n: int) -> list[tuple[str, int]]:
    return sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))[:n]


def rows(output: str) -> list[tuple[int, str, int]]:
    return [(int(r), w, int(c)) for r, w, c in ROW.findall(output)]


def ranked(pairs: list[tuple[str, int]]) -> list[tuple[int, str, int]]:
    return [(i, w, c) for i, (w, c) in enumerate(pairs, 1)]


@pytest.fixture
def text_file(tmp_path: Path) -> Path:
    path = tmp_path / "text.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


def test_file_top_n_matches_counter(text_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    expected = Counter(w for line in TEXT.splitlines() for w in expected_words(line))
    assert main(["wordcount", str(text_file), "--top", "5"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert rows(out) == ranked(top_n(expected, 5))
    assert rows(out)[:3] == [(1, "dog", 5), (2, "fox", 4), (3, "the", 4)]  # by hand
    assert out.startswith("Top 5 words in /")  # one line, cut with … if wider than the console
    assert out.splitlines()[1].startswith("┏")
    total = sum(expected.values())
    assert f"5 lines, {total} words ({len(expected)} distinct)" in out
    assert "\x1b" not in out  # not a terminal: no live frames, no escape codes


def test_raw_mode_counts_str_split_tokens(
    text_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    expected = Counter(w for line in TEXT.splitlines() for w in line.split())
    assert main(["wordcount", str(text_file), "--raw", "--top", "4"]) == 0
    assert rows(capsys.readouterr().out) == ranked(top_n(expected, 4))


def test_stdin_text(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(TEXT))
    expected = Counter(w for line in TEXT.splitlines() for w in expected_words(line))
    assert main(["wordcount", "-", "--top", "3"]) == 0
    out = capsys.readouterr().out
    assert rows(out) == ranked(top_n(expected, 3))
    assert "Top 3 words in <stdin>" in out


def test_stdin_bytes_are_read_as_utf8_with_replacement(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data = "caf\u00e9 caf\u00e9 na\u00efve\n".encode() + b"bad\xff bad\xff bad\xff\n"
    stdin = io.TextIOWrapper(io.BytesIO(data), encoding="ascii")  # its own decoding is not used
    monkeypatch.setattr(sys, "stdin", stdin)
    assert main(["wordcount", "-", "--raw"]) == 0
    assert rows(capsys.readouterr().out) == [
        (1, "bad\ufffd", 3),
        (2, "caf\u00e9", 2),
        (3, "na\u00efve", 1),
    ]
    assert not stdin.buffer.closed  # the CLI leaves sys.stdin usable


def test_top_larger_than_vocabulary_and_ties_alphabetical(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "t.txt"
    path.write_text("b a c\nc b a\nz\n", encoding="utf-8")
    assert main(["wordcount", str(path), "--top", "50"]) == 0
    assert rows(capsys.readouterr().out) == [(1, "a", 2), (2, "b", 2), (3, "c", 2), (4, "z", 1)]


def test_empty_input(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    assert main(["wordcount", "-"]) == 0
    out = capsys.readouterr().out
    assert rows(out) == []
    assert "0 lines, 0 words (0 distinct)" in out


def test_default_text_in_process(capsys: pytest.CaptureFixture[str]) -> None:
    text = (resources.files("millstream") / "data" / "opticks.txt").read_text(encoding="utf-8")
    expected = Counter(w for line in text.splitlines() for w in expected_words(line))
    assert main(["wordcount", "--top", "10"]) == 0
    out = capsys.readouterr().out
    assert rows(out) == ranked(top_n(expected, 10))
    assert "Top 10 words in Newton's Opticks" in out


def test_pipeline_counts_equal_counter() -> None:
    lines = TEXT.splitlines()
    assert count_words(lines) == Counter(w for line in lines for w in expected_words(line))
    assert count_words(lines, normalize=False) == Counter(w for line in lines for w in line.split())


# -- errors -------------------------------------------------------------------------------


def test_missing_file_exit_2_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.txt"
    assert main(["wordcount", str(missing)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == f"millstream wordcount: error: no such file: {missing}\n"


def test_directory_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["wordcount", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"millstream wordcount: error: cannot read {tmp_path}:")
    assert err.count("\n") == 1


@pytest.mark.parametrize("value", ["0", "-3", "ten", "1.5"])
def test_top_must_be_a_positive_int(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["wordcount", "--top", value]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert "argument --top: expected a whole number >= 1" in err


def test_no_command_prints_usage(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "usage: millstream" in capsys.readouterr().err


def test_version_and_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"millstream {__version__}\n"
    assert main(["wordcount", "--help"]) == 0
    help_text = capsys.readouterr().out
    assert "--top N" in help_text
    assert "lowercased" in help_text  # the normalisation is documented
    assert "standard input" in help_text


def test_parser_defaults() -> None:
    args = build_parser().parse_args(["wordcount"])
    assert (args.path, args.top, args.raw) == (None, 10, False)


# -- live display ---------------------------------------------------------------------------


class _TTYBuffer(io.StringIO):
    def isatty(self) -> bool:
        return True


def _slow_lines(n: int, pause: float) -> Iterator[str]:
    for i in range(n):
        time.sleep(pause)
        yield f"tick tock w{i}\n"


class _Lines(io.TextIOBase):
    """A text stdin with no ``buffer`` that yields lines from an iterator."""

    def __init__(self, lines: Iterable[str]) -> None:
        self._lines = iter(lines)

    def __iter__(self) -> Iterator[str]:
        return self._lines


def test_live_table_on_a_terminal_is_throttled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", _Lines(_slow_lines(30, 0.02)))
    buffer = _TTYBuffer()
    console = Console(file=buffer, force_terminal=True, width=80, color_system=None)
    args = build_parser().parse_args(["wordcount", "-", "--top", "2"])
    started = time.perf_counter()
    assert run(args, console) == 0
    elapsed = time.perf_counter() - started
    out = buffer.getvalue()
    frames = out.count("Top 2 words in <stdin>")
    # rich draws at most ~4 frames per second, plus the first frame and the final table:
    # far fewer than one frame per line (30) or per word (90).
    assert 2 <= frames <= 4 * elapsed + 3
    final = out[out.rindex("Top 2 words in <stdin>") :]
    assert rows(final) == [(1, "tick", 30), (2, "tock", 30)]
    assert "30 lines, 90 words (32 distinct)" in final


def test_not_interactive_console_prints_only_the_final_table() -> None:
    buffer = io.StringIO()  # not a TTY, even though escape codes are forced
    console = Console(file=buffer, force_terminal=True, width=80)
    assert not is_interactive(console)
    assert is_interactive(Console(file=_TTYBuffer(), force_terminal=True))
    assert not is_interactive(Console(file=_TTYBuffer(), force_terminal=False))


def test_wordcount_reports_newest_snapshot() -> None:
    wc = WordCount(top=2, normalize=False)
    wc.feed(["x y x"])
    first = wc.counts()
    wc.feed(["y y"])
    assert first == {"x": 2, "y": 1}  # a copy: later words do not change it
    assert wc.top() == [("y", 3), ("x", 2)]
    assert (wc.lines, wc.words) == (2, 5)


# -- the installed console script -------------------------------------------------------------


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TTY_COMPATIBLE")}
    env["COLUMNS"] = "100"
    return env


def _console_script() -> str:
    scripts = Path(sys.executable).parent
    found = shutil.which("millstream", path=str(scripts)) or shutil.which("millstream")
    assert found, "the `millstream` console script is not installed (pip install -e .)"
    return found


def test_console_script_on_default_text() -> None:
    text = (resources.files("millstream") / "data" / "opticks.txt").read_text(encoding="utf-8")
    expected = Counter(w for line in text.splitlines() for w in expected_words(line))
    (top_word, top_count), *_ = top_n(expected, 1)
    proc = subprocess.run(
        [_console_script(), "wordcount", "--top", "5"],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        env=_clean_env(),
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert rows(proc.stdout)[0] == (1, top_word, top_count)
    assert rows(proc.stdout) == ranked(top_n(expected, 5))
    assert proc.stdout.count("Top 5 words") == 1  # piped: one final table, no live frames
    assert "\x1b" not in proc.stdout


def test_python_dash_m_millstream() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "millstream", "--version"],
        capture_output=True,
        text=True,
        env=_clean_env(),
        timeout=60,
    )
    assert (proc.returncode, proc.stdout) == (0, f"millstream {__version__}\n")
    proc = subprocess.run(
        [sys.executable, "-m", "millstream", "wordcount", "-", "--top", "1"],
        input="b a b\n",
        capture_output=True,
        text=True,
        env=_clean_env(),
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert rows(proc.stdout) == [(1, "b", 2)]
    proc = subprocess.run(
        [sys.executable, "-m", "millstream", "wordcount", "/no/such/file.txt"],
        capture_output=True,
        text=True,
        env=_clean_env(),
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr == "millstream wordcount: error: no such file: /no/such/file.txt\n"


def test_ctrl_c_prints_counts_so_far(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def lines() -> Iterator[str]:
        yield "x y x\n"
        yield "y x\n"
        raise KeyboardInterrupt

    monkeypatch.setattr(sys, "stdin", _Lines(lines()))
    assert main(["wordcount", "-"]) == 130
    out, err = capsys.readouterr()
    assert rows(out) == [(1, "x", 3), (2, "y", 2)]
    assert "2 lines, 5 words" in out
    assert err == "millstream wordcount: interrupted (counts so far above)\n"
