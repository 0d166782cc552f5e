"""docs/event-time.md stays true: every ```python block of the page runs as a doctest.

A block preceded by an HTML comment starting with ``<!-- not run`` (e.g. one that needs a
Kafka broker) is only compiled. Each block runs in its own fresh globals; a failure names
the line of the page where the block starts.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from doc_pages import python_blocks, run_block

PAGE = Path(__file__).resolve().parents[2] / "docs" / "event-time.md"

BLOCKS = python_blocks(PAGE.read_text(), PAGE.name)
RUN = [(lineno, code) for lineno, code, run in BLOCKS if run]


def test_the_page_has_runnable_examples():
    assert len(RUN) >= 15
    skipped = [lineno for lineno, _, run in BLOCKS if not run]
    assert skipped, "the Kafka example is marked 'not run'"


@pytest.mark.parametrize("lineno,code", RUN, ids=[f"line{lineno}" for lineno, _ in RUN])
def test_example(lineno, code):
    assert ">>> " in code, f"{PAGE.name}:{lineno}: a runnable block must be a doctest session"
    failed, attempted, report = run_block(code, lineno, PAGE.name)
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
    failed, attempted, report = run_block(code, 41, PAGE.name)
    assert (failed, attempted) == (1, 2)
    assert "line 43" in report and "Expected:\n    b\nGot:\n    a" in report


def test_marked_blocks_are_found():
    text = "x\n```python\n>>> 1\n1\n```\n\n<!-- not run: needs a broker -->\n```python\nf()\n```\n"
    assert python_blocks(text, "x.md") == [(3, ">>> 1\n1\n", True), (9, "f()\n", False)]
