"""The public test kit: helpers for testing millstream pipelines (and millstream itself).

Everything here is importable by users writing tests for their own pipelines:

* :func:`wait_for` / :func:`await_for`: poll a condition with a timeout (blocking / async);
* :class:`TestingSource`: a source that emits a scripted list of items, with in-band
  markers to pause (on the node's clock), crash once, or end a run, and a
  snapshot/restore of its position so a restarted pipeline can resume;
* :func:`run_pipeline`: start a source and block until it has stopped, re-raising its error;
* :class:`metadata`: a node emitting the metadata of each element instead of its value;
* :func:`captured_logger`: capture what a logger writes;
* :class:`ManualClock` and :func:`use_clock` (re-exported): deterministic time;
* crash testing of a pipeline's recovery: :func:`run_child` runs it in a child process and
  can kill it (SIGKILL) after a delay or at a fail-point (``MILLSTREAM_FAILPOINTS``, see
  :mod:`millstream.core.failpoints`); :func:`crash_and_recover` kills and restarts it on a
  seeded schedule and returns the final, uninterrupted run to compare with a run that
  was never killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from .core.clock import ManualClock, use_clock
from .core.state import COUNT, bad_state
from .core.stream import Stream
from .exceptions import TestingAbort
from .sources.base import Source

__all__ = [
    "ChildRun",
    "CrashReport",
    "ManualClock",
    "TestingAbort",
    "TestingSource",
    "await_for",
    "captured_logger",
    "crash_and_recover",
    "metadata",
    "run_child",
    "run_pipeline",
    "use_clock",
    "wait_for",
]


def wait_for(
    predicate: Callable[[], Any],
    timeout: float,
    fail_func: Callable[[], Any] | None = None,
    period: float = 0.001,
) -> None:
    """Block until ``predicate()`` is true; raise ``TimeoutError`` after ``timeout`` seconds.

    ``fail_func`` (if given) is called just before the ``TimeoutError``, to print
    diagnostics.

    Examples
    --------
    >>> import threading
    >>> done = []
    >>> threading.Timer(0.01, done.append, [1]).start()
    >>> wait_for(lambda: done, 5)
    >>> done
    [1]
    >>> wait_for(lambda: False, 0.01)
    Traceback (most recent call last):
    ...
    TimeoutError: condition not reached within 0.01 s
    """
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            if fail_func is not None:
                fail_func()
            raise TimeoutError(f"condition not reached within {timeout} s")
        time.sleep(period)


async def await_for(
    predicate: Callable[[], Any],
    timeout: float,
    fail_func: Callable[[], Any] | None = None,
    period: float = 0.001,
) -> None:
    """Wait (without blocking the event loop) until ``predicate()`` is true.

    Raises ``TimeoutError`` after ``timeout`` seconds of real time, calling
    ``fail_func`` first if given.

    Examples
    --------
    >>> import asyncio
    >>> async def main():
    ...     box = []
    ...     asyncio.get_running_loop().call_later(0.01, box.append, 'ready')
    ...     await await_for(lambda: box, 5)
    ...     return box
    >>> asyncio.run(main())
    ['ready']
    """
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            if fail_func is not None:
                fail_func()
            raise TimeoutError(f"condition not reached within {timeout} s")
        await asyncio.sleep(period)


class _Marker:
    __slots__ = ()

    def _key(self) -> tuple[Any, ...]:
        return ()

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash((type(self), self._key()))


class _Pause(_Marker):
    """Wait ``seconds`` on the source's clock before going on."""

    __slots__ = ("seconds",)

    def __init__(self, seconds: float):
        self.seconds = float(seconds)

    def _key(self) -> tuple[Any, ...]:
        return (self.seconds,)

    def __repr__(self) -> str:
        return f"TestingSource.PAUSE({self.seconds!r})"


class _Abort(_Marker):
    """Raise :class:`TestingAbort` in the source, once."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "TestingSource.ABORT()"


class _Eof(_Marker):
    """End this run of the source; ``start()`` again continues after the marker."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "TestingSource.EOF()"


class TestingSource(Source):
    """A source that emits a scripted list of items, for tests.

    Items are emitted in order, each one awaited downstream (backpressure) before
    the next. Three in-band markers script the run:

    * ``TestingSource.PAUSE(seconds)`` waits on ``self.clock`` (a :class:`ManualClock`
      makes the pause last until the test advances time);
    * ``TestingSource.ABORT()`` raises :class:`TestingAbort` inside the source, which
      stops it with :attr:`error` set (a crash injection); ``start()`` again continues
      after the marker, so each ``ABORT`` fires once;
    * ``TestingSource.EOF()`` ends this run cleanly; ``start()`` again continues after it.

    :meth:`snapshot` is the index of the next item to emit (an item counts as emitted
    from the moment it is pushed, also while the source awaits downstream: a checkpoint
    taken then finds its effects in node state), and :meth:`restore` sets it, so a
    pipeline rebuilt from a snapshot resumes where the old one stopped.
    Also available as ``Stream.from_testing(items, **kwargs)``.

    Parameters
    ----------
    items : iterable
        The items and markers (taken into a list at construction).
    **kwargs
        Passed to :class:`~millstream.sources.Source` (``start``, ``asynchronous``,
        ``clock``, ``stream_name``...).

    Examples
    --------
    >>> source = TestingSource([1, 2, TestingSource.ABORT(), 3, TestingSource.EOF(), 4])
    >>> L = source.map(lambda x: x * 10).sink_to_list()
    >>> run_pipeline(source)
    Traceback (most recent call last):
    ...
    millstream.exceptions.TestingAbort: injected failure at item 2 of <TestingSource>
    >>> L, source.snapshot()
    ([10, 20], 3)
    >>> run_pipeline(source)
    >>> L, source.snapshot()
    ([10, 20, 30], 5)
    >>> run_pipeline(source)
    >>> L
    [10, 20, 30, 40]
    """

    __test__ = False

    PAUSE = _Pause
    ABORT = _Abort
    EOF = _Eof

    def __init__(self, items: Iterable[Any], **kwargs: Any):
        self.items = list(items)
        self.index = 0
        super().__init__(**kwargs)

    @property
    def done(self) -> bool:
        """True once every item has been processed."""
        return self.index >= len(self.items)

    async def run(self) -> None:
        items = self.items
        try:
            while not self.stopped and self.index < len(items):
                item = items[self.index]
                kind = type(item)
                if kind is _Pause:
                    await self.clock.sleep(item.seconds)
                    self.index += 1
                elif kind is _Abort:
                    at = self.index
                    self.index += 1
                    raise TestingAbort(f"injected failure at item {at} of {self}")
                elif kind is _Eof:
                    self.index += 1
                    break
                else:
                    await self._wait_if_held()
                    if self.hold is not None:
                        self.hold.count()
                    pending = self._emit(item)
                    self.index += 1  # before the await: a checkpoint there counts it emitted
                    if pending:
                        await self._absorb(pending)
                    await asyncio.sleep(0)  # let stop() and other tasks in
        finally:
            self.stopped = True

    def snapshot(self) -> int:
        """The index of the next item to process."""
        return self.index

    def restore(self, state: int) -> None:
        """Continue from item ``state`` on the next ``start()``."""
        if not COUNT(state):
            raise bad_state(self, state, "expected the index of the next item (an int >= 0)")
        self.index = state

    def __str__(self) -> str:
        return f"<{self.name}; TestingSource>" if self.name else "<TestingSource>"

    __repr__ = __str__


Stream.register_api(staticmethod, attribute_name="from_testing")(TestingSource)


def run_pipeline(source: Source, timeout: float = 10) -> None:
    """Start ``source`` and block until it has stopped; re-raise its error if it failed.

    Call it from the test's thread (not from the event loop). Raises ``TimeoutError``
    if the source is still running after ``timeout`` seconds.

    Examples
    --------
    >>> source = TestingSource(['a', 'b'])
    >>> L = source.sink_to_list()
    >>> run_pipeline(source)
    >>> L, source.stopped
    (['a', 'b'], True)
    """
    previous = source.work_task if source.stopped else None
    source.start()

    def finished() -> bool:
        task = source.work_task
        return source.stopped and task is not None and task is not previous and task.done()

    wait_for(finished, timeout)
    if source.error is not None:
        raise source.error


class metadata(Stream):
    """A node that emits each element's metadata list instead of its value.

    Elements without metadata emit nothing; the emitted list carries no metadata
    itself, so it holds no ref (as Streamz's test helper of the same name).

    Examples
    --------
    >>> source = Stream()
    >>> L = metadata(source).sink_to_list()
    >>> source.emit(1, metadata=[{'v': 1}]); source.emit(2)
    >>> L
    [[{'v': 1}]]
    """

    __test__ = False

    def update(self, x: Any, who: Stream | None = None, metadata: list[dict] | None = None) -> Any:
        if metadata:
            return self._emit(metadata)
        return None


@contextlib.contextmanager
def captured_logger(
    name: str | logging.Logger, level: int = logging.INFO, propagate: bool | None = None
) -> Iterator[io.StringIO]:
    """Capture what logger ``name`` writes at ``level`` and above into a ``StringIO``.

    The logger's level (and, if ``propagate`` is given, its ``propagate`` flag) is
    restored on exit.

    Examples
    --------
    >>> with captured_logger('millstream.example') as out:
    ...     logging.getLogger('millstream.example').warning('careful')
    >>> out.getvalue()
    'careful\\n'
    """
    logger = name if isinstance(name, logging.Logger) else logging.getLogger(name)
    old_level, old_propagate = logger.level, logger.propagate
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setLevel(level)
    logger.addHandler(handler)
    logger.setLevel(level)
    if propagate is not None:
        logger.propagate = propagate
    try:
        yield buffer
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
        logger.propagate = old_propagate


# -- crash testing ---------------------------------------------------------------------------

_FAILPOINT_LINE = re.compile(r"^millstream failpoint (\S+) (\S+)$", re.MULTILINE)


@dataclass
class ChildRun:
    """One run of a child process: its exit status (``-9`` when killed by SIGKILL), its
    output, whether this kit killed it, and the fail-points it reported reaching."""

    returncode: int
    stdout: str
    stderr: str
    killed: bool
    failpoints_hit: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def crashed(self) -> bool:
        """True when the process ended by SIGKILL (from this kit or a fail-point)."""
        return self.returncode == -signal.SIGKILL


def run_child(
    command: Sequence[str],
    kill_after: float | None = None,
    failpoints: str | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 120.0,
    cwd: str | None = None,
) -> ChildRun:
    r"""Run ``command`` in a child process and wait for it; return a :class:`ChildRun`.

    ``kill_after``: seconds after which the child is killed with SIGKILL if it still runs
    (only this child, by its pid). ``failpoints``: the value of ``MILLSTREAM_FAILPOINTS``
    for the child (e.g. ``'after_snapshot_write:kill@2'``). Raises ``TimeoutError`` (after
    killing it) if the child runs longer than ``timeout``.

    Examples
    --------
    >>> import sys
    >>> run_child([sys.executable, '-c', 'print(6 * 7)']).stdout
    '42\n'
    >>> run = run_child([sys.executable, '-c', 'import time; time.sleep(30)'], kill_after=0.2)
    >>> run.killed, run.crashed
    (True, True)
    """
    child_env = dict(os.environ if env is None else env)
    if failpoints is not None:
        child_env["MILLSTREAM_FAILPOINTS"] = failpoints
    started = time.monotonic()
    process = subprocess.Popen(
        list(command),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env,
        cwd=cwd,
    )
    killed = False
    try:
        wait = timeout if kill_after is None else min(kill_after, timeout)
        try:
            stdout, stderr = process.communicate(timeout=wait)
        except subprocess.TimeoutExpired:
            if kill_after is None or kill_after >= timeout:
                process.kill()
                process.communicate()
                raise TimeoutError(f"{command!r} still running after {timeout} s") from None
            if process.poll() is None:
                os.kill(process.pid, signal.SIGKILL)
                killed = True
            stdout, stderr = process.communicate(timeout=timeout)
    finally:
        if process.poll() is None:  # pragma: no cover - only on an error above
            process.kill()
            process.wait()
    return ChildRun(
        returncode=process.returncode,
        stdout=stdout,
        stderr=stderr,
        killed=killed and process.returncode == -signal.SIGKILL,
        failpoints_hit=[m.group(1) for m in _FAILPOINT_LINE.finditer(stderr)],
        seconds=time.monotonic() - started,
    )


@dataclass
class CrashReport:
    """What :func:`crash_and_recover` did: the seed, each faulty run in order (with the
    fault it was given), and the final run that was left to finish."""

    seed: int
    faults: list[tuple[str, ChildRun]]
    final: ChildRun

    def describe(self) -> str:
        """The seed and the fault schedule, one line (print it in a test's output)."""
        steps = ", ".join(
            f"{fault} -> rc {run.returncode} after {run.seconds:.2f} s"
            for fault, run in self.faults
        )
        return f"seed {self.seed}: {steps}; final rc {self.final.returncode}"


def crash_and_recover(
    command: Sequence[str],
    kills: int = 5,
    failpoints: Sequence[str] = (),
    seed: int | None = None,
    between: tuple[float, float] = (0.5, 2.0),
    env: dict[str, str] | None = None,
    timeout: float = 120.0,
) -> CrashReport:
    r"""Run ``command`` again and again, crashing it, then once to the end.

    First one run per entry of ``failpoints`` (``'after_snapshot_write'`` kills at that
    step; ``'name:kill@3'`` at its third hit), then ``kills`` runs killed with SIGKILL at
    a random moment (uniform in ``between`` seconds, drawn from ``seed``), then a last run
    is left to finish. Each faulty run must really have been killed: a
    run that ended by itself first raises ``AssertionError`` naming the fault (a crash
    test whose crash did not happen proves nothing). The command must resume from its
    own saved state (e.g. ``millstream.checkpoint.enable`` on a fixed location); compare
    ``report.final.stdout`` with a run that was never killed.

    Examples
    --------
    >>> import sys, tempfile, os
    >>> where = os.path.join(tempfile.mkdtemp(), 'n')
    >>> script = ('import os, sys, time\n'
    ...           'p = sys.argv[1]\n'
    ...           'n = int(open(p).read()) if os.path.exists(p) else 0\n'
    ...           'while n < 30:\n'
    ...           '    n += 1; open(p + ".tmp", "w").write(str(n)); os.replace(p + ".tmp", p)\n'
    ...           '    time.sleep(0.01)\n'
    ...           'print(n)\n')
    >>> report = crash_and_recover([sys.executable, '-c', script, where], kills=2,
    ...                            seed=1, between=(0.05, 0.1))
    >>> [run.crashed for _, run in report.faults], report.final.stdout
    ([True, True], '30\n')
    """
    if seed is None:
        seed = random.SystemRandom().randrange(2**32)
    rng = random.Random(seed)
    faults: list[tuple[str, ChildRun]] = []
    schedule: list[tuple[str, float | None, str | None]] = []
    for point in failpoints:
        entry = point if ":" in point else f"{point}:kill"
        schedule.append((f"fail-point {entry}", None, entry))
    for _ in range(kills):
        seconds = rng.uniform(*between)
        schedule.append((f"kill after {seconds:.2f} s", seconds, None))
    for fault, delay, spec in schedule:
        run = run_child(command, kill_after=delay, failpoints=spec, env=env, timeout=timeout)
        faults.append((fault, run))
        if not run.crashed:
            raise AssertionError(
                f"seed {seed}: the run with fault '{fault}' was not killed (exit status "
                f"{run.returncode}); stderr: {run.stderr[-2000:]}"
            )
    final = run_child(command, env=env, timeout=timeout)
    report = CrashReport(seed, faults, final)
    print(report.describe(), file=sys.stderr)
    return report
