"""``ManagedSource``: what ``start()`` raises, and the drain cut of ``stop()``."""

from __future__ import annotations

import asyncio
import logging
import threading

from millstream.sources.base import ManagedSource
from millstream.testing import wait_for


class _SlowReady(threading.Event):
    """An event whose ``wait`` returns late: the run has gone on meanwhile."""

    def wait(self, timeout=None):
        done = super().wait(timeout)
        threading.Event().wait(0.3)
        return done


class _FailsAfterReady(ManagedSource):
    async def run(self) -> None:
        self._set_ready()
        await asyncio.sleep(0)
        raise ValueError("failed while running")


class _FailsBeforeReady(ManagedSource):
    async def run(self) -> None:
        raise OSError("cannot bind")


def test_start_raises_a_setup_error():
    source = _FailsBeforeReady()
    source._wait_ready_on_start = True
    try:
        source.start()
    except OSError as e:
        assert "cannot bind" in str(e)
    else:
        raise AssertionError("start() did not raise the setup error")


def test_start_does_not_raise_an_error_that_came_after_ready(caplog):
    # before the fix, start() raised it when the run failed before start() woke up
    source = _FailsAfterReady()
    source._wait_ready_on_start = True
    source.ready = _SlowReady()
    with caplog.at_level(logging.ERROR, logger="millstream.sources"):
        source.start()  # returns: the source was running when it failed
        wait_for(lambda: source.stopped, 5)
    assert isinstance(source.error, ValueError)
    assert "stopped by an error" in caplog.text


class _HeldUp(ManagedSource):
    """Emits one element into a graph that never lets go of it."""

    def _drain_bound(self) -> float:
        return 0.3

    def _request_stop(self) -> None:
        super()._request_stop()
        self._arm_drain_cut()

    async def run(self) -> None:
        self._set_ready()
        try:
            await self._emit_and_wait("x")
        finally:
            self.released = True
            self._disarm_drain_cut()


def test_stop_cuts_a_run_held_up_in_the_graph_when_the_drain_runs_out(caplog):
    source = _HeldUp()
    source.released = False

    async def never(x):
        await asyncio.Event().wait()

    source.sink(never)
    source._wait_ready_on_start = True
    source.start()
    with caplog.at_level(logging.WARNING, logger="millstream.sources"):
        source.stop()  # returns once the run, cut after 0.3 s, has released what it holds
    assert source.released and source.stopped
    assert source.error is None and source.work_task.done()
    assert not source.work_task.cancelled()  # it ended as stop() ends a run
    assert "cancelling the element in progress" in caplog.text
