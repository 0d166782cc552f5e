"""Running the ```python blocks of a docs page as doctests (docs/event-time.md,
docs/checkpoints.md). A block preceded by an HTML comment starting with ``<!-- not run``
is only compiled. Each block runs in its own fresh globals; a failure names the line of
the page where the block starts."""

from __future__ import annotations

import doctest
import io
import re
from pathlib import Path
from typing import Any

_FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def python_blocks(text: str, name: str) -> list[tuple[int, str, bool]]:
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
                raise AssertionError(f"{name}:{i + 1}: ```python block is never closed")
            blocks.append((start + 1, "\n".join(lines[start:end]) + "\n", run))
            i = end
        i += 1
    return blocks


def run_block(code: str, lineno: int, name: str) -> tuple[int, int, str]:
    """Run ``code`` as a doctest in fresh globals: ``(failures, examples, report)``."""
    parser = doctest.DocTestParser()
    # lineno is 1-based; DocTest.lineno is 0-based, and the runner adds the example's offset
    test = parser.get_doctest(
        code, {"__name__": name.replace(".", "_")}, f"{name}:{lineno}", name, lineno - 1
    )
    report = io.StringIO()
    runner = doctest.DocTestRunner(optionflags=_FLAGS)
    result = runner.run(test, out=report.write, clear_globs=True)
    return result.failed, result.attempted, report.getvalue()


def page_tests(page_name: str, at_least: int) -> tuple[Any, Any, Any]:
    """The three tests of a docs page, for a test module to bind to its own names:
    ``test_the_page_has_runnable_examples, test_example, test_blocks_not_run_compile =
    page_tests('errors.md', 3)``: the page has at least ``at_least`` runnable blocks, each
    runs as a doctest (a failure names the page's line), and the blocks marked
    ``<!-- not run`` compile (None when there are none: nothing to skip)."""
    import pytest

    page = Path(__file__).resolve().parents[1] / "docs" / page_name
    blocks = python_blocks(page.read_text(), page.name)
    runnable = [(lineno, code) for lineno, code, run in blocks if run]
    not_run = [(lineno, code) for lineno, code, run in blocks if not run]

    def has_examples() -> None:
        assert len(runnable) >= at_least, f"{page.name}: {len(runnable)} runnable blocks"

    @pytest.mark.parametrize("lineno,code", runnable, ids=[f"line{n}" for n, _ in runnable])
    def example(lineno: int, code: str) -> None:
        assert ">>> " in code, f"{page.name}:{lineno}: a runnable block must be a doctest"
        failed, attempted, report = run_block(code, lineno, page.name)
        assert attempted > 0
        assert failed == 0, f"{page.name}, block at line {lineno}:\n{report}"

    @pytest.mark.parametrize("lineno,code", not_run, ids=[f"line{n}" for n, _ in not_run])
    def not_run_compiles(lineno: int, code: str) -> None:
        compile(code, f"{page.name}:{lineno}", "exec")

    return has_examples, example, (not_run_compiles if not_run else None)
