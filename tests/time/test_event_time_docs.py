"""docs/event-time.md stays true: every ```python block of the page runs as a doctest.

A block preceded by an HTML comment starting with ``<!-- not run`` (e.g. one that needs a
Kafka broker) is only compiled. Each block runs in its own fresh globals; a failure names
the line of the page where the block starts.
"""

from __future__ import annotations

import ast
import doctest
import io
import re
from pathlib import Path

import pytest

PAGE = Path(__file__).resolve().parents[2] / "docs" / "event-time.md"

_FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def python_blocks(text: str) -> list[tuple[int, str, bool]]:
    """``(line number of the block's first code line, code, run?)`` for every ```python block."""
    lines = text.splitlines()
    blocks: list[tuple[int, str, bool]] = []
    i = 0
    while i < len(lines):
        if lines[i].strip() == "```python":
            previous = next((s.strip() for s in reversed(lines[:i]) if s.strip()), "")
            run = not re.match(r"<!--\s*not run\b", previous)
            start = i + 1
            end = start
            while end < len(lines) and lines[end].strip() != "```":
                end += 1
            if end == len(lines):
                raise AssertionError(f"{PAGE.name}:{i + 1}: ```python block is never closed")
            blocks.append((start + 1, "\n".join(lines[start:end]) + "\n", run))
            i = end
        i += 1
    return blocks


def run_block(code: str, lineno: int, name: str = PAGE.name) -> tuple[int, int, str]:
    """Run ``code`` as a doctest in fresh globals: ``(failures, examples, report)``."""
    parser = doctest.DocTestParser()
    # lineno is 1-based; DocTest.lineno is 0-based, and the runner adds the example's offset
    test = parser.get_doctest(
        code, {"__name__": "event_time_doc"}, f"{name}:{lineno}", name, lineno - 1
    )
    report = io.StringIO()
    runner = doctest.DocTestRunner(optionflags=_FLAGS)
    result = runner.run(test, out=report.write, clear_globs=True)
    return result.failed, result.attempted, report.getvalue()


BLOCKS = python_blocks(PAGE.read_text())
RUN = [(lineno, code) for lineno, code, run in BLOCKS if run]


def test_the_page_has_runnable_examples():
    assert len(RUN) >= 15
    skipped = [lineno for lineno, _, run in BLOCKS if not run]
    assert skipped, "the Kafka example is marked 'not run'"


@pytest.mark.parametrize("lineno,code", RUN, ids=[f"line{lineno}" for lineno, _ in RUN])
def test_example(lineno, code):
    assert ">>> " in code, f"{PAGE.name}:{lineno}: a runnable block must be a doctest session"
    failed, attempted, report = run_block(code, lineno)
    assert attempted > 0
    assert failed == 0, f"{PAGE.name}, block at line {lineno}:\n{report}"


NOT_RUN = [(lineno, code) for lineno, code, run in BLOCKS if not run]


@pytest.mark.parametrize("lineno,code", NOT_RUN, ids=[f"line{lineno}" for lineno, _ in NOT_RUN])
def test_blocks_not_run_still_compile(lineno, code):
    try:
        ast.parse(code)
    except SyntaxError as e:  # pragma: no cover - the message is the point
        pytest.fail(f"{PAGE.name}, block at line {lineno}: {e}")


def test_a_wrong_output_fails_and_names_the_line():
    code = ">>> 1 + 1\n2\n>>> print('a')\nb\n"
    failed, attempted, report = run_block(code, 41)
    assert (failed, attempted) == (1, 2)
    assert "line 43" in report and "Expected:\n    b\nGot:\n    a" in report


def test_marked_blocks_are_found():
    text = "x\n```python\n>>> 1\n1\n```\n\n<!-- not run: needs a broker -->\n```python\nf()\n```\n"
    assert python_blocks(text) == [(3, ">>> 1\n1\n", True), (9, "f()\n", False)]
