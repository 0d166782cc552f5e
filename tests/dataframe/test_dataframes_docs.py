"""Every ```python block of docs/dataframes.md runs as a doctest."""

from __future__ import annotations

from doc_pages import page_tests

test_the_page_has_runnable_examples, test_example, test_not_run_blocks_compile = page_tests(
    "dataframes.md", 5
)
