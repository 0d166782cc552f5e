"""docs/exactly-once.md stays true: its examples run against the session's broker."""

from __future__ import annotations

import pytest

from doc_pages import page_tests


@pytest.fixture(autouse=True)
def _broker_for_the_page(kafka_bootstrap, monkeypatch):
    monkeypatch.setenv("MILLSTREAM_KAFKA_BOOTSTRAP", kafka_bootstrap)


test_the_page_has_runnable_examples, test_example, test_not_run_blocks_compile = page_tests(
    "exactly-once.md", 1
)
