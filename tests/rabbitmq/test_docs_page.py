"""docs/connectors/rabbitmq.md stays true: its example runs against the session's broker."""

from __future__ import annotations

import pytest

from doc_pages import page_tests


@pytest.fixture(autouse=True)
def _broker_for_the_page(rabbitmq, monkeypatch):
    monkeypatch.setenv("MILLSTREAM_RABBITMQ_URL", rabbitmq.url)


test_the_page_has_runnable_examples, test_example, test_not_run_blocks_compile = page_tests(
    "connectors/rabbitmq.md", 1
)
