"""The idle-partition timer (millstream.time.IdleTimer) on its own, on a ManualClock.

``with_timestamps`` and the frames' event-time stage use it (their own tests cover it
through them): here the timer's rules themselves -- it fires at the tracker's idle
deadline and re-arms, an earlier timer is kept, a cancelled one does nothing, it does not
keep its node alive, errors are logged, and a checkpoint hold delays it and counts what
``on_idle`` returned as in hand.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import weakref

from millstream import ManualClock, Stream
from millstream.core.hold import Hold
from millstream.time import IdleTimer, WatermarkTracker

LOGGER = logging.getLogger("millstream.time")


class Node(Stream):
    """A node with a tracker whose ``on_idle`` records the watermark it sees."""

    def __init__(self, clock: ManualClock, **kwargs) -> None:
        super().__init__(clock=clock, ensure_io_loop=True, **kwargs)
        self.tracker = WatermarkTracker(idle_timeout=5, clock=clock)
        self.seen: list[tuple[float, float]] = []
        self.returns: list = []
        self.timer = IdleTimer(self, self.on_idle, "idle work failed", LOGGER)

    def on_idle(self) -> list:
        self.seen.append((self.clock.now(), self.tracker.watermark))
        return list(self.returns)


def test_fires_at_the_idle_deadline_and_re_arms():
    clock = ManualClock()
    node = Node(clock)
    node.tracker.observe(1, "a")
    clock.advance(2)
    node.tracker.observe(9, "b")  # 'a' goes idle at 5, 'b' at 7
    node.timer.arm()
    assert node.timer.deadline == 5.0
    clock.advance(3)
    assert node.seen == [(5.0, 9.0)]
    assert node.timer.deadline == 7.0  # re-armed for 'b'
    clock.advance(2)
    assert node.seen == [(5.0, 9.0), (7.0, 9.0)]
    assert node.timer.deadline is None and clock.pending == 0  # all idle: no timer left


def test_a_timer_that_fires_first_is_kept_an_earlier_deadline_replaces_it():
    clock = ManualClock()
    node = Node(clock)
    node.tracker.observe(1, "a")
    node.timer.arm()
    clock.advance(1)
    node.tracker.observe(2, "a")  # 'a' now idles at 6: the timer at 5 fires first
    node.timer.arm()
    assert node.timer.deadline == 5.0 and clock.pending == 1
    clock.advance(4)
    assert node.seen == [(5.0, 2.0)]  # it fired, found nothing idle, re-armed for 6
    assert node.timer.deadline == 6.0


def test_a_cancelled_timer_does_nothing():
    clock = ManualClock()
    node = Node(clock)
    node.tracker.observe(1, "a")
    node.timer.arm()
    node.timer.cancel()
    assert node.timer.deadline is None
    clock.advance(10)
    assert node.seen == []


def test_a_waiting_timer_does_not_keep_its_node_alive():
    clock = ManualClock()
    node = Node(clock)
    node.tracker.observe(1, "a")
    node.timer.arm()
    ref = weakref.ref(node)
    del node
    gc.collect()
    assert ref() is None
    clock.advance(10)  # the timer finds nothing to fire


def test_errors_of_on_idle_are_logged_and_the_timer_re_arms(caplog):
    clock = ManualClock()
    node = Node(clock)
    node.on_idle = lambda: 1 / 0  # type: ignore[method-assign]
    node.timer = IdleTimer(node, node.on_idle, "idle work failed", LOGGER)
    node.tracker.observe(1, "a")
    clock.advance(1)
    node.tracker.observe(1, "b")
    node.timer.arm()
    with caplog.at_level("ERROR", logger="millstream.time"):
        clock.advance(4)  # t=5: 'a' idle
    assert f"{node}: idle work failed" in caplog.text
    assert "ZeroDivisionError" in caplog.text
    assert node.timer.deadline == 6.0


def test_a_closed_hold_delays_the_call_and_counts_what_it_returned_in_hand():
    async def main() -> tuple[list, int, list, int]:
        clock = ManualClock()
        node = Node(clock, asynchronous=True)
        gate = asyncio.Event()
        node.returns = [gate.wait()]
        node.hold = Hold()
        node.hold.close()
        node.tracker.observe(3, "a")
        node.timer.arm()
        await clock.advance_async(5)
        before = list(node.seen)
        node.hold.open()
        for _ in range(5):
            await asyncio.sleep(0)
        in_hand = node.hold.in_hand  # the awaitable on_idle returned is not done yet
        gate.set()
        for _ in range(5):
            await asyncio.sleep(0)
        return before, in_hand, node.seen, node.hold.in_hand

    before, in_hand, seen, after = asyncio.run(main())
    assert before == []
    assert seen == [(5.0, 3.0)]
    assert (in_hand, after) == (1, 0)
