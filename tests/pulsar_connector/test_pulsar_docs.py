"""docs/connectors/pulsar.md stays true: its example runs against the session's Pulsar."""

from __future__ import annotations

import pytest

from doc_pages import page_tests


@pytest.fixture(autouse=True)
def _pulsar_for_the_page(pulsar_url, monkeypatch):
    monkeypatch.setenv("MILLSTREAM_PULSAR_URL", pulsar_url)


test_the_page_has_runnable_examples, test_example, _ = page_tests("connectors/pulsar.md", 1)
