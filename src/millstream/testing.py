"""Placeholder: the public test kit is being written."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

__all__ = ["wait_for"]


def wait_for(predicate: Callable[[], Any], timeout: float, fail_func: Callable[[], Any] | None = None, period: float = 0.001) -> None:
    """Block until ``predicate()`` is true; raise ``TimeoutError`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            if fail_func is not None:
                fail_func()
            raise TimeoutError(f"condition not reached within {timeout} s")
        time.sleep(period)
