"""``from_process``: run a command and emit its output lines."""

from __future__ import annotations

import asyncio
import contextlib
import shlex
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

from ..core.awaitables import await_all
from ..core.stream import Stream
from .base import STOPPED, ManagedSource

__all__ = ["from_process"]

_READ_SIZE = 1 << 16


@Stream.register_api(staticmethod)
class from_process(ManagedSource):
    r"""Run ``cmd`` and emit each line of its standard output, as ``bytes`` ending in ``b'\n'``.

    The command runs with ``asyncio.create_subprocess_exec`` (no shell): ``cmd`` is a list
    of arguments or a string split with :func:`shlex.split`. Output is read in chunks and
    cut into lines; the next chunk is read once downstream has absorbed the lines before.
    With ``with_end=True`` a last line without newline is emitted too; ``with_stderr=True``
    merges standard error into the stream. When the output ends the source waits for the
    process to exit and stops.

    ``stop()`` terminates a running child (``SIGTERM``, then ``SIGKILL`` after 2 s) and
    reaps it before returning (when called from outside the loop thread); Streamz leaves it
    running. Only the child is signalled: to also end the processes it starts, pass
    ``open_kwargs={'start_new_session': True}`` and manage the group yourself, or ``exec``
    the last command of a shell line. From outside the loop, ``start()`` raises
    ``FileNotFoundError`` at once for a command that does not exist. ``.process`` is the
    ``asyncio.subprocess.Process`` while it runs.

    Checkpoints: this source has no position to resume from (``snapshot()`` is the
    stateless default): after a restart it goes on with what arrives, at least once
    from where it reconnects at best; the lines the child printed since the last checkpoint
    are lost with the process; a restart starts the command again.

    Parameters
    ----------
    cmd : str or list of str
        The command.
    open_kwargs : dict, optional
        More arguments for ``asyncio.create_subprocess_exec`` (``cwd``, ``env``…).
    with_stderr : bool
        Merge standard error into the emitted lines.
    with_end : bool
        Emit a last line that has no trailing newline.

    Examples
    --------
    >>> import sys
    >>> from millstream.testing import wait_for
    >>> source = Stream.from_process([sys.executable, '-c', 'print("a"); print("b", end="")'])
    >>> L = source.sink_to_list()
    >>> source.start()
    >>> wait_for(lambda: source.stopped, 5)
    >>> L
    [b'a\n', b'b']
    """

    _wait_ready_on_start = True
    #: Seconds between ``SIGTERM`` and ``SIGKILL`` when stopping a running child.
    terminate_timeout = 2.0

    def __init__(
        self,
        cmd: str | list[str] | tuple[str, ...],
        open_kwargs: dict[str, Any] | None = None,
        with_stderr: bool = False,
        with_end: bool = True,
        **kwargs: Any,
    ):
        if sys.platform == "win32":  # pragma: no cover
            raise NotImplementedError("from_process is not supported on Windows")
        if isinstance(cmd, str):
            args = shlex.split(cmd)
        elif isinstance(cmd, (list, tuple)):
            args = [str(a) for a in cmd]
        else:
            raise TypeError(f"from_process: cmd must be a str or a list of str, got {cmd!r}")
        if not args:
            raise ValueError("from_process: cmd is empty")
        self.cmd = cmd
        self._args = args
        self.open_kwargs = dict(open_kwargs or {})
        for key in ("stdout", "stderr"):
            if key in self.open_kwargs:
                raise ValueError(f"from_process: open_kwargs must not set {key!r}")
        self.with_stderr = with_stderr
        self.with_end = with_end
        self.process: asyncio.subprocess.Process | None = None
        super().__init__(**kwargs)

    async def run(self) -> None:
        if self.stopped:
            return
        stderr = subprocess.STDOUT if self.with_stderr else None
        try:
            process = await asyncio.create_subprocess_exec(
                *self._args, stdout=subprocess.PIPE, stderr=stderr, **self.open_kwargs
            )
        except FileNotFoundError as e:
            raise FileNotFoundError(
                e.errno, f"from_process: command not found: {self._args[0]!r}", self._args[0]
            ) from e
        self.process = process
        self._set_ready()
        try:
            await self._read_lines(process)
            if not self.stopped:
                await self._interruptible(process.wait())
        finally:
            await self._reap(process)
            self.process = None

    async def _read_lines(self, process: asyncio.subprocess.Process) -> None:
        stdout = process.stdout
        assert stdout is not None
        pending: list[bytes] = []
        while not self.stopped:
            chunk = await self._interruptible(stdout.read(_READ_SIZE))
            if chunk is STOPPED:
                return
            if not chunk:
                if pending and self.with_end:
                    await self._emit_and_wait(b"".join(pending))
                return
            if b"\n" not in chunk:
                pending.append(chunk)
                continue
            if pending:
                pending.append(chunk)
                chunk = b"".join(pending)
            lines = chunk.split(b"\n")
            rest = lines.pop()
            pending = [rest] if rest else []
            for awaitables in self._emit_batch(self._lines(lines)):
                await await_all(awaitables)

    def _lines(self, lines: list[bytes]) -> Iterator[bytes]:
        for line in lines:
            if self.stopped:
                return
            yield line + b"\n"

    async def _reap(self, process: asyncio.subprocess.Process) -> None:
        """Terminate the child if it still runs, and wait for it (no zombie is left)."""
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
            try:
                await asyncio.wait_for(process.wait(), self.terminate_timeout)
            except (asyncio.TimeoutError, TimeoutError):
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        # close the pipes even if a grandchild still holds them open
        transport = getattr(process, "_transport", None)
        if transport is not None:
            transport.close()
