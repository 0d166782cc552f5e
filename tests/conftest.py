"""Shared fixtures for the millstream test suite."""

from __future__ import annotations

import pytest

from millstream.core.clock import ManualClock, use_clock


@pytest.fixture
def manual_clock():
    """A ManualClock installed as the default clock for nodes built in the test."""
    clock = ManualClock()
    with use_clock(clock):
        yield clock
