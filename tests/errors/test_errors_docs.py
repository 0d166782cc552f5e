"""docs/errors.md stays true: every ```python block of the page runs as a doctest."""

from __future__ import annotations

from pathlib import Path

import pytest

from doc_pages import python_blocks, run_block

PAGE = Path(__file__).resolve().parents[2] / "docs" / "errors.md"
BLOCKS = python_blocks(PAGE.read_text(), PAGE.name)
RUN = [(lineno, code) for lineno, code, run in BLOCKS if run]


def test_the_page_has_runnable_examples():
    assert len(RUN) >= 3


@pytest.mark.parametrize("lineno,code", RUN, ids=[f"line{lineno}" for lineno, _ in RUN])
def test_example(lineno, code):
    failed, attempted, report = run_block(code, lineno, PAGE.name)
    assert attempted > 0
    assert failed == 0, f"{PAGE.name}, block at line {lineno}:\n{report}"


def test_the_not_run_example_compiles():
    for lineno, code, run in BLOCKS:
        if not run:
            compile(code, f"{PAGE.name}:{lineno}", "exec")
