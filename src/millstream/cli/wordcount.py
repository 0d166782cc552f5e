"""``millstream wordcount``: a live word count over a text, the Streamz classic.

The pipeline is the one from the Streamz documentation, with an optional
normalising ``map`` in front::

    source.map(normalize_line).map(str.split).flatten().frequencies()

Lines are emitted into it one at a time. ``frequencies`` emits a snapshot of
the counts after every word; the command keeps only the newest one, and the
table on screen is drawn from it a few times per second (never per word).
"""

from __future__ import annotations

import argparse
import contextlib
import heapq
import json
import re
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from ..core.stream import Stream
from ._args import (
    DEFAULT_TEXT,
    duration,
    enable_checkpoints,
    error,
    open_input,
    positive_int,
    read_error,
)
from ._dashboard import add_dashboard_arguments, dashboard_of
from ._display import RateMeter, describe_lag, live, show_interrupted

__all__ = [
    "DEFAULT_TEXT",
    "WordCount",
    "add_arguments",
    "build_pipeline",
    "count_words",
    "normalize_line",
    "print_json",
    "read_error",
    "run",
    "top_words",
]

# Anything that is neither a letter/digit nor an apostrophe separates words, and so
# does an apostrophe that is not between two letters/digits ("'tis" -> "tis").
_SEPARATORS = re.compile(r"(?:[^\w']|_)+|(?<![^\W_])'|'(?![^\W_])")


def normalize_line(line: str) -> str:
    """Lowercase ``line`` and turn punctuation into spaces, keeping in-word apostrophes.

    Curly apostrophes count as straight ones; underscores (italics in plain-text
    books) are punctuation.

    Examples
    --------
    >>> normalize_line("Don't PANIC -- it's _Light_, 'tis said!").split()
    ["don't", 'panic', "it's", 'light', 'tis', 'said']
    >>> normalize_line("Newton\u2019s Opticks (1730)").split()
    ["newton's", 'opticks', '1730']
    """
    return _SEPARATORS.sub(" ", line.lower().replace("\u2019", "'"))


def build_pipeline(normalize: bool = True, source: Stream | None = None) -> tuple[Stream, Stream]:
    """Build the word-count graph; return ``(source, counts)``.

    ``counts`` is the ``frequencies`` node: it emits the running counts (a
    read-only mapping) after each word. ``source`` is the stream of lines to
    count (a new ``Stream`` when not given).

    Examples
    --------
    >>> source, counts = build_pipeline(normalize=False)
    >>> tables = counts.sink_to_list()
    >>> source.emit('the cat and the hat')
    >>> tables[-1]
    {'the': 2, 'cat': 1, 'and': 1, 'hat': 1}
    """
    if source is None:
        source = Stream(stream_name="lines")
    head: Any = source  # operator methods are registered at run time
    lines = head.map(normalize_line) if normalize else head
    counts = lines.map(str.split).flatten().frequencies()
    return source, counts


def top_words(counts: Mapping[str, int], n: int) -> list[tuple[str, int]]:
    """The ``n`` most frequent words, most frequent first, ties in alphabetical order.

    Examples
    --------
    >>> top_words({'b': 2, 'a': 2, 'c': 5, 'd': 1}, 3)
    [('c', 5), ('a', 2), ('b', 2)]
    """
    return heapq.nsmallest(n, counts.items(), key=lambda item: (-item[1], item[0]))


class WordCount:
    """Run the word-count pipeline over lines and describe its progress as a table.

    The renderer (:meth:`render`) may be called from another thread (rich's
    refresh thread) while :meth:`feed` runs: it only reads the newest counts
    snapshot and a few counters.

    With ``upstream`` (a stream of lines, e.g. records read from Kafka), the
    pipeline hangs below it and counts what it emits, in whatever thread emits;
    :meth:`feed` is then not used.

    Examples
    --------
    >>> wc = WordCount(top=2)
    >>> wc.feed(['The cat and the hat.', 'The END'])
    >>> wc.lines, wc.words
    (2, 7)
    >>> wc.top()
    [('the', 3), ('and', 1)]
    """

    def __init__(
        self,
        top: int = 10,
        normalize: bool = True,
        title: str = "",
        upstream: Stream | None = None,
    ) -> None:
        self.n = top
        self.title = title
        self.lines = 0
        if upstream is None:
            self.source, counts_node = build_pipeline(normalize)
        else:
            head: Any = upstream
            self.source, counts_node = build_pipeline(normalize, head.map(self._seen))
        counts: Any = counts_node
        #: the ``frequencies`` node (its state is what a checkpoint keeps)
        self.counts_node = counts_node
        self._latest: Mapping[str, int] = {}
        self._sink = counts.sink(self._keep)
        self.started = time.perf_counter()
        self.finished: float | None = None
        #: the current lines/s of the live table
        self.rate = RateMeter()
        #: with Kafka: returns partition -> consumer lag (None while unknown)
        self.lag: Callable[[], Mapping[int, int] | None] | None = None

    def _keep(self, table: Mapping[str, int]) -> None:
        self._latest = table

    def resume(self) -> None:
        """Show the counts the ``frequencies`` node holds (after a restore), before any new
        word arrives; call while the pipeline is not running."""
        counts: Any = self.counts_node
        self._latest = dict(counts.snapshot()["counts"])

    def _seen(self, line: str) -> str:
        self.lines += 1
        return line

    def feed(self, lines: Iterable[str]) -> None:
        """Emit every line into the pipeline (in this thread, one line at a time)."""
        emit = self.source.emit
        for line in lines:
            emit(line)
            self.lines += 1

    def finish(self) -> None:
        """Stop the clock used for the elapsed time and the rate."""
        self.finished = time.perf_counter()

    def counts(self) -> dict[str, int]:
        """A plain-dict copy of the newest counts."""
        latest = self._latest
        return latest.copy() if hasattr(latest, "copy") else dict(latest)

    @property
    def words(self) -> int:
        """How many words have been counted so far."""
        return sum(self.counts().values())

    def top(self) -> list[tuple[str, int]]:
        """The current top-N ``(word, count)`` pairs."""
        return top_words(self.counts(), self.n)

    def stats(self) -> str:
        """One line: lines, words, distinct words, elapsed time and lines/s (while running,
        the current rate over about the last second; once finished, the average), and the
        consumer lag when known.

        Examples
        --------
        >>> wc = WordCount()
        >>> wc.feed(['a b', 'b c'])
        >>> wc.finish()
        >>> wc.stats()  # doctest: +ELLIPSIS
        '2 lines, 4 words (3 distinct), ... s, ... lines/s on average'
        """
        counts = self.counts()
        lines = self.lines
        end = self.finished if self.finished is not None else time.perf_counter()
        elapsed = max(end - self.started, 0.0)
        if self.finished is None:
            rate = f"{self.rate.rate(lines):,.0f} lines/s"
        else:
            rate = f"{lines / elapsed if elapsed > 0 else 0.0:,.0f} lines/s on average"
        text = (
            f"{lines:,} lines, {sum(counts.values()):,} words ({len(counts):,} distinct), "
            f"{elapsed:.2f} s, {rate}"
        )
        lag = self.lag() if self.lag is not None else None
        if lag is not None:
            text += ", " + describe_lag(lag)
        return text

    def table(self) -> Table:
        """The top-N table: rank, word, count and share of all words."""
        counts = self.counts()
        total = sum(counts.values())
        table = Table()
        table.add_column("#", justify="right", style="dim")
        table.add_column("word", style="bold")
        table.add_column("count", justify="right")
        table.add_column("share", justify="right")
        for rank, (word, count) in enumerate(top_words(counts, self.n), 1):
            table.add_row(str(rank), word, str(count), f"{100 * count / total:.2f}%")
        return table

    def render(self) -> Group:
        """A heading, the table and the statistics line (what the screen shows)."""
        heading = f"Top {self.n} words" + (f" in {self.title}" if self.title else "")
        return Group(
            Text(heading, style="bold", no_wrap=True, overflow="ellipsis"),
            self.table(),
            Text(self.stats(), style="cyan"),
        )


def count_words(lines: Iterable[str], normalize: bool = True) -> dict[str, int]:
    """Count the words of ``lines`` through the pipeline, without any display.

    Examples
    --------
    >>> count_words(['To be, or not to be:', 'that is the question.'])
    {'to': 2, 'be': 2, 'or': 1, 'not': 1, 'that': 1, 'is': 1, 'the': 1, 'question': 1}
    """
    wc = WordCount(normalize=normalize)
    wc.feed(lines)
    return wc.counts()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the ``wordcount`` command's arguments (the file/stdin ones) on ``parser``."""
    parser.add_argument(
        "path",
        nargs="?",
        default=None,
        metavar="PATH|-",
        help=(
            "text file to count (UTF-8), or '-' for standard input; default: Newton's "
            "Opticks (1730, public domain), shipped with millstream"
        ),
    )
    parser.add_argument(
        "--top",
        type=positive_int,
        default=10,
        metavar="N",
        help="how many of the most frequent words to show (N >= 1, default 10)",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help=(
            "print only the final counts, as one JSON object {word: count} on standard "
            "output (no table)"
        ),
    )
    parser.add_argument(
        "--checkpoint",
        metavar="LOCATION",
        default=None,
        help=(
            "keep the counts and the read position in checkpoints at LOCATION (a directory "
            "or an fsspec URL); a run with the same LOCATION resumes from the newest one, "
            "so a killed run restarted counts every line exactly once (a file or --kafka; "
            "not standard input)"
        ),
    )
    parser.add_argument(
        "--checkpoint-interval",
        type=duration,
        default=1.0,
        metavar="DURATION",
        help="time between two checkpoints: seconds or e.g. 500ms, 2s (default 1s)",
    )
    add_dashboard_arguments(parser)
    parser.add_argument(
        "--raw",
        action="store_true",
        help=(
            "count the tokens of str.split exactly as they are; by default each line is "
            "lowercased and punctuation becomes spaces (apostrophes inside words are kept)"
        ),
    )


def run(args: argparse.Namespace, console: Console | None = None) -> int:
    """Run ``millstream wordcount`` over a file, stdin or the shipped text; return the exit code."""
    console = console if console is not None else Console()
    if args.checkpoint is not None:
        return _run_checkpointed(args, console)
    if args.json:
        try:
            with open_input(args.path) as (lines, _name):
                print_json(count_words(lines, normalize=not args.raw))
        except BrokenPipeError:
            raise
        except OSError as e:
            error("wordcount", read_error(args.path, e))
            return 2
        return 0
    try:
        with open_input(args.path) as (lines, name):
            wc = WordCount(top=args.top, normalize=not args.raw, title=name)
            try:
                with dashboard_of(args, wc.source) as server, live(console, wc.render):
                    if server is False:
                        return 1
                    wc.feed(lines)
            except KeyboardInterrupt:
                wc.finish()
                console.print(wc.render())
                show_interrupted("wordcount")
                return 130
    except BrokenPipeError:
        raise  # our output went away: main() handles it, it is not an input error
    except OSError as e:
        error("wordcount", read_error(args.path, e))
        return 2
    wc.finish()
    console.print(wc.render())
    return 0


def print_json(counts: Mapping[str, int]) -> None:
    """Print ``counts`` as one JSON object on standard output (``--json``)."""
    sys.stdout.write(json.dumps(dict(counts), ensure_ascii=False) + "\n")
    sys.stdout.flush()


class _FileLines:
    """The lines of a file (None: the shipped text), read anew at each iteration, so that a
    source restored from a checkpoint can skip the lines already counted."""

    def __init__(self, path: str | None):
        self.path = path

    def __iter__(self) -> Iterator[str]:
        with open_input(self.path) as (lines, _name):
            yield from lines


def _run_checkpointed(args: argparse.Namespace, console: Console) -> int:
    """``wordcount [PATH] --checkpoint LOCATION``: count through ``from_iterable`` (whose
    position is the number of lines emitted) with checkpoints; resume from the newest."""
    if args.path == "-":
        error(
            "wordcount",
            "--checkpoint needs a file or --kafka: standard input cannot be read again "
            "after a restart",
        )
        return 2
    try:
        with open_input(args.path) as (_lines, name):
            pass
    except OSError as e:
        error("wordcount", read_error(args.path, e))
        return 2
    stream: Any = Stream
    source = stream.from_iterable(_FileLines(args.path), stream_name="lines")
    wc = WordCount(top=args.top, normalize=not args.raw, title=name, upstream=source)
    checkpoints = enable_checkpoints(source, args)
    if checkpoints is None:
        return 1
    wc.resume()
    try:
        with (
            dashboard_of(args, source) as server,
            live(console, wc.render) if not args.json else contextlib.nullcontext(),
        ):
            if server is False:
                checkpoints.close(final=False)
                return 1
            source.start()
            while not source.stopped:
                time.sleep(0.05)
    except KeyboardInterrupt:
        source.stop()
        checkpoints.close()
        wc.finish()
        console.print(wc.render())
        show_interrupted("wordcount")
        return 130
    if source.error is not None:
        error("wordcount", f"reading stopped: {source.error}")
        return 1
    checkpoints.close()
    wc.finish()
    if args.json:
        print_json(wc.counts())
    else:
        console.print(wc.render())
    return 0
