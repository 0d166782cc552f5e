"""millstream's own exceptions."""

from __future__ import annotations

__all__ = ["MillstreamError"]


class MillstreamError(Exception):
    """Base class of errors raised by millstream itself (not by user functions)."""
