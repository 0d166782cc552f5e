"""Running the ```python blocks of a docs page as doctests (docs/event-time.md,
docs/checkpoints.md). A block preceded by an HTML comment starting with ``<!-- not run``
is only compiled. Each block runs in its own fresh globals; a failure names the line of
the page where the block starts."""

from __future__ import annotations

import doctest
import io
import re

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
