"""Reference counting of in-flight elements: the acknowledgement mechanism.

An element's ``metadata`` is a list of dicts; a dict with a ``'ref'`` key carries a
:class:`RefCounter`. Every node that holds an element (a buffer, a window, an
awaiting sink) retains its refs and releases them once the element has left it.
When the count reaches zero, the counter's callback runs: a Kafka source commits
an offset there.

Unlike Streamz, a ref released because processing *raised* is marked failed
(``ref.failed``), so a source can tell "done" from "given up" and never commits
past a failed record.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["Metadata", "RefCounter", "release_refs", "retain_refs"]

Metadata = list[dict[str, Any]]
"""What travels beside an element: a list of dicts, a dict with ``'ref'`` holding a
:class:`RefCounter` (the one type every package uses for it)."""


class RefCounter:
    """Count the holders of an element; call ``cb`` when none is left.

    Parameters
    ----------
    initial : int
        Starting count.
    cb : callable, optional
        Called with no argument when the count drops to zero or below.
    loop : optional
        If given, ``cb`` is scheduled with ``loop.add_callback`` instead of called inline.

    Examples
    --------
    >>> done = []
    >>> ref = RefCounter(cb=lambda: done.append(True))
    >>> ref.retain(2)
    >>> ref.release()
    >>> done
    []
    >>> ref.release()
    >>> done, ref.failed
    ([True], False)
    >>> str(ref)
    '<RefCounter count=0>'
    """

    __slots__ = ("cb", "count", "errors", "loop")

    def __init__(self, initial: int = 0, cb: Callable[[], Any] | None = None, loop: Any = None):
        self.count = initial
        self.cb = cb
        self.loop = loop
        self.errors: list[BaseException] = []

    @property
    def failed(self) -> bool:
        """True once any holder gave the element up because its processing raised."""
        return bool(self.errors)

    def retain(self, n: int = 1) -> None:
        """Add ``n`` holders."""
        self.count += n

    def release(self, n: int = 1) -> None:
        """Remove ``n`` holders; run the callback when none is left."""
        self.count -= n
        if self.count <= 0 and self.cb is not None:
            if self.loop is not None:
                self.loop.add_callback(self.cb)
            else:
                self.cb()

    def fail(self, error: BaseException) -> None:
        """Record that processing of the element raised ``error``."""
        self.errors.append(error)

    def __str__(self) -> str:
        return f"<RefCounter count={self.count}>"

    __repr__ = __str__


def retain_refs(metadata: Metadata | None, n: int = 1) -> None:
    """Retain every ref in ``metadata`` ``n`` times."""
    if metadata:
        for m in metadata:
            ref = m.get("ref") if type(m) is dict else None
            if ref is not None:
                ref.retain(n)


def release_refs(metadata: Metadata | None, n: int = 1, error: BaseException | None = None) -> None:
    """Release every ref in ``metadata`` ``n`` times, marking it failed if ``error`` is given."""
    if metadata:
        for m in metadata:
            ref = m.get("ref") if type(m) is dict else None
            if ref is not None:
                if error is not None:
                    ref.fail(error)
                ref.release(n)
