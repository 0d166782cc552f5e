"""The word-count display the ``millstream`` commands share: the live table on a
terminal, the final table, and the note after Ctrl-C."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator

from rich.console import Console, RenderableType
from rich.live import Live

__all__ = ["REFRESH_PER_SECOND", "is_interactive", "live", "show_interrupted"]

REFRESH_PER_SECOND = 4
"""How often the live table is redrawn (never per word)."""


def is_interactive(console: Console) -> bool:
    """Draw live frames only on a real terminal (never into pipes or CI logs)."""
    if not console.is_terminal or console.is_dumb_terminal:
        return False
    isatty = getattr(console.file, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:
        return False


@contextlib.contextmanager
def live(console: Console, render: Callable[[], RenderableType]) -> Iterator[None]:
    """While the block runs, redraw ``render()`` on ``console`` a few times per second
    (on a terminal only; the frames vanish at the end, the caller prints the final one)."""
    if not is_interactive(console):
        yield
        return
    with Live(
        console=console,
        get_renderable=render,
        refresh_per_second=REFRESH_PER_SECOND,
        transient=True,
        redirect_stdout=False,
        redirect_stderr=False,
    ):
        yield


def show_interrupted(command: str) -> None:
    """The note after Ctrl-C, below the table of the counts so far."""
    print(f"millstream {command}: interrupted (counts so far above)", file=sys.stderr)
