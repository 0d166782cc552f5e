"""docs/connectors/redis.md stays true: its example runs against the session's server."""

from __future__ import annotations

import pytest

from doc_pages import page_tests


@pytest.fixture(autouse=True)
def _server_for_the_page(redis_url, monkeypatch):
    monkeypatch.setenv("MILLSTREAM_REDIS_URL", redis_url)


test_the_page_has_runnable_examples, test_example, test_not_run_blocks_compile = page_tests(
    "connectors/redis.md", 1
)
