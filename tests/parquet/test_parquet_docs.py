"""docs/connectors/parquet.md stays true: every ```python block of the page runs as a doctest."""

from __future__ import annotations

from doc_pages import page_tests

test_the_page_has_runnable_examples, test_example, test_not_run_blocks_compile = page_tests(
    "connectors/parquet.md", 3
)
